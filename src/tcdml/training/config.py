"""Training configs: one typed, frozen dataclass per section, checked when built.

``TrainConfig`` holds the sections (``data``, ``model``, ``loss``, ``optim``, ``trainer``, ``eval``), ``seed``
and ``output_dir``; ``TrainConfig.from_dict`` checks a nested mapping's keys, types and values, looks up the
names (dataset, backbone, loss) and builds the loss from ``loss.params`` / ``loss.tcm``. The sections reuse
the library's classes where one exists (``ModelConfig``; ``TransformConfig`` checks ``data``'s image keys,
``MetricSettings`` ``eval``'s metric keys). A bad value is one line naming the dotted key, the value, what is
expected and the file or override it came from (``tcdml.training.config_files`` reads files and overrides),
before any folder is made or Lightning starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tcdml.checks import check_int, check_real, check_text, is_real, require
from tcdml.data.transforms import IMAGENET_MEAN, IMAGENET_STD, TransformConfig
from tcdml.errors import ParameterError, TcdmlInputError
from tcdml.models.embedding import ModelConfig
from tcdml.training import config_checks
from tcdml.training.config_checks import as_field, check_keys, field_types, is_config

if TYPE_CHECKING:
    from tcdml.metrics.settings import MetricSettings

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "constant")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PRECISIONS = (
    "32-true",
    "32",
    "64-true",
    "64",
    "16-mixed",
    "16",
    "bf16-mixed",
    "bf16",
    "16-true",
    "bf16-true",
)
MAX_SEED = 2**32 - 1  # numpy's and Lightning's seeding take 32-bit seeds


@dataclass(frozen=True)
class DataConfig:
    """Dataset, transforms and batch composition (P classes x m samples per batch, per process).

    ``root``: the folder or file the dataset reads (a CSV for ``csv`` / ``text_csv``); leave it out for the
    datasets that ship with a package (``mnist``, ``hscodes``, ``glyphs``), required by the others.
    ``options`` are the loader's own keyword arguments, passed to ``build_dataset`` (e.g.
    ``{max_per_class: 500}`` for ``fashion_mnist``, ``{max_classes: 200}`` for ``glyphs``).

    ``val_classes``: the validation classes held out of ``train_split`` (by class, all their samples), which
    select the kept model (``best.ckpt``): a fraction in (0, 1) of the classes with >= 2 samples (at least
    2, leaving at least 2 to train) or a count >= 2; ``0``: none (closed-set data, where every class is also
    tested: no selection, the last epoch is kept). ``val_seed`` seeds which classes (independent of
    ``seed``). The rule is ``tcdml.data.splits.validation_classes``. ``eval_split`` is evaluated once, at the
    end, on the kept model (a report, never a selector).

    ``feature_cache``: where a frozen text encoder's features are kept between processes
    (``tcdml.models.feature_store``): ``true`` (the default folder, ``$TCDML_CACHE/features`` else
    ``~/.cache/tcdml/features``), a folder, or ``false`` (computed once per process only).
    """

    dataset: str = "folder"
    root: str | None = None
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
    val_classes: float | int = 0.2
    val_seed: int = 0
    feature_cache: bool | str = True

    def __post_init__(self) -> None:
        if not isinstance(self.feature_cache, bool):
            check_text("data.feature_cache", self.feature_cache)
        for name in ("dataset", "train_split", "eval_split"):
            check_text(f"data.{name}", getattr(self, name))
        if self.root is not None:
            check_text("data.root", self.root)
        try:  # the transform keys are the library's TransformConfig, checked by it
            self.transform_config()
        except ParameterError as exc:
            raise exc.renamed(f"data.{exc.name}") from None
        # A batch needs >= 2 classes (negatives) and >= 2 samples of each (positives).
        check_int("data.classes_per_batch", self.classes_per_batch, low=2)
        check_int("data.samples_per_class", self.samples_per_class, low=2)
        check_int("data.eval_batch_size", self.eval_batch_size, low=1)
        check_int("data.num_workers", self.num_workers, low=0)
        require(isinstance(self.options, Mapping), "data.options", self.options, "a mapping")
        size = self.val_classes
        ok = isinstance(size, int) and not isinstance(size, bool) and (size == 0 or size >= 2)
        ok = ok or (isinstance(size, float) and 0 < size < 1)
        expected = "a fraction in (0, 1) or a count >= 2 of the training classes (0: no validation classes)"
        require(ok, "data.val_classes", size, expected)
        check_int("data.val_seed", self.val_seed, low=0)

    def transform_config(
        self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
    ) -> TransformConfig:
        """The image transforms of this section, normalised with ``mean`` / ``std`` (the backbone's)."""
        return TransformConfig(
            image_size=self.image_size,
            resize_size=self.resize_size,
            crop_scale=tuple(self.crop_scale) if isinstance(self.crop_scale, list) else self.crop_scale,
            hflip=self.hflip,
            mean=tuple(mean),
            std=tuple(std),
        )


@dataclass(frozen=True)
class LossConfig:
    """The loss registry's config (``tcdml.losses.build_loss_from_config``): base loss +/- TCM."""

    name: str = "smooth_ap"
    params: dict[str, Any] = field(default_factory=dict)
    tcm: bool | dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_text("loss.name", self.name)
        require(isinstance(self.params, Mapping), "loss.params", self.params, "a mapping")
        ok = self.tcm is None or isinstance(self.tcm, (bool, Mapping))
        require(ok, "loss.tcm", self.tcm, "true, false, null or a mapping of TCM parameters")

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
        require(
            self.optimizer in OPTIMIZERS, "optim.optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}"
        )
        require(self.schedule in SCHEDULES, "optim.schedule", self.schedule, f"one of {', '.join(SCHEDULES)}")
        for name in ("lr", "head_lr", "loss_lr"):
            value = getattr(self, name)
            if value is not None or name == "lr":
                require(is_real(value) and value > 0, f"optim.{name}", value, "a number > 0")
        require(
            is_real(self.weight_decay) and self.weight_decay >= 0,
            "optim.weight_decay",
            self.weight_decay,
            "a number >= 0",
        )
        check_real("optim.momentum", self.momentum, low=0.0, high=1.0, open_high=True)
        ok = isinstance(self.betas, (tuple, list)) and len(self.betas) == 2
        ok = ok and all(is_real(beta) and 0 <= beta < 1 for beta in self.betas)
        require(ok, "optim.betas", self.betas, "[beta1, beta2], each in [0, 1)")
        require(
            is_real(self.warmup_epochs) and self.warmup_epochs >= 0,
            "optim.warmup_epochs",
            self.warmup_epochs,
            "a number >= 0",
        )
        check_real("optim.min_lr_factor", self.min_lr_factor, low=0.0, high=1.0)
        check_int("optim.step_epochs", self.step_epochs, low=1)
        check_real("optim.gamma", self.gamma, low=0.0, high=1.0, open_low=True)


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

    def __post_init__(self) -> None:
        check_int("trainer.max_epochs", self.max_epochs, low=1)
        require(
            self.accelerator in ACCELERATORS,
            "trainer.accelerator",
            self.accelerator,
            f"one of {', '.join(ACCELERATORS)}",
        )
        devices = self.devices
        ok = (
            isinstance(devices, int) and not isinstance(devices, bool) and (devices >= 1 or devices == -1)
        ) or (
            isinstance(devices, str)
            and re.fullmatch(r"auto|-1|[1-9]\d*|\d+(,\d+)*,?", devices.strip()) is not None
        )
        require(ok, "trainer.devices", devices, "a count >= 1, -1 (all), 'auto' or a list of ids like '0,1'")
        check_int("trainer.num_nodes", self.num_nodes, low=1)
        check_text("trainer.strategy", self.strategy)
        require(
            self.precision in PRECISIONS,
            "trainer.precision",
            self.precision,
            f"one of {', '.join(PRECISIONS)}",
        )
        if self.gradient_clip_val is not None:
            ok = is_real(self.gradient_clip_val) and self.gradient_clip_val >= 0
            require(ok, "trainer.gradient_clip_val", self.gradient_clip_val, "a number >= 0 or null")
        check_int("trainer.log_every_n_steps", self.log_every_n_steps, low=1)
        for name in ("progress_bar", "deterministic"):
            require(
                isinstance(getattr(self, name), bool), f"trainer.{name}", getattr(self, name), "true or false"
            )


@dataclass(frozen=True)
class EvalConfig:
    """Periodic evaluation on the validation classes (``data.val_classes``), the metric that selects the kept
    model (``monitor``: ``recall@1-opis`` = R@1 - OPIS by default, an epoch with undefined OPIS never
    selected by it) and the metrics of the final report on ``data.eval_split``.

    ``ks``, ``far_range``, ``beta`` and ``eps`` are the metric half of ``tcdml.metrics.EvaluationSettings``
    (``metric_settings()``), checked by that class: one set of rules for the CLI, the library and configs.
    """

    every_n_epochs: int = 1
    ks: tuple[int, ...] = (1, 2, 4, 8)
    far_range: tuple[float, float] = (1e-2, 1e-1)
    beta: float = 1.0
    eps: float = 0.1
    monitor: str = "recall@1-opis"
    mode: str = "max"

    def __post_init__(self) -> None:
        check_int("eval.every_n_epochs", self.every_n_epochs, low=1)
        self.metric_settings()
        require(self.mode in ("max", "min"), "eval.mode", self.mode, "max or min")
        from tcdml.metrics.catalogue import headline_metrics

        names = headline_metrics(tuple(self.ks), objective=True)  # the catalogue says each one's direction
        require(self.monitor in names, "eval.monitor", self.monitor, f"one of {', '.join(names)}")
        expected = names[self.monitor].direction
        require(self.mode == expected, "eval.mode", self.mode, f"{expected} for eval.monitor={self.monitor}")

    def metric_settings(self) -> MetricSettings:
        """The library's ``MetricSettings`` of this section (its own checks, errors named ``eval.<key>``)."""
        from tcdml.metrics.settings import MetricSettings

        ks = tuple(self.ks) if isinstance(self.ks, (list, tuple)) else self.ks
        ok = isinstance(ks, tuple) and all(isinstance(k, int) and not isinstance(k, bool) for k in ks)
        require(ok, "eval.ks", self.ks, "a non-empty list of integers >= 1")
        try:
            return MetricSettings(ks=ks, far_range=self.far_range, beta=self.beta, eps=self.eps)
        except ParameterError as exc:  # the library names its parameter: the config names the dotted key
            name = exc.name if hasattr(self, exc.name) else "far_range"
            raise ParameterError.of(f"eval.{name}", getattr(self, name), exc.expected) from None


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

    def __post_init__(self) -> None:
        """Checks across sections (each section checks its own keys)."""
        ok = isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= MAX_SEED
        require(ok, "seed", self.seed, f"an integer in [0, {MAX_SEED}]")
        check_text("output_dir", self.output_dir)
        max_epochs = self.trainer.max_epochs
        require(
            self.optim.warmup_epochs <= max_epochs,
            "optim.warmup_epochs",
            self.optim.warmup_epochs,
            f"at most trainer.max_epochs ({max_epochs})",
        )
        if isinstance(self.loss.tcm, Mapping):
            data = self.data
            config_checks.check_tcm(self.loss.tcm, data.classes_per_batch, data.samples_per_class)

    def check_names(self) -> None:
        """The dataset, backbone, strategy and loss exist (tcdml's registries, timm's and Lightning's), the
        dataset options fit its loader and the loss parameters its constructor (``config_checks``)."""
        data = self.data
        config_checks.check_dataset(data.dataset, data.options, data.root)
        config_checks.check_backbone(self.model.backbone)
        config_checks.check_strategy(self.trainer.strategy)
        config_checks.check_loss(self.loss.name, self.loss.params, self.model.embedding_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready; stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(
        cls,
        values: Mapping[str, Any],
        source: str = "config",
        origins: Mapping[str, str] | None = None,
        *,
        check_names: bool = True,
    ) -> TrainConfig:
        """A config from a nested mapping; unknown keys, wrong types and bad values raise ``TcdmlInputError``.

        The message starts with where the bad key came from: ``origins[dotted key]`` (a file or an override,
        see ``load_config``), else ``source``. ``check_names``: also look up the dataset, backbone and loss
        and check the dataset options and the loss parameters against the loss's constructor (the loss is
        built once, by the run: ``tcdml.training.build``).
        """
        origins = origins or {}
        check_keys(values, source, TrainConfig)
        sections = {}
        try:
            for name, kind in field_types(cls).items():
                if name in values:
                    value = values[name]
                    if is_config(kind):
                        try:
                            value = kind(**{key: as_field(kind, key, item) for key, item in value.items()})
                        except ParameterError as exc:  # a section's own check: name it by its dotted key
                            prefixed = exc.name.startswith(f"{name}.")
                            raise exc if prefixed else exc.renamed(f"{name}.{exc.name}") from None
                    sections[name] = value
            config = cls(**sections)
            if check_names:
                config.check_names()
        except ParameterError as exc:
            key, where = exc.name, _origin(origins, exc.name, source)
            raise TcdmlInputError(f"{where}: key '{key}' = {exc.value!r}, expected {exc.expected}") from None
        return config


def _origin(origins: Mapping[str, str], key: str, default: str) -> str:
    """Where ``key`` (dotted) was set: itself, else its closest parent section, else ``default``."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        found = origins.get(".".join(parts[:end]))
        if found is not None:
            return found
    return default
