"""The pure formulas on hand-computed cases: utility, OPIS, eps-OPIS, binned counts and quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.errors import TcdmlInputError
from tcdml.metrics import PairHistogram, eps_opis, f_beta_utility, opis, opis_per_class, worst_rest_gap
from tcdml.metrics.opis import worst_count


def test_f_beta_utility_by_hand() -> None:
    assert f_beta_utility(1.0, 0.5) == pytest.approx(2 * 0.5 / 1.5)
    assert f_beta_utility(1.0, 0.5, beta=2.0) == pytest.approx(5 * 0.5 / (4 * 0.5 + 1))
    assert f_beta_utility(0.5, 1.0, beta=0.5) == pytest.approx(1.25 * 0.5 / (0.25 + 0.5))
    assert f_beta_utility(0.0, 0.0) == 0.0
    assert f_beta_utility(0.0, 1.0) == 0.0


def test_opis_by_hand() -> None:
    u = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert opis(u) == pytest.approx(0.25)  # Ubar = 0.5 everywhere; each class is 0.5 away
    np.testing.assert_allclose(opis_per_class(u), [0.25, 0.25])
    assert opis(np.full((4, 3), 0.7)) == 0.0
    u3 = np.array([[0.9, 0.6], [0.5, 0.4], [0.1, 0.2]])
    ubar = u3.mean(axis=0)
    assert opis(u3) == pytest.approx(np.mean((u3 - ubar) ** 2))


def test_eps_opis_by_hand() -> None:
    u = np.array([[0.9, 0.8], [0.7, 0.6], [0.1, 0.3], [0.5, 0.5]])
    # eps = 0.25 of T = 4: worst 1 class. t1: W = 0.1, R = 0.7; t2: W = 0.3, R = 1.9 / 3
    np.testing.assert_allclose(worst_rest_gap(u, 0.25), [-0.6, 0.3 - 1.9 / 3])
    assert eps_opis(u, 0.25) == pytest.approx((0.36 + (0.3 - 1.9 / 3) ** 2) / 2)
    # eps = 0.5 -> worst 2: t1: W = 0.3, R = 0.8
    assert worst_rest_gap(u, 0.5)[0] == pytest.approx(0.3 - 0.8)


def test_worst_count_guards_round_off() -> None:
    assert worst_count(0.1, 30) == 3  # 0.1 * 30 = 3.0000000000000004 in floats
    assert worst_count(0.1, 31) == 4
    assert worst_count(0.1, 2) == 1
    with pytest.raises(TcdmlInputError, match="at least one class in the rest"):
        worst_rest_gap(np.ones((2, 3)), 0.6)


def test_histogram_counts_and_quantiles_against_numpy() -> None:
    rng = np.random.default_rng(0)
    pos_values = rng.uniform(0.2, 0.95, 4000)
    neg_values = np.clip(rng.normal(0.0, 0.2, 60000), -1, 1)
    bins = 4096
    pos_counts = np.histogram(pos_values, bins=bins, range=(-1, 1))[0].astype(float)
    neg_counts = np.histogram(neg_values, bins=bins, range=(-1, 1))[0].astype(float)
    # Two classes; every negative pair has one end in each, so both classes count all of them.
    pos = np.stack([pos_counts, np.zeros(bins)])
    hist = PairHistogram(np.array([7, 9]), np.array([10, 1]), pos, np.stack([neg_counts, neg_counts]))
    assert hist.total_neg() == len(neg_values) and hist.total_pos() == len(pos_values)
    edges = hist.edges[[1000, 2500, 3000]]
    np.testing.assert_allclose(hist.pos_ge(edges)[0], [(pos_values >= e).sum() for e in edges])
    width = 2 / bins
    for q in (0.5, 0.9, 0.99):
        assert hist.neg_quantile(q) == pytest.approx(np.quantile(neg_values, q), abs=width)
        assert hist.pos_quantile(q) == pytest.approx(np.quantile(pos_values, q), abs=width)
    t = hist.far_threshold(0.01)
    assert (neg_values >= t).mean() <= 0.01 < (neg_values >= t - width).mean()
