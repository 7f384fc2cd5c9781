"""The Threshold-Consistent Margin (TCM) regulariser (ICLR 2024; docs/spec.md, "The TCM regulariser").

On a similarity matrix ``s`` with positive / negative pair masks::

    H+ = {(i, j) positive : s_ij <= m+}        H- = {(i, j) negative : s_ij >= m-}
    L_TCM = lambda+ * mean_{H+}(m+ - s_ij) + lambda- * mean_{H-}(s_ij - m-)    (an empty set gives 0)

Computed from the one similarity matrix with masks, never by gathering pair vectors: a custom autograd
function walks the matrix in row blocks (so the temporaries stay in cache), returns the sums and counts of the
two hard sets and keeps only their boolean masks, from which backward writes the gradient ``-1`` / ``+1``
(times the upstream weights) straight into one ``B x M`` tensor. Pairs are ordered: with the batch as
references each unordered pair appears twice, which leaves the means equal.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from tcdml.errors import TcdmlInputError

from .base import LossTerm, TermLoss, reduce_terms
from .margins import DEFAULT_MIN_GAP, MarginTracker
from .similarity import PairBatch, PairMasks
from .tcm_settings import TCMSettings


class _HardPairTerms(torch.autograd.Function):
    """``(sum_{H+}(m+ - s), sum_{H-}(s - m-), |H+|, |H-|)``; d/ds = ``-g+ [H+] + g- [H-]``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, sim: Tensor, masks: PairMasks, margin_pos: float, margin_neg: float
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        acc = torch.promote_types(sim.dtype, torch.float32)  # fp16 sums of millions of pairs would overflow
        sums_pos, sums_neg, counts_pos, counts_neg, hard = [], [], [], [], []
        for start, stop in masks.row_blocks():
            block = sim[start:stop]
            hard_pos, hard_neg = masks.select_block(block, start, stop, margin_pos, margin_neg)
            sums_pos.append(torch.where(hard_pos, block, 0).sum(dtype=acc))
            sums_neg.append(torch.where(hard_neg, block, 0).sum(dtype=acc))
            counts_pos.append(torch.count_nonzero(hard_pos))
            counts_neg.append(torch.count_nonzero(hard_neg))
            hard.append((start, stop, hard_pos, hard_neg))
        # Keep the boolean masks (2 bytes a pair) rather than the float matrix (4 or 2): less memory, and
        # backward needs no second pass of comparisons.
        ctx.hard, ctx.like, ctx.shape = hard, sim.new_empty(0), sim.shape
        count_pos, count_neg = _total(counts_pos, sim, torch.long), _total(counts_neg, sim, torch.long)
        ctx.mark_non_differentiable(count_pos, count_neg)
        numerator_pos = count_pos.to(acc) * margin_pos - _total(sums_pos, sim, acc)
        numerator_neg = _total(sums_neg, sim, acc) - count_neg.to(acc) * margin_neg
        return numerator_pos, numerator_neg, count_pos, count_neg

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_pos: Tensor, grad_neg: Tensor, _gc1: Tensor | None, _gc2: Tensor | None
    ) -> tuple[Tensor, None, None, None]:
        like = ctx.like
        grad = like.new_empty(ctx.shape)
        grad_pos, grad_neg = (-grad_pos).to(like.dtype), grad_neg.to(like.dtype)
        zero = like.new_zeros(())
        for start, stop, hard_pos, hard_neg in ctx.hard:
            out = grad[start:stop]
            torch.where(hard_pos, grad_pos, zero, out=out)
            out.masked_fill_(hard_neg, grad_neg)
        return grad, None, None, None


def _total(parts: list[Tensor], like: Tensor, dtype: torch.dtype) -> Tensor:
    if len(parts) == 1:
        return parts[0]
    if parts:
        return torch.stack(parts).sum()
    return torch.zeros((), dtype=dtype, device=like.device)


