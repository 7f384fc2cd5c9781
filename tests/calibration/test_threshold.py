"""calibrate(): the one threshold meeting a FAR/FRR target, checked against direct counts on the data."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.calibration import calibrate, calibrate_counts
from tcdml.errors import TcdmlInputError
from tcdml.metrics import evaluate


def _pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = (xn @ xn.T).astype(np.float32)
    i, j = np.triu_indices(len(y), k=1)
    same = y[i] == y[j]
    return sim[i, j][same], sim[i, j][~same]


@pytest.mark.parametrize("mode", ["histogram", "exact"])
@pytest.mark.parametrize("target", [1e-3, 1e-2, 0.05])
def test_far_target_met_on_real_digits(digits, mode: str, target: float) -> None:
    x, y = digits
    pos, neg = _pairs(x, y)
    result = calibrate(x, y, target_far=target, mode=mode)
    achieved = (neg >= result.threshold).mean()
    assert achieved <= target + 1e-12
    assert result.far == pytest.approx(achieved, abs=1e-6)
    assert result.frr == pytest.approx((pos < result.threshold).mean(), abs=1e-6)
    if mode == "exact":
        # The smallest such threshold: one float step lower would exceed the target.
        lower = np.nextafter(np.float32(result.threshold), np.float32(-1))
        assert (neg >= lower).mean() > target
    else:
        # Within one histogram bin of the smallest threshold meeting the target.
        assert (neg >= result.threshold - 2.0 / 16384).mean() > target or result.threshold <= -1


@pytest.mark.parametrize("mode", ["histogram", "exact"])
def test_frr_target_met(digits, mode: str) -> None:
    x, y = digits
    pos, _ = _pairs(x, y)
    result = calibrate(x, y, target_frr=0.2, mode=mode)
    assert (pos < result.threshold).mean() <= 0.2
    assert result.target == "frr" and result.frr <= 0.2


def test_per_class_spread_and_worst_classes(digits) -> None:
    x, y = digits
    result = calibrate(x, y, target_far=1e-2, num_worst=3)
    spread = result.far_spread
    assert spread.min <= spread.median <= spread.p90 <= spread.max
    assert spread.max == pytest.approx(result.class_far.max())
    worst = result.worst("far")
    assert len(worst) == 3 and worst[0]["far"] == pytest.approx(spread.max)
    summary = result.to_dict()
    assert set(summary) >= {"threshold", "far", "frr", "class_far", "class_frr", "worst_far_classes"}


def test_calibrate_from_an_evaluation_state(digits) -> None:
    x, y = digits
    evaluation = evaluate(x, y)
    from_state = calibrate_counts(evaluation.counts, target_far=1e-2)
    direct = calibrate(x, y, target_far=1e-2)
    assert from_state.threshold == direct.threshold
    np.testing.assert_allclose(from_state.class_frr, direct.class_frr)


def test_bad_targets(digits) -> None:
    x, y = digits
    with pytest.raises(TcdmlInputError, match="exactly one of target_far or target_frr"):
        calibrate(x, y)
    with pytest.raises(TcdmlInputError, match="exactly one"):
        calibrate(x, y, target_far=0.1, target_frr=0.1)
    with pytest.raises(TcdmlInputError, match=r"target_far=1.5 must lie in \(0, 1\)"):
        calibrate(x, y, target_far=1.5)


@pytest.mark.parametrize(
    ("labels", "text"),
    [("single", "a single class (0): no negative pairs"), ("singletons", "no positive pairs")],
)
def test_sets_without_negatives_or_positives_are_one_line(digits, labels: str, text: str) -> None:
    x, y = digits
    y = np.zeros(len(y), int) if labels == "single" else np.arange(len(y))
    with pytest.raises(TcdmlInputError) as info:
        calibrate(x, y, target_far=1e-2)
    assert text in str(info.value) and "no threshold to calibrate" in str(info.value)
