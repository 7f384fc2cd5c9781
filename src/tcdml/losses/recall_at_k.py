"""Recall@k surrogate (Patel, Tolias, Matas, CVPR 2022), batched, with reference sets and similarity mixup.

For query ``q`` with positives ``P_q`` (``ranking.py``, rank temperature ``tau1 = 0.01``)::

    R_k(q) = min(sum_{i in P_q} sigmoid((k - rank_Omega(q, i)) / tau2), c) / c,   c = min(k, |P_q|)
    L = mean_q (1 / |K|) * sum_{k in K} (1 - R_k(q))

with recall temperature ``tau2 = 1`` and ``K = {1, 2, 4, 8, 16}``, over queries with at least one positive.

Similarity mixup (SiMix): every pair ``(a, b)`` of same-label references becomes a virtual reference ``v``
with ``s_qv = alpha * s_qa + (1 - alpha) * s_qb``, ``alpha ~ U(0, 1)`` (the paper mixes similarities, not
images). ``v`` is a positive of ``q`` when ``a`` and ``b`` both are, a negative when both are negatives; a
virtual sample made from the query itself is left out. Virtual samples are references only, never queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tcdml.errors import TcdmlInputError

from .base import LossTerm, TermLoss, reduce_terms
from .ranking import soft_positive_ranks
from .similarity import PairBatch

DEFAULT_KS = (1, 2, 4, 8, 16)


def _check_params(ks: Sequence[int], rank_temperature: float, recall_temperature: float) -> None:
    if not ks or min(ks) < 1:
        raise TcdmlInputError(f"ks must be a non-empty list of integers >= 1, got {list(ks)}")
    if rank_temperature <= 0 or recall_temperature <= 0:
        raise TcdmlInputError("rank_temperature and recall_temperature must be > 0")


def recall_at_k_terms(
    sim: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    rank_temperature: float = 0.01,
    recall_temperature: float = 1.0,
) -> LossTerm:
    """``(sum_q mean_k (1 - R_k(q)), #queries with positives)`` (module docstring)."""
    _check_params(ks, rank_temperature, recall_temperature)
    ranks = soft_positive_ranks(sim, pos_mask, neg_mask, rank_temperature)
    k = torch.tensor(list(ks), dtype=ranks.rank_all.dtype, device=sim.device)
    soft_hits = torch.sigmoid((k - ranks.rank_all.unsqueeze(1)) / recall_temperature)
    hits = torch.zeros(len(sim), len(k), dtype=soft_hits.dtype, device=sim.device)
    hits = hits.index_add(0, ranks.query, soft_hits)
    cap = torch.minimum(k, ranks.num_pos.unsqueeze(1).to(k.dtype)).clamp(min=1)
    recall = torch.minimum(hits, cap) / cap
    valid = ranks.num_pos > 0
    return LossTerm(torch.where(valid, 1.0 - recall.mean(1), 0.0).sum(), valid.sum())


def recall_at_k_loss_from_similarity(
    sim: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    rank_temperature: float = 0.01,
    recall_temperature: float = 1.0,
) -> Tensor:
    """Recall@k surrogate loss of ``sim`` (``B x M``) with boolean positive / negative masks."""
    return reduce_terms(
        [recall_at_k_terms(sim, pos_mask, neg_mask, ks, rank_temperature, recall_temperature)]
    )


def similarity_mixup(
    sim: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor,
    ref_labels: Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Append one virtual reference per same-label reference pair (SiMix, module docstring).

    Returns the widened ``(sim, pos_mask, neg_mask)``. Costs an ``M x M`` label comparison.
    """
    same = ref_labels.unsqueeze(1) == ref_labels.unsqueeze(0)
    first, second = torch.nonzero(torch.triu(same, diagonal=1), as_tuple=True)
    alpha = torch.rand(len(first), generator=generator, device=generator.device if generator else sim.device)
    alpha = alpha.to(device=sim.device, dtype=sim.dtype)
    mixed = sim[:, first] * alpha + sim[:, second] * (1.0 - alpha)
    return (
        torch.cat([sim, mixed], dim=1),
        torch.cat([pos_mask, pos_mask[:, first] & pos_mask[:, second]], dim=1),
        torch.cat([neg_mask, neg_mask[:, first] & neg_mask[:, second]], dim=1),
    )


class RecallAtKSurrogateLoss(TermLoss):
    """Recall@k surrogate with PML's calling contract; ``mixup=True`` adds similarity mixup (SiMix).

    ``generator`` (optional) makes the mixup coefficients reproducible.
    """

    def __init__(
        self,
        ks: Sequence[int] = DEFAULT_KS,
        rank_temperature: float = 0.01,
        recall_temperature: float = 1.0,
        mixup: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_params(ks, rank_temperature, recall_temperature)
        self.ks = tuple(int(k) for k in ks)
        self.rank_temperature = float(rank_temperature)
        self.recall_temperature = float(recall_temperature)
        self.mixup = bool(mixup)
        self.generator = generator

    def terms_from_pairs(self, pairs: PairBatch) -> list[LossTerm]:
        """One term: the summed per-query surrogate loss over queries with positives."""
        sim = pairs.sim
        pos, neg = pairs.masks.dense()
        if self.mixup:
            ref_labels = pairs.masks.ref_labels
            if ref_labels is None:
                raise TcdmlInputError(
                    "similarity mixup needs labels for the references, not a miner's indices_tuple"
                )
            sim, pos, neg = similarity_mixup(sim, pos, neg, ref_labels, self.generator)
        return [recall_at_k_terms(sim, pos, neg, self.ks, self.rank_temperature, self.recall_temperature)]

    def extra_repr(self) -> str:
        return (
            f"ks={self.ks}, rank_temperature={self.rank_temperature}, "
            f"recall_temperature={self.recall_temperature}, mixup={self.mixup}"
        )
