"""Soft ranks of each query's positives, shared by Smooth-AP and the Recall@k surrogate.

For query ``q`` with positives ``P_q`` and retrieval set ``Omega_q = P_q | N_q`` (never ``q`` itself), the
soft rank of positive ``i`` among a set ``X`` replaces the step function of a rank by a sigmoid of temperature
``tau``::

    rank_X(q, i) = 1 + sum_{j in X, j != i} sigmoid((s_qj - s_qi) / tau)

Batched over all (query, positive) pairs at once: a ``P x M`` matrix for the ``P`` positive pairs (no loop
over queries, no padding, so classes with unequal counts cost nothing extra). The ``j = i`` term is kept in
the sums and removed exactly as ``sigmoid(0) = 0.5``, which avoids building a second mask.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from tcdml.errors import TcdmlInputError


class PositiveRanks(NamedTuple):
    """Soft ranks of every (query, positive) pair, and the number of positives of each query."""

    query: Tensor  # (P,) the query (row) of each positive pair
    rank_pos: Tensor  # (P,) soft rank among the query's positives
    rank_all: Tensor  # (P,) soft rank among the query's positives and negatives
    num_pos: Tensor  # (B,) number of positives per query


def soft_positive_ranks(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, temperature: float) -> PositiveRanks:
    """``rank_pos`` and ``rank_all`` (module docstring) of all positive pairs of ``sim`` (``B x M``)."""
    if temperature <= 0:
        raise TcdmlInputError(f"temperature must be > 0, got {temperature}")
    if sim.dtype in (torch.float16, torch.bfloat16):
        sim = sim.float()  # ranks are sums of up to M sigmoids: keep them exact past 2048
    query, column = torch.nonzero(pos_mask, as_tuple=True)
    rows = sim[query]
    sig = torch.sigmoid((rows - sim[query, column].unsqueeze(1)) / temperature)
    pos_rows = pos_mask[query]
    in_pos = torch.where(pos_rows, sig, 0).sum(1)
    in_all = torch.where(pos_rows | neg_mask[query], sig, 0).sum(1)
    return PositiveRanks(query, 0.5 + in_pos, 0.5 + in_all, pos_mask.sum(1))
