"""How sure an OPIS is: bootstrap intervals over classes and the sampling-noise floor (docs/spec.md).

Everything here works on what the one pass already produced (the per-class utility matrix and the pair
counts), so it never looks at the embeddings again.

- **Bootstrap over classes.** A resample draws the T classes with replacement; class ``c`` drawn ``w_c`` times
  enters with weight ``w_c`` (``sum_c w_c = T``). With ``n = sum_c w_c``, the resampled mean curve is
  ``Ubar_w(t_k) = sum_c w_c U_c(t_k) / n`` and

  ``OPIS_w = (1/n) sum_c w_c mean_k (U_c(t_k) - Ubar_w(t_k))^2``
  ``       = mean_k [ sum_c w_c U_c(t_k)^2 / n - Ubar_w(t_k)^2 ]``;

  ``eps-OPIS_w = mean_k (W_w(t_k) - R_w(t_k))^2``: at each threshold the ``ceil(eps n)`` lowest utilities of
  the resample (copies counted) against the rest. The interval is the percentile interval of the resampled
  values.
- **Noise floor.** The OPIS of a perfectly consistent model with the same class sizes: every class ``c``
  draws ``|P_c|`` positive similarities i.i.d. from the pooled positive similarities and ``|N_c|`` negative
  similarities i.i.d. from the pooled negative ones; utilities on the same grid; OPIS averaged over draws.
  Only the cell of the grid a similarity falls in matters, so a draw is one multinomial over the K + 1 cells
  that the K grid thresholds cut, with the pooled probabilities of those cells (read from the counts, so a
  histogram's within-bin interpolation is the same as for the real utilities). Real pairs share samples,
  which makes their similarities correlated within a class; i.i.d. draws ignore that, so the floor is a lower
  bound of the noise a real set carries.

Example (a consistent model: every class the same distribution; the floor, a lower bound of the noise, lies
below the OPIS)::

    >>> import numpy as np
    >>> from tcdml.metrics import evaluate
    >>> rng = np.random.default_rng(0)
    >>> centres = np.eye(40, 64) * 3.0
    >>> labels = np.repeat(np.arange(40), 5)
    >>> x = centres[labels] + rng.normal(size=(200, 64)) / 8
    >>> r = evaluate(x, labels)
    >>> bool(0 < r.opis_noise_floor < r.opis < r.opis_ci[1])
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tcdml.checks import is_int, is_real, require
from tcdml.metrics.opis import eps_opis, opis, worst_count
from tcdml.metrics.pair_counts import PairCounts
from tcdml.metrics.utility import f_beta_utility

#: Resamples held in memory at once (bounds memory at ~chunk x T x 8 bytes).
RESAMPLE_CHUNK = 200
#: The most resamples and noise-floor draws one may ask for (beyond, the intervals' own Monte Carlo error is
#: far below their width, and the time grows without bound).
MAX_RESAMPLES = 100_000


@dataclass(frozen=True)
class UncertaintySettings:
    """``resamples``: bootstrap resamples (1 to 100,000); ``level``: interval coverage in (0, 1);
    ``noise_draws``: draws averaged for the noise floor (5 to 100,000); ``seed``: seeds both."""

    resamples: int = 1000
    level: float = 0.95
    noise_draws: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        limits = (("resamples", 1, MAX_RESAMPLES), ("noise_draws", 5, MAX_RESAMPLES), ("seed", 0, 2**63 - 1))
        for name, low, high in limits:
            value = getattr(self, name)
            require(is_int(value) and low <= value <= high, name, value, f"an integer in [{low}, {high:,}]")
        level = self.level
        ok = is_real(level) and 0 < level < 1
        require(ok, "level", level, "a confidence level in (0, 1), e.g. 0.95")


def resample_weights(num_classes: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, num_classes) counts: how often each class is drawn when drawing all with replacement."""
    return rng.multinomial(num_classes, np.full(num_classes, 1.0 / num_classes), size=resamples)


