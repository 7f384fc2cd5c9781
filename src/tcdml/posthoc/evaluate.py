"""R@k, MAP@R and OPIS of a **score matrix** (e.g. calibrated scores), and paired comparisons of two.

``evaluate_scores(scores, labels)`` is ``tcdml.metrics.evaluate`` with the pair similarities replaced by
``scores[i, j]`` (N x N, symmetric; all unordered pairs, leave-one-out retrieval, ties by sample index): the
calibration range is the FAR range of the negative **scores**, the grid is even in score units, and a
threshold accepts a pair when its score is ``>= t``, as the user thresholds it.

The default ``mode`` is ``"exact"`` (every pair score kept; up to ``MAX_SAMPLES``): calibrated scores can be
heavy-tailed, and even histogram bins over their whole range can be too coarse for the calibration range.

How: the metrics' own pass runs, in float64, on the query rows ``(scores - centre) / half_range`` (an
increasing affine map into [-1, 1], under which the quantile-based calibration range, the even grid, every
count ``>= t``, the rankings and so OPIS and R@k are unchanged) against the identity matrix as the gallery, so
each block of the pass is exactly a block of the mapped scores. ``t_lo``, ``t_hi``, ``thresholds`` and the
per-class table's threshold are mapped back to score units; ``counts`` stays in the mapped units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from tcdml.errors import TcdmlInputError
from tcdml.metrics.compare import Comparison, paired_deltas
from tcdml.metrics.engine import check_evaluation, finish, run_prepared
from tcdml.metrics.result import EvaluationResult
from tcdml.metrics.settings import EvaluationSettings, resolve_settings
from tcdml.metrics.similarity_pass import PreparedSet, prepare
from tcdml.metrics.uncertainty import UncertaintySettings
from tcdml.metrics.validation import as_labels

#: Above this many samples the N x N score and identity matrices are refused (about 2 x 1.6 GB).
MAX_SAMPLES = 20_000


def evaluate_scores(
    scores: Any, labels: Any, *, settings: EvaluationSettings | None = None, **overrides: Any
) -> EvaluationResult:
    """Evaluate a symmetric N x N score matrix with integer ``labels`` (N,) (module docstring); settings as in
    ``tcdml.metrics.evaluate`` (``far_range``, ``beta``, ``ks``, ``uncertainty`` ...)."""
    if settings is None:
        overrides.setdefault("mode", "exact")
    settings = resolve_settings(EvaluationSettings, settings, overrides)
    prepared, back = prepared_scores(scores, labels)
    check_evaluation(prepared, settings)
    result = finish(prepared, run_prepared(prepared, settings, ks=settings.ks), settings)
    if result.t_lo is None:
        return result
    per_class = replace(result.per_class, threshold=back(result.per_class.threshold))
    return replace(
        result,
        t_lo=back(result.t_lo),
        t_hi=back(result.t_hi),
        thresholds=back(result.thresholds),
        per_class=per_class,
    )


def prepared_scores(scores: Any, labels: Any) -> tuple[PreparedSet, Callable[[Any], Any]]:
    """The metrics pass's input for a checked score matrix (module docstring: the mapped rows against the
    identity) and ``back``, the map from pass units back to score units (``t * half_range + centre``)."""
    matrix = _score_matrix(scores)
    label_array = as_labels(labels, len(matrix))
    low, high = float(matrix.min()), float(matrix.max())
    centre, half = (high + low) / 2.0, max((high - low) / 2.0, 1e-300)
    mapped = torch.as_tensor((matrix - centre) / half, dtype=torch.float64).clamp_(-1.0, 1.0)
    everyone = np.ones(len(matrix), dtype=bool)
    prepared = prepare(torch.eye(len(matrix)), label_array, everyone, everyone, torch.device("cpu"))
    gallery = prepared.gallery.double()
    prepared = replace(prepared, queries=mapped[torch.as_tensor(prepared.query_index)], gallery=gallery)
    return prepared, lambda t: t * half + centre


def compare_scores(
    scores_a: Any, scores_b: Any, labels: Any, *, settings: EvaluationSettings | None = None, **overrides: Any
) -> Comparison:
    """Two score matrices of the same samples (e.g. raw cosines and calibrated scores), B minus A, with the
    paired bootstrap of ``tcdml.metrics.compare`` (classes resampled jointly for both)."""
    if settings is None:
        overrides.setdefault("mode", "exact")
    settings = resolve_settings(EvaluationSettings, settings, overrides)
    if 1 not in settings.ks:
        settings = replace(settings, ks=(1, *settings.ks))
    uncertainty = settings.uncertainty or UncertaintySettings()
    settings = replace(settings, uncertainty=uncertainty)
    a, b = (evaluate_scores(s, labels, settings=settings) for s in (scores_a, scores_b))
    return Comparison(a, b, paired_deltas(a, b, uncertainty), uncertainty.level, uncertainty.resamples)


def check_sample_count(count: int, name: str = "scores") -> None:
    """Refuse more than ``MAX_SAMPLES`` samples before an N x N score matrix is built (one line)."""
    if count > MAX_SAMPLES:
        raise TcdmlInputError(f"{name}: {count:,} samples; a score matrix is evaluated up to {MAX_SAMPLES:,}")


def cosine_matrix(embeddings: Any) -> np.ndarray:
    """The N x N cosine similarities of ``embeddings`` (the raw scores a calibration starts from)."""
    from tcdml.posthoc.common import unit_rows

    x = unit_rows(embeddings, "embeddings")
    return x @ x.T


def _score_matrix(scores: Any) -> np.ndarray:
    try:
        matrix = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise TcdmlInputError("scores: not a numeric N x N matrix") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise TcdmlInputError(f"scores: expected a square N x N matrix (N >= 2), got shape {matrix.shape}")
    check_sample_count(len(matrix))
    if not np.isfinite(matrix).all():
        raise TcdmlInputError("scores: contains NaN or Inf")
    if not np.allclose(matrix, matrix.T, rtol=1e-6, atol=1e-9):
        raise TcdmlInputError(
            "scores: not symmetric (all-pairs evaluation needs scores[i, j] == scores[j, i])"
        )
    return matrix
