"""The stages of an evaluation: the public API to split the one pass, and to use it outside ``metrics``.

1. ``prepare_inputs``: check the inputs (one-line ``TcdmlInputError``), L2-normalise, sort by class: a
   ``PreparedSet``.
2. ``check_evaluation``: check the metric parameters against the set (k against the neighbours a query has,
   eps against the classes with positive pairs), before any block is computed.
3. ``run_prepared``: the pass over some query rows (e.g. one process's share,
   ``tcdml.distributed.rank_share``): a ``PassState``.
4. ``PassState.merge`` / ``PassState.reduce``: the states of disjoint rows combined (``tcdml.metrics.state``).
5. ``finish``: a complete state reduced to an ``EvaluationResult``; ``pair_counts``: to the pair counts alone
   (all that threshold calibration needs).

``evaluate`` is 1, 2, 3 and 5 over all rows; ``tcdml.metrics.distributed`` runs 3 on each process's share and
reduces; ``tcdml.calibration`` runs 1, 3 without neighbours, and ``pair_counts``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tcdml.errors import TcdmlInputError
from tcdml.metrics.catalogue import DEFAULT_FAR_RANGE
from tcdml.metrics.exact import MAX_EXACT_PAIRS, ExactPairSimilarities
from tcdml.metrics.histogram import PairHistogram
from tcdml.metrics.jackknife import (
    debiased_opis_interval,
    jackknife_variance,
    sample_counts_from_histograms,
    sample_counts_from_similarity,
    sample_low,
)
from tcdml.metrics.opis import check_worst_group, eps_opis, opis
from tcdml.metrics.pair_counts import PairCounts
from tcdml.metrics.result import ClassTable, EvaluationResult, QueryOutcomes, opis_needed
from tcdml.metrics.settings import EvaluationSettings, MetricSettings, PassSettings, resolve_settings
from tcdml.metrics.similarity_pass import PreparedSet, prepare, run_pass
from tcdml.metrics.state import PassState
from tcdml.metrics.uncertainty import noise_floor, opis_intervals
from tcdml.metrics.utility import calibration_range, class_utilities, threshold_grid
from tcdml.metrics.validation import as_embeddings, as_labels, as_mask, check_device
from tcdml.metrics.verification import verification, with_verification

__all__ = [
    "EvaluationSettings",
    "MetricSettings",
    "PassSettings",
    "PassState",
    "PreparedSet",
    "check_evaluation",
    "finish",
    "missing_pairs",
    "opis_undefined_reason",
    "pair_counts",
    "prepare_inputs",
    "resolve_settings",
    "run_prepared",
]

#: Sets larger than this show a progress bar by default.
PROGRESS_MIN_SAMPLES = 20_000


def prepare_inputs(
    embeddings: Any, labels: Any, is_query: Any, is_gallery: Any, settings: PassSettings
) -> PreparedSet:
    """Validate the inputs (one-line ``TcdmlInputError`` on bad input) and build the class-sorted set.

    Also refuses histograms that would not fit the memory.
    """
    tensor = as_embeddings(embeddings)
    label_array = as_labels(labels, tensor.shape[0])
    query_mask = as_mask(is_query, len(label_array), "is_query")
    gallery_mask = as_mask(is_gallery, len(label_array), "is_gallery")
    num_classes = len(np.unique(label_array))
    all_pairs = bool(query_mask.all() and gallery_mask.all())
    slots = int(query_mask.sum()) + (0 if all_pairs else int(gallery_mask.sum()))  # per-sample histogram rows
    settings.check_histogram_memory(num_classes, num_samples=slots)
    device = check_device(settings.device) if settings.device else tensor.device
    return prepare(tensor, label_array, query_mask, gallery_mask, device)


def missing_pairs(prepared: PreparedSet) -> str | None:
    """Why the set has no negative or no positive pairs (one line), or None when it has both."""
    if prepared.num_negative_pairs == 0:
        label = prepared.class_labels[prepared.query_classes[0]]
        where = "labels" if len(prepared.class_labels) == 1 else "the queries and the gallery"
        return f"{where}: a single class ({label}): no negative pairs"
    if len(prepared.positive_classes) == 0:
        if prepared.all_pairs:
            return (
                f"labels: all {len(prepared.class_labels)} classes are singletons (no query has another "
                "member of its class): no positive pairs"
            )
        return "no query has a gallery sample of its own class: no positive pairs"
    return None


def opis_undefined_reason(prepared: PreparedSet) -> str | None:
    """Why OPIS is undefined whatever the similarities (no negative pairs, fewer than two classes with
    positive pairs), or None. A collapsed calibration range is only known after the pass (``finish``)."""
    problem = missing_pairs(prepared)
    if problem is None and len(prepared.positive_classes) < 2:
        label = prepared.class_labels[prepared.positive_classes[0]]
        return f"only one class ({label}) has positive pairs; OPIS compares at least 2"
    return problem


def check_evaluation(prepared: PreparedSet, settings: MetricSettings, needs_opis: str | None = None) -> None:
    """Check the metric parameters against the set before the pass (one-line ``TcdmlInputError``).

    A set without positive pairs is refused (neither retrieval nor OPIS is defined), and so is a grid whose
    per-class curves would not fit the memory. ``needs_opis`` names what needs OPIS defined (e.g. "--plot"):
    where the labels already make it undefined, that is refused too.
    """
    if len(prepared.positive_classes) == 0:
        raise TcdmlInputError(f"{missing_pairs(prepared)}; neither retrieval nor OPIS is defined")
    settings.check_grid_memory(len(prepared.class_labels))
    candidates = len(prepared.gallery_classes) - int((prepared.self_column >= 0).any())
    if max(settings.ks) > candidates:
        raise TcdmlInputError(f"k={max(settings.ks)} is larger than the {candidates} neighbours a query has")
    reason = opis_undefined_reason(prepared)
    if reason is None:
        check_worst_group(settings.eps, len(prepared.positive_classes))
    elif needs_opis is not None:
        raise opis_needed(needs_opis, reason)


def run_prepared(
    prepared: PreparedSet,
    settings: PassSettings,
    rows: range | None = None,
    ks: tuple[int, ...] | None = None,
    per_sample: bool | None = None,
) -> PassState:
    """Run the pass over ``rows`` (default: all) of a prepared set with the settings' backend, bins, memory
    budget and progress bar.

    ``ks``: the k of Recall@k whose hits (and AP@R) are found per query; None searches no neighbours (the
    histograms alone: all that threshold calibration needs). ``per_sample``: keep the per-sample histograms
    of ``opis_debiased`` (histogram mode; default: when ``ks`` is given, i.e. for an evaluation).
    """
    rows = range(prepared.num_queries) if rows is None else rows
    neighbours = None
    if ks is not None and settings.knn_backend == "faiss":
        from tcdml.metrics.knn import faiss_neighbours

        k_max = prepared.neighbours_needed(ks)
        sub = slice(rows.start, rows.stop)
        found = faiss_neighbours(
            prepared.queries[sub], prepared.gallery, k_max, prepared.self_column[sub], prepared.gallery_index
        )
        neighbours = torch.zeros((prepared.num_queries, k_max), dtype=torch.int64)
        neighbours[sub] = found
    progress = settings.progress
    if progress is None:
        progress = len(prepared.gallery_classes) >= PROGRESS_MIN_SAMPLES
    num_bins = settings.bins_for(len(prepared.class_labels)) if settings.mode == "histogram" else None
    per_sample = ks is not None if per_sample is None else per_sample
    return run_pass(
        prepared,
        rows,
        ks=ks,
        num_bins=num_bins,
        neighbours=neighbours,
        max_block_bytes=settings.max_block_bytes,
        progress=progress,
        sample_cells=_sample_cells(prepared, settings) if per_sample else None,
    )


def _sample_cells(prepared: PreparedSet, settings: PassSettings) -> tuple[float, int]:
    """``(low, count)`` of the per-sample histograms (``tcdml.metrics.jackknife``)."""
    far_max = getattr(settings, "far_range", DEFAULT_FAR_RANGE)[1]
    return sample_low(prepared, far_max), settings.sample_cells_for(len(prepared.sample_slots))


def pair_counts(
    prepared: PreparedSet, state: PassState, similarity: torch.Tensor | None = None
) -> PairCounts:
    """The pair counts of a complete state: its histograms, or (a state without: exact mode) every pair
    similarity, ``similarity`` (``exact_similarity``, computed here when not given)."""
    if not state.complete:
        raise ValueError("the pass state does not cover every query row: merge the other rows' states first")
    if state.pos_hist is not None and state.neg_hist is not None:
        multiplicity = 2 if prepared.all_pairs else 1
        return PairHistogram(
            prepared.class_labels, prepared.class_sizes, state.pos_hist, state.neg_hist, multiplicity
        )
    similarity = exact_similarity(prepared) if similarity is None else similarity
    return ExactPairSimilarities.from_similarity(
        similarity,
        prepared.query_classes,
        prepared.gallery_classes,
        prepared.self_column,
        prepared.class_labels,
        prepared.class_sizes,
        all_pairs=prepared.all_pairs,
    )


def exact_similarity(prepared: PreparedSet) -> torch.Tensor:
    """The full query x gallery similarity matrix, brute force (refused for sets too large to hold it)."""
    num_pairs = prepared.num_queries * len(prepared.gallery_classes)
    if num_pairs > MAX_EXACT_PAIRS:
        raise TcdmlInputError(
            f"mode='exact' would hold {num_pairs:,} pair similarities (limit {MAX_EXACT_PAIRS:,}); "
            "use the default histogram mode"
        )
    return (prepared.queries @ prepared.gallery.T).clamp_(-1.0, 1.0)


def finish(prepared: PreparedSet, state: PassState, settings: MetricSettings) -> EvaluationResult:
    """Reduce a complete pass state (with neighbours at ``settings.ks``) to the result: R@k, MAP@R, and the
    calibration range, utilities, OPIS and per-class table, or the reason they are undefined."""
    if state.hits is None or state.ap is None:
        raise ValueError("the pass state has no neighbours: run the pass with ks= to finish an evaluation")
    similarity = exact_similarity(prepared) if state.pos_hist is None else None
    counts = pair_counts(prepared, state, similarity)
    valid = prepared.num_relevant > 0
    hits = state.hits[valid].mean(axis=0)
    consistency: dict[str, Any] = dict.fromkeys(_CONSISTENCY_FIELDS)  # None where OPIS is undefined
    reason = opis_undefined_reason(prepared)
    if reason is None:
        try:
            t_lo, t_hi = calibration_range(counts, *settings.far_range)
        except TcdmlInputError as exc:  # no negatives or a collapsed range: the message is the reason
            reason = str(exc)
        else:
            consistency.update(_consistency(prepared, counts, settings, t_lo, t_hi))
            consistency.update(_debiased(prepared, state, similarity, settings, consistency))
    has_pairs = counts.total_pos() > 0 and counts.total_neg() > 0
    drawn = np.isin(prepared.class_labels, prepared.class_labels[counts.num_pos() > 0])
    checks = verification(counts, settings.fmr_targets, drawn, settings.uncertainty) if has_pairs else None
    if consistency["per_class"] is not None and checks is not None:
        consistency["per_class"] = with_verification(consistency["per_class"], counts, checks)
    return EvaluationResult(
        recall_at_k={k: float(hits[i]) for i, k in enumerate(settings.ks)},
        map_at_r=float(state.ap[valid].mean()),
        eps=settings.eps,
        beta=settings.beta,
        far_range=settings.far_range,
        utility_labels=prepared.class_labels[counts.num_pos() > 0],
        num_samples=prepared.num_samples,
        num_queries=prepared.num_queries,
        num_left_out_queries=int((~valid).sum()),
        mode="histogram" if state.pos_hist is not None else "exact",
        num_bins=state.pos_hist.shape[1] if state.pos_hist is not None else None,
        counts=counts,
        queries=QueryOutcomes(settings.ks, prepared.query_classes, state.hits, state.ap, valid),
        ci_level=settings.uncertainty.level if settings.uncertainty is not None else None,
        opis_undefined=reason,
        fmr_targets=settings.fmr_targets,
        verification=checks,
        **consistency,
    )


#: The fields of ``EvaluationResult`` read off the calibration range (None where OPIS is undefined).
_CONSISTENCY_FIELDS = (
    "opis",
    "eps_opis",
    "t_lo",
    "t_hi",
    "thresholds",
    "utilities",
    "per_class",
    "opis_ci",
    "eps_opis_ci",
    "opis_noise_floor",
    "eps_opis_noise_floor",
    "opis_debiased",
    "opis_debiased_ci",
    "sample_variances",
)


def _consistency(
    prepared: PreparedSet, counts: PairCounts, settings: MetricSettings, t_lo: float, t_hi: float
) -> dict[str, Any]:
    """Grid, utilities, OPIS, eps-OPIS, the per-class table and (if asked) their intervals and noise floor,
    for the calibration range ``[t_lo, t_hi]``."""
    thresholds = threshold_grid(t_lo, t_hi, settings.num_thresholds)
    all_utilities = class_utilities(counts, thresholds, settings.beta)
    utilities = all_utilities[counts.num_pos() > 0]
    threshold = settings.threshold if settings.threshold is not None else (t_lo + t_hi) / 2
    out: dict[str, Any] = {
        "t_lo": float(t_lo),
        "t_hi": float(t_hi),
        "thresholds": thresholds,
        "utilities": utilities,
        "opis": opis(utilities),
        "eps_opis": eps_opis(utilities, settings.eps),
        "per_class": ClassTable(
            labels=prepared.class_labels,
            sizes=prepared.class_sizes,
            num_positive_pairs=counts.num_pos(),
            num_negative_pairs=counts.num_neg(),
            mean_utility=all_utilities.mean(axis=1),
            far=counts.class_far(np.array([threshold]))[:, 0],
            frr=counts.class_frr(np.array([threshold]))[:, 0],
            threshold=float(threshold),
        ),
    }
    if settings.uncertainty is not None:
        intervals = opis_intervals(utilities, settings.eps, settings.uncertainty)
        floors = noise_floor(counts, thresholds, settings.beta, settings.eps, settings.uncertainty)
        out.update(opis_ci=intervals[0], eps_opis_ci=intervals[1])
        out.update(opis_noise_floor=floors[0], eps_opis_noise_floor=floors[1])
    return out


def _debiased(
    prepared: PreparedSet,
    state: PassState,
    similarity: torch.Tensor | None,
    settings: MetricSettings,
    consistency: dict[str, Any],
) -> dict[str, Any]:
    """``opis_debiased`` (and its interval, if asked): OPIS minus the classes' sample-jackknife variance
    (``tcdml.metrics.jackknife``), from the state's per-sample histograms or, exact, from ``similarity``."""
    thresholds = consistency["thresholds"]
    if similarity is not None:
        counts = sample_counts_from_similarity(similarity, prepared, thresholds)
    elif state.sample_pos is not None and state.sample_neg is not None:
        low = sample_low(prepared, settings.far_range[1])
        if thresholds[0] < low:
            return {}  # the pilot put the cells above the calibration range: no per-sample counts there
        counts = sample_counts_from_histograms(state.sample_pos, state.sample_neg, thresholds, low, prepared)
    else:
        return {}
    variances = jackknife_variance(
        counts, prepared.sample_classes, prepared.positive_classes, settings.beta, prepared.all_pairs
    )
    out: dict[str, Any] = {"opis_debiased": consistency["opis"] - float(variances.mean())}
    out["sample_variances"] = variances
    if settings.uncertainty is not None:
        interval = debiased_opis_interval(consistency["utilities"], variances, settings.uncertainty)
        out["opis_debiased_ci"] = interval
    return out
