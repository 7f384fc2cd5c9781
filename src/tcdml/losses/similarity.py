"""Shared similarity and pair-mask helpers for the losses.

Every loss in this package works on ONE cosine-similarity matrix ``sim[i, j] = <e_i / |e_i|, r_j / |r_j|>``
between anchors ``e`` (the batch) and references ``r`` (the batch itself, a memory bank or the embeddings
gathered from all processes), plus two boolean masks: ``pos[i, j]`` (same label, not the same sample) and
``neg[i, j]`` (different labels).

Self pairs. A sample is never paired with itself. Which reference column holds anchor ``i`` itself is given by
``self_index[i]`` (``-1``: anchor ``i`` is not among the references):

- ``ref_emb is None``: the references are the batch, ``self_index = arange(B)``;
- ``ref_emb is embeddings`` (the same tensor object, pytorch-metric-learning's convention): the same;
- otherwise no self pairs unless the caller says where they are: an ``int`` offset ``o`` (anchor ``i`` is
  reference ``o + i``, e.g. the gathered batch of process ``rank``), or a tensor of shape ``(B,)``
  (e.g. the memory-bank slots the batch was just written to).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from tcdml.errors import TcdmlInputError

SelfIndex = Tensor | int | None
IndicesTuple = Sequence[Tensor] | None

# Row blocks of about this many similarities (16 MB of float32) keep a block and its mask temporaries in a
# typical L3 cache, while few enough blocks keep per-op overhead low (see tcm.py).
BLOCK_ELEMENTS = 1 << 22


def normalize(embeddings: Tensor) -> Tensor:
    """L2-normalise rows: ``e / max(|e|, 1e-12)``; half precision is upcast to float32 first (no overflow)."""
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    return F.normalize(embeddings, p=2.0, dim=1)


def similarity_matrix(embeddings: Tensor, ref_emb: Tensor | None = None) -> Tensor:
    """Cosine similarities ``normalize(E) @ normalize(R)^T``, ``B x M`` (``R = E`` if ``ref_emb`` is None)."""
    anchors = normalize(embeddings)
    refs = anchors if ref_emb is None else normalize(ref_emb)
    return anchors @ refs.T


def check_inputs(
    embeddings: Tensor, labels: Tensor | None, ref_emb: Tensor | None = None, ref_labels: Tensor | None = None
) -> None:
    """Raise a one-line ``TcdmlInputError`` naming the problem with a loss's inputs."""
    if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
        raise TcdmlInputError(
            f"embeddings must be a 2-D tensor (batch x dim), got shape {_shape(embeddings)}"
        )
    if labels is None:
        raise TcdmlInputError("labels are required")
    if labels.ndim != 1 or len(labels) != len(embeddings):
        raise TcdmlInputError(
            f"labels must be 1-D with one label per embedding: got {tuple(labels.shape)} labels "
            f"for {len(embeddings)} embeddings"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise TcdmlInputError(f"labels must be integers, got dtype {labels.dtype}")
    if not _all_finite(embeddings):
        raise TcdmlInputError("embeddings contain NaN or infinite values")
    if ref_emb is None:
        if ref_labels is not None:
            raise TcdmlInputError("ref_labels given without ref_emb")
        return
    if ref_labels is None:
        raise TcdmlInputError("ref_emb given without ref_labels")
    if ref_emb.ndim != 2 or ref_emb.shape[1] != embeddings.shape[1]:
        raise TcdmlInputError(
            f"ref_emb must be 2-D with dim {embeddings.shape[1]} like embeddings, got {tuple(ref_emb.shape)}"
        )
    if ref_labels.ndim != 1 or len(ref_labels) != len(ref_emb):
        raise TcdmlInputError(
            f"ref_labels must be 1-D with one label per ref_emb row: got {tuple(ref_labels.shape)} "
            f"for {len(ref_emb)} rows"
        )
    if ref_emb is not embeddings and not _all_finite(ref_emb):
        raise TcdmlInputError("ref_emb contains NaN or infinite values")


def _all_finite(x: Tensor) -> bool:
    # One reduction instead of an elementwise isfinite: NaN / inf propagate into the sum (4x faster).
    return bool(torch.isfinite(x.sum(dtype=torch.promote_types(x.dtype, torch.float32))))


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__


def resolve_self_index(
    self_index: SelfIndex, batch_size: int, ref_size: int, device: torch.device
) -> Tensor | None:
    """``None`` / an ``int`` offset / a ``(B,)`` tensor as a ``(B,)`` long tensor (``-1``: no self pair)."""
    if self_index is None:
        return None
    if isinstance(self_index, int):
        if self_index < 0 or self_index + batch_size > ref_size:
            raise TcdmlInputError(
                f"self_index offset {self_index} puts the batch of {batch_size} "
                f"outside the {ref_size} references"
            )
        return torch.arange(self_index, self_index + batch_size, device=device)
    index = self_index.to(device=device, dtype=torch.long)
    if index.shape != (batch_size,):
        raise TcdmlInputError(f"self_index must have shape ({batch_size},), got {tuple(index.shape)}")
    if len(index) and (index.min() < -1 or index.max() >= ref_size):
        raise TcdmlInputError(
            f"self_index values must lie in [-1, {ref_size}), got {index.min()}..{index.max()}"
        )
    return index


@dataclass(frozen=True)
class PairMasks:
    """Positive / negative pair masks of a ``B x M`` similarity matrix, dense or computed by row block.

    From labels (``from_labels``): ``pos[i, j] = (y_i == r_j) and j != self_index[i]`` and
    ``neg[i, j] = (y_i != r_j)``, built block by block so no ``B x M`` mask is ever materialised. From
    explicit masks (``from_dense``): the given masks (with self pairs removed by the caller).
    """

    shape: tuple[int, int]
    labels: Tensor | None = None
    ref_labels: Tensor | None = None
    self_index: Tensor | None = None
    self_offset: int | None = None  # the same as ``self_index = offset + arange(B)``, cheaper to apply
    pos: Tensor | None = None
    neg: Tensor | None = None

    @classmethod
    def from_labels(
        cls,
        labels: Tensor,
        ref_labels: Tensor,
        self_index: Tensor | None = None,
        self_offset: int | None = None,
    ) -> PairMasks:
        """Masks defined by label equality, minus the self pairs given by ``self_index`` (or its offset)."""
        # Compare dense int32 ids: a broadcast int64 == is ~40x slower on CPU than an int32 one.
        both = labels if ref_labels is labels else torch.cat([labels, ref_labels])
        ids = torch.unique(both, return_inverse=True)[1].to(torch.int32)
        return cls(
            (len(labels), len(ref_labels)),
            labels=ids[: len(labels)],
            ref_labels=ids if ref_labels is labels else ids[len(labels) :],
            self_index=self_index,
            self_offset=self_offset,
        )

    @classmethod
    def from_dense(cls, pos: Tensor, neg: Tensor) -> PairMasks:
        """Masks given explicitly as two disjoint boolean ``B x M`` tensors."""
        if pos.shape != neg.shape or pos.ndim != 2:
            raise TcdmlInputError(
                f"pos_mask and neg_mask must be 2-D of one shape, got {pos.shape} and {neg.shape}"
            )
        return cls(tuple(pos.shape), pos=pos.bool(), neg=neg.bool())

    def block(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """``(pos, neg)`` for anchor rows ``start:stop``."""
        if self.pos is not None and self.neg is not None:
            return self.pos[start:stop], self.neg[start:stop]
        same = self._same(start, stop)
        neg = ~same
        return self._drop_self(same, start, stop), neg

    def select_block(
        self, sim_block: Tensor, start: int, stop: int, pos_at_most: float, neg_at_least: float
    ) -> tuple[Tensor, Tensor]:
        """``(pos & (s <= pos_at_most), neg & (s >= neg_at_least))`` for rows ``start:stop``."""
        if self.pos is not None and self.neg is not None:
            pos, neg = self.block(start, stop)
            return (sim_block <= pos_at_most) & pos, (sim_block >= neg_at_least) & neg
        same = self._same(start, stop)
        neg = sim_block >= neg_at_least
        torch.gt(neg, same, out=neg)  # for booleans a > b is a & ~b: no ~same temporary
        pos = sim_block <= pos_at_most
        pos &= self._drop_self(same, start, stop)
        return pos, neg

    def _same(self, start: int, stop: int) -> Tensor:
        assert self.labels is not None and self.ref_labels is not None
        return self.labels[start:stop, None] == self.ref_labels[None, :]

    def _drop_self(self, same: Tensor, start: int, stop: int) -> Tensor:
        if self.self_offset is not None:
            same.diagonal(self.self_offset + start).fill_(False)
        elif self.self_index is not None:
            cols = self.self_index[start:stop]
            rows = torch.nonzero(cols >= 0).squeeze(1)
            same[rows, cols[rows]] = False
        return same

    def dense(self) -> tuple[Tensor, Tensor]:
        """``(pos, neg)`` for all rows, materialised."""
        return self.block(0, self.shape[0])

    def row_blocks(self) -> list[tuple[int, int]]:
        """Row ranges of about ``BLOCK_ELEMENTS`` similarities each."""
        rows = max(1, BLOCK_ELEMENTS // max(1, self.shape[1]))
        return [(r, min(r + rows, self.shape[0])) for r in range(0, self.shape[0], rows)]


def masks_from_indices_tuple(
    indices_tuple: Sequence[Tensor], shape: tuple[int, int], self_index: Tensor | None, device: torch.device
) -> PairMasks:
    """Dense masks of a miner's pairs ``(a1, p, a2, n)`` or triplets ``(a, p, n)``, minus self pairs."""
    if len(indices_tuple) == 3:
        a, p, n = indices_tuple
        indices_tuple = (a, p, a, n)
    if len(indices_tuple) != 4:
        raise TcdmlInputError(
            f"indices_tuple must hold 3 (triplets) or 4 (pairs) tensors, got {len(indices_tuple)}"
        )
    a1, p, a2, n = (t.to(device=device, dtype=torch.long) for t in indices_tuple)
    pos = torch.zeros(shape, dtype=torch.bool, device=device)
    neg = torch.zeros(shape, dtype=torch.bool, device=device)
    pos[a1, p] = True
    neg[a2, n] = True
    if self_index is not None:
        rows = torch.nonzero(self_index >= 0).squeeze(1)
        pos[rows, self_index[rows]] = False
        neg[rows, self_index[rows]] = False
    return PairMasks.from_dense(pos, neg)


@dataclass(frozen=True)
class PairBatch:
    """What every loss here consumes: the similarity matrix (on the autograd graph) and its pair masks."""

    sim: Tensor
    masks: PairMasks


def prepare_pairs(
    embeddings: Tensor,
    labels: Tensor | None,
    indices_tuple: IndicesTuple = None,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    self_index: SelfIndex = None,
) -> PairBatch:
    """Validate inputs, compute the similarity matrix once and describe its pairs (module docstring)."""
    check_inputs(embeddings, labels, ref_emb, ref_labels)
    assert labels is not None
    labels = labels.to(embeddings.device)
    if ref_emb is None or ref_emb is embeddings:
        ref_labels = labels
        if self_index is None:
            self_index = 0
        ref_emb = None
    else:
        assert ref_labels is not None
        ref_labels = ref_labels.to(embeddings.device)
    index = resolve_self_index(self_index, len(embeddings), len(ref_labels), embeddings.device)
    sim = similarity_matrix(embeddings, ref_emb)
    if indices_tuple is not None:
        masks = masks_from_indices_tuple(indices_tuple, tuple(sim.shape), index, embeddings.device)
    else:
        offset = self_index if isinstance(self_index, int) else None
        masks = PairMasks.from_labels(labels, ref_labels, index, offset)
    return PairBatch(sim, masks)
