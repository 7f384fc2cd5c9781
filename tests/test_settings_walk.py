"""Every field of every settings class, one bad value each (issue 22, "settings own their checks"):

- the library's own check refuses it with a ``ParameterError`` that names the field;
- a training config (or a study config) holding it is refused at load with a line naming the dotted key;
- where a command-line option sets it, ``main([...])`` exits 2 with one stderr line naming the option.

The parameters are read off the classes (``dataclasses.fields`` and their annotations) and the commands
(their click parameters), so a field added later is walked too; a field without a config key or a CLI option
is listed below with why, and a listed reason that no longer holds fails as well.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import yaml

from tcdml.adapt.settings import AdaptSettings
from tcdml.cli.main import commands, main
from tcdml.cli.options import SETTINGS_OPTIONS
from tcdml.data.transforms import TransformConfig
from tcdml.errors import ParameterError, TcdmlInputError
from tcdml.experiments.study_config import StudyConfig, load_study
from tcdml.losses.tcm_settings import TCMSettings
from tcdml.metrics.settings import EvaluationSettings, MetricSettings, PassSettings
from tcdml.metrics.uncertainty import UncertaintySettings
from tcdml.models.embedding import ModelConfig
from tcdml.training.config import TrainConfig

#: One bad value per field type: the wrong kind of value, or one no field of that type accepts.
BAD: dict[type, Any] = {float: math.nan, int: -5, str: "", Path: "", tuple: "x", dict: [1], bool: "maybe"}
#: Which arm of a union the walk spoils: the first of these it holds (``bool | str``: the string).
PREFERENCE = (float, int, str, Path, tuple, dict, bool)
#: A bad value as the command line types it, by the option's type (a choice: a name not among them).
BAD_TEXT = {int: "-5", float: "nan", str: "-5", list[str]: "-5", enum.Enum: "no-such-choice"}


def field_kind(hint: Any) -> Any:
    """The type a field's bad value is drawn for: a nested settings class, or one of ``PREFERENCE``."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    arms = [arm for arm in (typing.get_args(hint) if union else (hint,)) if arm is not type(None)]
    kinds = {typing.get_origin(arm) or arm for arm in arms}
    nested = [kind for kind in kinds if dataclasses.is_dataclass(kind)]
    return nested[0] if nested else next(kind for kind in PREFERENCE if kind in kinds)


def bad_value(cls: type, name: str) -> Any:
    kind = field_kind(typing.get_type_hints(cls)[name])
    return "not settings" if dataclasses.is_dataclass(kind) else BAD[kind]


def yaml_text(value: Any) -> str:
    """``value`` as an override's YAML value."""
    return ".nan" if isinstance(value, float) and math.isnan(value) else json.dumps(value)


# --- the library: each settings class names its own field -------------------------------------------------

#: The training config's sections: each checks its own keys and names them ``section.key``.
SECTIONS = {
    name: kind for name, kind in typing.get_type_hints(TrainConfig).items() if dataclasses.is_dataclass(kind)
}
LIBRARY = (MetricSettings, PassSettings, UncertaintySettings, TransformConfig, ModelConfig, TCMSettings)
#: ``AdaptSettings`` speaks the CLI's vocabulary (``--batch-size``), shared by ``train_adapter``.
ADAPT_SPELLING = {"loss_params": "--loss-param"}  # repeatable: one KEY=VALUE per option


def library_name(cls: type, name: str) -> str:
    """The name the class's error carries for field ``name``."""
    if cls is AdaptSettings:
        return ADAPT_SPELLING.get(name, "--" + name.replace("_", "-"))
    if cls in LIBRARY:
        return name
    return next(f"{section}.{name}" for section, kind in SECTIONS.items() if kind is cls)


LIBRARY_CASES = [
    pytest.param(cls, field.name, id=f"{cls.__name__}.{field.name}")
    for cls in (*LIBRARY, AdaptSettings, *(kind for kind in SECTIONS.values() if kind not in LIBRARY))
    for field in dataclasses.fields(cls)
]


@pytest.mark.parametrize(("cls", "name"), LIBRARY_CASES)
def test_each_settings_class_names_its_field(cls: type, name: str) -> None:
    value = bad_value(cls, name)
    with pytest.raises(ParameterError) as info:
        cls(**{name: value})
    assert info.value.name == library_name(cls, name), str(info.value)


# --- configs: a training config names the dotted key -------------------------------------------------------

