"""Sample-aware (debiased) OPIS: OPIS minus the sampling variance of each class's utility (docs/spec.md).

A class's utility ``U_c(t)`` is estimated from its pairs, which share its samples, so it carries sampling
noise; OPIS, the spread of the ``U_c`` between classes, holds that noise on top of any real difference. The
delete-one-**sample** jackknife within each class estimates it: with ``n_c`` samples in class ``c`` and
``U_c^(-i)(t)`` its utility recomputed without the pairs of sample ``i``,

    ``Var_jack(U_c(t)) = (n_c - 1) / n_c * sum_i (U_c^(-i)(t) - mean_j U_c^(-j)(t))^2``

    ``opis_debiased = OPIS - mean_c mean_k Var_jack(U_c(t_k))``

over the T classes with positive pairs and the grid ``t_k``. ``U_c^(-i)`` needs only per-sample counts: the
positive and negative pairs of sample ``i`` with ``s >= t_k`` (N x K numbers), subtracted from the class's.
A class whose every positive pair involves one sample (2 samples) has no jackknife; its variance counts as 0.

Exact mode counts every sample's pairs at the grid exactly. The one histogram pass keeps per-sample
histograms in ``SAMPLE_CELLS`` cells on [-1, 1] (the grid is known only after the pass) and reads them at the
grid by the same within-cell interpolation as the class histograms; the class counts of the jackknife are the
sums of those per-sample counts, so each ``U_c^(-i)`` is consistent with its own class total.

Its interval: the bootstrap over classes of ``opis_ci``, each resample's ``OPIS_w - sum_c w_c V_c / n``.
"""

from __future__ import annotations

import numpy as np
import torch

from tcdml.metrics.histogram import _count_ge
from tcdml.metrics.uncertainty import (
    RESAMPLE_CHUNK,
    UncertaintySettings,
    percentile_interval,
    resample_weights,
    weighted_opis,
)
from tcdml.metrics.utility import f_beta_utility

#: Rows of a similarity block counted per sample at once (bounds the temporaries).
_ROWS_PER_STEP = 256


