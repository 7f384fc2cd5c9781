"""Bootstrap intervals over classes and the noise floor (tcdml.metrics.uncertainty)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tcdml.errors import TcdmlInputError
from tcdml.metrics import evaluate
from tcdml.metrics.exact import ExactPairSimilarities
from tcdml.metrics.opis import eps_opis, opis
from tcdml.metrics.uncertainty import (
    UncertaintySettings,
    noise_floor,
    opis_intervals,
    resample_weights,
    weighted_eps_opis,
    weighted_opis,
)
from tcdml.metrics.utility import calibration_range, class_utilities, f_beta_utility, threshold_grid


def test_weighted_scores_equal_the_scores_of_the_resampled_rows() -> None:
    rng = np.random.default_rng(0)
    utilities = rng.random((37, 20))
    weights = resample_weights(37, 6, rng)
    for row, got_opis, got_eps in zip(
        weights, weighted_opis(utilities, weights), weighted_eps_opis(utilities, weights, 0.1), strict=True
    ):
        copies = utilities[np.repeat(np.arange(37), row)]
        assert got_opis == pytest.approx(opis(copies), abs=1e-12)
        assert got_eps == pytest.approx(eps_opis(copies, 0.1), abs=1e-12)


def test_weighted_eps_opis_widens_its_search_when_the_worst_copies_lie_deep() -> None:
    """All weight on the best classes: the worst group lies past the first look-ahead of the order."""
    rng = np.random.default_rng(1)
    utilities = rng.random((400, 5))
    weights = np.zeros((1, 400))
    weights[0, np.argsort(utilities[:, 0])[-50:]] = 8
    copies = utilities[np.repeat(np.arange(400), weights[0].astype(int))]
    assert weighted_eps_opis(utilities, weights, 0.1)[0] == pytest.approx(eps_opis(copies, 0.1), abs=1e-12)


def test_interval_covers_the_true_opis_of_a_known_process() -> None:
    """U_c(t_k) = mu_k + sigma z_c g_k with z_c ~ N(0, 1): the population OPIS is sigma^2 mean_k g_k^2.

    Over 50 simulated sets of 1,000 classes, the 95 % interval must contain it at least 45 times (percentile
    intervals cover less with few classes: about 94 % at 200 classes, 88 % at 50, in 300 simulated sets).
    """
    rng = np.random.default_rng(7)
    grid = np.linspace(0.0, 1.0, 20)
    mu, g, sigma = 0.6 + 0.2 * grid, 1.0 + grid, 0.05
    truth = sigma**2 * float(np.mean(g**2))
    covered = 0
    for draw in range(50):
        utilities = mu + sigma * rng.normal(size=(1000, 1)) * g
        ci, _ = opis_intervals(utilities, 0.1, UncertaintySettings(resamples=400, seed=draw))
        covered += ci[0] <= truth <= ci[1]
    assert covered >= 45


def test_interval_is_seeded_and_contains_the_estimate() -> None:
    utilities = np.random.default_rng(3).random((60, 10))
    first = opis_intervals(utilities, 0.1, UncertaintySettings(seed=5))
    assert first == opis_intervals(utilities, 0.1, UncertaintySettings(seed=5))
    assert first != opis_intervals(utilities, 0.1, UncertaintySettings(seed=6))
    (low, high), (eps_low, eps_high) = first
    assert low <= opis(utilities) <= high and eps_low <= eps_opis(utilities, 0.1) <= eps_high


def _brute_force_floor(x: np.ndarray, y: np.ndarray, draws: int, seed: int) -> float:
    """The definition, by hand: exact pooled similarities, per-class i.i.d. draws, OPIS averaged."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    upper = np.triu(np.ones_like(sim, dtype=bool), 1)
    same = y[:, None] == y[None, :]
    pooled_pos, pooled_neg = sim[upper & same], sim[upper & ~same]
    t_lo, t_hi = np.quantile(pooled_neg, [0.9, 0.99])
    grid = np.linspace(t_lo, t_hi, 100)
    rng = np.random.default_rng(seed)
    _, sizes = np.unique(y, return_counts=True)
    values = []
    for _ in range(draws):
        rows = []
        for size in sizes:
            pos = rng.choice(pooled_pos, size * (size - 1) // 2)
            neg = rng.choice(pooled_neg, size * (len(y) - size))
            tpr = (pos[:, None] >= grid).mean(axis=0)
            tnr = (neg[:, None] < grid).mean(axis=0)
            rows.append(f_beta_utility(tpr, tnr))
        values.append(opis(np.array(rows)))
    return float(np.mean(values))


def test_noise_floor_agrees_with_a_brute_force_simulation() -> None:
    from tests.helpers import clustered_embeddings

    sizes = [3, 4, 5, 6, 8, 10, 12] * 4
    x, y = clustered_embeddings(sizes, spread=list(np.linspace(0.4, 1.0, len(sizes))), seed=2)
    result = evaluate(x, y, mode="exact")
    floor, _ = noise_floor(
        result.counts, result.thresholds, 1.0, 0.1, UncertaintySettings(noise_draws=400, seed=0)
    )
    # Two Monte Carlo means of 400 draws each: about 2.5 % standard error apiece.
    assert floor == pytest.approx(_brute_force_floor(x, y, draws=400, seed=1), rel=0.1)


def test_noise_floor_uses_the_grid_of_the_histogram_as_the_real_utilities_do() -> None:
    """Histogram and exact counts of the same set give nearly the same floor."""
    from tests.helpers import clustered_embeddings

    x, y = clustered_embeddings([5] * 30, spread=0.7, seed=4)
    settings = UncertaintySettings(noise_draws=200)
    floors = []
    for mode in ("exact", "histogram"):
        result = evaluate(x, y, mode=mode)
        floors.append(noise_floor(result.counts, result.thresholds, 1.0, 0.1, settings)[0])
    assert floors[0] == pytest.approx(floors[1], rel=0.1)  # two Monte Carlo means of 200 draws


def test_identical_class_distributions_have_an_opis_at_their_noise_floor() -> None:
    """Every class's positive and negative similarities drawn i.i.d. from the same two distributions (the
    consistent model the floor assumes): its OPIS is noise alone, so the floor lies inside its interval."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 12, 80)
    pos = [np.clip(rng.normal(0.7, 0.1, n * (n - 1) // 2), -1, 1) for n in sizes]
    neg = [np.clip(rng.normal(0.2, 0.15, n * (sizes.sum() - n)), -1, 1) for n in sizes]
    counts = ExactPairSimilarities(np.arange(80), sizes, pos, neg, np.concatenate(pos), np.concatenate(neg))
    grid = threshold_grid(*calibration_range(counts, 0.01, 0.1), 100)
    utilities = class_utilities(counts, grid)
    settings = UncertaintySettings()
    (ci, eps_ci), floors = (
        opis_intervals(utilities, 0.1, settings),
        noise_floor(counts, grid, 1, 0.1, settings),
    )
    assert ci[0] <= floors[0] <= ci[1] and eps_ci[0] <= floors[1] <= eps_ci[1]


def test_pairs_sharing_samples_make_the_floor_a_lower_bound() -> None:
    """Consistent embeddings (equidistant centres, equal spread and size): pairs of one class share its six
    samples, so their similarities are correlated and the real OPIS lies above the i.i.d. floor."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(60), 6)
    x = np.eye(60, 96)[labels] * 2.0 + rng.normal(size=(360, 96)) / 6
    result = evaluate(x, labels)
    assert result.opis_noise_floor < result.opis_ci[0]
    assert result.eps_opis_noise_floor < result.eps_opis


def test_unequal_classes_have_an_opis_above_their_noise_floor() -> None:
    from tests.helpers import clustered_embeddings

    spreads = list(np.linspace(0.3, 1.2, 40))
    x, y = clustered_embeddings([6] * 40, dim=32, spread=spreads, seed=1)
    result = evaluate(x, y)
    assert result.opis_ci[0] > result.opis_noise_floor and result.opis_excess > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resamples": 0}, "resamples=0: expected an integer in [1, 100,000]"),
        ({"resamples": 2.5}, "resamples=2.5"),
        ({"noise_draws": 4}, "noise_draws=4: expected an integer in [5, 100,000]"),
        ({"level": 1.0}, "level=1.0: expected a confidence level in (0, 1)"),
        ({"level": 0}, "level=0"),
        ({"seed": -1}, "seed=-1"),
        ({"resamples": 10**9}, "resamples=1000000000: expected an integer in [1, 100,000]"),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(TcdmlInputError, match=re.escape(message)):
        UncertaintySettings(**kwargs)
