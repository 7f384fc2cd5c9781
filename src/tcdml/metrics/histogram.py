"""``PairHistogram``: per-class similarity histograms, the pair counts of the one-pass evaluation.

Bins are ``B`` equal intervals of width ``w = 2 / B`` on [-1, 1]. A count at a threshold inside a bin assumes
the bin's pairs are spread uniformly across it (linear interpolation of the empirical CDF); at a bin edge the
count is exact. ``far_threshold`` / ``frr_threshold`` therefore return bin edges, where the achieved rate is
exact and meets the target.

Multiplicities: the all-pairs pass sees each unordered positive pair from both of its rows, so ``pos`` holds
``pos_multiplicity = 2`` counts per pair (1 with a query/gallery split); ``neg[c]`` counts each negative pair
of class c once, so the sum over classes counts every negative pair twice (once for each of its classes).
"""

from __future__ import annotations

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.metrics.pair_counts import PairCounts, allowed_count


class PairHistogram(PairCounts):
    """Per-class histograms ``pos[c, b]`` and ``neg[c, b]`` (float64 counts) of pair similarities."""

    def __init__(
        self,
        class_labels: np.ndarray,
        class_sizes: np.ndarray,
        pos: np.ndarray,
        neg: np.ndarray,
        pos_multiplicity: int = 1,
    ):
        if pos.shape != neg.shape or pos.ndim != 2 or pos.shape[0] != len(class_labels):
            raise ValueError(f"histogram shapes disagree: pos {pos.shape}, neg {neg.shape}")
        self.class_labels = np.asarray(class_labels)
        self.class_sizes = np.asarray(class_sizes)
        self.pos = np.asarray(pos, dtype=np.float64)
        self.neg = np.asarray(neg, dtype=np.float64)
        self.pos_multiplicity = pos_multiplicity
        self.num_bins = pos.shape[1]
        self.width = 2.0 / self.num_bins
        self.resolution = self.width
        self.edges = np.linspace(-1.0, 1.0, self.num_bins + 1)
        # Global histograms in true pair counts (see the multiplicities above).
        self._pos_global = self.pos.sum(axis=0) / pos_multiplicity
        self._neg_global = self.neg.sum(axis=0) / 2.0

    def global_histograms(self) -> tuple[np.ndarray, np.ndarray]:
        """(B,) positive and negative pair counts of all classes by bin, in true pair counts."""
        return self._pos_global, self._neg_global

    def num_pos(self) -> np.ndarray:
        return self.pos.sum(axis=1) / self.pos_multiplicity

    def num_neg(self) -> np.ndarray:
        return self.neg.sum(axis=1)

    def pos_ge(self, thresholds: np.ndarray) -> np.ndarray:
        return _count_ge(self.pos, thresholds, self.width) / self.pos_multiplicity

    def neg_ge(self, thresholds: np.ndarray) -> np.ndarray:
        return _count_ge(self.neg, thresholds, self.width)

    def global_far(self, thresholds: np.ndarray) -> np.ndarray:
        ge = _count_ge(self._neg_global[None], thresholds, self.width)[0]
        return ge / max(self.total_neg(), 1.0)

    def global_frr(self, thresholds: np.ndarray) -> np.ndarray:
        ge = _count_ge(self._pos_global[None], thresholds, self.width)[0]
        total = max(self.total_pos(), 1.0)
        return (total - ge) / total

    def total_neg(self) -> float:
        return float(self._neg_global.sum())

    def total_pos(self) -> float:
        return float(self._pos_global.sum())

    def neg_quantile(self, q: float) -> float:
        return _quantile(self._neg_global, q, self.edges, "negative")

    def pos_quantile(self, q: float) -> float:
        return _quantile(self._pos_global, q, self.edges, "positive")

    def far_threshold(self, target_far: float) -> float:
        # tail[b] = pairs in bins >= b: the count accepted at edge b, exactly.
        tail = np.concatenate([np.cumsum(self._neg_global[::-1])[::-1], [0.0]])
        allowed = allowed_count(target_far, float(tail[0]))
        # tail is non-increasing: the first edge whose tail fits the allowance.
        index = int(np.argmax(tail <= allowed + 0.5))
        return float(self.edges[index])

    def frr_threshold(self, target_frr: float) -> float:
        below = np.concatenate([[0.0], np.cumsum(self._pos_global)])
        allowed = allowed_count(target_frr, float(below[-1]))
        index = int(np.nonzero(below <= allowed + 0.5)[0][-1])
        return float(self.edges[index])


def _count_ge(counts: np.ndarray, thresholds: np.ndarray, width: float, low: float = -1.0) -> np.ndarray:
    """(C, K) counts with ``s >= t`` of bins of ``width`` from ``low``: whole bins above t plus the part of
    t's bin above it."""
    position = np.clip((np.asarray(thresholds, dtype=np.float64) - low) / width, 0.0, counts.shape[1])
    index = np.minimum(np.floor(position).astype(np.int64), counts.shape[1] - 1)
    above_in_bin = 1.0 - (position - index)
    # Pairs in bins > index = total - pairs in bins <= index.
    below_or_in = np.cumsum(counts, axis=1)[:, index]
    above = counts.sum(axis=1, keepdims=True) - below_or_in
    return above + above_in_bin[None, :] * counts[:, index]


def _quantile(counts: np.ndarray, q: float, edges: np.ndarray, what: str) -> float:
    """numpy's linear quantile of a binned sample: ``x_(h)`` with ``h = (n - 1) q``, interpolated.

    Each order statistic is placed inside its bin as if the bin's values were spread evenly across it.
    """
    total = counts.sum()
    if total <= 0:
        raise TcdmlInputError(f"no {what} pairs: cannot take a quantile of their similarities")
    below = np.concatenate([[0.0], np.cumsum(counts)])
    rank = (round(total) - 1) * q
    lower = np.floor(rank)

    def order_statistic(r: float) -> float:
        index = int(np.clip(np.searchsorted(below, r, side="right") - 1, 0, len(counts) - 1))
        inside = (r - below[index] + 0.5) / counts[index] if counts[index] > 0 else 0.5
        return float(edges[index] + (edges[index + 1] - edges[index]) * min(max(inside, 0.0), 1.0))

    low = order_statistic(lower)
    return low + (rank - lower) * (order_statistic(min(lower + 1, round(total) - 1)) - low)
