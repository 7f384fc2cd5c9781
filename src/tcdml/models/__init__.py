"""Embedding models: any timm backbone + pooling + linear projection + L2 normalisation.

- ``ModelConfig`` / ``build_model(config)``: the model from a small typed config (weights from a local file).
- ``EmbeddingModel``: ``forward(images)`` -> (B, D) unit-norm embeddings; optional frozen BatchNorm.
- ``create_backbone``, ``load_weights``, ``feature_size``: the timm pieces, for custom heads.

timm loads when a model is built, not at import.
"""

from tcdml.models.backbone import create_backbone, feature_size, load_weights
from tcdml.models.embedding import EmbeddingModel, ModelConfig, build_model

__all__ = ["EmbeddingModel", "ModelConfig", "build_model", "create_backbone", "feature_size", "load_weights"]
