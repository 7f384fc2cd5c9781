"""The ``Backbone`` contract, timm models adapted to it, and pretrained weights from a local file.

``Backbone`` is what ``EmbeddingModel`` needs of a feature extractor; tcdml's own backbones (``SmallCNN``,
``EfficientNetLite0``, ``SentenceEncoder``) implement it, and ``as_backbone`` adapts any other module (a timm
model) with ``TimmBackbone``. ``create_backbone`` returns a timm model without its classifier:
``backbone(images)`` is the pooled feature (B, ``feature_size(backbone)``). Weights come from a file on disk
(``load_weights``) or, only when asked for, from timm's hub; nothing is downloaded otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from tcdml.deploy.kinds import IMAGENET_MEAN, IMAGENET_STD
from tcdml.errors import TcdmlInputError, first_line
from tcdml.io.torch_file import load_torch_file

# Wrappers that training scripts put around a state dict, looked through in this order.
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "module")


@runtime_checkable
class Backbone(Protocol):
    """A feature extractor ``EmbeddingModel`` can put its head on.

    - ``backbone(inputs)``: (B, ``num_features``) pooled features of an image batch (B, C, H, W) or, for a
      text backbone, of a list of B ``str``;
    - ``num_features``: the feature width;
    - ``mean`` / ``std``: the per-channel input normalisation its weights were trained with (pixels in
      [0, 1]; a text backbone gives ``(0, 0, 0)`` / ``(1, 1, 1)``, unused);
    - ``blocks()``: its blocks, input to output: what ``ModelConfig.trainable_blocks`` counts from the end.
    """

    num_features: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def blocks(self) -> list[nn.Module]: ...

    def __call__(self, inputs: Any) -> torch.Tensor: ...


class TimmBackbone:
    """A timm model seen as a ``Backbone`` (a view on the model; it holds no weights of its own).

    ``num_features`` is timm's ``head_hidden_size`` (else ``num_features``), ``mean`` / ``std`` come from its
    ``pretrained_cfg`` (ImageNet's when it names none: ``tcdml.deploy.kinds.IMAGENET_MEAN`` / ``_STD``), and
    ``blocks()`` is its ``blocks`` attribute when that is an ``nn.Sequential`` / ``nn.ModuleList`` (ViTs:
    transformer blocks; EfficientNets: stages).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        cfg = getattr(model, "pretrained_cfg", None) or {}
        self.name = str(cfg.get("architecture") or type(model).__name__)
        self.mean = tuple(cfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(cfg.get("std", IMAGENET_STD))

    @property
    def num_features(self) -> int:
        """timm's ``head_hidden_size``, else ``num_features``; ``TcdmlInputError`` when it has neither."""
        size = getattr(self.model, "head_hidden_size", None) or getattr(self.model, "num_features", None)
        if not isinstance(size, int):
            raise TcdmlInputError(f"model: cannot tell the feature size of {self.name}; pass it")
        return size

    def blocks(self) -> list[nn.Module]:
        """The model's ``blocks``; ``TcdmlInputError`` naming the model when it has none."""
        blocks = getattr(self.model, "blocks", None)
        if not isinstance(blocks, (nn.Sequential, nn.ModuleList)):
            raise TcdmlInputError(
                f"model: backbone {self.name!r} has no blocks() to fine-tune (set by trainable_blocks)"
            )
        return list(blocks)

    def __call__(self, inputs: Any) -> torch.Tensor:
        return self.model(inputs)


def as_backbone(module: nn.Module) -> Backbone:
    """``module`` itself when it implements ``Backbone``, else the ``TimmBackbone`` view of it."""
    return module if isinstance(module, Backbone) else TimmBackbone(module)


def create_backbone(
    name: str,
    *,
    pooling: str | None = None,
    img_size: int | None = None,
    drop_path_rate: float = 0.0,
    from_hub: bool = False,
) -> nn.Module:
    """The timm model ``name`` without classifier; ``pooling`` is timm's ``global_pool`` (None: the model's).

    ``img_size`` sets the input size of models built for one (ViTs); ``from_hub=True`` downloads timm's
    pretrained weights (never done otherwise). Raises ``TcdmlInputError`` for an unknown name or an option
    the model does not take.
    """
    import timm

    kwargs: dict[str, Any] = {"num_classes": 0}
    if pooling is not None:
        kwargs["global_pool"] = pooling
    if img_size is not None:
        kwargs["img_size"] = img_size
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    if not timm.is_model(name):
        raise TcdmlInputError(f"model: unknown timm backbone {name!r} (see timm.list_models())")
    try:
        return timm.create_model(name, pretrained=from_hub, **kwargs)
    except (TypeError, ValueError, AssertionError, NotImplementedError) as exc:
        options = ", ".join(f"{key}={value!r}" for key, value in kwargs.items() if key != "num_classes")
        reason = first_line(exc)
        raise TcdmlInputError(f"model: backbone {name!r} does not accept {options} ({reason})") from None


def feature_size(backbone: nn.Module) -> int:
    """Width of the pooled feature a backbone returns (``as_backbone(backbone).num_features``)."""
    return as_backbone(backbone).num_features


def load_weights(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load a local weights file into a timm backbone (its classifier weights, if any, are dropped).

    ``.safetensors`` files are read with safetensors, anything else with ``torch.load(weights_only=True)``
    (tensors only: no code in the file is run). The state dict may sit under a ``state_dict``/``model`` key
    and carry DDP's ``module.`` prefix; timm's own conversion for the architecture is applied (e.g.
    resampling a ViT's position embeddings to ``img_size``). Every backbone weight must be found: otherwise
    a ``TcdmlInputError`` names the file and the first missing or unexpected keys.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TcdmlInputError(f"model: expected weights file '{path.name}' at {path}")
    state = _read_state_dict(path)
    # timm's per-architecture converter, the one it applies to its hub weights.
    convert = getattr(sys.modules[type(backbone).__module__], "checkpoint_filter_fn", None)
    if convert is not None:
        state = convert(state, backbone)
    classifier = (getattr(backbone, "pretrained_cfg", None) or {}).get("classifier") or ()
    prefixes = tuple(f"{name}." for name in ([classifier] if isinstance(classifier, str) else classifier))
    state = {key: value for key, value in state.items() if not (prefixes and key.startswith(prefixes))}
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise TcdmlInputError(f"model: {path} does not fit the backbone: {detail}") from None
    if missing or unexpected:
        raise TcdmlInputError(
            f"model: {path} does not fit the backbone: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The flat {name: tensor} of a weights file, unwrapped from common checkpoint layouts."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(path, device="cpu")
        else:
            state = load_torch_file(path, "weights file", require_zip=False)
    except TcdmlInputError as exc:
        raise TcdmlInputError(f"model: {exc}") from None
    except Exception as exc:  # torch/safetensors raise many types for a damaged or non-weights file
        reason = first_line(exc)
        raise TcdmlInputError(f"model: cannot read weights from {path} ({reason})") from None
    while isinstance(state, dict):
        inner = next((state[key] for key in CHECKPOINT_KEYS if isinstance(state.get(key), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TcdmlInputError(f"model: {path} holds no state dict of tensors")
    return {key.removeprefix("module."): value for key, value in state.items()}