#: Mappings a config section holds whose keys a settings class owns (``LossConfig.tcm`` is read by
#: ``TCMSettings.from_mapping``).
NESTED = {"loss.tcm": TCMSettings}
#: The config section that holds each library class's fields (``DataConfig`` builds a ``TransformConfig``,
#: ``EvalConfig`` a ``MetricSettings``); the fields a config cannot set, with why.
CONFIG_HOME = {MetricSettings: "eval", TransformConfig: "data", ModelConfig: "model", TCMSettings: "loss.tcm"}
NOT_IN_CONFIG = {
    (MetricSettings, "num_thresholds"): "training keeps the library default (evaluate --thresholds)",
    (MetricSettings, "threshold"): "the per-class table's threshold: tcdml evaluate's report, not training's",
    (MetricSettings, "uncertainty"): "training keeps the library default (evaluate --bootstrap)",
    (MetricSettings, "fmr_targets"): "training keeps the library default (evaluate --fmr)",
    (TransformConfig, "mean"): "the backbone's normalisation (EmbeddingModel.mean), not a user's key",
    (TransformConfig, "std"): "the backbone's normalisation (EmbeddingModel.std), not a user's key",
}
#: The config each walked key is spoiled in: all names valid, auto TCM margins (so every TCM key counts).
BASE_CONFIG = {
    "data": {"dataset": "mnist"},
    "model": {"backbone": "small_cnn", "embedding_size": 8},
    "loss": {"name": "arcface", "tcm": {"margins": "auto"}},
    "output_dir": "runs/walk",
}


def config_keys() -> list[tuple[str, Any]]:
    """Every dotted key of a training config and its bad value, read off ``TrainConfig``'s fields."""
    keys = []
    for field in dataclasses.fields(TrainConfig):
        kind = SECTIONS.get(field.name)
        if kind is None:
            keys.append((field.name, bad_value(TrainConfig, field.name)))
            continue
        keys += [(f"{field.name}.{sub.name}", bad_value(kind, sub.name)) for sub in dataclasses.fields(kind)]
    for prefix, kind in NESTED.items():
        keys += [(f"{prefix}.{sub.name}", bad_value(kind, sub.name)) for sub in dataclasses.fields(kind)]
    return keys


CONFIG_KEYS = config_keys()


def with_key(config: dict, key: str, value: Any) -> dict:
    out = json.loads(json.dumps(config))
    *parents, leaf = key.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


def test_the_base_config_loads() -> None:
    TrainConfig.from_dict(BASE_CONFIG, check_names=False)


@pytest.mark.parametrize(("key", "value"), [pytest.param(*case, id=case[0]) for case in CONFIG_KEYS])
def test_a_config_names_the_dotted_key(key: str, value: Any) -> None:
    with pytest.raises(TcdmlInputError, match=f"'{key}'"):
        TrainConfig.from_dict(with_key(BASE_CONFIG, key, value), check_names=False)


@pytest.mark.parametrize("cls", list(CONFIG_HOME))
def test_every_library_field_is_a_config_key_or_says_why_not(cls: type) -> None:
    keys = {key for key, _ in CONFIG_KEYS}
    missing = {(cls, f.name) for f in dataclasses.fields(cls) if f"{CONFIG_HOME[cls]}.{f.name}" not in keys}
    assert missing == {case for case in NOT_IN_CONFIG if case[0] is cls}


# --- the command line: the error names the option ----------------------------------------------------------


def command(*path: str) -> Any:
    found = typer.main.get_command(commands())
    for name in path:
        found = found.commands[name]
    return found


def option_of(cmd: Any, option: str) -> Any:
    """The command's option spelled ``option`` (the first spelling where it names two, ``--far-min``)."""
    first = option.split("/")[0]
    return next((p for p in cmd.params if isinstance(p, typer.core.TyperOption) and first in p.opts), None)


#: The settings fields each command's options set: an evaluation's (``EvaluationSettings`` and its
#: ``UncertaintySettings``), calibrate's pass (``PassSettings``).
EVALUATION_FIELDS = [
    *(f.name for f in dataclasses.fields(EvaluationSettings) if f.name != "uncertainty"),
    *(f.name for f in dataclasses.fields(UncertaintySettings)),
]
WALKED = {
    "evaluate": EVALUATION_FIELDS,
    "compare": EVALUATION_FIELDS,
    "calibrate": [f.name for f in dataclasses.fields(PassSettings)],
}
#: (command, field) without an option, and why.
NO_OPTION = {
    ("calibrate", "max_block_bytes"): "the pass sizes its blocks to the memory it finds (library only)",
    ("calibrate", "knn_backend"): "calibration needs no neighbour search (pair counts only)",
    ("evaluate", "max_block_bytes"): "the pass sizes its blocks to the memory it finds (library only)",
    ("evaluate", "noise_draws"): "the noise floor's draws stay the library default on the command line",
    ("compare", "max_block_bytes"): "the pass sizes its blocks to the memory it finds (library only)",
    ("compare", "noise_draws"): "the noise floor's draws stay the library default on the command line",
    ("compare", "ks"): "compare's verdicts read R@1 only (tcdml.metrics.compare.COMPARED)",
    ("compare", "threshold"): "compare writes no per-class table",
    ("compare", "mode"): "both models run the default histogram pass (the library's compare takes any)",
    ("compare", "num_bins"): "both models keep the default resolution (the library's compare takes any)",
    ("compare", "knn_backend"): "R@1 from the default torch search (the library's compare takes any)",
}
#: Options that are flags: no bad value can be typed (``--progress/--no-progress``, ``--tcm/--no-tcm``).
FLAGS = {"progress", "tcm"}


