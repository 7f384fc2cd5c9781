"""Two models on the same samples: every metric's change (B minus A) with a paired bootstrap interval.

``compare(embeddings_a, embeddings_b, labels)`` evaluates both embedding sets with the same settings and
resamples **classes** jointly for both: a resample draws the classes with replacement once, and each model's
OPIS / eps-OPIS (over the drawn classes that have positive pairs, see ``tcdml.metrics.uncertainty``),
Recall@k and MAP@R (over the queries of the drawn classes, each class's queries counted as often as the
class is drawn) are recomputed from that same draw. The interval of ``delta = metric_B - metric_A`` is the
percentile interval of the resampled deltas, so what both models get right or wrong on the same hard
classes cancels out: paired intervals are much narrower than two separate ones.

The verification metrics (AUC, EER, FNMR at each FMR target, ``tcdml.metrics.verification``) are recomputed
from both models' per-class histograms pooled with the same class weights, and ``opis_debiased`` as
``OPIS_w - sum_c w_c V_c / n`` (``tcdml.metrics.jackknife``).

A verdict per metric (``tcdml.metrics.catalogue.verdict``): ``better`` / ``worse`` when the interval excludes
0 (in the metric's direction: lower is better for OPIS, EER, FNMR), else ``no detectable change``. Where OPIS
is undefined for either model (``EvaluationResult.opis_undefined``) the OPIS, eps-OPIS and debiased OPIS
changes are None (value, interval and verdict) and ``opis_undefined`` says why; the others are compared all
the same.

Example (a model compared with itself: every delta is 0 and every interval is [0, 0])::

    >>> from sklearn.datasets import load_digits
    >>> x, y = load_digits(return_X_y=True)
    >>> c = compare(x, x, y)
    >>> c.deltas["opis"].value, c.deltas["opis"].verdict
    (0.0, 'no detectable change')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.metrics.catalogue import DEFAULT_FMR_TARGETS, fmr_key, higher_is_better, verdict
from tcdml.metrics.evaluator import evaluate
from tcdml.metrics.jackknife import weighted_debiased_opis
from tcdml.metrics.result import EvaluationResult, ci_key
from tcdml.metrics.settings import EvaluationSettings, resolve_settings
from tcdml.metrics.uncertainty import (
    RESAMPLE_CHUNK,
    UncertaintySettings,
    percentile_interval,
    resample_weights,
    weighted_eps_opis,
    weighted_opis,
)
from tcdml.metrics.validation import as_embeddings, as_labels
from tcdml.metrics.verification import class_histograms, occupied, weighted_rates

#: The compared metrics besides FNMR@FMR (one per FMR target, ``compared_metrics``).
COMPARED = ("recall@1", "map@r", "opis", "eps_opis", "opis_debiased", "auc", "eer")
#: The compared metrics read off the calibration range (undefined where OPIS is).
CONSISTENCY_METRICS = ("opis", "eps_opis", "opis_debiased")
#: The verification metrics (undefined without positive and negative pairs).
VERIFICATION_METRICS = ("auc", "eer")


def compared_metrics(fmr_targets: Sequence[float] = DEFAULT_FMR_TARGETS) -> list[str]:
    """The keys ``compare`` gives a change of: ``COMPARED`` then ``fnmr@fmr=<a>`` per FMR target."""
    return [*COMPARED, *(fmr_key(a) for a in fmr_targets)]


#: The compared metrics at the default FMR targets: key -> whether a higher value is better (the catalogue's).
HIGHER_IS_BETTER = {key: higher_is_better(key) for key in compared_metrics()}


@dataclass(frozen=True)
class Delta:
    """``value`` = metric of B minus metric of A; ``ci``: its paired bootstrap interval; ``verdict``.

    All three are None where the metric is undefined for either model; ``undefined`` then says why.
    """

    value: float | None
    ci: tuple[float, float] | None
    verdict: str | None
    undefined: str | None = None


@dataclass(frozen=True)
class Comparison:
    """Both evaluations and the changes between them (B minus A)."""

    a: EvaluationResult
    b: EvaluationResult
    deltas: dict[str, Delta]
    level: float
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``delta_<metric>``, ``delta_<metric>_ci95``, ``verdict_<metric>``, ``opis_undefined``
        (None, or why the OPIS changes are None), then each model's metrics under ``a`` and ``b``."""
        out: dict[str, Any] = {}
        for name, delta in self.deltas.items():
            out[f"delta_{name}"] = delta.value
            out[ci_key(f"delta_{name}", self.level)] = None if delta.ci is None else list(delta.ci)
            out[f"verdict_{name}"] = delta.verdict
        out["opis_undefined"] = self.deltas["opis"].undefined
        out["resamples"] = self.resamples
        for side, result in (("a", self.a), ("b", self.b)):
            summary = result.to_dict()
            keys = ["recall@1", "map@r", "opis", "eps_opis", ci_key("opis", self.level), "opis_noise_floor"]
            keys += ["opis_excess", "eps_opis_excess", "t_lo", "t_hi", "opis_undefined"]
            keys += ["opis_debiased", ci_key("opis_debiased", self.level), "eps_opis_noise_floor"]
            keys += ["auc", "eer", "eer_threshold", *(fmr_key(a) for a in result.fmr_targets)]
            out[side] = {key: summary[key] for key in keys}
        return out


