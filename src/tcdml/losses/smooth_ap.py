"""Smooth-AP (Brown, Xie, Kalogeiton, Zisserman, ECCV 2020), batched and with reference sets.

For query ``q`` with positives ``P_q`` and retrieval set ``Omega_q = P_q | N_q`` (``ranking.py``)::

    AP_q = (1 / |P_q|) * sum_{i in P_q} rank_P(q, i) / rank_Omega(q, i),   L = mean_q (1 - AP_q)

over the queries that have at least one positive, with sigmoid temperature ``tau = 0.01``. Any number of
samples per class works (PML's implementation needs equal counts). Unlike the authors' code, a query is never
part of its own retrieval set (docs/spec.md: a sample is never paired with itself).
"""

from __future__ import annotations

import torch
from torch import Tensor

from tcdml.errors import TcdmlInputError

from .base import LossTerm, TermLoss, reduce_terms
from .ranking import soft_positive_ranks
from .similarity import PairBatch


def smooth_ap_terms(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, temperature: float = 0.01) -> LossTerm:
    """``(sum_q (1 - AP_q), #queries with positives)`` for a similarity matrix and its masks."""
    ranks = soft_positive_ranks(sim, pos_mask, neg_mask, temperature)
    ratio = ranks.rank_pos / ranks.rank_all
    ap_sum = torch.zeros(len(sim), dtype=ratio.dtype, device=sim.device).index_add(0, ranks.query, ratio)
    valid = ranks.num_pos > 0
    ap = ap_sum / ranks.num_pos.clamp(min=1)
    return LossTerm(torch.where(valid, 1.0 - ap, 0.0).sum(), valid.sum())


def smooth_ap_loss_from_similarity(
    sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, temperature: float = 0.01
) -> Tensor:
    """Smooth-AP loss ``mean_q (1 - AP_q)`` of ``sim`` (``B x M``) with boolean positive / negative masks."""
    return reduce_terms([smooth_ap_terms(sim, pos_mask, neg_mask, temperature)])


class SmoothAPLoss(TermLoss):
    """Smooth-AP with PML's calling contract (``indices_tuple`` is not accepted: every pair is ranked)."""

    def __init__(self, temperature: float = 0.01) -> None:
        super().__init__()
        if temperature <= 0:
            raise TcdmlInputError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def terms_from_pairs(self, pairs: PairBatch) -> list[LossTerm]:
        """One term: the summed ``1 - AP`` over queries with positives."""
        pos, neg = pairs.masks.dense()
        return [smooth_ap_terms(pairs.sim, pos, neg, self.temperature)]

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
