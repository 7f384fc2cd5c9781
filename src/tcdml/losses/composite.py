"""``with_tcm``: add the TCM regulariser to any base loss, sharing one similarity matrix where possible.

``total = base(embeddings, labels, indices_tuple, ref_emb, ref_labels) + L_TCM`` where TCM always ranges over
all (anchor, reference) pairs (it mines its own hard pairs by margin); a miner's ``indices_tuple`` goes to the
base loss only. The similarity matrix is computed once and shared with the base loss when the base is a tcdml
loss, or a PML loss whose distance is plain ``CosineSimilarity`` (MultiSimilarity, NTXent, SupCon, Circle,
Contrastive/Triplet built with ``distance="cosine"``, ...). Proxy / classification losses (ArcFace, CosFace,
ProxyAnchor, ...) compute their logits on the batch alone, and any parameters they own are parameters of the
composite, so ``optimizer(composite.parameters())`` trains them.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from torch import Tensor, nn

from tcdml.errors import TcdmlInputError

from .base import LossModule, LossTerm, TermLoss
from .pml import call_loss_terms, shared_similarity, uses_reference
from .similarity import IndicesTuple, PairBatch, SelfIndex, masks_from_indices_tuple, prepare_pairs
from .tcm import TCMLoss


class TCMComposite(LossModule):
    """A base loss plus the TCM regulariser; ``base`` and ``tcm`` are submodules (``tcm.num_hard_pos``)."""

    def __init__(self, base_loss: nn.Module, tcm: TCMLoss) -> None:
        super().__init__()
        if not isinstance(base_loss, nn.Module):
            raise TcdmlInputError(f"base_loss must be a torch.nn.Module, got {type(base_loss).__name__}")
        self.base = base_loss
        self.tcm = tcm
        self._shared = None if isinstance(base_loss, TermLoss) else shared_similarity(base_loss)

    @property
    def shares_similarity(self) -> bool:
        """Whether the base loss reuses TCM's similarity matrix on the batch."""
        return isinstance(self.base, TermLoss) or (self._shared is not None and uses_reference(self.base))

    def compute_terms(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        self_index: SelfIndex = None,
    ) -> list[LossTerm]:
        """Base terms followed by the two TCM terms, from one similarity matrix."""
        pairs = prepare_pairs(embeddings, labels, None, ref_emb, ref_labels, self_index)
        assert labels is not None
        return self._base_terms(pairs, embeddings, labels, indices_tuple, ref_emb, ref_labels, self_index) + (
            self.tcm.terms_from_pairs(pairs)
        )

    def _base_terms(
        self,
        pairs: PairBatch,
        embeddings: Tensor,
        labels: Tensor,
        indices_tuple: IndicesTuple,
        ref_emb: Tensor | None,
        ref_labels: Tensor | None,
        self_index: SelfIndex,
    ) -> list[LossTerm]:
        base = self.base
        if isinstance(base, TermLoss):
            if indices_tuple is None:
                return base.terms_from_pairs(pairs)
            if not base.accepts_indices_tuple:
                raise TcdmlInputError(
                    f"{type(base).__name__} does not take an indices_tuple (it ranks all pairs)"
                )
            masks = masks_from_indices_tuple(
                indices_tuple, tuple(pairs.sim.shape), pairs.masks.self_index, pairs.sim.device
            )
            return base.terms_from_pairs(PairBatch(pairs.sim, masks))
        ref = embeddings if ref_emb is None else ref_emb
        same_pairs = ref is embeddings or uses_reference(base)
        sharing = (
            self._shared.sharing(base, embeddings, ref, pairs.sim)
            if self._shared and same_pairs
            else nullcontext()
        )
        with sharing:
            return call_loss_terms(base, embeddings, labels, indices_tuple, ref_emb, ref_labels, self_index)

    def extra_repr(self) -> str:
        return f"shares_similarity={self.shares_similarity}"


def with_tcm(base_loss: nn.Module, **tcm_params: Any) -> TCMComposite:
    """``base_loss + TCMLoss(**tcm_params)`` on one similarity matrix (``lambda_pos``, ``lambda_neg``,
    ``margin_pos``, ``margin_neg``, ``margins``, ``target_far``, ``target_frr``, ``momentum``, ``min_gap``:
    see ``TCMLoss``).

    ``base_loss``: a tcdml loss, any pytorch-metric-learning loss, or any module with PML's calling contract.
    It becomes the composite's ``base`` (the same object, so its parameters are the composite's) and is never
    changed: a PML base loss whose distance is plain cosine similarity shares TCM's matrix through an
    equivalent ``SharedCosineSimilarity`` that stands in for its ``distance`` during the composite's call
    only; the caller's ``base_loss.distance`` stays what it was.
    """
    return TCMComposite(base_loss, TCMLoss(**tcm_params))