def compare(
    embeddings_a: Any,
    embeddings_b: Any,
    labels: Any,
    *,
    is_query: Any = None,
    is_gallery: Any = None,
    settings: EvaluationSettings | None = None,
    needs_opis: str | None = None,
    **overrides: Any,
) -> Comparison:
    """Evaluate A and B on the same ``labels`` (and masks) and compare them (see the module docstring).

    ``settings`` / keyword overrides are ``EvaluationSettings``'; its ``uncertainty`` gives the resamples,
    interval level and seed of the paired bootstrap (and of each model's own intervals). ``needs_opis``: as
    in ``evaluate`` (what needs OPIS defined for both models, e.g. "--plot").
    """
    settings = resolve_settings(EvaluationSettings, settings, overrides)
    if 1 not in settings.ks:
        settings = replace(settings, ks=(1, *settings.ks))
    for name, embeddings in (("A", embeddings_a), ("B", embeddings_b)):  # both checked before either pass
        try:
            as_labels(labels, as_embeddings(embeddings).shape[0])
        except TcdmlInputError as exc:
            raise TcdmlInputError(f"model {name}: {exc}") from None
    uncertainty = settings.uncertainty or UncertaintySettings()
    settings = replace(settings, uncertainty=uncertainty)  # both models' own intervals and floors too
    masks = {"is_query": is_query, "is_gallery": is_gallery}
    results = [
        evaluate(emb, labels, settings=settings, needs_opis=needs_opis, **masks)
        for emb in (embeddings_a, embeddings_b)
    ]
    return Comparison(
        *results, paired_deltas(*results, uncertainty), uncertainty.level, uncertainty.resamples
    )


def paired_deltas(
    a: EvaluationResult, b: EvaluationResult, settings: UncertaintySettings
) -> dict[str, Delta]:
    """The change of every metric from ``a`` to ``b`` (same samples) with its paired bootstrap interval."""
    return pooled_deltas([(a, b)], settings)


def pooled_deltas(
    pairs: Sequence[tuple[EvaluationResult, EvaluationResult]], settings: UncertaintySettings
) -> dict[str, Delta]:
    """The mean over ``pairs`` of each metric's change (``b - a``, e.g. one pair per seed), with a paired
    bootstrap interval: one draw of classes per resample, applied to every pair (all pairs must be
    evaluations of the same samples: the same classes)."""
    if not pairs:
        raise TcdmlInputError("compare: no pair of evaluations to compare")
    first = pairs[0][0]
    for a, b in pairs:
        for result in (a, b):
            same = np.array_equal(result.class_labels, first.class_labels)
            if not same or result.queries is None:
                raise TcdmlInputError("compare: the evaluations are not of the same samples")
    undefined = _undefined_reason(pairs)
    unverified = _unverified_reason(pairs)
    fmr_targets = first.fmr_targets
    undebiased = None
    if undefined is None and any(r.opis_debiased is None for pair in pairs for r in pair):
        undebiased = "opis_debiased: the calibration range starts below the per-sample counts of a model"
    names = [
        name
        for name in compared_metrics(fmr_targets)
        if not (undefined and name in CONSISTENCY_METRICS)
        and not (unverified and _verifies(name))
        and not (undebiased and name == "opis_debiased")
    ]
    # The T classes with positive pairs are drawn (as evaluate's own intervals draw them); the others have
    # no query that counts and no utility curve, so they would only make the resample size vary (their
    # negative pairs keep weight 1 in the verification metrics).
    has_pos = np.isin(first.class_labels, first.utility_labels)
    histograms = (
        {} if unverified else {id(r): occupied(*class_histograms(r.counts)) for pair in pairs for r in pair}
    )
    rng = np.random.default_rng([settings.seed, 2])
    draws: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, settings.resamples, RESAMPLE_CHUNK):
        drawn = resample_weights(int(has_pos.sum()), min(RESAMPLE_CHUNK, settings.resamples - start), rng)
        weights = np.zeros((len(drawn), len(has_pos)), dtype=drawn.dtype)
        weights[:, has_pos] = drawn
        changes = {name: np.zeros(len(weights)) for name in draws}
        for a, b in pairs:
            values = [
                _resampled_metrics(result, weights, has_pos, names, histograms.get(id(result)))
                for result in (a, b)
            ]
            for name in draws:
                changes[name] += (values[1][name] - values[0][name]) / len(pairs)
        for name in draws:
            draws[name].append(changes[name])
    deltas = {}
    for name in compared_metrics(fmr_targets):
        if name not in draws:
            reason = unverified if _verifies(name) else undefined or undebiased
            deltas[name] = Delta(None, None, None, reason)
            continue
        point = float(np.mean([_point(b, name) - _point(a, name) for a, b in pairs]))
        ci = percentile_interval(np.concatenate(draws[name]), settings.level)
        deltas[name] = Delta(point, ci, verdict(ci, higher_is_better(name)))
    return deltas


