"""The checks of training configs that span sections or need a registry, and of a raw mapping's keys.

Values are checked with ``tcdml.checks`` (one ``ParameterError`` shape naming the dotted key, the value and
what is expected); ``tcdml.training.config`` prefixes the file or override a value came from.
``check_tcm``, ``check_dataset``, ``check_backbone``, ``check_strategy`` and ``check_loss`` take plain values
(``TrainConfig`` calls them); ``check_keys`` checks a raw mapping's keys and value types against a config
dataclass's fields.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from tcdml.checks import fits, require, type_name
from tcdml.errors import ParameterError, TcdmlInputError


def check_tcm(tcm: Mapping[str, Any], classes_per_batch: int, samples_per_class: int) -> None:
    """``loss.tcm`` read by ``TCMSettings`` (its own checks) and, for auto margins, its batch rule against
    ``data.classes_per_batch`` x ``data.samples_per_class``; errors renamed ``loss.tcm.<name>``."""
    from tcdml.losses.tcm_settings import TCMSettings

    try:
        settings = TCMSettings.from_mapping(tcm)
    except ParameterError as exc:
        raise exc.renamed(f"loss.tcm.{exc.name}") from None
    try:
        settings.check_batches(classes_per_batch, samples_per_class)
    except ParameterError as exc:  # the batch composition is data.classes_per_batch x data.samples_per_class
        expected = f"{exc.expected} (data.classes_per_batch x data.samples_per_class)"
        raise ParameterError.of(f"loss.tcm.{exc.name}", exc.value, expected) from None


def check_dataset(dataset: str, options: Mapping[str, Any], root: str | None) -> None:
    """``data.dataset`` is registered, ``data.options`` are keyword options of its loader of the annotated
    types, and ``data.root`` is given where the loader reads files."""
    from tcdml.data.registry import DATASETS, check_options, needs_root

    require(dataset in DATASETS, "data.dataset", dataset, f"one of {', '.join(DATASETS)}")
    try:
        check_options(dataset, options)
    except ParameterError as exc:
        expected = f"{exc.expected} of dataset {dataset!r}"
        raise ParameterError.of(f"data.options.{exc.name}", exc.value, expected) from None
    require(
        root is not None or not needs_root(dataset),
        "data.root",
        root,
        f"the folder or file that dataset {dataset!r} reads",
    )


def check_backbone(backbone: str) -> None:
    """``model.backbone`` is one of tcdml's backbones or a timm model name."""
    from tcdml.models.embedding import LOCAL_BACKBONES

    if backbone not in LOCAL_BACKBONES:
        import timm

        expected = f"{', '.join(LOCAL_BACKBONES)} or a timm model name"
        require(timm.is_model(backbone), "model.backbone", backbone, expected)


def check_strategy(strategy: str) -> None:
    """``trainer.strategy`` is ``auto`` or one of Lightning's registered strategies."""
    if strategy not in ("auto", "ddp", "ddp_spawn", "single_device"):
        from pytorch_lightning.strategies import StrategyRegistry

        known = StrategyRegistry.available_strategies()
        require(
            strategy in known, "trainer.strategy", strategy, "auto or one of Lightning's: " + ", ".join(known)
        )


def check_loss(name: str, params: Mapping[str, Any], embedding_size: int) -> None:
    """The loss section fits the loss's constructor, without building it (the run builds it once,
    ``tcdml.training.build``): a known name, no unknown parameter (a typo), every required parameter given
    but the ``RUNTIME_PARAMS`` training fills in, and a given ``embedding_size`` equal to the model's."""
    from tcdml.losses.registry import RUNTIME_PARAMS, accepted_params, required_params

    try:
        required, accepted = required_params(name), accepted_params(name)
    except TcdmlInputError:
        raise ParameterError.of("loss.name", name, "a loss of tcdml.losses.available_losses()") from None
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
    given = params.get("embedding_size", embedding_size)
    expected = f"{embedding_size} (model.embedding_size; leave it out to have it filled)"
    require(
        given == embedding_size or "embedding_size" not in required,
        "loss.params.embedding_size",
        given,
        expected,
    )


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
        elif not fits(value, hint):
            raise TcdmlInputError(f"{source}: key '{name}' = {value!r}, expected {type_name(hint)}")


def field_types(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def is_config(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def as_field(kind: type, key: str, value: Any) -> Any:
    """YAML lists become tuples for tuple fields (frozen configs stay hashable and compare equal)."""
    return tuple(value) if typing.get_origin(field_types(kind)[key]) is tuple else value
