"""Sample-aware OPIS (``opis_debiased``, tcdml.metrics.jackknife): brute force, calibration, known spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tcdml.metrics import evaluate
from tcdml.metrics.jackknife import positive_rate_variance
from tcdml.metrics.uncertainty import UncertaintySettings
from tcdml.metrics.utility import f_beta_utility

FAST = UncertaintySettings(resamples=200, noise_draws=5)


def alike(num_classes: int, size: int, seed: int, spread=0.35, dim: int = 32):
    """``num_classes`` classes of ``size`` samples around orthogonal centres, class c with noise
    ``spread[c]``: with one spread every class has the same distribution (no real OPIS)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), size)
    noise = np.broadcast_to(np.asarray(spread, dtype=np.float64), (num_classes,))
    x = np.eye(num_classes, dim)[labels] + rng.normal(size=(len(labels), dim)) * noise[labels, None]
    return x.astype(np.float32), labels


def _similarity(x: np.ndarray) -> np.ndarray:
    """The pair similarities exactly as exact mode computes them (labels sorted, float32)."""
    unit = torch.nn.functional.normalize(torch.as_tensor(x, dtype=torch.float32), dim=1)
    return (unit @ unit.T).clamp_(-1.0, 1.0).double().numpy()


def _utility(pos: np.ndarray, neg: np.ndarray, grid: np.ndarray) -> np.ndarray:
    tpr = np.array([(pos >= t).mean() for t in grid])
    far = np.array([(neg >= t).mean() if len(neg) else 0.0 for t in grid])
    return f_beta_utility(tpr, 1.0 - far, 1.0)


def _brute_force_variance(sim: np.ndarray, y: np.ndarray, c: int, grid: np.ndarray) -> float:
    """mean_k of the delete-one-sample jackknife of U_c (recomputed from the remaining pairs), less the
    positive-pair excess computed from explicit couples of pairs."""
    n_all = len(y)
    i, j = np.triu_indices(n_all, k=1)
    members = np.flatnonzero(y == c)
    n = len(members)
    left_out = []
    for m in members:
        keep = (i != m) & (j != m)
        pos = keep & (y[i] == c) & (y[j] == c)
        neg = keep & ((y[i] == c) != (y[j] == c))
        left_out.append(_utility(sim[i[pos], j[pos]], sim[i[neg], j[neg]], grid))
    left_out = np.array(left_out)
    variance = ((left_out - left_out.mean(axis=0)) ** 2).sum(axis=0) * (n - 1) / n
    if n >= 4:
        pairs = [(a, b) for k, a in enumerate(members) for b in members[k + 1 :]]
        h = np.array([[sim[a, b] >= t for t in grid] for a, b in pairs], dtype=np.float64)
        tpr = h.mean(axis=0)
        couples = [(p, q) for p in range(len(pairs)) for q in range(len(pairs)) if p != q]
        shares = [(p, q) for p, q in couples if set(pairs[p]) & set(pairs[q])]
        same = [h[p] * h[q] for p, q in shares]
        apart = [h[p] * h[q] for p, q in couples if not set(pairs[p]) & set(pairs[q])]
        count_same = n * (n - 1) * (n - 2)
        count_apart = len(pairs) ** 2 - len(pairs) - count_same
        theta2 = np.sum(apart, axis=0) / count_apart
        zeta2 = tpr - theta2
        zeta1 = np.sum(same, axis=0) / count_same - theta2
        unbiased = (len(pairs) * zeta2 + count_same * zeta1) / len(pairs) ** 2
        jack_tpr = []
        for m in members:
            jack_tpr.append(np.mean([h[p] for p, (a, b) in enumerate(pairs) if m not in (a, b)], axis=0))
        jack_tpr = np.array(jack_tpr)
        excess = ((jack_tpr - jack_tpr.mean(axis=0)) ** 2).sum(axis=0) * (n - 1) / n - unbiased
        neg = (y[i] == c) != (y[j] == c)
        tnr = 1.0 - np.array([(sim[i[neg], j[neg]] >= t).mean() for t in grid])
        slope = 2.0 * tnr**2 / (tnr + tpr) ** 2
        variance = variance - slope**2 * excess
    return float(variance.mean())


def test_agrees_with_a_brute_force_jackknife() -> None:
    x, y = alike(5, 5, 0, spread=[0.3, 0.5, 0.4, 0.6, 0.35], dim=8)
    x, y = np.concatenate([x, x[:3] + 0.05]), np.concatenate([y, [5, 5, 5]])  # one class of 3 (plain)
    result = evaluate(x, y, mode="exact", ks=(1,), uncertainty=None)
    sim = _similarity(x)
    classes = np.unique(y)
    expected = [_brute_force_variance(sim, y, c, result.thresholds) for c in classes]
    np.testing.assert_allclose(result.sample_variances, expected, rtol=0, atol=1e-9)
    assert result.opis_debiased == pytest.approx(result.opis - np.mean(expected), abs=1e-9)


def test_positive_rate_variance_is_unbiased() -> None:
    """Over many draws of one class, the mean estimate equals the TPR's variance across draws."""
    rng = np.random.default_rng(0)
    n, draws, estimates, rates = 6, 4000, [], []
    for _ in range(draws):
        z = rng.normal(size=n)
        h = (z[:, None] + z[None, :] + rng.normal(size=(n, n)) > 0.3).astype(np.float64)
        h = np.triu(h, 1) + np.triu(h, 1).T
        estimates.append(positive_rate_variance(h.sum(axis=1)[:, None])[0])
        rates.append(h.sum() / (n * (n - 1)))
    assert np.mean(estimates) == pytest.approx(np.var(rates, ddof=1), rel=0.1)


def test_alike_classes_debias_to_zero_within_the_interval() -> None:
    """Every class the same distribution (no real inconsistency): 0 lies in the interval of opis_debiased
    in >= 90 % of 50 seeded draws, over class sizes 4 to 40 (the plain OPIS and the floor do not)."""
    covered, above_floor = 0, 0
    for draw in range(50):
        size = (4, 6, 10, 20, 40)[draw % 5]
        x, y = alike(20, size, draw)
        settings = UncertaintySettings(resamples=200, noise_draws=5, seed=draw)
        result = evaluate(x, y, mode="exact", ks=(1,), uncertainty=settings)
        low, high = result.opis_debiased_ci
        covered += low <= 0.0 <= high
        above_floor += result.opis_ci[0] > result.opis_noise_floor
    assert covered >= 45, covered
    assert above_floor >= 25, above_floor  # the floor alone calls most of these sets inconsistent


def test_a_known_spread_between_classes_is_recovered() -> None:
    """Half the classes noisier than the others: the debiased OPIS of small sets holds, within its interval,
    the between-class variance a 300-samples-a-class set measures (its sampling noise ~100x smaller)."""
    spread = np.where(np.arange(16) % 2 == 0, 0.25, 0.45)
    truth = evaluate(*alike(16, 300, 99, spread, dim=24), ks=(1,), uncertainty=None).opis_debiased
    for seed, size in enumerate((8, 12, 20)):
        result = evaluate(*alike(16, size, seed, spread, dim=24), mode="exact", ks=(1,), uncertainty=FAST)
        low, high = result.opis_debiased_ci
        assert low <= truth <= high, (size, result.opis_debiased, truth)
        assert result.opis_ci[0] > truth or result.opis > result.opis_debiased