def tcm_terms(
    sim: Tensor,
    masks: PairMasks,
    *,
    lambda_pos: float = 1.0,
    lambda_neg: float = 1.0,
    margin_pos: float = 0.9,
    margin_neg: float = 0.5,
) -> tuple[LossTerm, LossTerm]:
    """The two TCM terms ``(sum_{H+}(m+ - s), |H+|, lambda+)`` and ``(sum_{H-}(s - m-), |H-|, lambda-)``."""
    numerator_pos, numerator_neg, count_pos, count_neg = _HardPairTerms.apply(
        sim, masks, margin_pos, margin_neg
    )
    return LossTerm(numerator_pos, count_pos, lambda_pos), LossTerm(numerator_neg, count_neg, lambda_neg)


class TCMResult(NamedTuple):
    """TCM loss and its parts: ``loss = lambda+ * loss_pos + lambda- * loss_neg``; hard-pair counts."""

    loss: Tensor
    loss_pos: Tensor
    loss_neg: Tensor
    num_hard_pos: Tensor
    num_hard_neg: Tensor


def tcm_loss_from_similarity(
    sim: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor,
    *,
    lambda_pos: float = 1.0,
    lambda_neg: float = 1.0,
    margin_pos: float = 0.9,
    margin_neg: float = 0.5,
) -> TCMResult:
    """TCM of a similarity matrix ``sim`` (``B x M``) with disjoint boolean positive / negative pair masks.

    ``L = lambda+ * mean_{H+}(m+ - s) + lambda- * mean_{H-}(s - m-)``, ``H+ = {pos : s <= m+}``,
    ``H- = {neg : s >= m-}``; an empty hard set contributes a 0 that is still on the graph of ``sim``.
    """
    if pos_mask.shape != sim.shape or neg_mask.shape != sim.shape:
        raise TcdmlInputError(f"masks must have the similarity matrix's shape {tuple(sim.shape)}")
    if (pos_mask.bool() & neg_mask.bool()).any():
        raise TcdmlInputError("pos_mask and neg_mask overlap: a pair cannot be both positive and negative")
    TCMSettings(lambda_pos=lambda_pos, lambda_neg=lambda_neg, margin_pos=margin_pos, margin_neg=margin_neg)
    terms = tcm_terms(
        sim,
        PairMasks.from_dense(pos_mask, neg_mask),
        lambda_pos=lambda_pos,
        lambda_neg=lambda_neg,
        margin_pos=margin_pos,
        margin_neg=margin_neg,
    )
    parts = [reduce_terms([LossTerm(t.numerator, t.count)]) for t in terms]
    return TCMResult(reduce_terms(list(terms)), parts[0], parts[1], terms[0].count, terms[1].count)  # type: ignore[arg-type]