def cli_cases() -> list:
    cases = []
    for name, walked in WALKED.items():
        for field in walked:
            if (name, field) in NO_OPTION or field in FLAGS:
                cases.append(pytest.param((name,), field, None, id=f"{name}:{field}:none"))
                continue
            option = SETTINGS_OPTIONS.get(field, "--" + field.replace("_", "-"))
            cases.append(pytest.param((name,), field, option, id=f"{name}:{option}"))
    for field in dataclasses.fields(AdaptSettings):
        option = library_name(AdaptSettings, field.name)
        none = field.name in FLAGS
        param = pytest.param(("adapt", "train"), field.name, None if none else option, id=f"adapt:{option}")
        cases.append(param)
    return cases


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("walk") / "x.npz"
    np.savez(path, embeddings=rng.normal(size=(40, 8)).astype(np.float32), labels=np.repeat(np.arange(10), 4))
    return path


@pytest.mark.parametrize(("path", "field", "option"), cli_cases())
def test_the_cli_names_the_option(path, field, option, embeddings, tmp_path, capsys) -> None:
    cmd = command(*path)
    if option is None:  # listed: the command has no option for it (NO_OPTION) or it is a flag (FLAGS)
        spelled = SETTINGS_OPTIONS.get(field, "--" + field.replace("_", "-"))
        param = option_of(cmd, spelled)
        assert param is None or param.is_flag, f"{spelled} exists: walk it instead of listing it"
        return
    param = option_of(cmd, option)
    assert param is not None, f"{' '.join(path)} has no {option}: add it to NO_OPTION with why"
    kind = param.type_descriptor.annotation  # typer's reading of the option's annotation
    text = BAD_TEXT[enum.Enum if issubclass(kind, enum.Enum) else kind]  # a value no setting accepts
    inputs = [str(embeddings)] * (2 if path == ("compare",) else 1)
    outputs = ["-o", str(tmp_path / "adapter")] if path == ("adapt", "train") else []
    first = option.split("/")[0]
    code = main([*path, *inputs, *outputs, f"{first}={text}"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("tcdml: error: ") and first in lines[0], lines[0]
    assert not (tmp_path / "adapter").exists()


@pytest.mark.parametrize(("key", "value"), [pytest.param(*case, id=case[0]) for case in CONFIG_KEYS])
def test_train_names_the_overridden_key(key: str, value: Any, tmp_path: Path, capsys) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(BASE_CONFIG), encoding="utf-8")
    override = f"{key}={yaml_text(value)}"
    code = main(["train", str(config), override, "--check"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert f"override {override!r}" in lines[0] and f"'{key}'" in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()


# --- the study config: a YAML file, its keys named ---------------------------------------------------------

NOT_STUDY_KEYS = {"path": "the study file itself (tcdml study FILE)"}


def study_keys() -> list[tuple[str, Any]]:
    return [
        (f.name, bad_value(StudyConfig, f.name))
        for f in dataclasses.fields(StudyConfig)
        if f.name not in NOT_STUDY_KEYS
    ]


@pytest.mark.parametrize(("key", "value"), [pytest.param(*case, id=case[0]) for case in study_keys()])
def test_a_study_config_names_its_key(key: str, value: Any, tmp_path: Path, capsys) -> None:
    """The study has no option per key (its YAML is the interface): ``tcdml study`` names the file's key."""
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(BASE_CONFIG), encoding="utf-8")
    study = {
        "output_dir": str(tmp_path / "out"),
        "seeds": [0],
        "benchmarks": {"b": {"config": "run.yaml"}},
        "losses": {"arcface": {"name": "arcface"}},
        "tcm": {"margin_pos": 0.9},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    load_study(path)  # the base is valid
    path.write_text(yaml.safe_dump({**study, key: value}), encoding="utf-8")
    with pytest.raises(TcdmlInputError, match=f"key '{key}'"):
        load_study(path)
    assert main(["study", str(path), "--dry-run"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"key '{key}'" in lines[0], lines