def sample_counts_from_histograms(
    sample_pos: np.ndarray, sample_neg: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(pos_ge, neg_ge, pos_total, neg_total)`` of each sample from its cell histograms (S x M): (S, K)
    counts with ``s >= t_k`` (within-cell interpolation) and (S,) totals."""
    width = 2.0 / sample_pos.shape[1]
    return (
        _count_ge(sample_pos, thresholds, width),
        _count_ge(sample_neg, thresholds, width),
        sample_pos.sum(axis=1),
        sample_neg.sum(axis=1),
    )


def sample_counts_from_similarity(
    similarity: torch.Tensor, prepared, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact per-sample counts (``sample_counts_from_histograms``'s shapes, S = all samples) from the full
    query x gallery similarity matrix: each sample's pairs as a query (its row) and, with a query/gallery
    split, as a gallery sample (its column); the excluded self-pairs hold -inf."""
    num_samples, num_thresholds = prepared.num_samples, len(thresholds)
    out = [np.zeros((num_samples, num_thresholds)) for _ in range(2)] + [
        np.zeros(num_samples) for _ in range(2)
    ]
    grid = torch.as_tensor(np.asarray(thresholds), dtype=torch.float64)
    sim = similarity.detach().double().cpu()
    sim = sim.clone()
    sim[
        np.nonzero(prepared.self_column >= 0)[0], prepared.self_column[prepared.self_column >= 0]
    ] = -torch.inf
    ends = [(sim, prepared.query_classes, prepared.gallery_classes, prepared.query_index)]
    if not prepared.all_pairs:
        ends.append((sim.T, prepared.gallery_classes, prepared.query_classes, prepared.gallery_index))
    for matrix, own, other, index in ends:
        other_t = torch.as_tensor(other)
        for start in range(0, matrix.shape[0], _ROWS_PER_STEP):
            rows = matrix[start : start + _ROWS_PER_STEP]
            same = torch.as_tensor(own[start : start + _ROWS_PER_STEP])[:, None] == other_t[None, :]
            valid = rows > -torch.inf
            # Number of grid thresholds <= s: the pair counts at t_k for every k below it.
            cells = torch.searchsorted(grid, rows.contiguous(), right=True)
            for slot, mask in ((0, same & valid), (1, ~same & valid)):
                counts = _row_cell_counts(cells, mask, num_thresholds)
                ge = counts.flip(1).cumsum(1).flip(1)[:, 1:]
                rows_index = index[start : start + _ROWS_PER_STEP]
                out[slot][rows_index] += ge.numpy()
                out[slot + 2][rows_index] += mask.sum(1).double().numpy()
    return out[0], out[1], out[2], out[3]


def _row_cell_counts(cells: torch.Tensor, mask: torch.Tensor, num_thresholds: int) -> torch.Tensor:
    """(R, K + 1) how many masked entries of each row fall in each of the K + 1 cells."""
    rows = torch.arange(cells.shape[0])[:, None].expand_as(cells)
    flat = (rows * (num_thresholds + 1) + cells)[mask]
    counts = torch.bincount(flat, minlength=cells.shape[0] * (num_thresholds + 1))
    return counts.reshape(cells.shape[0], num_thresholds + 1).double()


def jackknife_variance(
    counts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    sample_class: np.ndarray,
    classes: np.ndarray,
    beta: float,
) -> np.ndarray:
    """(T,) ``mean_k Var_jack(U_c(t_k))`` for each class id of ``classes`` (module docstring).

    ``counts``: the per-sample ``(pos_ge, neg_ge, pos_total, neg_total)``; ``sample_class[i]``: the class id
    of sample ``i`` (-1: in no pair). A positive pair is counted by both its samples, a negative pair of class
    ``c`` by its end in ``c``.
    """
    pos_ge, neg_ge, pos_total, neg_total = counts
    out = np.zeros(len(classes))
    for row, class_id in enumerate(classes):
        members = np.flatnonzero(sample_class == class_id)
        n = len(members)
        left_pos = pos_total[members].sum() / 2.0 - pos_total[members]
        if n < 2 or np.any(left_pos <= 0.5):
            continue  # a sample in every positive pair: no delete-one estimate
        left_pos_ge = pos_ge[members].sum(axis=0) / 2.0 - pos_ge[members]
        left_neg = neg_total[members].sum() - neg_total[members]
        left_neg_ge = neg_ge[members].sum(axis=0) - neg_ge[members]
        tpr = left_pos_ge / left_pos[:, None]
        far = np.divide(
            left_neg_ge, left_neg[:, None], out=np.zeros(left_neg_ge.shape), where=left_neg[:, None] > 0
        )
        utilities = f_beta_utility(tpr, 1.0 - far, beta)  # (n, K): U_c^(-i)(t_k)
        spread = ((utilities - utilities.mean(axis=0)) ** 2).sum(axis=0) * (n - 1) / n
        out[row] = float(spread.mean())
    return out


def debiased_opis_interval(
    utilities: np.ndarray, variances: np.ndarray, settings: UncertaintySettings
) -> tuple[float, float]:
    """The bootstrap interval over classes of ``opis_debiased`` (resamples as ``opis_intervals``')."""
    rng = np.random.default_rng([settings.seed, 4])
    values = []
    for start in range(0, settings.resamples, RESAMPLE_CHUNK):
        weights = resample_weights(utilities.shape[0], min(RESAMPLE_CHUNK, settings.resamples - start), rng)
        values.append(weighted_debiased_opis(utilities, variances, weights))
    return percentile_interval(np.concatenate(values), settings.level)


def weighted_debiased_opis(utilities: np.ndarray, variances: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B,) ``opis_debiased`` of each weighted class resample (weights B x T)."""
    weights = np.asarray(weights, dtype=np.float64)
    return weighted_opis(utilities, weights) - weights @ variances / weights.sum(axis=1)
