"""Bridge to pytorch-metric-learning (PML) losses: reference sets, self pairs, a shared similarity matrix.

PML losses know no ``self_index``: when a reference set contains the batch itself, self pairs are removed by
passing an ``indices_tuple`` without them (as PML's own ``CrossBatchMemory`` does). Losses that cannot take a
reference set at all (proxy / classification losses such as ArcFace, ProxyAnchor) are called on the batch
alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import CrossBatchMemory
from torch import Tensor, nn

from tcdml.errors import TcdmlInputError

from .base import LossTerm
from .similarity import IndicesTuple, PairMasks, SelfIndex, resolve_self_index


class SharedCosineSimilarity(CosineSimilarity):
    """PML's ``CosineSimilarity`` that returns a precomputed matrix for the one (query, ref) pair it is given.

    Lets a PML base loss and TCM use the same similarity matrix (one matmul, one backward) inside
    ``with_tcm``. Any other call (e.g. embeddings vs proxies) computes as usual.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._shared: tuple[Tensor, Tensor, Tensor] | None = None

    def forward(self, query_emb: Tensor, ref_emb: Tensor | None = None) -> Tensor:
        shared = self._shared
        ref = query_emb if ref_emb is None else ref_emb
        if shared is not None and query_emb is shared[0] and ref is shared[1]:
            return shared[2]
        return super().forward(query_emb, ref_emb)

    @contextmanager
    def sharing(self, loss: nn.Module, query_emb: Tensor, ref_emb: Tensor, sim: Tensor) -> Iterator[None]:
        """Within the block ``loss.distance`` is this module, and ``self(query_emb, ref_emb)`` returns
        ``sim``; ``loss.distance`` is restored afterwards (also on an error)."""
        original = loss.distance
        loss.distance = self
        self._shared = (query_emb, ref_emb, sim)
        try:
            yield
        finally:
            self._shared = None
            loss.distance = original


def shared_similarity(loss: nn.Module) -> SharedCosineSimilarity | None:
    """A ``SharedCosineSimilarity`` equivalent to the distance of a PML loss whose distance is plain cosine
    similarity (else None). ``loss`` is not changed: ``sharing`` puts it in place for one call only."""
    distance = getattr(loss, "distance", None)
    if isinstance(distance, SharedCosineSimilarity):
        return distance
    plain = (
        type(distance) is CosineSimilarity
        and distance.power == 1
        and distance.normalize_embeddings
        and distance.p == 2
    )
    if not plain:
        return None
    return SharedCosineSimilarity(collect_stats=distance.collect_stats)


def uses_reference(loss: nn.Module) -> bool:
    """Whether ``loss`` can take ``ref_emb`` (tcdml losses, PML pair/tuple losses; not PML proxy losses)."""
    if hasattr(loss, "compute_terms"):
        return True
    if type(loss).__module__.startswith("pytorch_metric_learning"):
        supported = set(CrossBatchMemory.supported_losses())
        return any(cls.__name__ in supported for cls in type(loss).__mro__)
    return True


def indices_without_self(
    labels: Tensor, ref_labels: Tensor, self_index: Tensor, indices_tuple: IndicesTuple = None
) -> tuple[Tensor, ...]:
    """A PML ``indices_tuple`` of all pairs (or of the given one) minus self pairs ``(i, self_index[i])``."""
    if indices_tuple is None:
        pos, neg = PairMasks.from_labels(labels, ref_labels, self_index).dense()
        return (*torch.where(pos), *torch.where(neg))
    anchors, refs = indices_tuple[0], indices_tuple[1]
    keep = self_index[anchors] != refs
    if len(indices_tuple) == 3:
        return tuple(t[keep] for t in indices_tuple)
    a2, n = indices_tuple[2], indices_tuple[3]
    keep_neg = self_index[a2] != n
    return anchors[keep], refs[keep], a2[keep_neg], n[keep_neg]


def call_loss_terms(
    loss: nn.Module,
    embeddings: Tensor,
    labels: Tensor,
    indices_tuple: IndicesTuple = None,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    self_index: SelfIndex = None,
) -> list[LossTerm]:
    """Call a tcdml loss (its terms) or a PML-style loss (one already-reduced term) with a reference set."""
    if hasattr(loss, "compute_terms"):
        return loss.compute_terms(embeddings, labels, indices_tuple, ref_emb, ref_labels, self_index)
    if ref_emb is None or ref_emb is embeddings:
        value = loss(embeddings, labels, indices_tuple)
    elif not uses_reference(loss):
        value = loss(embeddings, labels, indices_tuple)
    else:
        if ref_labels is None:
            raise TcdmlInputError("ref_emb given without ref_labels")
        index = resolve_self_index(self_index, len(embeddings), len(ref_emb), embeddings.device)
        if index is not None:
            labels, ref_labels = labels.to(embeddings.device), ref_labels.to(embeddings.device)
            indices_tuple = indices_without_self(labels, ref_labels, index, indices_tuple)
        value = loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)
    if not isinstance(value, Tensor):  # PML returns a Python 0 when no pair qualifies
        value = embeddings.sum() * 0.0 + value
    return [LossTerm(value, None)]
