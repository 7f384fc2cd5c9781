"""Synthetic embeddings whose regions differ in score scale: one threshold is unequal across them."""

from __future__ import annotations

import numpy as np


def two_regions(seed: int, classes_per_region: int = 15, per_class: int = 6, dim: int = 32):
    """(embeddings, labels): classes crowded around one centre (impostors score high) and classes spread
    around another (impostors score low); the same within-class noise everywhere. The two centres are fixed;
    ``seed`` draws the classes (so two seeds give disjoint classes of the same regions)."""
    centres = np.linalg.qr(np.random.default_rng(12345).normal(size=(dim, 2)))[0].T
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for region, spread in enumerate((0.25, 1.0)):
        for c in range(classes_per_region):
            mean = centres[region] + spread * rng.normal(size=dim) / np.sqrt(dim)
            mean /= np.linalg.norm(mean)
            rows.append(mean + 0.12 * rng.normal(size=(per_class, dim)) / np.sqrt(dim))
            labels += [region * classes_per_region + c] * per_class
    return np.concatenate(rows), np.array(labels)


def class_far_spread(scores: np.ndarray, labels: np.ndarray, far: float = 0.05) -> float:
    """Standard deviation over classes of each class's FAR at the one threshold with global FAR ``far``."""
    upper = np.triu(np.ones(scores.shape, dtype=bool), k=1)
    negative = (labels[:, None] != labels[None, :]) & upper
    threshold = np.quantile(scores[negative], 1.0 - far)
    rates = []
    for c in np.unique(labels):
        ends = (labels[:, None] == c) | (labels[None, :] == c)
        rates.append(float((scores[negative & ends] >= threshold).mean()))
    return float(np.std(rates))
