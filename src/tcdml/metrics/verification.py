"""Verification metrics from the pair counts the pass already holds: ROC AUC, EER, FNMR at FMR targets.

A pair is accepted at threshold ``t`` when its similarity ``s >= t``; ``FMR(t) = FAR(t)`` is the accepted
fraction of the negative pairs, ``FNMR(t) = FRR(t)`` the rejected fraction of the positive pairs.

- ``AUC = P(s_pos > s_neg) + P(s_pos = s_neg) / 2`` over every (positive, negative) pair of pairs (the area
  under the ROC curve, what ``sklearn.metrics.roc_auc_score`` gives on the pairs).
- ``EER = min_t max(FAR(t), FRR(t))`` over every threshold, attained at ``eer_threshold`` (the smallest such).
- ``FNMR@FMR=a = FRR(t_a)`` at ``t_a``, the smallest threshold with ``FAR(t_a) <= a`` (``far_threshold``).

Exact mode computes them from every pair similarity. A histogram (bins of width ``w = 2 / B``) knows the rates
exactly only at its bin edges, so it reports each with a bound ``resolution[key]`` that holds the exact value:
AUC counts a (positive, negative) couple in the same bin as half, so ``|AUC - AUC_exact| <= sum_b p_b n_b /
(2 |P| |N|)``; EER is read at the edges, ``EER - bound <= EER_exact <= EER``; FNMR@FMR is read at the first
edge meeting the target, ``FNMR - bound <= FNMR_exact <= FNMR`` with bound the positives in the bin below it.
Exact mode's bounds are 0.

Intervals: a bootstrap over classes (as ``opis_ci``): each resample draws the classes with positive pairs with
replacement (the others keep weight 1), pools the per-class histograms with those weights and recomputes every
metric (exact mode pools its similarities into ``DEFAULT_NUM_BINS`` bins for the resamples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from tcdml.metrics.catalogue import fmr_key
from tcdml.metrics.exact import ExactPairSimilarities
from tcdml.metrics.histogram import PairHistogram
from tcdml.metrics.pair_counts import PairCounts
from tcdml.metrics.result import ClassTable
from tcdml.metrics.settings import DEFAULT_NUM_BINS
from tcdml.metrics.uncertainty import (
    RESAMPLE_CHUNK,
    UncertaintySettings,
    percentile_interval,
    resample_weights,
)


@dataclass(frozen=True)
class Verification:
    """AUC, EER (and its threshold), FNMR at each FMR target (and the target's threshold), each with its
    resolution bound and (``ci``, when asked) its bootstrap interval over classes; ``keys()`` in order."""

    values: dict[str, float]
    resolution: dict[str, float]
    ci: dict[str, tuple[float, float]] | None
    fmr_targets: tuple[float, ...]
    fmr_thresholds: tuple[float, ...]
    eer_threshold: float

    def to_dict(self, ci_key: Callable[[str], str] | None) -> dict:
        """``auc``, ``eer``, ``fnmr@fmr=<a>`` (each followed by its interval under ``ci_key(key)``, e.g.
        ``auc_ci95``, when ``ci_key`` is given), ``eer_threshold``, ``threshold@fmr=<a>`` and
        ``verification_resolution``."""
        out: dict = {}
        for key, value in self.values.items():
            out[key] = value
            if self.ci is not None and ci_key is not None:
                out[ci_key(key)] = list(self.ci[key])
        out["eer_threshold"] = self.eer_threshold
        pairs = zip(self.fmr_targets, self.fmr_thresholds, strict=True)
        out.update({fmr_key(a, "threshold@fmr="): t for a, t in pairs})
        out["verification_resolution"] = dict(self.resolution)
        return out


def class_histograms(counts: PairCounts) -> tuple[np.ndarray, np.ndarray]:
    """(C, B) per-class positive and negative pair counts by similarity bin (the histogram's own bins; exact
    similarities binned into ``DEFAULT_NUM_BINS``). Summed over classes they pool to the global counts
    (negatives twice: a negative pair belongs to both its classes), which leaves every rate unchanged."""
    if isinstance(counts, PairHistogram):
        return counts.pos / counts.pos_multiplicity, counts.neg
    if not isinstance(counts, ExactPairSimilarities):
        raise TypeError(f"class_histograms: unsupported pair counts {type(counts).__name__}")
    edges = np.linspace(-1.0, 1.0, DEFAULT_NUM_BINS + 1)
    pos = np.stack([np.histogram(p, edges)[0] for p in counts.pos]).astype(np.float64)
    neg = np.stack([np.histogram(n, edges)[0] for n in counts.neg]).astype(np.float64)
    return pos, neg


def histogram_rates(
    pos: np.ndarray, neg: np.ndarray, fmr_targets: tuple[float, ...]
) -> dict[str, np.ndarray]:
    """(R,) ``auc``, ``eer`` and ``fnmr@fmr=<a>`` of R pooled histograms ``pos``/``neg`` (R x B), read at
    the bin edges; with ``<key>:bound`` the resolution bound of each and ``eer:index``/``fmr:index`` the
    edge of the EER and of each target (the module docstring's formulas)."""
    total_pos = pos.sum(axis=1, keepdims=True)
    total_neg = neg.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Edge j = 0..B: FAR = negatives in bins >= j, FRR = positives in bins < j.
        neg_tail = np.concatenate([np.cumsum(neg[:, ::-1], axis=1)[:, ::-1], np.zeros((len(neg), 1))], axis=1)
        pos_below = np.concatenate([np.zeros((len(pos), 1)), np.cumsum(pos, axis=1)], axis=1)
        far, frr = neg_tail / total_neg, pos_below / total_pos
        auc, auc_bound = histogram_auc(pos, neg)
        out = {"auc": auc, "auc:bound": auc_bound}
        worst = np.maximum(far, frr)
        index = np.argmin(worst, axis=1)
        rows = np.arange(len(pos))
        out["eer"] = worst[rows, index]
        out["eer:index"] = index
        out["eer:bound"] = out["eer"] - np.maximum(far[:, 1:], frr[:, :-1]).min(axis=1)
        for target in fmr_targets:
            meets = neg_tail <= target * total_neg + 1e-9
            edge = np.argmax(meets, axis=1)
            key = fmr_key(target)
            out[key] = frr[rows, edge]
            out[f"{key}:index"] = edge
            below = np.maximum(edge - 1, 0)
            out[f"{key}:bound"] = np.where(edge > 0, pos[rows, below] / total_pos[:, 0], 0.0)
    return out


def histogram_auc(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R,) AUC of R histograms ``pos``/``neg`` (R x B), a same-bin couple counted as half, and its bound
    ``sum_b p_b n_b / (2 |P| |N|)`` (NaN without positives or negatives)."""
    neg_below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = pos.sum(axis=1) * neg.sum(axis=1)
        return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / denominator, 0.5 * (pos * neg).sum(
            axis=1
        ) / denominator


def exact_rates(counts: ExactPairSimilarities, fmr_targets: tuple[float, ...]) -> tuple[dict, float, list]:
    """``({auc, eer, fnmr@fmr=<a>}, eer_threshold, [t_a])`` from every pair similarity (sorted)."""
    pos, neg = counts.global_pos, counts.global_neg
    less = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - less
    values = {"auc": float((less.sum() + 0.5 * equal.sum()) / (len(pos) * len(neg)))}
    candidates = np.unique(np.concatenate([pos, neg]))
    far = counts.global_far(candidates)
    frr = counts.global_frr(candidates)
    worst = np.maximum(far, frr)
    best = int(np.argmin(worst))
    values["eer"] = float(worst[best])
    thresholds = [counts.far_threshold(a) for a in fmr_targets]
    for target, t in zip(fmr_targets, thresholds, strict=True):
        values[fmr_key(target)] = float(counts.global_frr(np.array([t]))[0])
    return values, float(candidates[best]), thresholds


def verification(
    counts: PairCounts,
    fmr_targets: tuple[float, ...],
    drawn: np.ndarray,
    uncertainty: UncertaintySettings | None,
) -> Verification:
    """The verification metrics of ``counts`` (see the module docstring); ``drawn``: (C,) bool, the classes
    a bootstrap resample draws (those with positive pairs); ``uncertainty`` None skips the intervals."""
    keys = ["auc", "eer", *(fmr_key(a) for a in fmr_targets)]
    if isinstance(counts, ExactPairSimilarities):
        values, eer_threshold, thresholds = exact_rates(counts, fmr_targets)
        resolution = dict.fromkeys(keys, 0.0)
    else:
        pos, neg = counts.global_histograms()
        pooled = histogram_rates(pos[None], neg[None], fmr_targets)
        edges = counts.edges
        values = {key: float(pooled[key][0]) for key in keys}
        resolution = {key: float(pooled[f"{key}:bound"][0]) for key in keys}
        eer_threshold = float(edges[pooled["eer:index"][0]])
        thresholds = [float(edges[pooled[f"{fmr_key(a)}:index"][0]]) for a in fmr_targets]
    intervals = None
    if uncertainty is not None:
        pos, neg = class_histograms(counts)
        draws = bootstrap_rates(pos, neg, drawn, fmr_targets, uncertainty)
        intervals = {key: percentile_interval(draws[key], uncertainty.level) for key in keys}
    return Verification(values, resolution, intervals, tuple(fmr_targets), tuple(thresholds), eer_threshold)


def resample_class_weights(drawn: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, C) class weights: the ``drawn`` classes resampled with replacement, the others at 1."""
    weights = np.ones((count, len(drawn)))
    weights[:, drawn] = resample_weights(int(drawn.sum()), count, rng)
    return weights


def weighted_rates(
    pos: np.ndarray, neg: np.ndarray, weights: np.ndarray, fmr_targets: tuple[float, ...]
) -> dict[str, np.ndarray]:
    """(R,) each verification metric of the class histograms ``pos``/``neg`` (C x B) pooled with each row of
    ``weights`` (R x C)."""
    rates = histogram_rates(weights @ pos, weights @ neg, fmr_targets)
    return {key: value for key, value in rates.items() if ":" not in key}


def occupied(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The class histograms cut to the bins from the first to the last holding a pair (the rates do not
    change: an empty bin adds nothing at either end), so the resamples handle fewer bins."""
    used = np.flatnonzero((pos.sum(axis=0) + neg.sum(axis=0)) > 0)
    if len(used) == 0:
        return pos, neg
    return pos[:, used[0] : used[-1] + 1], neg[:, used[0] : used[-1] + 1]


def bootstrap_rates(
    pos: np.ndarray,
    neg: np.ndarray,
    drawn: np.ndarray,
    fmr_targets: tuple[float, ...],
    settings: UncertaintySettings,
) -> dict[str, np.ndarray]:
    """(resamples,) each verification metric over class resamples (``resample_class_weights``)."""
    rng = np.random.default_rng([settings.seed, 3])
    pos, neg = occupied(pos, neg)
    draws: dict[str, list[np.ndarray]] = {}
    for start in range(0, settings.resamples, RESAMPLE_CHUNK):
        weights = resample_class_weights(drawn, min(RESAMPLE_CHUNK, settings.resamples - start), rng)
        for key, value in weighted_rates(pos, neg, weights, fmr_targets).items():
            draws.setdefault(key, []).append(value)
    return {key: np.concatenate(values) for key, values in draws.items()}


def class_auc(counts: PairCounts) -> np.ndarray:
    """(C,) each class's AUC, its positive pairs against its negative pairs (NaN without either)."""
    if isinstance(counts, ExactPairSimilarities):
        out = np.full(len(counts.pos), np.nan)
        for c, (pos, neg) in enumerate(zip(counts.pos, counts.neg, strict=True)):
            if len(pos) and len(neg):
                less = np.searchsorted(neg, pos, side="left")
                equal = np.searchsorted(neg, pos, side="right") - less
                out[c] = (less.sum() + 0.5 * equal.sum()) / (len(pos) * len(neg))
        return out
    return histogram_auc(*class_histograms(counts))[0]


def with_verification(table: ClassTable, counts: PairCounts, checks: Verification) -> ClassTable:
    """``table`` with each class's AUC and its FAR/FRR at every FMR target's global threshold."""
    at = np.array(checks.fmr_thresholds)  # every target at once: one cumulative sum of the histograms
    far, frr = counts.class_far(at), counts.class_frr(at)
    rates = {fmr_key(a, ""): (far[:, j], frr[:, j]) for j, a in enumerate(checks.fmr_targets)}
    return replace(table, auc=class_auc(counts), fmr_rates=rates)
