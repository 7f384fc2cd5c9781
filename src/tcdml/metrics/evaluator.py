"""``evaluate``: Recall@k, MAP@R, OPIS, eps-OPIS and the per-class table in one pass over the similarities."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tcdml.errors import TcdmlInputError
from tcdml.metrics.exact import MAX_EXACT_PAIRS, ExactPairSimilarities
from tcdml.metrics.opis import eps_opis, opis
from tcdml.metrics.pair_counts import PairCounts
from tcdml.metrics.result import ClassTable, EvaluationResult, QueryOutcomes
from tcdml.metrics.settings import EvaluationSettings
from tcdml.metrics.similarity_pass import PassState, PreparedSet, prepare, run_pass
from tcdml.metrics.uncertainty import noise_floor, opis_intervals
from tcdml.metrics.utility import calibration_range, class_utilities, threshold_grid
from tcdml.metrics.validation import as_embeddings, as_labels, as_mask, check_device

#: Sets larger than this show a progress bar by default.
PROGRESS_MIN_SAMPLES = 20_000


def evaluate(
    embeddings: Any,
    labels: Any,
    *,
    is_query: Any = None,
    is_gallery: Any = None,
    settings: EvaluationSettings | None = None,
    **overrides: Any,
) -> EvaluationResult:
    """Evaluate an embedding set: retrieval metrics and threshold consistency, per docs/spec.md.

    ``embeddings`` (N x D, numpy or torch, any device) are L2-normalised here; ``labels`` (N,) are integer
    class labels. ``is_query`` / ``is_gallery`` (N, bool) restrict pairs to query x gallery (default: all
    pairs, leave-one-out retrieval). Parameters come from ``settings`` or keyword overrides of
    ``EvaluationSettings`` (``ks``, ``far_range``, ``beta``, ``eps``, ``num_thresholds``, ``mode``, ...).

    Example: ``evaluate(x, y, far_range=(1e-3, 1e-2)).to_dict()["opis"]``.
    """
    settings = resolve_settings(settings, overrides)
    prepared = prepare_inputs(embeddings, labels, is_query, is_gallery, settings)
    state = run_prepared(prepared, settings, range(len(prepared.query_classes)))
    return finish(prepared, state, settings)


def resolve_settings(settings: EvaluationSettings | None, overrides: dict[str, Any]) -> EvaluationSettings:
    """``settings`` as given, or built from keyword overrides (never both)."""
    if settings is not None and overrides:
        raise TypeError("pass either settings= or keyword overrides, not both")
    return settings if settings is not None else EvaluationSettings(**overrides)


def prepare_inputs(
    embeddings: Any,
    labels: Any,
    is_query: Any,
    is_gallery: Any,
    settings: EvaluationSettings,
) -> PreparedSet:
    """Validate the inputs (one-line ``TcdmlInputError`` on bad input) and build the class-sorted set."""
    tensor = as_embeddings(embeddings)
    label_array = as_labels(labels, tensor.shape[0])
    query_mask = as_mask(is_query, len(label_array), "is_query")
    gallery_mask = as_mask(is_gallery, len(label_array), "is_gallery")
    num_classes = len(np.unique(label_array))
    if num_classes < 2:
        raise TcdmlInputError(
            f"labels: a single class ({label_array[0]}); OPIS and retrieval need at least 2"
        )
    settings.check_memory(num_classes)
    device = check_device(settings.device) if settings.device else tensor.device
    prepared = prepare(tensor, label_array, query_mask, gallery_mask, device)
    if not (prepared.num_relevant > 0).any():
        raise TcdmlInputError(
            f"labels: all {len(prepared.class_labels)} classes are singletons (no query has another member "
            "of its class): no positive pairs"
        )
    candidates = len(prepared.gallery_classes) - int((prepared.self_column >= 0).any())
    if max(settings.ks) > candidates:
        raise TcdmlInputError(f"k={max(settings.ks)} is larger than the {candidates} neighbours a query has")
    return prepared


def run_prepared(
    prepared: PreparedSet, settings: EvaluationSettings, rows: range, retrieval: bool = True
) -> PassState:
    """Run the pass over ``rows`` of a prepared set with the settings' backend, bins and progress bar.

    ``retrieval=False`` accumulates only the histograms (all that threshold calibration needs).
    """
    neighbours = None
    if retrieval and settings.knn_backend == "faiss":
        from tcdml.metrics.knn import faiss_neighbours

        k_max = prepared.neighbours_needed(settings.ks)
        sub = slice(rows.start, rows.stop)
        found = faiss_neighbours(
            prepared.queries[sub], prepared.gallery, k_max, prepared.self_column[sub], prepared.gallery_index
        )
        neighbours = torch.zeros((len(prepared.query_classes), k_max), dtype=torch.int64)
        neighbours[sub] = found
    progress = settings.progress
    if progress is None:
        progress = len(prepared.gallery_classes) >= PROGRESS_MIN_SAMPLES
    num_bins = settings.bins_for(len(prepared.class_labels)) if settings.mode == "histogram" else None
    return run_pass(
        prepared,
        rows,
        ks=settings.ks,
        num_bins=num_bins,
        retrieval=retrieval,
        neighbours=neighbours,
        max_block_bytes=settings.max_block_bytes,
        progress=progress,
    )


def exact_counts(prepared: PreparedSet) -> ExactPairSimilarities:
    """Brute-force pair similarities of a prepared set (refuses sets too large to hold every pair)."""
    num_pairs = len(prepared.query_classes) * len(prepared.gallery_classes)
    if num_pairs > MAX_EXACT_PAIRS:
        raise TcdmlInputError(
            f"mode='exact' would hold {num_pairs:,} pair similarities (limit {MAX_EXACT_PAIRS:,}); "
            "use the default histogram mode"
        )
    similarity = (prepared.queries @ prepared.gallery.T).clamp_(-1.0, 1.0)
    return ExactPairSimilarities.from_similarity(
        similarity,
        prepared.query_classes,
        prepared.gallery_classes,
        prepared.self_column,
        prepared.class_labels,
        prepared.class_sizes,
        all_pairs=prepared.all_pairs,
    )


def finish(prepared: PreparedSet, state: PassState, settings: EvaluationSettings) -> EvaluationResult:
    """Reduce a complete pass state to the result: calibration range, utilities, OPIS, R@k, MAP@R."""
    counts: PairCounts = state.histogram if state.histogram is not None else exact_counts(prepared)
    t_lo, t_hi = calibration_range(counts, *settings.far_range)
    thresholds = threshold_grid(t_lo, t_hi, settings.num_thresholds)
    all_utilities = class_utilities(counts, thresholds, settings.beta)
    has_pos = counts.num_pos() > 0
    utilities = all_utilities[has_pos]
    threshold = settings.threshold if settings.threshold is not None else (t_lo + t_hi) / 2
    table = ClassTable(
        labels=prepared.class_labels,
        sizes=prepared.class_sizes,
        num_positive_pairs=counts.num_pos(),
        num_negative_pairs=counts.num_neg(),
        mean_utility=all_utilities.mean(axis=1),
        far=counts.class_far(np.array([threshold]))[:, 0],
        frr=counts.class_frr(np.array([threshold]))[:, 0],
        threshold=float(threshold),
    )
    valid = prepared.num_relevant > 0
    hits = state.hits[valid].mean(axis=0)
    score, eps_score = opis(utilities), eps_opis(utilities, settings.eps)
    uncertainty = {}
    if settings.uncertainty is not None:
        intervals = opis_intervals(utilities, settings.eps, settings.uncertainty)
        floors = noise_floor(counts, thresholds, settings.beta, settings.eps, settings.uncertainty)
        uncertainty = {
            "opis_ci": intervals[0],
            "eps_opis_ci": intervals[1],
            "opis_noise_floor": floors[0],
            "eps_opis_noise_floor": floors[1],
            "ci_level": settings.uncertainty.level,
        }
    return EvaluationResult(
        recall_at_k={k: float(hits[i]) for i, k in enumerate(settings.ks)},
        map_at_r=float(state.ap[valid].mean()),
        opis=score,
        eps_opis=eps_score,
        eps=settings.eps,
        beta=settings.beta,
        far_range=settings.far_range,
        t_lo=float(t_lo),
        t_hi=float(t_hi),
        thresholds=thresholds,
        utilities=utilities,
        utility_labels=prepared.class_labels[has_pos],
        per_class=table,
        num_samples=prepared.num_samples,
        num_queries=len(prepared.query_classes),
        num_left_out_queries=int((~valid).sum()),
        mode=settings.mode,
        num_bins=state.histogram.num_bins if state.histogram is not None else None,
        counts=counts,
        queries=QueryOutcomes(settings.ks, prepared.query_classes, state.hits, state.ap, valid),
        **uncertainty,
    )
