"""The MNIST demo's statistics: how tight each digit's cluster is, and the summary over seeds.

- ``class_spreads(embeddings, labels)``: each class's angular spread in radians. 2-D: the circular standard
  deviation of the embedding angles, ``sqrt(-2 ln R)`` with ``R`` the mean resultant length (the length of
  the mean unit vector); a von Mises set with small spread ``s`` gives about ``s``. 3-D and up: the mean
  angle between each unit embedding and the class's mean direction.
- ``spread_name(size)``: what the measure is called in titles and tables.
- ``seed_statistics(base, tcm)``: per-metric mean and standard deviation over seeds of both arms and of the
  paired change, with a Student-t interval of the mean change (the seeds are the replicates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tcdml.experiments.study_table import mean_std

#: The level of the interval of the mean change over seeds.
LEVEL = 0.95


def class_spreads(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(class labels, spread of each class in radians)``; see the module docstring for the measure."""
    points = np.asarray(embeddings, dtype=np.float64)
    points = points / np.linalg.norm(points, axis=1, keepdims=True)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    spreads = []
    for label in classes:
        members = points[labels == label]
        mean = members.mean(axis=0)
        length = float(np.linalg.norm(mean))
        if points.shape[1] == 2:
            spreads.append(math.sqrt(-2.0 * math.log(min(max(length, 1e-300), 1.0))))
        else:
            cosines = members @ (mean / max(length, 1e-300))
            spreads.append(float(np.arccos(np.clip(cosines, -1.0, 1.0)).mean()))
    return classes, np.asarray(spreads)


def mean_spread_degrees(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """The mean over classes of ``class_spreads``, in degrees."""
    return float(np.degrees(class_spreads(embeddings, labels)[1].mean()))


def spread_name(size: int) -> str:
    """The spread measure's name for an embedding of dimension ``size``."""
    return "circular sd" if size == 2 else "mean angle to the class mean direction"


@dataclass(frozen=True)
class SeedStatistics:
    """One metric over seeds: mean and sd of each arm and of the change (TCM minus base), its t-interval,
    and on how many seeds TCM was better (strictly)."""

    base_mean: float
    base_sd: float
    tcm_mean: float
    tcm_sd: float
    change_mean: float
    change_sd: float
    change_ci: tuple[float, float]
    better: int
    seeds: int

    def to_dict(self) -> dict[str, object]:
        return {
            "base_mean": self.base_mean,
            "base_sd": self.base_sd,
            "tcm_mean": self.tcm_mean,
            "tcm_sd": self.tcm_sd,
            "change_mean": self.change_mean,
            "change_sd": self.change_sd,
            "change_ci95": list(self.change_ci),
            "seeds_better": self.better,
            "seeds": self.seeds,
        }


def seed_statistics(base: Sequence[float], tcm: Sequence[float], higher_is_better: bool) -> SeedStatistics:
    """Mean ± sd (ddof 1; NaN for one seed) of both arms and of the paired change, with the change's
    ``LEVEL`` Student-t interval over seeds (NaN for one seed)."""
    a, b = np.asarray(base, dtype=np.float64), np.asarray(tcm, dtype=np.float64)
    change = b - a
    better = int(np.sum(change > 0) if higher_is_better else np.sum(change < 0))
    return SeedStatistics(
        *mean_std(a.tolist()), *mean_std(b.tolist()), *mean_std(change.tolist()),
        t_interval(change), better, len(change),
    )  # fmt: skip


def t_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The Student-t interval of the mean of ``values`` (NaN, NaN for fewer than 2 values)."""
    if len(values) < 2:
        return (math.nan, math.nan)
    from scipy.stats import t

    centre, sd = mean_std(list(values))
    half = float(t.ppf(0.5 + level / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return (centre - half, centre + half)
