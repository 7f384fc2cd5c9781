"""Threshold consistency for a model that cannot be retrained: a small adapter trained on its embeddings.

- ``train_adapter``: train a head (``residual`` by default, ``linear`` as an option) on an embedding set
  with tcdml's losses, TCM and the m-per-class sampler; the epoch kept is the best on validation and never
  one worse than the untrained head (which is the input itself). ``AdaptSettings`` holds every option.
- ``load_adapter(folder) -> (module, meta)``: the adapter folder written by ``tcdml adapt train``.
- ``apply_adapter``: transform embeddings with an adapter.

See ``docs/adapt.md``. Names load on first use, so ``import tcdml.adapt`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LinearAdapter": "head",
    "ResidualAdapter": "head",
    "build_head": "head",
    "load_adapter": "folder",
    "read_adapter_meta": "folder",
    "write_adapter_dir": "folder",
    "AdaptSettings": "settings",
    "AdaptResult": "train",
    "EpochScore": "train",
    "split_classes": "train",
    "train_adapter": "train",
    "apply_adapter": "apply",
}

__all__ = [
    "AdaptResult",
    "AdaptSettings",
    "EpochScore",
    "LinearAdapter",
    "ResidualAdapter",
    "apply_adapter",
    "build_head",
    "load_adapter",
    "read_adapter_meta",
    "split_classes",
    "train_adapter",
    "write_adapter_dir",
]

if TYPE_CHECKING:
    from .apply import apply_adapter
    from .folder import load_adapter, read_adapter_meta, write_adapter_dir
    from .head import LinearAdapter, ResidualAdapter, build_head
    from .settings import AdaptSettings
    from .train import AdaptResult, EpochScore, split_classes, train_adapter


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tcdml.adapt' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
