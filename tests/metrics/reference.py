"""Brute-force reference of docs/spec.md's definitions, written independently of tcdml's implementation.

Slow and simple on purpose: every pair is enumerated, every rate is a direct comparison.
"""

from __future__ import annotations

import math

import numpy as np


def pair_lists(x: np.ndarray, y: np.ndarray, is_query=None, is_gallery=None):
    """Pairs (i, j, s) per docs/spec.md: unordered i < j, or ordered (query, gallery) with i != j."""
    xn = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    sim = xn @ xn.T
    n = len(y)
    if is_query is None and is_gallery is None:
        i, j = np.triu_indices(n, k=1)
    else:
        q = np.ones(n, bool) if is_query is None else is_query
        g = np.ones(n, bool) if is_gallery is None else is_gallery
        i, j = np.nonzero(q[:, None] & g[None, :] & ~np.eye(n, dtype=bool))
    return i, j, sim[i, j], sim


def reference_metrics(
    x,
    y,
    far_range=(1e-2, 1e-1),
    beta=1.0,
    eps=0.1,
    num_thresholds=100,
    ks=(1, 2, 4, 8),
    is_query=None,
    is_gallery=None,
    retrieval=True,
) -> dict:
    i, j, s, sim = pair_lists(x, y, is_query, is_gallery)
    same = y[i] == y[j]
    negatives = s[~same]
    t_lo = np.quantile(negatives, 1 - far_range[1])
    t_hi = np.quantile(negatives, 1 - far_range[0])
    grid = np.linspace(t_lo, t_hi, num_thresholds)
    utilities = []
    for c in np.unique(y):
        pos = s[same & (y[i] == c)]
        if len(pos) == 0:
            continue
        neg = s[~same & ((y[i] == c) | (y[j] == c))]
        tpr = np.array([(pos >= t).mean() for t in grid])
        tnr = np.array([(neg < t).mean() if len(neg) else 1.0 for t in grid])
        b2 = beta**2
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where((tpr == 0) & (tnr == 0), 0.0, (1 + b2) * tpr * tnr / (b2 * tnr + tpr))
        utilities.append(u)
    u = np.array(utilities)
    ubar = u.mean(axis=0)
    opis = np.mean([np.mean((uc - ubar) ** 2) for uc in u])
    worst = math.ceil(round(eps * len(u), 9))
    gaps = []
    for k in range(num_thresholds):
        column = np.sort(u[:, k])
        gaps.append(column[:worst].mean() - column[worst:].mean())
    out = {
        "opis": opis,
        "eps_opis": float(np.mean(np.square(gaps))),
        "t_lo": t_lo,
        "t_hi": t_hi,
        "num_opis_classes": len(u),
    }
    if retrieval:
        out.update(reference_retrieval(sim, y, ks, is_query, is_gallery))
    return out


def reference_retrieval(sim, y, ks, is_query=None, is_gallery=None) -> dict:
    """Leave-one-out R@k and MAP@R, neighbours ordered by (similarity desc, index asc)."""
    n = len(y)
    q = np.ones(n, bool) if is_query is None else is_query
    g = np.ones(n, bool) if is_gallery is None else is_gallery
    hits = {k: [] for k in ks}
    aps = []
    for a in np.nonzero(q)[0]:
        others = [b for b in np.nonzero(g)[0] if b != a]
        ranked = sorted(others, key=lambda b: (-sim[a, b], b))
        rel = [y[b] == y[a] for b in ranked]
        r = sum(rel)
        if r == 0:
            continue
        for k in ks:
            hits[k].append(any(rel[:k]))
        aps.append(sum(sum(rel[: i + 1]) / (i + 1) for i in range(r) if rel[i]) / r)
    out = {f"recall@{k}": float(np.mean(v)) for k, v in hits.items()}
    out["map@r"] = float(np.mean(aps))
    return out
