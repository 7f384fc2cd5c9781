"""Per-class utility curves and the calibration range (docs/spec.md: "Utility" and "Calibration range")."""

from __future__ import annotations

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.metrics.pair_counts import PairCounts


def f_beta_utility(tpr: np.ndarray, tnr: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """``U = (1 + b^2) TPR TNR / (b^2 TNR + TPR)``, and 0 where TPR = TNR = 0.

    ``beta > 1`` weights TPR (fewer false rejections), ``beta < 1`` weights TNR (fewer false accepts).
    """
    b2 = beta * beta
    tpr = np.asarray(tpr, dtype=np.float64)
    tnr = np.asarray(tnr, dtype=np.float64)
    denominator = b2 * tnr + tpr
    out = np.zeros(np.broadcast(tpr, tnr).shape)
    np.divide((1.0 + b2) * tpr * tnr, denominator, out=out, where=denominator > 0)
    return out


def class_utilities(counts: PairCounts, thresholds: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """(C, K) utility ``U_c(t_k)`` of every class; NaN rows for classes without positive pairs.

    ``TPR_c(t) = |{p in P_c : s_p >= t}| / |P_c|``, ``TNR_c(t) = |{p in N_c : s_p < t}| / |N_c|`` (1 where
    ``N_c`` is empty).
    """
    num_pos = counts.num_pos()[:, None]
    tpr = np.divide(
        counts.pos_ge(thresholds), num_pos, out=np.zeros((len(num_pos), len(thresholds))), where=num_pos > 0
    )
    tnr = 1.0 - counts.class_far(thresholds)
    utilities = f_beta_utility(tpr, tnr, beta)
    utilities[counts.num_pos() <= 0] = np.nan
    return utilities


def calibration_range(counts: PairCounts, far_min: float, far_max: float) -> tuple[float, float]:
    """``(t_lo, t_hi)``: the ``1 - far_max`` and ``1 - far_min`` quantiles of the negative similarities.

    Raises ``TcdmlInputError`` when there are no negatives or the range collapses: ``t_hi <= t_lo``, or
    narrower than the state's resolution (one histogram bin), where the binned counts cannot resolve it.
    """
    if counts.total_neg() <= 0:
        raise TcdmlInputError("no negative pairs (every sample has the same label): no calibration range")
    t_lo = counts.neg_quantile(1.0 - far_max)
    t_hi = counts.neg_quantile(1.0 - far_min)
    if not t_hi - t_lo > counts.resolution:
        hint = (
            f" (narrower than one histogram bin, {counts.resolution:.3g}: try mode='exact')"
            if counts.resolution
            else ""
        )
        raise TcdmlInputError(
            f"calibration range collapses: t_lo={t_lo:.6g}, t_hi={t_hi:.6g} for far range "
            f"({far_min}, {far_max}); the negative similarities are (nearly) all equal there{hint}"
        )
    return t_lo, t_hi


def threshold_grid(t_lo: float, t_hi: float, num_thresholds: int) -> np.ndarray:
    """K thresholds evenly spaced from ``t_lo`` to ``t_hi`` inclusive."""
    return np.linspace(t_lo, t_hi, num_thresholds)
