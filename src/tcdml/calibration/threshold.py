"""Choose the single deployment threshold that meets a FAR (or FRR) target on calibration data.

"One threshold for everyone — how unequal is it?": besides the threshold and the overall rates it reaches,
the result gives the spread of per-class FAR and FRR at it and the classes that fare worst.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.metrics.engine import (
    PassSettings,
    missing_pairs,
    pair_counts,
    prepare_inputs,
    resolve_settings,
    run_prepared,
)
from tcdml.metrics.pair_counts import PairCounts
from tcdml.metrics.validation import check_integer, check_open_unit


@dataclass(frozen=True)
class RateSpread:
    """Distribution of a per-class rate over classes: min, median, 90th percentile, max."""

    min: float
    median: float
    p90: float
    max: float

    @classmethod
    def of(cls, rates: np.ndarray) -> RateSpread:
        """Spread of the finite entries of ``rates`` (NaN marks classes the rate is undefined for)."""
        finite = rates[np.isfinite(rates)]
        if len(finite) == 0:
            return cls(float("nan"), float("nan"), float("nan"), float("nan"))
        return cls(*(float(v) for v in np.quantile(finite, [0.0, 0.5, 0.9, 1.0])))

    def to_dict(self) -> dict:
        """``{"min", "median", "p90", "max"}``."""
        return {"min": self.min, "median": self.median, "p90": self.p90, "max": self.max}


@dataclass(frozen=True)
class CalibrationResult:
    """The calibrated threshold, the overall FAR/FRR it achieves and the per-class rates at it.

    ``class_frr`` is NaN for classes without positive pairs; ``class_far`` is 0 for a class without negatives.
    """

    target: str
    target_rate: float
    threshold: float
    far: float
    frr: float
    class_labels: np.ndarray
    class_far: np.ndarray
    class_frr: np.ndarray
    mode: str
    num_worst: int = 5

    @property
    def far_spread(self) -> RateSpread:
        """Spread of per-class FAR at the threshold."""
        return RateSpread.of(self.class_far)

    @property
    def frr_spread(self) -> RateSpread:
        """Spread of per-class FRR at the threshold (classes with positive pairs)."""
        return RateSpread.of(self.class_frr)

    def worst(self, rate: str) -> list[dict]:
        """The ``num_worst`` classes with the highest per-class ``rate`` ("far" or "frr")."""
        values = self.class_far if rate == "far" else self.class_frr
        ranked = np.where(np.isfinite(values), values, -np.inf)
        order = np.argsort(-ranked, kind="stable")[: self.num_worst]
        return [
            {"label": int(self.class_labels[i]), rate: float(values[i])}
            for i in order
            if np.isfinite(values[i])
        ]

    def to_dict(self) -> dict:
        """JSON-ready summary: threshold, achieved rates, per-class spreads and worst classes."""
        return {
            "target": self.target,
            "target_rate": self.target_rate,
            "threshold": self.threshold,
            "far": self.far,
            "frr": self.frr,
            "num_classes": len(self.class_labels),
            "class_far": self.far_spread.to_dict(),
            "class_frr": self.frr_spread.to_dict(),
            "worst_far_classes": self.worst("far"),
            "worst_frr_classes": self.worst("frr"),
            "mode": self.mode,
        }


def calibrate_counts(
    counts: PairCounts,
    *,
    target_far: float | None = None,
    target_frr: float | None = None,
    mode: str = "histogram",
    num_worst: int = 5,
    cosine: bool = True,
) -> CalibrationResult:
    """The one threshold meeting exactly one target, from pair counts (e.g. ``EvaluationResult.counts``).

    ``target_far``: the smallest ``t`` with ``FAR(t) <= target_far`` (fewest false rejections allowed by
    the false-accept budget). ``target_frr``: the largest ``t`` with ``FRR(t) <= target_frr``. In histogram
    mode ``t`` is a bin edge, where the achieved rates are exact. ``cosine``: the counts are of cosine
    similarities (a threshold <= 0 is then warned about: ``low_threshold_note``); False for other scores.
    """
    target, rate = check_target(target_far, target_frr)
    num_worst = check_integer(num_worst, "num_worst", 1)
    threshold = counts.far_threshold(rate) if target == "far" else counts.frr_threshold(rate)
    at = np.array([threshold])
    if cosine:
        warn_low_threshold(float(threshold))
    return CalibrationResult(
        target=target,
        target_rate=rate,
        threshold=float(threshold),
        far=float(counts.global_far(at)[0]),
        frr=float(counts.global_frr(at)[0]),
        class_labels=counts.class_labels,
        class_far=counts.class_far(at)[:, 0],
        class_frr=counts.class_frr(at)[:, 0],
        mode=mode,
        num_worst=num_worst,
    )


def low_threshold_note(threshold: float) -> str | None:
    """For a threshold <= 0, what it means in one line (None otherwise)."""
    if threshold > 0:
        return None
    return (
        f"threshold={threshold:.4g} <= 0: every pair whose embeddings are orthogonal (unrelated) or closer "
        "is accepted as a match; the calibration data's classes are poorly separated"
    )


def warn_low_threshold(threshold: float) -> None:
    """``warnings.warn`` the ``low_threshold_note`` of ``threshold``, if any (the CLI shows it in one
    line)."""
    note = low_threshold_note(threshold)
    if note is not None:
        warnings.warn(note, stacklevel=3)


def check_target(target_far: Any, target_frr: Any) -> tuple[str, float]:
    """("far" or "frr", the rate): exactly one target, a number in (0, 1)."""
    if (target_far is None) == (target_frr is None):
        raise TcdmlInputError("give exactly one of target_far or target_frr")
    if target_far is not None:
        return "far", check_open_unit(target_far, "target_far")
    return "frr", check_open_unit(target_frr, "target_frr")


def calibrate(
    embeddings: Any,
    labels: Any,
    *,
    target_far: float | None = None,
    target_frr: float | None = None,
    is_query: Any = None,
    is_gallery: Any = None,
    num_worst: int = 5,
    settings: PassSettings | None = None,
    **overrides: Any,
) -> CalibrationResult:
    """Calibrate on an embedding set: one histogram pass (no neighbour search), then ``calibrate_counts``.

    ``settings`` / keyword ``overrides`` are ``PassSettings``' (``mode``, ``num_bins``, ``device``,
    ``max_block_bytes``, ``progress``). A set without negative or without positive pairs is a one-line
    ``TcdmlInputError``, before the pass.
    """
    check_target(target_far, target_frr)  # before the pass
    check_integer(num_worst, "num_worst", 1)
    config = resolve_settings(PassSettings, settings, overrides)
    prepared = prepare_inputs(embeddings, labels, is_query, is_gallery, config)
    problem = missing_pairs(prepared)
    if problem is not None:
        raise TcdmlInputError(f"{problem}: no threshold to calibrate")
    counts = pair_counts(prepared, run_prepared(prepared, config))
    return calibrate_counts(
        counts, target_far=target_far, target_frr=target_frr, mode=config.mode, num_worst=num_worst
    )
