"""Training configs: typed dataclasses, YAML files composed from parts, and ``key.sub=value`` overrides.

A config file is a YAML mapping of sections (``data``, ``model``, ``loss``, ``optim``, ``trainer``,
``eval``) plus ``seed`` and ``output_dir``. It may start with ``include: [part.yaml, ...]`` (paths
relative to the file): the parts are merged in order (mappings merge key by key, anything else is
replaced), then the file's own keys on top. Every file is checked before merging, so an unknown key or a
value of the wrong type is an error that names the key and the file. Command-line overrides
(``trainer.max_epochs=2``) are parsed as YAML values and checked the same way. ``loss.params`` and
``loss.tcm`` are the loss's own keyword arguments (checked by the loss registry when the loss is built).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tcdml.errors import TcdmlInputError
from tcdml.io.yaml_file import read_yaml_mapping
from tcdml.models.embedding import ModelConfig

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class DataConfig:
    """Dataset, transforms and batch composition (P classes x m samples per batch, per process).

    ``options`` are the loader's own keyword arguments, passed to ``build_dataset`` (e.g.
    ``{max_per_class: 500}`` for ``fashion_mnist``, ``{max_classes: 200}`` for ``glyphs``).
    """

    dataset: str = "folder"
    root: str = "data"
    train_split: str = "train"
    eval_split: str = "test"
    image_size: int = 224
    resize_size: int | None = None
    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip: bool = True
    classes_per_batch: int = 32
    samples_per_class: int = 4
    eval_batch_size: int = 128
    num_workers: int = 4
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LossConfig:
    """The loss registry's config (``tcdml.losses.build_loss_from_config``): base loss +/- TCM."""

    name: str = "smooth_ap"
    params: dict[str, Any] = field(default_factory=dict)
    tcm: bool | dict[str, Any] | None = None

    def registry_config(self) -> dict[str, Any]:
        """The mapping ``build_loss_from_config`` takes."""
        return {"name": self.name, "params": dict(self.params), "tcm": self.tcm}


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and per-step schedule; ``head_lr`` / ``loss_lr`` default to ``lr`` (the backbone's)."""

    optimizer: str = "adamw"
    lr: float = 1e-5
    head_lr: float | None = None
    loss_lr: float | None = None
    weight_decay: float = 1e-4
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr_factor: float = 0.0
    step_epochs: int = 30
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise TcdmlInputError(
                f"optim.optimizer={self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise TcdmlInputError(f"optim.schedule={self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if self.warmup_epochs < 0 or self.step_epochs < 1 or not 0 <= self.min_lr_factor <= 1:
            raise TcdmlInputError(
                f"optim: warmup_epochs={self.warmup_epochs}, step_epochs={self.step_epochs}, "
                f"min_lr_factor={self.min_lr_factor}; expected >= 0, >= 1 and in [0, 1]"
            )


@dataclass(frozen=True)
class TrainerConfig:
    """Lightning ``Trainer`` settings (accelerator, devices, num_nodes and strategy are Lightning's)."""

    max_epochs: int = 100
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 50
    progress_bar: bool = True
    deterministic: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """Periodic evaluation on ``data.eval_split`` and the metric that picks the best checkpoint."""

    every_n_epochs: int = 1
    ks: tuple[int, ...] = (1, 2, 4, 8)
    far_range: tuple[float, float] = (1e-2, 1e-1)
    beta: float = 1.0
    eps: float = 0.1
    monitor: str = "recall@1"
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min") or self.every_n_epochs < 1:
            raise TcdmlInputError(
                f"eval: mode={self.mode!r}, every_n_epochs={self.every_n_epochs}; expected max|min and >= 1"
            )


@dataclass(frozen=True)
class TrainConfig:
    """One training run: every section, the seed and where checkpoints and logs go."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    output_dir: str = "runs/default"

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready; stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """A config from a nested mapping; unknown keys and wrong types raise ``TcdmlInputError``."""
        check_keys(values, source)
        sections = {}
        for name, kind in _hints(cls).items():
            if name in values:
                value = values[name]
                if _is_config(kind):
                    value = kind(**{key: _as_field(kind, key, item) for key, item in value.items()})
                sections[name] = value
        return cls(**sections)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read ``path`` (with its includes), apply ``overrides`` (``"a.b=value"``), return the typed config.

    ``output_dir`` defaults to ``runs/<file stem>``. Raises ``TcdmlInputError`` naming the file (or the
    override) and the key of a bad entry.
    """
    path = Path(path)
    merged = _read(path, ())
    merged.setdefault("output_dir", f"runs/{path.stem}")
    for text in overrides:
        _apply_override(merged, text)
    return TrainConfig.from_dict(merged, source=str(path))


def _read(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        raise TcdmlInputError(f"{path}: include cycle ({' -> '.join(p.name for p in (*chain, resolved))})")
    raw = read_yaml_mapping(path, "config", empty_ok=True)
    includes = raw.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(item, str) for item in includes):
        raise TcdmlInputError(f"{path}: key 'include' must be a list of file paths")
    check_keys(raw, str(path))
    merged: dict[str, Any] = {}
    for item in includes:
        merged = _merge(merged, _read(path.parent / item, (*chain, resolved)))
    return _merge(merged, raw)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top``; mappings merge recursively, other values are replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(config: dict[str, Any], text: str) -> None:
    key, sep, value_text = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise TcdmlInputError(f"override {text!r}: expected KEY.SUB=VALUE, e.g. trainer.max_epochs=2")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError:
        raise TcdmlInputError(f"override {text!r}: value is not valid YAML") from None
    *parents, leaf = key.split(".")
    nested: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        nested = {part: nested}
    check_keys(nested, f"override {text!r}")
    node = config
    for part in parents:
        if not isinstance(node.get(part), dict):  # e.g. loss.tcm: true -> a mapping of TCM parameters
            node[part] = {}
        node = node[part]
    node[leaf] = value


def check_keys(values: Mapping[str, Any], source: str, kind: type = TrainConfig, prefix: str = "") -> None:
    """Raise ``TcdmlInputError`` naming ``source`` and the key for an unknown key or a wrongly typed value."""
    hints = _hints(kind)
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise TcdmlInputError(f"{source}: unknown key '{name}' (expected one of {known})")
        hint = hints[key]
        if _is_config(hint):
            if not isinstance(value, Mapping):
                raise TcdmlInputError(f"{source}: key '{name}' must be a mapping, got {value!r}")
            check_keys(value, source, hint, f"{name}.")
        elif not _matches(value, hint):
            raise TcdmlInputError(f"{source}: key '{name}' = {value!r}, expected {_type_name(hint)}")


def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _is_config(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field annotation (lists stand for tuples; an int is a valid float)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (tuple, list):
        return isinstance(value, (list, tuple)) and all(
            _matches(item, typing.get_args(hint)[0]) for item in value
        )
    if origin is dict:
        return isinstance(value, Mapping)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _as_field(kind: type, key: str, value: Any) -> Any:
    """YAML lists become tuples for tuple fields (frozen configs stay hashable and compare equal)."""
    return tuple(value) if typing.get_origin(_hints(kind)[key]) is tuple else value