def _verifies(name: str) -> bool:
    return name in VERIFICATION_METRICS or name.startswith("fnmr@fmr=")


def _unverified_reason(pairs: Sequence[tuple[EvaluationResult, EvaluationResult]]) -> str | None:
    """Why the verification metrics are undefined for a model of ``pairs`` (no positive or negative pairs)."""
    for a, b in pairs:
        if a.fmr_targets != b.fmr_targets:
            raise TcdmlInputError("compare: the evaluations have different FMR targets")
        for side, result in (("A", a), ("B", b)):
            if result.verification is None:
                return f"model {side}: no positive or no negative pairs: no verification metrics"
    return None


def _undefined_reason(pairs: Sequence[tuple[EvaluationResult, EvaluationResult]]) -> str | None:
    """Why OPIS is undefined for a model of ``pairs`` (the first pair with one: "model A: ..."), or None."""
    for a, b in pairs:
        reasons = {side: r.opis_undefined for side, r in (("A", a), ("B", b)) if r.opis_undefined is not None}
        if len(reasons) == 2 and reasons["A"] == reasons["B"]:
            return f"models A and B: {reasons['A']}"
        if reasons:
            return "; ".join(f"model {side}: {reason}" for side, reason in reasons.items())
    return None


def _point(result: EvaluationResult, name: str) -> float | None:
    if name == "recall@1":
        return result.recall_at_k[1]
    if name == "map@r":
        return result.map_at_r
    if name in CONSISTENCY_METRICS:
        return getattr(result, name)
    return result.verification.values[name]


def _resampled_metrics(
    result: EvaluationResult,
    weights: np.ndarray,
    has_pos: np.ndarray,
    names: list[str],
    histograms: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """(B,) metrics ``names`` of ``result`` under class weights (B x C); ``histograms``: its per-class
    histograms (``class_histograms``), for the verification metrics."""
    queries = result.queries
    valid = queries.valid
    classes = queries.classes[valid]
    num_classes = weights.shape[1]
    hits = np.bincount(classes, queries.hits[valid, queries.ks.index(1)], minlength=num_classes)
    ap = np.bincount(classes, queries.ap[valid], minlength=num_classes)
    count = np.bincount(classes, minlength=num_classes).astype(np.float64)
    weights = weights.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = 1.0 / (weights @ count)
    out = {"recall@1": (weights @ hits) * scale, "map@r": (weights @ ap) * scale}
    if result.utilities is not None and "opis" in names:
        class_weights = weights[:, has_pos]
        out["opis"] = weighted_opis(result.utilities, class_weights)
        out["eps_opis"] = weighted_eps_opis(result.utilities, class_weights, result.eps)
        variances = result.sample_variances
        out["opis_debiased"] = (
            weighted_debiased_opis(result.utilities, variances, class_weights)
            if variances is not None
            else np.full(len(weights), np.nan)
        )
    if histograms is not None:
        verification_weights = np.where(has_pos, weights, 1.0)
        out.update(weighted_rates(*histograms, verification_weights, result.fmr_targets))
    return out
