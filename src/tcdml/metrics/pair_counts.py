"""Counts of pair similarities per class: the state every threshold metric is computed from.

Two implementations share this interface:

* ``PairHistogram`` (default): per-class histograms of positive and negative pair similarities in
  fixed bins on [-1, 1], accumulated block by block in one pass, mergeable across processes by summation;
* ``ExactPairSimilarities``: the sorted similarities themselves, for small sets (brute force, the
  reference definition of docs/spec.md).

Counts are relative: an implementation may count every pair twice (once from each end), which leaves every
rate (TPR, TNR, FAR, FRR) and every quantile unchanged.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np


def allowed_count(rate: float, total: float) -> float:
    """How many of ``total`` pairs a rate target allows, ``floor(rate * total)`` robust to float round-off."""
    return math.floor(rate * total + 1e-9)


class PairCounts(ABC):
    """Per-class (C classes) and global counts of positive / negative pairs by similarity.

    ``class_labels[c]`` is the label of class ``c`` and ``class_sizes[c]`` its number of samples.
    A pair counts as accepted at threshold ``t`` when its similarity ``s >= t``.
    """

    class_labels: np.ndarray
    class_sizes: np.ndarray
    #: The smallest similarity difference this state resolves (a histogram bin; 0 when exact).
    resolution: float = 0.0

    @abstractmethod
    def num_pos(self) -> np.ndarray:
        """(C,) number of positive pairs of each class (``|P_c|``, up to the common factor)."""

    @abstractmethod
    def num_neg(self) -> np.ndarray:
        """(C,) number of negative pairs of each class (``|N_c|``, up to the common factor)."""

    @abstractmethod
    def pos_ge(self, thresholds: np.ndarray) -> np.ndarray:
        """(C, K) number of positive pairs of each class with ``s >= t_k``."""

    @abstractmethod
    def neg_ge(self, thresholds: np.ndarray) -> np.ndarray:
        """(C, K) number of negative pairs of each class with ``s >= t_k``."""

    @abstractmethod
    def global_far(self, thresholds: np.ndarray) -> np.ndarray:
        """(K,) ``FAR(t) = |{p in N : s_p >= t}| / |N|`` over all negative pairs."""

    @abstractmethod
    def global_frr(self, thresholds: np.ndarray) -> np.ndarray:
        """(K,) ``FRR(t) = |{p in P : s_p < t}| / |P|`` over all positive pairs."""

    @abstractmethod
    def neg_quantile(self, q: float) -> float:
        """Empirical ``q`` quantile of all negative similarities (numpy's linear interpolation)."""

    @abstractmethod
    def pos_quantile(self, q: float) -> float:
        """Empirical ``q`` quantile of all positive similarities."""

    @abstractmethod
    def far_threshold(self, target_far: float) -> float:
        """The smallest threshold ``t`` this state can resolve with ``FAR(t) <= target_far``."""

    @abstractmethod
    def frr_threshold(self, target_frr: float) -> float:
        """The largest threshold ``t`` this state can resolve with ``FRR(t) <= target_frr``."""

    def total_neg(self) -> float:
        """Number of negative pairs over all classes (``|N|``, up to the common factor)."""
        return float(self.num_neg().sum())

    def total_pos(self) -> float:
        """Number of positive pairs over all classes (``|P|``, up to the common factor)."""
        return float(self.num_pos().sum())

    def class_far(self, thresholds: np.ndarray) -> np.ndarray:
        """(C, K) per-class ``FAR_c(t) = 1 - TNR_c(t)``; 0 where the class has no negative pair."""
        num = self.num_neg()[:, None]
        return np.divide(
            self.neg_ge(thresholds), num, out=np.zeros((len(num), len(thresholds))), where=num > 0
        )

    def class_frr(self, thresholds: np.ndarray) -> np.ndarray:
        """(C, K) per-class ``FRR_c(t) = 1 - TPR_c(t)``; NaN where the class has no positive pair."""
        num = self.num_pos()[:, None]
        ge = self.pos_ge(thresholds)
        out = np.full(ge.shape, np.nan)
        np.divide(num - ge, num, out=out, where=num > 0)
        return out
