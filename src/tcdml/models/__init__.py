"""Embedding models: any timm backbone + pooling + linear projection + L2 normalisation.

- ``ModelConfig`` / ``build_model(config)``: the model from a small typed config (weights from a local file).
- ``EmbeddingModel``: ``forward(images)`` -> (B, D) unit-norm embeddings; optional frozen BatchNorm.
- ``Backbone``: the contract of a feature extractor (``num_features``, ``mean`` / ``std``, ``blocks()``);
  ``as_backbone`` adapts a timm model to it (docs/extend.md).
- ``CachedFeatures``: a frozen text encoder's features, computed once per text.
- ``create_backbone``, ``load_weights``, ``feature_size``: the timm pieces, for custom heads.

timm loads when a model is built, not at import.
"""

from tcdml.models.backbone import Backbone, as_backbone, create_backbone, feature_size, load_weights
from tcdml.models.embedding import EmbeddingModel, ModelConfig, build_model
from tcdml.models.feature_cache import CachedFeatures

__all__ = [
    "Backbone",
    "CachedFeatures",
    "EmbeddingModel",
    "ModelConfig",
    "as_backbone",
    "build_model",
    "create_backbone",
    "feature_size",
    "load_weights",
]
