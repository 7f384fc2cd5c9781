"""``ExactPairSimilarities``: brute force over every pair (the reference definition, docs/spec.md).

It keeps every pair similarity (sorted), so memory grows as N^2: use it to check the binned default or when
exact numbers matter on a few thousand samples.
"""

from __future__ import annotations

import numpy as np
import torch

from tcdml.errors import TcdmlInputError
from tcdml.metrics.pair_counts import PairCounts, allowed_count

#: Above this many query x gallery entries (N = 10,000 in all-pairs mode) the exact mode refuses: it
#: holds every pair similarity several times over (about 4 GB of peak memory at the limit).
MAX_EXACT_PAIRS = 100_000_000


class ExactPairSimilarities(PairCounts):
    """Sorted positive / negative similarities of every class, and of all pairs.

    All-pairs mode counts each unordered pair once; with a query/gallery split the pairs are the ordered
    (query, gallery) pairs of distinct samples, a negative pair counting for both of its classes.
    """

    def __init__(
        self,
        class_labels: np.ndarray,
        class_sizes: np.ndarray,
        pos: list[np.ndarray],
        neg: list[np.ndarray],
        global_pos: np.ndarray,
        global_neg: np.ndarray,
    ):
        self.class_labels = np.asarray(class_labels)
        self.class_sizes = np.asarray(class_sizes)
        self.pos = [np.sort(p) for p in pos]
        self.neg = [np.sort(n) for n in neg]
        self.global_pos = np.sort(global_pos)
        self.global_neg = np.sort(global_neg)

    @classmethod
    def from_similarity(
        cls,
        similarity: torch.Tensor,
        query_classes: np.ndarray,
        gallery_classes: np.ndarray,
        self_column: np.ndarray,
        class_labels: np.ndarray,
        class_sizes: np.ndarray,
        all_pairs: bool,
    ) -> ExactPairSimilarities:
        """Collect every pair from a full query x gallery similarity matrix.

        ``self_column[i]`` is the gallery column of query ``i``'s own sample (-1 if none); ``all_pairs``
        says queries and gallery are the same samples, so each unordered pair is taken once (upper triangle).
        """
        sim = similarity.detach().double().cpu().numpy()
        valid = np.ones(sim.shape, dtype=bool)
        has_self = self_column >= 0
        valid[np.nonzero(has_self)[0], self_column[has_self]] = False
        if all_pairs:
            valid &= np.triu(np.ones(sim.shape, dtype=bool), k=1)
        same = query_classes[:, None] == gallery_classes[None, :]
        pos, neg = [], []
        for c in range(len(class_labels)):
            in_row = query_classes == c
            in_col = gallery_classes == c
            pos.append(sim[in_row][:, in_col][valid[in_row][:, in_col]])
            # Negatives of c: exactly one end in c (the row end or the column end).
            row_end = sim[in_row][:, ~in_col][valid[in_row][:, ~in_col]]
            col_end = sim[~in_row][:, in_col][valid[~in_row][:, in_col]]
            neg.append(np.concatenate([row_end, col_end]))
        return cls(class_labels, class_sizes, pos, neg, sim[valid & same], sim[valid & ~same])

    def num_pos(self) -> np.ndarray:
        return np.array([len(p) for p in self.pos], dtype=np.float64)

    def num_neg(self) -> np.ndarray:
        return np.array([len(n) for n in self.neg], dtype=np.float64)

    def total_neg(self) -> float:
        return float(len(self.global_neg))

    def total_pos(self) -> float:
        return float(len(self.global_pos))

    def pos_ge(self, thresholds: np.ndarray) -> np.ndarray:
        return np.stack([_count_ge(p, thresholds) for p in self.pos]).astype(np.float64)

    def neg_ge(self, thresholds: np.ndarray) -> np.ndarray:
        return np.stack([_count_ge(n, thresholds) for n in self.neg]).astype(np.float64)

    def global_far(self, thresholds: np.ndarray) -> np.ndarray:
        return _count_ge(self.global_neg, thresholds) / max(len(self.global_neg), 1)

    def global_frr(self, thresholds: np.ndarray) -> np.ndarray:
        total = max(len(self.global_pos), 1)
        return (total - _count_ge(self.global_pos, thresholds)) / total

    def neg_quantile(self, q: float) -> float:
        if len(self.global_neg) == 0:
            raise TcdmlInputError("no negative pairs: cannot take a quantile of their similarities")
        return float(np.quantile(self.global_neg, q))

    def pos_quantile(self, q: float) -> float:
        if len(self.global_pos) == 0:
            raise TcdmlInputError("no positive pairs: cannot take a quantile of their similarities")
        return float(np.quantile(self.global_pos, q))

    def far_threshold(self, target_far: float) -> float:
        descending = self.global_neg[::-1]
        allowed = allowed_count(target_far, len(descending))
        if allowed >= len(descending):
            return float(descending[-1]) if len(descending) else -1.0
        # Accept at most `allowed` negatives: t just above the (allowed + 1)-th largest similarity.
        return float(np.nextafter(np.float32(descending[allowed]), np.float32(np.inf)))

    def frr_threshold(self, target_frr: float) -> float:
        allowed = allowed_count(target_frr, len(self.global_pos))
        if allowed >= len(self.global_pos):
            return 1.0
        # Reject at most `allowed` positives: t at the (allowed + 1)-th smallest positive similarity.
        return float(np.float32(self.global_pos[allowed]))


def _count_ge(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of values ``>= t`` for each threshold, by binary search in the sorted array."""
    return len(sorted_values) - np.searchsorted(sorted_values, np.asarray(thresholds), side="left")
