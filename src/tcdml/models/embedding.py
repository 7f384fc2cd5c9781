"""The embedding model: backbone -> pooled feature -> head (``tcdml.models.head``) -> L2 normalisation.

``build_model(ModelConfig(backbone="resnet50", embedding_size=512, pretrained="resnet50.safetensors",
freeze_bn=True))`` builds what the paper trains; ``model(images)`` is a (B, D) float32 tensor of unit rows.
Text backbones (``"minilm_l6"``) take a list of ``str`` instead of images. ``trainable_blocks`` fine-tunes
only the last blocks of the backbone (or none: a frozen backbone under a trained head).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tcdml.checks import check_bool, check_choice, check_int, check_real, check_text, require
from tcdml.errors import TcdmlInputError
from tcdml.models.backbone import as_backbone, create_backbone, load_weights
from tcdml.models.efficientnet_lite import EfficientNetLite0
from tcdml.models.feature_cache import CachedFeatures
from tcdml.models.feature_store import open_store
from tcdml.models.head import HEADS, build_head, resolve_head
from tcdml.models.small_cnn import SmallCNN
from tcdml.models.text_encoder import SentenceEncoder

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


#: Backbones tcdml builds itself (not timm's), by ``ModelConfig.backbone`` name.
LOCAL_BACKBONES: dict[str, type[nn.Module]] = {
    "small_cnn": SmallCNN,
    "minilm_l6": SentenceEncoder,
    "efficientnet_lite0": EfficientNetLite0,
}


@dataclass(frozen=True)
class ModelConfig:
    """What ``build_model`` builds.

    - ``backbone``: any timm model name (``"resnet50"``, ``"vit_base_patch16_224"``, ...), ``"small_cnn"``
      (``tcdml.models.small_cnn``, for 28 x 28 digits) or ``"minilm_l6"`` (``tcdml.models.text_encoder``:
      the all-MiniLM-L6-v2 sentence encoder, for text; its weights always come from its package).
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
    - ``trainable_blocks``: how much of the backbone is trained (the head always is). ``None``: all of it;
      ``0``: none (frozen: no gradients, kept in eval mode through ``.train()``, so dropout is off and
      BatchNorm statistics stay fixed); ``k > 0``: only the last ``k`` of the backbone's blocks, everything
      else in the backbone (stem, earlier blocks, final norms) frozen and in eval mode. The blocks are the
      backbone's ``blocks()`` (``tcdml.models.backbone.Backbone``; a timm model's through ``TimmBackbone``:
      its ``blocks`` attribute, ViTs' transformer blocks, EfficientNets' stages); a timm model without them,
      or ``k`` above the number of blocks, is a ``TcdmlInputError``. A frozen text backbone (``0``) gets a
      feature cache (``CachedFeatures``): each text is encoded once.
    - ``head``: where the embedding head starts, one of ``HEADS`` (``tcdml.models.head``): ``auto`` (random
      ``linear`` on a backbone without pretrained weights; on a pretrained encoder ``identity`` when
      ``embedding_size`` >= its features, ``pca`` when smaller), ``linear``, ``identity``, ``pca``, ``none``.
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
    trainable_blocks: int | None = None
    head: str = "auto"

    def __post_init__(self) -> None:
        """Each field checked through ``tcdml.checks`` (a ``ParameterError`` naming it; a training config
        names it ``model.<field>``)."""
        check_text("backbone", self.backbone)
        if self.pretrained is not None:
            check_text("pretrained", self.pretrained)
        for name in ("pretrained_from_hub", "freeze_bn"):
            check_bool(name, getattr(self, name))
        if self.channels_last is not None:
            check_bool("channels_last", self.channels_last)
        check_choice("head", self.head, HEADS)
        check_int("embedding_size", self.embedding_size, low=1)
        require(
            self.pretrained is None or not self.pretrained_from_hub,
            "pretrained_from_hub",
            self.pretrained_from_hub,
            "false: set either 'pretrained' (a local file) or 'pretrained_from_hub', not both",
        )
        check_real("drop_path_rate", self.drop_path_rate, low=0.0, high=1.0, open_high=True)
        if self.trainable_blocks is not None:
            check_int("trainable_blocks", self.trainable_blocks, low=0)
        if self.img_size is not None:
            check_int("img_size", self.img_size, low=1)
        if self.pooling is not None:
            check_text("pooling", self.pooling)

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
    """``forward(inputs)`` -> (B, embedding_size) L2-normalised float32 embeddings.

    ``backbone`` (a ``Backbone``, or a timm model: ``as_backbone``) maps inputs (an image batch, or a list of
    ``str`` for text backbones) to pooled features of width ``features`` (its ``num_features`` when None).
    With ``freeze_bn`` every BatchNorm stays in eval mode through ``.train()`` and its affine weights are not
    trained. ``trainable_blocks`` freezes all of the backbone but its last blocks, as ``ModelConfig``
    describes. ``mean`` / ``std`` are the input normalisation the backbone was pretrained with.
    ``feature_cache``, a ``CachedFeatures`` around ``backbone``, computes the features in its place (it is
    not a submodule: the state dict is the same with or without it). ``head`` is a resolved head kind of
    ``tcdml.models.head`` (``linear``, ``identity``, ``pca`` or ``none``; kept as ``head_kind``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        embedding_size: int,
        *,
        features: int | None = None,
        freeze_bn: bool = False,
        channels_last: bool = False,
        trainable_blocks: int | None = None,
        feature_cache: CachedFeatures | None = None,
        head: str = "linear",
    ) -> None:
        super().__init__()
        if feature_cache is not None and feature_cache.encoder is not backbone:
            raise TcdmlInputError("model: feature_cache must wrap the model's own backbone")
        spec = as_backbone(backbone)
        self.backbone = backbone
        self.feature_cache = feature_cache
        self.features = features or spec.num_features
        self.head_kind = resolve_head(
            head, pretrained=False, features=self.features, embedding_size=embedding_size
        )
        self.head = build_head(self.head_kind, self.features, embedding_size)
        self.freeze_bn = freeze_bn
        self.channels_last = channels_last
        self.mean = tuple(spec.mean)
        self.std = tuple(spec.std)
        self.trainable_blocks = trainable_blocks
        if trainable_blocks is not None:
            trained = self.trained_blocks()
            self.backbone.requires_grad_(False)
            for block in trained:
                block.requires_grad_(True)
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

    def trained_blocks(self) -> list[nn.Module]:
        """The backbone blocks ``trainable_blocks`` trains (all: ``[backbone]`` when it is None)."""
        if self.trainable_blocks is None:
            return [self.backbone]
        if self.trainable_blocks == 0:
            return []
        blocks = as_backbone(self.backbone).blocks()
        if self.trainable_blocks > len(blocks):
            raise TcdmlInputError(
                f"model: trainable_blocks={self.trainable_blocks}, but the backbone has {len(blocks)} blocks"
            )
        return blocks[-self.trainable_blocks :]

    def train(self, mode: bool = True) -> EmbeddingModel:
        """Set training mode, leaving frozen parts in eval mode: BatchNorm layers under ``freeze_bn`` (their
        statistics stay fixed) and the backbone outside its trained blocks (no dropout, fixed statistics)."""
        super().train(mode)
        if self.trainable_blocks is not None:
            self.backbone.eval()
            for block in self.trained_blocks():
                block.train(mode)
        for module in self.frozen_norms():
            module.eval()
        return self

    def extract(self, images: torch.Tensor | Sequence[str]) -> torch.Tensor:
        """(B, F) pooled backbone features (through the feature cache when there is one)."""
        return (self.backbone if self.feature_cache is None else self.feature_cache)(images)

    def forward(self, images: torch.Tensor | Sequence[str]) -> torch.Tensor:
        """(B, D) unit rows of an image batch (B, C, H, W), or of B texts for a text backbone."""
        if self.channels_last and isinstance(images, torch.Tensor):
            images = images.contiguous(memory_format=torch.channels_last)
        projected = self.head(self.extract(images))
        # Normalise in float32: under bf16/fp16 autocast the rows would be unit only to ~1e-2, too coarse for
        # similarity margins such as TCM's 0.9.
        return F.normalize(projected.float(), dim=1)


def starts_pretrained(config: ModelConfig) -> bool:
    """Whether the backbone of ``config`` starts from pretrained weights: tcdml's own encoders (all but
    ``small_cnn``, which has none by design), or a timm model with ``pretrained`` or ``pretrained_from_hub``.
    """
    if config.backbone in LOCAL_BACKBONES:
        return config.backbone != "small_cnn"
    return config.pretrained is not None or config.pretrained_from_hub


def random_weights_note(config: ModelConfig) -> str | None:
    """A one-line note when a timm backbone would start from random weights (no ``pretrained`` file, not
    ``pretrained_from_hub``), which is rarely what a user means; None otherwise. tcdml's own backbones load
    their shipped weights themselves (``small_cnn`` has none by design)."""
    if config.backbone in LOCAL_BACKBONES or config.pretrained is not None or config.pretrained_from_hub:
        return None
    return (
        f"model.backbone={config.backbone} starts from random weights (set model.pretrained to a weights "
        "file or model.pretrained_from_hub: true; tcdml init writes a config with pretrained weights)"
    )


def caches_features(config: ModelConfig) -> bool:
    """Whether ``build_model(config)`` caches the backbone's features: a frozen (``trainable_blocks: 0``)
    text encoder."""
    return config.trainable_blocks == 0 and LOCAL_BACKBONES.get(config.backbone) is SentenceEncoder


def build_model(
    config: ModelConfig, *, feature_cache: bool | str | os.PathLike | None = None
) -> EmbeddingModel:
    """The embedding model of ``config``, with its pretrained weights loaded (see ``ModelConfig``).

    ``feature_cache`` (a ``data.feature_cache`` value: a folder, ``True`` for the default one, ``False`` /
    ``None`` for none) keeps a frozen text encoder's features on disk too (``feature_store.open_store``).
    """
    if config.backbone in LOCAL_BACKBONES:  # tcdml's own backbones (small_cnn, efficientnet_lite0, minilm_l6)
        timm_only = {"pooling": None, "img_size": None, "drop_path_rate": 0.0, "pretrained_from_hub": False}
        ignored = [key for key, default in timm_only.items() if getattr(config, key) != default]
        if ignored:  # these are timm's options: a local backbone would silently ignore them
            raise TcdmlInputError(
                f"model: backbone {config.backbone!r} is built by tcdml and does not take "
                f"{', '.join(ignored)} (timm backbones only)"
            )
        backbone = LOCAL_BACKBONES[config.backbone]()
    else:
        backbone = create_backbone(
            config.backbone,
            pooling=config.pooling,
            img_size=config.img_size,
            drop_path_rate=config.drop_path_rate,
            from_hub=config.pretrained_from_hub,
        )
    cache = None
    if caches_features(config):
        # Before any weights are loaded: the key names the folder's weights, which these still are.
        cache = CachedFeatures(backbone, key=backbone.cache_key(), store=open_store(feature_cache))
    if config.pretrained is not None:
        load_weights(backbone, config.pretrained)
    features = as_backbone(backbone).num_features
    head = resolve_head(
        config.head,
        pretrained=starts_pretrained(config),
        features=features,
        embedding_size=config.embedding_size,
    )
    channels_last = config.channels_last
    if channels_last is None:  # NHWC speeds up convolutions (cuDNN, AMP); a ViT has just its patch embedding
        channels_last = sum(isinstance(m, nn.Conv2d) for m in backbone.modules()) > 1
    return EmbeddingModel(
        backbone,
        config.embedding_size,
        freeze_bn=config.freeze_bn,
        channels_last=channels_last,
        trainable_blocks=config.trainable_blocks,
        feature_cache=cache,
        head=head,
    )
