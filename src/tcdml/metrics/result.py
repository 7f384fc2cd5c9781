"""Typed results of an evaluation; ``to_dict()`` is what the CLI prints."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tcdml.io.atomic import atomic_write
from tcdml.metrics.pair_counts import PairCounts


@dataclass(frozen=True)
class ClassTable:
    """One row per class: size, pair counts, mean utility over the calibration grid, FAR/FRR at a threshold.

    ``mean_utility`` and ``frr`` are NaN for classes without positive pairs (left out of OPIS).
    Pair counts are relative when the state counts each pair from both ends (histogram mode).
    """

    labels: np.ndarray
    sizes: np.ndarray
    num_positive_pairs: np.ndarray
    num_negative_pairs: np.ndarray
    mean_utility: np.ndarray
    far: np.ndarray
    frr: np.ndarray
    threshold: float

    COLUMNS = ("label", "size", "positive_pairs", "negative_pairs", "mean_utility", "far", "frr")

    def rows(self) -> list[dict]:
        """The table as a list of dicts (``COLUMNS`` keys), NaN written as None."""
        columns = (
            self.labels,
            self.sizes,
            self.num_positive_pairs,
            self.num_negative_pairs,
            self.mean_utility,
            self.far,
            self.frr,
        )
        return [
            {name: _plain(value) for name, value in zip(self.COLUMNS, values, strict=True)}
            for values in zip(*columns, strict=True)
        ]

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write the table as CSV (atomically); the threshold is in the FAR/FRR column names."""
        header = [*self.COLUMNS[:5], f"far@{self.threshold:.6g}", f"frr@{self.threshold:.6g}"]
        with atomic_write(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in self.rows():
                writer.writerow(["" if value is None else value for value in row.values()])
        return Path(path)


@dataclass(frozen=True)
class QueryOutcomes:
    """Per-query retrieval outcomes (what paired comparisons resample): ``classes[q]`` is the class index
    (into ``ClassTable.labels``) of query ``q``, ``hits[q, i]`` its Recall@``ks[i]`` hit (0/1), ``ap[q]`` its
    MAP@R, ``valid[q]`` whether it counts (its class has another member)."""

    ks: tuple[int, ...]
    classes: np.ndarray
    hits: np.ndarray
    ap: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class EvaluationResult:
    """Retrieval metrics, threshold-consistency metrics and their ingredients for one embedding set."""

    recall_at_k: dict[int, float]
    map_at_r: float
    opis: float
    eps_opis: float
    eps: float
    beta: float
    far_range: tuple[float, float]
    t_lo: float
    t_hi: float
    thresholds: np.ndarray
    utilities: np.ndarray
    utility_labels: np.ndarray
    per_class: ClassTable
    num_samples: int
    num_queries: int
    num_left_out_queries: int
    mode: str
    num_bins: int | None
    counts: PairCounts = field(repr=False)
    #: Bootstrap intervals over classes at ``ci_level`` and the noise floor (``tcdml.metrics.uncertainty``);
    #: None when the evaluation was asked not to compute them.
    opis_ci: tuple[float, float] | None = None
    eps_opis_ci: tuple[float, float] | None = None
    opis_noise_floor: float | None = None
    eps_opis_noise_floor: float | None = None
    ci_level: float = 0.95
    queries: QueryOutcomes | None = field(default=None, repr=False)

    @property
    def opis_excess(self) -> float | None:
        """OPIS above what sampling noise alone gives: ``opis - opis_noise_floor``."""
        return None if self.opis_noise_floor is None else self.opis - self.opis_noise_floor

    @property
    def eps_opis_excess(self) -> float | None:
        """``eps_opis - eps_opis_noise_floor``."""
        return None if self.eps_opis_noise_floor is None else self.eps_opis - self.eps_opis_noise_floor

    @property
    def num_classes(self) -> int:
        """Distinct labels in the set."""
        return len(self.per_class.labels)

    @property
    def num_opis_classes(self) -> int:
        """T: classes with positive pairs, the ones OPIS averages over."""
        return len(self.utility_labels)

    @property
    def num_left_out_classes(self) -> int:
        """Classes without positive pairs (singletons), left out of OPIS."""
        return self.num_classes - self.num_opis_classes

    def worst_classes(self, count: int = 10) -> list[dict]:
        """The ``count`` classes with the lowest mean utility over the calibration range."""
        order = np.argsort(self.utilities.mean(axis=1), kind="stable")[:count]
        return [
            {"label": int(self.utility_labels[i]), "mean_utility": float(self.utilities[i].mean())}
            for i in order
        ]

    def to_dict(self) -> dict:
        """JSON-ready summary (docs/spec.md's keys ``recall@k``, ``map@r``, ``opis``, ``eps_opis``, ...)."""
        out: dict = {f"recall@{k}": value for k, value in sorted(self.recall_at_k.items())}
        out.update(
            {
                "map@r": self.map_at_r,
                "opis": self.opis,
                "eps_opis": self.eps_opis,
                **self._uncertainty_dict(),
                "eps": self.eps,
                "beta": self.beta,
                "far_min": self.far_range[0],
                "far_max": self.far_range[1],
                "t_lo": self.t_lo,
                "t_hi": self.t_hi,
                "num_thresholds": len(self.thresholds),
                "num_samples": self.num_samples,
                "num_queries": self.num_queries,
                "num_left_out_queries": self.num_left_out_queries,
                "num_classes": self.num_classes,
                "num_opis_classes": self.num_opis_classes,
                "num_left_out_classes": self.num_left_out_classes,
                "mode": self.mode,
                "num_bins": self.num_bins,
                "threshold": self.per_class.threshold,
                "worst_classes": self.worst_classes(),
            }
        )
        return out

    def _uncertainty_dict(self) -> dict:
        if self.opis_ci is None:
            return {}
        return {
            ci_key("opis", self.ci_level): list(self.opis_ci),
            ci_key("eps_opis", self.ci_level): list(self.eps_opis_ci),
            "opis_noise_floor": self.opis_noise_floor,
            "eps_opis_noise_floor": self.eps_opis_noise_floor,
            "opis_excess": self.opis_excess,
            "eps_opis_excess": self.eps_opis_excess,
        }


def ci_key(metric: str, level: float) -> str:
    """``opis_ci95`` for level 0.95: the JSON key of a metric's interval."""
    return f"{metric}_ci{level * 100:g}"


def _plain(value: object) -> object:
    """numpy scalar -> Python scalar; NaN -> None (valid JSON/CSV)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