def weighted_opis(utilities: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B,) OPIS of each weighted resample of the rows of ``utilities`` (T x K); NaN where no class."""
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        first = weights @ utilities / n
        second = weights @ (utilities * utilities) / n
    return np.maximum(second - first * first, 0.0).mean(axis=1)


def weighted_eps_opis(utilities: np.ndarray, weights: np.ndarray, eps: float) -> np.ndarray:
    """(B,) eps-OPIS of each weighted resample; NaN where the worst group would hold every copy.

    Per threshold, the utilities are sorted once; a resample's worst ``ceil(eps n)`` copies are the first
    ones of that order (taking copies of one class partly where the cut falls inside them).
    """
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.sum(axis=1)
    worst = np.array([worst_count(eps, int(total)) for total in n], dtype=np.float64)
    valid = (worst < n) & (worst > 0)
    totals = weights @ utilities  # (B, K): sum of every copy's utility
    num_classes = utilities.shape[0]
    # The cut lies near position eps * T of the order; look that far (plus slack), widen where not enough.
    head = min(num_classes, int(eps * num_classes + 6 * math.sqrt(eps * num_classes + 1) + 64))
    gaps = np.full(totals.shape, np.nan)
    for k in range(utilities.shape[1]):
        order = np.argsort(utilities[:, k], kind="stable")
        low = _lowest_sum(weights, utilities[:, k], order, head, worst)
        short = np.isnan(low) & valid
        if short.any():
            low[short] = _lowest_sum(weights[short], utilities[:, k], order, num_classes, worst[short])
        with np.errstate(invalid="ignore", divide="ignore"):
            gaps[:, k] = low / worst - (totals[:, k] - low) / (n - worst)
    out = (gaps**2).mean(axis=1)
    out[~valid] = np.nan
    return out


def _lowest_sum(
    weights: np.ndarray, values: np.ndarray, order: np.ndarray, head: int, worst: np.ndarray
) -> np.ndarray:
    """Sum of the ``worst`` lowest copies per resample, looking at the first ``head`` of ``order``;
    NaN for resamples whose first ``head`` classes hold fewer than ``worst`` copies."""
    taken = weights[:, order[:head]]
    before = np.cumsum(taken, axis=1) - taken
    part = np.clip(worst[:, None] - before, 0.0, taken)
    low = part @ values[order[:head]]
    low[part.sum(axis=1) < worst - 0.5] = np.nan
    return low


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values (NaN values left out)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))


def opis_intervals(
    utilities: np.ndarray, eps: float, settings: UncertaintySettings
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(opis_ci, eps_opis_ci)``: percentile intervals over ``settings.resamples`` class resamples."""
    rng = np.random.default_rng(settings.seed)
    opis_values, eps_values = [], []
    for start in range(0, settings.resamples, RESAMPLE_CHUNK):
        count = min(RESAMPLE_CHUNK, settings.resamples - start)
        weights = resample_weights(utilities.shape[0], count, rng)
        opis_values.append(weighted_opis(utilities, weights))
        eps_values.append(weighted_eps_opis(utilities, weights, eps))
    return (
        percentile_interval(np.concatenate(opis_values), settings.level),
        percentile_interval(np.concatenate(eps_values), settings.level),
    )


def noise_floor(
    counts: PairCounts,
    thresholds: np.ndarray,
    beta: float,
    eps: float,
    settings: UncertaintySettings,
) -> tuple[float, float]:
    """``(opis_noise_floor, eps_opis_noise_floor)``: mean OPIS / eps-OPIS of ``settings.noise_draws``
    consistent-model draws (see the module docstring) on the grid ``thresholds``."""
    num_pos = np.rint(counts.num_pos()).astype(np.int64)
    num_neg = np.rint(counts.num_neg()).astype(np.int64)
    has_pos = num_pos > 0
    pos_cells = _cell_probabilities(1.0 - counts.global_frr(thresholds))
    neg_cells = _cell_probabilities(counts.global_far(thresholds))
    rng = np.random.default_rng([settings.seed, 1])
    opis_draws, eps_draws = [], []
    for _ in range(settings.noise_draws):
        pos_ge = _draw_at_or_above(rng, num_pos[has_pos], pos_cells)
        neg_ge = _draw_at_or_above(rng, num_neg[has_pos], neg_cells)
        tpr = pos_ge / num_pos[has_pos, None]
        far = np.divide(
            neg_ge, num_neg[has_pos, None], out=np.zeros(neg_ge.shape), where=num_neg[has_pos, None] > 0
        )
        utilities = f_beta_utility(tpr, 1.0 - far, beta)
        opis_draws.append(opis(utilities))
        eps_draws.append(eps_opis(utilities, eps))
    return float(np.mean(opis_draws)), float(np.mean(eps_draws))


def _cell_probabilities(at_or_above: np.ndarray) -> np.ndarray:
    """(K + 1,) probabilities of the cells ``s < t_0``, ``t_{k-1} <= s < t_k``, ``s >= t_{K-1}`` from the
    pooled ``P(s >= t_k)`` (non-increasing in k)."""
    tail = np.concatenate([[1.0], np.minimum.accumulate(np.clip(at_or_above, 0.0, 1.0)), [0.0]])
    cells = np.maximum(tail[:-1] - tail[1:], 0.0)
    return cells / cells.sum()


def _draw_at_or_above(rng: np.random.Generator, sizes: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(C, K) how many of ``sizes[c]`` i.i.d. draws over ``cells`` fall at or above each threshold."""
    drawn = rng.multinomial(sizes, cells)  # (C, K + 1)
    return np.cumsum(drawn[:, ::-1], axis=1)[:, ::-1][:, 1:].astype(np.float64)
