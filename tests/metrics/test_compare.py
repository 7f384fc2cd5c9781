"""Paired comparison of two models on the same samples (tcdml.metrics.compare)."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.errors import TcdmlInputError
from tcdml.metrics import evaluate
from tcdml.metrics.compare import HIGHER_IS_BETTER, compare, verdict
from tcdml.metrics.uncertainty import UncertaintySettings
from tests.helpers import clustered_embeddings


def test_a_model_compared_with_itself_changes_nothing(digits) -> None:
    x, y = digits
    result = compare(x, x.copy(), y)
    for name in HIGHER_IS_BETTER:
        delta = result.deltas[name]
        assert delta.value == 0.0 and delta.ci[0] <= 0.0 <= delta.ci[1]
        assert delta.verdict == "no detectable change"
    out = result.to_dict()
    assert {"delta_opis", "delta_opis_ci95", "delta_eps_opis", "delta_eps_opis_ci95"} <= set(out)
    assert {"delta_recall@1", "delta_recall@1_ci95", "delta_map@r", "delta_map@r_ci95"} <= set(out)


def test_point_deltas_are_the_difference_of_the_two_evaluations() -> None:
    x, y = clustered_embeddings([8] * 30, dim=24, spread=0.8, seed=0)
    noisy = x + np.random.default_rng(1).normal(size=x.shape).astype(np.float32) * 0.15
    result = compare(x, noisy, y)
    a, b = evaluate(x, y), evaluate(noisy, y)
    assert result.deltas["opis"].value == pytest.approx(b.opis - a.opis)
    assert result.deltas["recall@1"].value == pytest.approx(b.recall_at_k[1] - a.recall_at_k[1])
    assert result.deltas["map@r"].value == pytest.approx(b.map_at_r - a.map_at_r)
    for name, delta in result.deltas.items():
        assert delta.ci[0] <= delta.value <= delta.ci[1], name


def test_a_clearly_worse_model_is_called_worse() -> None:
    """B is A with most of its signal replaced by noise: R@1 and MAP@R fall beyond their intervals."""
    x, y = clustered_embeddings([8] * 40, dim=32, spread=0.6, seed=3)
    rng = np.random.default_rng(0)
    worse = x + rng.normal(size=x.shape).astype(np.float32) * 0.4
    result = compare(x, worse, y, uncertainty=UncertaintySettings(resamples=300))
    assert result.deltas["recall@1"].verdict == "worse" and result.deltas["recall@1"].ci[1] < 0
    assert result.deltas["map@r"].verdict == "worse"
    # And the other way round.
    assert compare(worse, x, y, uncertainty=UncertaintySettings(resamples=300)).deltas["map@r"].verdict == (
        "better"
    )


def test_paired_interval_is_narrower_than_the_unpaired_ones() -> None:
    """What both models share cancels out: the paired interval of the OPIS change is narrower than the sum
    of the two models' own half-widths."""
    x, y = clustered_embeddings([6] * 60, dim=32, spread=list(np.linspace(0.3, 1.1, 60)), seed=5)
    nudged = x + np.random.default_rng(2).normal(size=x.shape).astype(np.float32) * 0.02
    result = compare(x, nudged, y)
    paired = result.deltas["opis"].ci[1] - result.deltas["opis"].ci[0]
    separate = sum(r.opis_ci[1] - r.opis_ci[0] for r in (result.a, result.b))
    assert paired < separate / 4


def test_verdict_rule() -> None:
    assert verdict((0.01, 0.02), higher_is_better=True) == "better"
    assert verdict((0.01, 0.02), higher_is_better=False) == "worse"
    assert verdict((-0.02, -0.01), higher_is_better=False) == "better"
    assert verdict((-0.01, 0.02), higher_is_better=True) == "no detectable change"
    assert verdict((float("nan"), float("nan")), higher_is_better=True) == "no detectable change"


def test_bad_second_model_is_refused_before_any_pass() -> None:
    x, y = clustered_embeddings([5, 6, 7], seed=0)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(TcdmlInputError, match=r"model B: .*NaN"):
        compare(x, bad, y)
    with pytest.raises(TcdmlInputError, match=r"model B: .*does not match"):
        compare(x, x[:-1], y)


def test_no_uncertainty_settings_still_gives_every_key(digits) -> None:
    x, y = digits
    out = compare(x, x, y, uncertainty=None).to_dict()
    assert out["a"]["opis_ci95"] and out["delta_opis_ci95"] == [0.0, 0.0]
