"""The embedding model: timm backbone -> pooled feature -> linear projection -> L2 normalisation.

``build_model(ModelConfig(backbone="resnet50", embedding_size=512, pretrained="resnet50.safetensors",
freeze_bn=True))`` builds what the paper trains; ``model(images)`` is a (B, D) float32 tensor of unit rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tcdml.errors import TcdmlInputError
from tcdml.models.backbone import create_backbone, feature_size, load_weights
from tcdml.models.small_cnn import LOCAL_BACKBONES

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """What ``build_model`` builds.

    - ``backbone``: any timm model name (``"resnet50"``, ``"vit_base_patch16_224"``, ...), or ``"small_cnn"``
      (``tcdml.models.small_cnn``, for 28 x 28 digits).
    - ``embedding_size``: D, the width of the embeddings.
    - ``pretrained``: path of a local weights file for the backbone (``.safetensors``, or a torch file read
      with ``weights_only=True``); ``None`` for random initialisation.
    - ``pretrained_from_hub``: download timm's pretrained weights instead (off unless asked for; excludes
      ``pretrained``).
    - ``freeze_bn``: keep BatchNorm layers in eval mode with fixed affine weights (customary for ResNet-50).
    - ``pooling``: timm's ``global_pool`` (``"avg"``, ``"max"``, ``"avgmax"``, ``"token"`` ...); None: the
      model's own.
    - ``img_size``: input size for models built for one (ViTs); None: the model's default.
    - ``channels_last``: NHWC memory format; None: on for convolutional backbones, off for transformers.
    - ``drop_path_rate``: stochastic depth of the backbone.
    """

    backbone: str = "resnet50"
    embedding_size: int = 512
    pretrained: str | None = None
    pretrained_from_hub: bool = False
    freeze_bn: bool = False
    pooling: str | None = None
    img_size: int | None = None
    channels_last: bool | None = None
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.embedding_size < 1:
            raise TcdmlInputError(f"model: embedding_size={self.embedding_size}, expected >= 1")
        if self.pretrained is not None and self.pretrained_from_hub:
            raise TcdmlInputError(
                "model: set either 'pretrained' (a local file) or 'pretrained_from_hub', not both"
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise TcdmlInputError(f"model: drop_path_rate={self.drop_path_rate}, expected in [0, 1)")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "model config") -> ModelConfig:
        """A config from a mapping (e.g. a YAML file); an unknown key raises ``TcdmlInputError`` naming it."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TcdmlInputError(
                f"{source}: unknown key {unknown[0]!r} (expected one of {', '.join(sorted(known))})"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for checkpoints and logs)."""
        return asdict(self)


class EmbeddingModel(nn.Module):
    """``forward(images)`` -> (B, embedding_size) L2-normalised float32 embeddings.

    ``backbone`` maps images to pooled features of width ``features`` (read from a timm model when None).
    With ``freeze_bn`` every BatchNorm stays in eval mode through ``.train()`` and its affine weights are not
    trained. ``mean`` / ``std`` are the input normalisation the backbone was pretrained with.
    """

    def __init__(
        self,
        backbone: nn.Module,
        embedding_size: int,
        *,
        features: int | None = None,
        freeze_bn: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(features or feature_size(backbone), embedding_size)
        self.freeze_bn = freeze_bn
        self.channels_last = channels_last
        cfg = getattr(backbone, "pretrained_cfg", None) or {}
        self.mean = tuple(cfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(cfg.get("std", IMAGENET_STD))
        if freeze_bn:
            for module in self.frozen_norms():
                for parameter in module.parameters(recurse=False):
                    parameter.requires_grad_(False)
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.train()

    def frozen_norms(self) -> list[nn.Module]:
        """The BatchNorm layers kept frozen (empty without ``freeze_bn``)."""
        return [m for m in self.modules() if isinstance(m, BATCH_NORMS)] if self.freeze_bn else []

    def train(self, mode: bool = True) -> EmbeddingModel:
        """Set training mode, leaving frozen BatchNorm layers in eval mode (their statistics stay fixed)."""
        super().train(mode)
        for module in self.frozen_norms():
            module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        projected = self.head(self.backbone(images))
        # Normalise in float32: under bf16/fp16 autocast the rows would be unit only to ~1e-2, too coarse for
        # similarity margins such as TCM's 0.9.
        return F.normalize(projected.float(), dim=1)


def build_model(config: ModelConfig) -> EmbeddingModel:
    """The embedding model of ``config``, with its pretrained weights loaded (see ``ModelConfig``)."""
    if config.backbone in LOCAL_BACKBONES:  # tcdml's own small backbones (e.g. the MNIST demo's "small_cnn")
        backbone = LOCAL_BACKBONES[config.backbone]()
    else:
        backbone = create_backbone(
            config.backbone,
            pooling=config.pooling,
            img_size=config.img_size,
            drop_path_rate=config.drop_path_rate,
            from_hub=config.pretrained_from_hub,
        )
    if config.pretrained is not None:
        load_weights(backbone, config.pretrained)
    channels_last = config.channels_last
    if channels_last is None:  # NHWC speeds up convolutions (cuDNN, AMP); a ViT has just its patch embedding
        channels_last = sum(isinstance(m, nn.Conv2d) for m in backbone.modules()) > 1
    return EmbeddingModel(
        backbone, config.embedding_size, freeze_bn=config.freeze_bn, channels_last=channels_last
    )