class TCMLoss(TermLoss):
    """TCM regulariser as a loss module with pytorch-metric-learning's calling contract.

    ``loss(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None, *, self_index=None)``:
    embeddings are L2-normalised; pairs are all (anchor, reference) pairs, or the pairs / triplets of a
    miner's ``indices_tuple``; self pairs are excluded (``similarity.py``). After each call ``num_hard_pos``
    and ``num_hard_neg`` hold the hard-pair counts (0-d long tensors, for logging). Add it to a base loss with
    ``with_tcm``.

    ``margins``: ``"fixed"`` uses ``margin_pos`` / ``margin_neg`` as given (``margin_neg >= margin_pos`` is
    allowed but warns: the margins then enforce no gap). ``"auto"`` reads them off the training batches
    (``tcdml.losses.margins.MarginTracker``): ``m-`` = the batch negatives' similarity at ``target_far``,
    ``m+`` = the batch positives' similarity at ``target_frr``, an exponential moving average with weight
    ``momentum`` on each new batch, at least ``min_gap`` apart (``ordered_margins``); ``margin_pos`` /
    ``margin_neg`` are used only before the first training batch. Margins are measured only in training mode
    (``loss.train()``); ``current_margins`` holds the ones in use.
    """

    accepts_indices_tuple = True

    def __init__(
        self,
        lambda_pos: float = 1.0,
        lambda_neg: float = 1.0,
        margin_pos: float = 0.9,
        margin_neg: float = 0.5,
        margins: str = "fixed",
        target_far: float = 0.1,
        target_frr: float = 0.5,
        momentum: float = 0.1,
        min_gap: float = DEFAULT_MIN_GAP,
    ) -> None:
        super().__init__()
        #: The checked settings (``tcdml.losses.tcm_settings``): the one description of this regulariser.
        self.settings = TCMSettings(
            lambda_pos, lambda_neg, margin_pos, margin_neg, margins, target_far, target_frr, momentum, min_gap
        )
        if margins == "fixed" and margin_neg >= margin_pos:
            warnings.warn(
                f"TCM margin_neg={margin_neg} >= margin_pos={margin_pos}: no similarity gap is enforced",
                stacklevel=2,
            )
        self.lambda_pos, self.lambda_neg = float(lambda_pos), float(lambda_neg)
        self.margin_pos, self.margin_neg = float(margin_pos), float(margin_neg)
        self.strategy = margins
        self.tracker = MarginTracker(target_far, target_frr, momentum, min_gap) if margins == "auto" else None
        if (
            self.tracker is not None
        ):  # raw tracked m+, m-, batches seen: saved with the model, resumes exactly
            self.register_buffer("margin_state", torch.zeros(3))  # float32: every device has it
        self.num_hard_pos: Tensor = torch.zeros((), dtype=torch.long)
        self.num_hard_neg: Tensor = torch.zeros((), dtype=torch.long)

    @classmethod
    def from_settings(cls, settings: TCMSettings) -> TCMLoss:
        """The regulariser ``settings`` describe."""
        return cls(**settings.loss_kwargs())

    @property
    def current_margins(self) -> tuple[float, float]:
        """``(m+, m-)`` in use now."""
        fixed = (self.margin_pos, self.margin_neg)
        return fixed if self.tracker is None else self.tracker.margins(self.margin_state, fixed)

    def terms_from_pairs(self, pairs: PairBatch) -> list[LossTerm]:
        """The two TCM terms of one similarity matrix; records the hard-pair counts."""
        if self.tracker is not None and self.training:
            self.tracker.update(self.margin_state, pairs.sim.detach(), *pairs.masks.dense())
        margin_pos, margin_neg = self.current_margins
        terms = tcm_terms(
            pairs.sim,
            pairs.masks,
            lambda_pos=self.lambda_pos,
            lambda_neg=self.lambda_neg,
            margin_pos=margin_pos,
            margin_neg=margin_neg,
        )
        self.num_hard_pos, self.num_hard_neg = terms[0].count, terms[1].count  # type: ignore[assignment]
        return list(terms)

    def extra_repr(self) -> str:
        margins = f"margin_pos={self.margin_pos}, margin_neg={self.margin_neg}"
        if self.tracker is not None:
            tracker = self.tracker
            margins = (
                f"margins=auto, target_far={tracker.target_far}, target_frr={tracker.target_frr}, "
                f"momentum={tracker.momentum}, min_gap={tracker.min_gap}"
            )
        return f"lambda_pos={self.lambda_pos}, lambda_neg={self.lambda_neg}, {margins}"


def tracked_margins(loss: nn.Module) -> dict[str, float] | None:
    """``{"margin_pos", "margin_neg"}`` in use by the auto-margin ``TCMLoss`` inside ``loss`` (any wrapper);
    None when it has none (no TCM, or fixed margins)."""
    for module in loss.modules():
        if isinstance(module, TCMLoss) and module.tracker is not None:
            margin_pos, margin_neg = module.current_margins
            return {"margin_pos": margin_pos, "margin_neg": margin_neg}
    return None
