"""The value checks of training configs: one-line ``ConfigValueError`` naming the dotted key, the value and
what is expected (``tcdml.training.config`` prefixes the file or override it came from).

The section dataclasses call the small checks (``require``, ``positive``, ``in_range`` ...);
``check_model``, ``check_tcm`` and ``check_names`` check what spans sections or needs a registry;
``check_keys`` checks a raw mapping's keys and value types against a config dataclass's fields.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tcdml.errors import ParameterError, TcdmlInputError

if TYPE_CHECKING:
    from tcdml.training.config import TrainConfig


class ConfigValueError(ParameterError):
    """A config value out of range: names the dotted key, the value and what is expected.

    ``load_config`` / ``TrainConfig.from_dict`` prefix the file or override the value came from.
    """

    def __init__(self, key: str, value: Any, expected: str) -> None:
        self.key = key
        super().__init__(f"key '{key}' = {value!r}, expected {expected}", key, value, expected)


def require(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigValueError(key, value, expected)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive(key: str, value: Any, *, allow_none: bool = False, minimum: float = 1) -> None:
    """An integer >= ``minimum`` (or None when allowed)."""
    if allow_none and value is None:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    require(ok, key, value, f"an integer >= {minimum:g}" + (" or null" if allow_none else ""))


def in_range(key: str, value: Any, low: float, high: float, *, open_low=False, open_high=False) -> None:
    """A finite number in [low, high] (``open_*``: excluding that end)."""
    ok = finite(value) and (value > low if open_low else value >= low)
    ok = ok and (value < high if open_high else value <= high)
    text = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    require(ok, key, value, f"a number in {text}")


def nonempty(key: str, value: Any) -> None:
    require(isinstance(value, str) and value.strip() != "", key, value, "a non-empty string")


def check_model(values: Mapping[str, Any]) -> None:
    """``ModelConfig``'s ranges, checked here to name the dotted key (its own checks name the section)."""
    if "embedding_size" in values:
        positive("model.embedding_size", values["embedding_size"])
    if "drop_path_rate" in values:
        in_range("model.drop_path_rate", values["drop_path_rate"], 0.0, 1.0, open_high=True)
    if values.get("trainable_blocks") is not None:
        positive("model.trainable_blocks", values["trainable_blocks"], minimum=0)


def check_tcm(config: TrainConfig) -> None:
    """``loss.tcm`` against ``TCMLoss`` and, for auto margins, the batch (``check_tcm_params``)."""
    from tcdml.losses.margins import TCMParamError, check_tcm_params

    if isinstance(config.loss.tcm, Mapping):
        data = config.data
        try:
            check_tcm_params(config.loss.tcm, data.classes_per_batch, data.samples_per_class)
        except TCMParamError as exc:
            raise ConfigValueError(exc.key, exc.value, exc.expected) from None


def check_names(config: TrainConfig) -> None:
    """The dataset, backbone, loss and strategy exist (tcdml's registries, timm's and Lightning's), the
    dataset options fit its loader and the loss parameters fit its constructor (``check_loss``)."""
    from tcdml.data.registry import DATASETS
    from tcdml.models.embedding import LOCAL_BACKBONES

    names = ", ".join(DATASETS)
    require(config.data.dataset in DATASETS, "data.dataset", config.data.dataset, f"one of {names}")
    backbone = config.model.backbone
    if backbone not in LOCAL_BACKBONES:
        import timm

        expected = f"{', '.join(LOCAL_BACKBONES)} or a timm model name"
        require(timm.is_model(backbone), "model.backbone", backbone, expected)
    strategy = config.trainer.strategy
    if strategy not in ("auto", "ddp", "ddp_spawn", "single_device"):
        from pytorch_lightning.strategies import StrategyRegistry

        known = StrategyRegistry.available_strategies()
        require(
            strategy in known, "trainer.strategy", strategy, "auto or one of Lightning's: " + ", ".join(known)
        )
    check_dataset_options(config)
    check_loss(config)


def check_dataset_options(config: TrainConfig) -> None:
    """``data.options`` are keyword options of the dataset's loader, of the annotated types."""
    from tcdml.data.registry import check_options, needs_root

    try:
        check_options(config.data.dataset, config.data.options)
    except ParameterError as exc:
        key, expected = f"data.options.{exc.name}", f"{exc.expected} of dataset {config.data.dataset!r}"
        raise ConfigValueError(key, exc.value, expected) from None
    dataset = config.data.dataset
    if config.data.root is None and needs_root(dataset):
        raise ConfigValueError("data.root", None, f"the folder or file that dataset {dataset!r} reads")


def check_loss(config: TrainConfig) -> None:
    """The loss section fits the loss's constructor, without building it (the run builds it once,
    ``tcdml.training.build``): a known name, no unknown parameter (a typo), every required parameter given
    but the ``RUNTIME_PARAMS`` training fills in, and a given ``embedding_size`` equal to the model's."""
    from tcdml.losses.registry import RUNTIME_PARAMS, accepted_params, required_params

    name, params = config.loss.name, config.loss.params
    try:
        required, accepted = required_params(name), accepted_params(name)
    except TcdmlInputError:
        raise ConfigValueError("loss.name", name, "a loss of tcdml.losses.available_losses()") from None
    for key, value in params.items():
        require(
            accepted is None or key in accepted,
            f"loss.params.{key}",
            value,
            f"no such parameter of loss {name!r} (a typo?)",
        )
    missing = [key for key in required if key not in params and key not in RUNTIME_PARAMS]
    expected = f"parameters that build the loss (loss {name!r} needs {', '.join(missing)})"
    require(not missing, "loss.params", params, expected)
    size = config.model.embedding_size
    given = params.get("embedding_size", size)
    expected = f"{size} (model.embedding_size; leave it out to have it filled)"
    require(given == size or "embedding_size" not in required, "loss.params.embedding_size", given, expected)


def check_keys(values: Mapping[str, Any], source: str, kind: type, prefix: str = "") -> None:
    """Raise ``TcdmlInputError`` naming ``source`` and the key for an unknown key or a wrongly typed value."""
    fields = field_types(kind)
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise TcdmlInputError(f"{source}: unknown key '{name}' (expected one of {known})")
        hint = fields[key]
        if is_config(hint):
            if not isinstance(value, Mapping):
                raise TcdmlInputError(f"{source}: key '{name}' must be a mapping, got {value!r}")
            check_keys(value, source, hint, f"{name}.")
        elif not matches(value, hint):
            raise TcdmlInputError(f"{source}: key '{name}' = {value!r}, expected {type_name(hint)}")


def field_types(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def is_config(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field annotation (lists stand for tuples; an int is a valid float)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arg) for arg in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (tuple, list):
        return isinstance(value, (list, tuple)) and all(
            matches(item, typing.get_args(hint)[0]) for item in value
        )
    if origin is dict:
        return isinstance(value, Mapping)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def as_field(kind: type, key: str, value: Any) -> Any:
    """YAML lists become tuples for tuple fields (frozen configs stay hashable and compare equal)."""
    return tuple(value) if typing.get_origin(field_types(kind)[key]) is tuple else value
