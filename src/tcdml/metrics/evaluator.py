"""``evaluate``: Recall@k, MAP@R, OPIS, eps-OPIS and the per-class table in one pass over the similarities."""

from __future__ import annotations

from typing import Any

from tcdml.metrics.engine import check_evaluation, finish, prepare_inputs, run_prepared
from tcdml.metrics.result import EvaluationResult
from tcdml.metrics.settings import EvaluationSettings, resolve_settings


def evaluate(
    embeddings: Any,
    labels: Any,
    *,
    is_query: Any = None,
    is_gallery: Any = None,
    settings: EvaluationSettings | None = None,
    needs_opis: str | None = None,
    **overrides: Any,
) -> EvaluationResult:
    """Evaluate an embedding set: retrieval metrics and threshold consistency, per docs/spec.md.

    ``embeddings`` (N x D, numpy or torch, any device) are L2-normalised here; ``labels`` (N,) are integer
    class labels. ``is_query`` / ``is_gallery`` (N, bool) restrict pairs to query x gallery (default: all
    pairs, leave-one-out retrieval). Parameters come from ``settings`` or keyword overrides of
    ``EvaluationSettings`` (``ks``, ``far_range``, ``beta``, ``eps``, ``num_thresholds``, ``mode``, ...).

    Where OPIS is undefined (no negative pairs, one class with positive pairs, a collapsed calibration range)
    the result still holds R@k and MAP@R, with ``opis`` None and the reason in ``opis_undefined``; unless
    ``needs_opis`` names what needs it (e.g. "--plot"): then that is a one-line ``TcdmlInputError``, before
    the pass where the labels decide it.

    Example: ``evaluate(x, y, far_range=(1e-3, 1e-2)).to_dict()["opis"]``.
    """
    settings = resolve_settings(EvaluationSettings, settings, overrides)
    prepared = prepare_inputs(embeddings, labels, is_query, is_gallery, settings)
    check_evaluation(prepared, settings, needs_opis)
    result = finish(prepared, run_prepared(prepared, settings, ks=settings.ks), settings)
    if needs_opis is not None:
        result.require_opis(needs_opis)  # a collapsed range shows only after the pass
    return result
