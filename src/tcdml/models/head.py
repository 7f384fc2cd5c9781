"""The embedding head on a backbone's pooled features, and where it starts (``ModelConfig.head``).

With F the backbone's feature width, D ``embedding_size`` and ``f`` a pooled feature, the model's embedding
is ``normalize(W f + b)`` (a linear head) or ``normalize(f)`` (no head). The head kinds:

- ``linear``: ``W``, ``b`` with PyTorch's default (random) initialisation: a new head on a backbone whose
  features mean nothing yet (``small_cnn``, a timm model without pretrained weights);
- ``identity`` (D >= F): ``W = [I; 0]``, ``b = 0``: the model starts exactly at the encoder's normalised
  features (padded with zeros when D > F: the same cosines);
- ``pca`` (D < F): ``W`` = the top D right-singular vectors of the L2-normalised training features (uncentred
  PCA: the orthonormal projection that keeps most of their energy), ``b = 0``; set by ``set_principal``
  from the frozen encoder's features of the training split before training;
- ``none`` (D = F): no head, the embedding is the normalised pooled feature ("mean pooling, no new head");
  only the backbone trains.
- ``auto`` (the default): ``linear`` on a backbone without pretrained weights; on a pretrained encoder
  (``minilm_l6``, ``efficientnet_lite0``, a timm model with ``pretrained`` / ``pretrained_from_hub``) the
  start is the encoder itself: ``identity`` when D >= F, ``pca`` when D < F.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tcdml.errors import TcdmlInputError

HEADS = ("auto", "linear", "identity", "pca", "none")


def resolve_head(kind: str, *, pretrained: bool, features: int, embedding_size: int) -> str:
    """The head ``kind`` resolves to (``auto`` by the module docstring's rule); ``TcdmlInputError`` naming
    ``model.head`` / ``model.embedding_size`` when the sizes do not allow ``kind``."""
    if kind == "auto":
        if not pretrained:
            return "linear"
        return "identity" if embedding_size >= features else "pca"
    size = f"model.embedding_size={embedding_size} with the backbone's {features} features"
    if kind == "none" and embedding_size != features:
        raise TcdmlInputError(f"model.head='none': {size}; expected model.embedding_size={features}")
    if kind == "identity" and embedding_size < features:
        raise TcdmlInputError(f"model.head='identity': {size}; expected >= {features} (or model.head=pca)")
    if kind == "pca" and embedding_size >= features:
        raise TcdmlInputError(f"model.head='pca': {size}; expected < {features} (or model.head=identity)")
    if kind not in HEADS:
        raise TcdmlInputError(f"model.head={kind!r}: expected one of {', '.join(HEADS)}")
    return kind


def build_head(kind: str, features: int, embedding_size: int) -> nn.Module:
    """The head of a resolved ``kind``. ``pca`` starts as a fixed (seed 0) random orthonormal projection until
    ``set_principal`` sets the principal directions: never ``[I; 0]``, whose first D coordinates can all be 0
    for a sparse (post-ReLU) feature and would give zero embeddings to a model built without training data."""
    if kind == "none":
        return nn.Identity()
    head = nn.Linear(features, embedding_size)
    with torch.no_grad():
        if kind == "identity":
            head.weight.copy_(torch.eye(embedding_size, features))
            head.bias.zero_()
        elif kind == "pca":
            nn.init.orthogonal_(head.weight, generator=torch.Generator().manual_seed(0))
            head.bias.zero_()
    return head


def principal_directions(features: np.ndarray, count: int) -> np.ndarray:
    """(count, F) float32: the top ``count`` right-singular vectors of the L2-normalised rows of
    ``features`` (uncentred PCA; orthonormal rows)."""
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    if vt.shape[0] < count:
        raise TcdmlInputError(
            f"model.head='pca': {x.shape[0]} training samples give at most {vt.shape[0]} directions, "
            f"fewer than model.embedding_size={count}"
        )
    return vt[:count].astype(np.float32)


def set_principal(head: nn.Linear, features: np.ndarray) -> None:
    """Set a linear head's ``W`` to ``principal_directions(features, D)`` and ``b`` to 0."""
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(principal_directions(features, head.out_features)))
        head.bias.zero_()
