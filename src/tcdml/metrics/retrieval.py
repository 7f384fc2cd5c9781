"""Retrieval metrics per query (docs/spec.md, "Retrieval metrics"): Recall@k hits and MAP@R from neighbours.

Neighbours are ordered by similarity, ties broken by the lower sample index, so results never depend on
the order in which samples are stored or on the kernel that found them.
"""

from __future__ import annotations

import torch


def topk_by_similarity(similarity: torch.Tensor, k: int, column_index: torch.Tensor) -> torch.Tensor:
    """(b, k) column positions of each row's ``k`` most similar columns, ties broken by ``column_index``.

    ``column_index[j]`` is the original sample index of column ``j``. Exclude a column (the query itself)
    by setting its similarity to ``-inf`` beforehand. Rows whose ``k``-th and ``k+1``-th values tie are
    re-ranked exactly by a stable sort of the whole row (rare: only exact duplicates tie).
    """
    num_columns = similarity.shape[1]
    kk = min(k + 1, num_columns)
    values, positions = similarity.topk(kk, dim=1)
    values, positions = _order_ties_by_index(values, positions, column_index)
    if kk > k:
        boundary = values[:, k - 1] == values[:, k]
        if bool(boundary.any()):
            rows = boundary.nonzero().squeeze(1)
            by_index = torch.argsort(column_index)
            full = torch.sort(similarity[rows][:, by_index], dim=1, descending=True, stable=True).indices
            positions[rows, :k] = by_index[full[:, :k]]
    return positions[:, :k]


def _order_ties_by_index(
    values: torch.Tensor, positions: torch.Tensor, column_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-order each row's top list by (similarity descending, original index ascending)."""
    by_index = torch.argsort(column_index[positions], dim=1)
    values, positions = values.gather(1, by_index), positions.gather(1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, by_value), positions.gather(1, by_value)


def retrieval_per_query(
    relevant: torch.Tensor, ks: tuple[int, ...], num_relevant: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-query Recall@k hits and MAP@R from the relevance of each query's ranked neighbours.

    ``relevant`` (b, k_max) is True where the i-th neighbour shares the query's class; ``num_relevant`` (b,)
    is R, the number of other members of the query's class. Returns ``hits`` (b, len(ks)) as 0/1 floats
    (a same-class sample among the k nearest) and ``ap`` (b,) with
    ``AP@R = (1/R) sum_{i<=R} P(i) rel(i)``, ``P(i)`` the precision of the first i neighbours (0 if R = 0).
    """
    relevant = relevant.to(torch.float64)
    ranks = torch.arange(1, relevant.shape[1] + 1, device=relevant.device, dtype=torch.float64)
    precision = relevant.cumsum(dim=1) / ranks
    within_r = ranks[None, :] <= num_relevant[:, None]
    ap = (precision * relevant * within_r).sum(dim=1) / num_relevant.clamp(min=1)
    hits = torch.stack([relevant[:, :k].amax(dim=1) for k in ks], dim=1)
    return hits, ap
