"""Brute-force references written straight from the papers' formulas: Python loops over queries and pairs.

Differentiable (plain torch ops), for tiny inputs only.
"""

from __future__ import annotations

import torch
from torch import Tensor


def cosine(a: Tensor, b: Tensor) -> Tensor:
    return torch.dot(a, b) / (a.norm() * b.norm())


def pair_lists(labels: Tensor, ref_labels: Tensor, self_cols: list[int]) -> tuple[list, list]:
    """Ordered (i, j) positive and negative pairs; ``self_cols[i]`` is anchor i's own column or -1."""
    pos, neg = [], []
    for i in range(len(labels)):
        for j in range(len(ref_labels)):
            if j == self_cols[i]:
                continue
            (pos if labels[i] == ref_labels[j] else neg).append((i, j))
    return pos, neg


def tcm(emb, labels, ref_emb, ref_labels, self_cols, lp=1.0, ln=1.0, mp=0.9, mn=0.5) -> Tensor:
    """docs/spec.md: lambda+ mean_{H+}(m+ - s) + lambda- mean_{H-}(s - m-), empty mean = 0."""
    pos, neg = pair_lists(labels, ref_labels, self_cols)
    hard_pos = [mp - s for s in (cosine(emb[i], ref_emb[j]) for i, j in pos) if s <= mp]
    hard_neg = [s - mn for s in (cosine(emb[i], ref_emb[j]) for i, j in neg) if s >= mn]
    loss = emb.sum() * 0
    if hard_pos:
        loss = loss + lp * torch.stack(hard_pos).mean()
    if hard_neg:
        loss = loss + ln * torch.stack(hard_neg).mean()
    return loss


def _rank(sims: Tensor, i: int, among: list[int], tau: float) -> Tensor:
    """1 + sum_{j in among, j != i} sigmoid((s_j - s_i) / tau)."""
    total = sims[i] * 0 + 1.0
    for j in among:
        if j != i:
            total = total + torch.sigmoid((sims[j] - sims[i]) / tau)
    return total


def _query_sets(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, q: int) -> tuple[list[int], list[int]]:
    positives = [j for j in range(sim.shape[1]) if pos_mask[q, j]]
    everything = [j for j in range(sim.shape[1]) if pos_mask[q, j] or neg_mask[q, j]]
    return positives, everything


def smooth_ap(sim: Tensor, pos_mask: Tensor, neg_mask: Tensor, tau: float = 0.01) -> Tensor:
    """Brown et al. 2020: AP_q = 1/|P| sum_{i in P} R(i, S_P) / R(i, S_Omega); L = mean_q (1 - AP_q)."""
    losses = []
    for q in range(sim.shape[0]):
        positives, everything = _query_sets(sim, pos_mask, neg_mask, q)
        if not positives:
            continue
        ap = sum(_rank(sim[q], i, positives, tau) / _rank(sim[q], i, everything, tau) for i in positives)
        losses.append(1 - ap / len(positives))
    return torch.stack(losses).mean()


def recall_at_k(sim, pos_mask, neg_mask, ks=(1, 2, 4, 8, 16), tau1=0.01, tau2=1.0) -> Tensor:
    """Patel et al. 2022: R_k = min(sum_{i in P} sig((k - rank_Omega(i)) / tau2), c) / c, c = min(k, |P|)."""
    losses = []
    for q in range(sim.shape[0]):
        positives, everything = _query_sets(sim, pos_mask, neg_mask, q)
        if not positives:
            continue
        ranks = [_rank(sim[q], i, everything, tau1) for i in positives]
        per_k = []
        for k in ks:
            cap = min(k, len(positives))
            hits = sum(torch.sigmoid((k - r) / tau2) for r in ranks)
            per_k.append(1 - torch.clamp(hits, max=cap) / cap)
        losses.append(torch.stack(per_k).mean())
    return torch.stack(losses).mean()
