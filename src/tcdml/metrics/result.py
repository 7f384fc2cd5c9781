"""Typed results of an evaluation; ``to_dict()`` is what the CLI prints."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.io.atomic import atomic_write
from tcdml.metrics.catalogue import DEFAULT_FMR_TARGETS, fmr_key
from tcdml.metrics.pair_counts import PairCounts

if TYPE_CHECKING:
    from tcdml.metrics.verification import Verification


@dataclass(frozen=True)
class ClassTable:
    """One row per class: size, pair counts, mean utility over the calibration grid, FAR/FRR at a threshold,
    and (verification) the class's AUC and its FAR/FRR at each FMR target's global threshold
    (``fmr_rates["1e-3"] = (far, frr)``).

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
    auc: np.ndarray | None = None
    fmr_rates: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    COLUMNS = ("label", "size", "positive_pairs", "negative_pairs", "mean_utility", "far", "frr")

    def _columns(self) -> dict[str, np.ndarray]:
        columns = dict(zip(self.COLUMNS, (self.labels, self.sizes, self.num_positive_pairs), strict=False))
        columns.update(negative_pairs=self.num_negative_pairs, mean_utility=self.mean_utility)
        columns.update(far=self.far, frr=self.frr)
        if self.auc is not None:
            columns["auc"] = self.auc
        for target, (far, frr) in self.fmr_rates.items():
            columns[f"far@fmr={target}"] = far
            columns[f"frr@fmr={target}"] = frr
        return columns

    def rows(self) -> list[dict]:
        """The table as a list of dicts (``COLUMNS`` keys, then ``auc``, ``far@fmr=<a>``, ``frr@fmr=<a>``
        when verified), NaN written as None."""
        columns = self._columns()
        return [
            {name: _plain(value) for name, value in zip(columns, values, strict=True)}
            for values in zip(*columns.values(), strict=True)
        ]

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write the table as CSV (atomically); the threshold is in the FAR/FRR column names."""
        header = [*self.COLUMNS[:5], f"far@{self.threshold:.6g}", f"frr@{self.threshold:.6g}"]
        header += list(self._columns())[len(self.COLUMNS) :]
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
    """Retrieval metrics, threshold-consistency metrics and their ingredients for one embedding set.

    Where OPIS is undefined (no negative pairs, fewer than two classes with positive pairs, a collapsed
    calibration range) ``opis_undefined`` says why in one line, and everything read off the calibration range
    is None: ``opis``, ``eps_opis``, their intervals, noise floors and excess, ``t_lo``, ``t_hi``,
    ``thresholds``, ``utilities`` and the ``per_class`` table. Recall@k and MAP@R are still given.
    """

    recall_at_k: dict[int, float]
    map_at_r: float
    opis: float | None
    eps_opis: float | None
    eps: float
    beta: float
    far_range: tuple[float, float]
    t_lo: float | None
    t_hi: float | None
    thresholds: np.ndarray | None
    utilities: np.ndarray | None
    #: Labels of the T classes with positive pairs (the rows of ``utilities``).
    utility_labels: np.ndarray
    per_class: ClassTable | None
    num_samples: int
    num_queries: int
    num_left_out_queries: int
    mode: str
    num_bins: int | None
    counts: PairCounts = field(repr=False)
    #: Bootstrap intervals over classes at ``ci_level`` and the noise floor (``tcdml.metrics.uncertainty``);
    #: ``ci_level`` is None when the evaluation was asked not to compute them.
    opis_ci: tuple[float, float] | None = None
    eps_opis_ci: tuple[float, float] | None = None
    opis_noise_floor: float | None = None
    eps_opis_noise_floor: float | None = None
    ci_level: float | None = None
    queries: QueryOutcomes | None = field(default=None, repr=False)
    #: Why OPIS is undefined for this set (one line), or None where it is defined.
    opis_undefined: str | None = None
    #: OPIS minus the classes' sample-jackknife variance (``tcdml.metrics.jackknife``) and its interval.
    opis_debiased: float | None = None
    opis_debiased_ci: tuple[float, float] | None = None
    #: (T,) each class's ``mean_k Var_jack(U_c(t_k))``, the rows of ``utilities`` (what compare resamples).
    sample_variances: np.ndarray | None = field(default=None, repr=False)
    #: The FMR targets of FNMR@FMR and the verification metrics (None without positive and negative pairs).
    fmr_targets: tuple[float, ...] = DEFAULT_FMR_TARGETS
    verification: Verification | None = None

    @property
    def opis_excess(self) -> float | None:
        """OPIS above what sampling noise alone gives: ``opis - opis_noise_floor``."""
        if self.opis is None or self.opis_noise_floor is None:
            return None
        return self.opis - self.opis_noise_floor

    @property
    def eps_opis_excess(self) -> float | None:
        """``eps_opis - eps_opis_noise_floor``."""
        if self.eps_opis is None or self.eps_opis_noise_floor is None:
            return None
        return self.eps_opis - self.eps_opis_noise_floor

    @property
    def class_labels(self) -> np.ndarray:
        """Every class's label, sorted (``QueryOutcomes.classes`` indexes it)."""
        return self.counts.class_labels

    @property
    def num_classes(self) -> int:
        """Distinct labels in the set."""
        return len(self.class_labels)

    @property
    def num_opis_classes(self) -> int:
        """T: classes with positive pairs, the ones OPIS averages over."""
        return len(self.utility_labels)

    @property
    def num_left_out_classes(self) -> int:
        """Classes without positive pairs (singletons), left out of OPIS."""
        return self.num_classes - self.num_opis_classes

    def require_opis(self, purpose: str) -> None:
        """Raise ``TcdmlInputError`` naming ``purpose`` (e.g. "--plot") where OPIS is undefined."""
        if self.opis_undefined is not None:
            raise opis_needed(purpose, self.opis_undefined)

    def worst_classes(self, count: int = 10) -> list[dict]:
        """The ``count`` classes with the lowest mean utility over the calibration range (OPIS defined)."""
        self.require_opis("worst_classes")
        means = np.asarray(self.utilities).mean(axis=1)
        order = np.argsort(means, kind="stable")[:count]
        return [{"label": int(self.utility_labels[i]), "mean_utility": float(means[i])} for i in order]

    def to_dict(self) -> dict:
        """JSON-ready summary (docs/spec.md's keys ``recall@k``, ``map@r``, ``opis``, ``eps_opis``, ...).

        The keys do not depend on the set: where OPIS is undefined its values are None (JSON null) and
        ``opis_undefined`` holds the reason (None when defined).
        """
        defined = self.opis_undefined is None
        out: dict = {f"recall@{k}": value for k, value in sorted(self.recall_at_k.items())}
        out.update(
            {
                "map@r": self.map_at_r,
                "opis": self.opis,
                "eps_opis": self.eps_opis,
                "opis_undefined": self.opis_undefined,
                "opis_debiased": self.opis_debiased,
                **self._uncertainty_dict(),
                **self._verification_dict(),
                "eps": self.eps,
                "beta": self.beta,
                "far_min": self.far_range[0],
                "far_max": self.far_range[1],
                "t_lo": self.t_lo,
                "t_hi": self.t_hi,
                "num_thresholds": len(self.thresholds) if self.thresholds is not None else None,
                "num_samples": self.num_samples,
                "num_queries": self.num_queries,
                "num_left_out_queries": self.num_left_out_queries,
                "num_classes": self.num_classes,
                "num_opis_classes": self.num_opis_classes,
                "num_left_out_classes": self.num_left_out_classes,
                "mode": self.mode,
                "num_bins": self.num_bins,
                "threshold": self.per_class.threshold if self.per_class is not None else None,
                "worst_classes": self.worst_classes() if defined else None,
            }
        )
        return out

    def _uncertainty_dict(self) -> dict:
        if self.ci_level is None:
            return {}
        return {
            ci_key("opis", self.ci_level): _listed(self.opis_ci),
            ci_key("eps_opis", self.ci_level): _listed(self.eps_opis_ci),
            "opis_noise_floor": self.opis_noise_floor,
            "eps_opis_noise_floor": self.eps_opis_noise_floor,
            "opis_excess": self.opis_excess,
            "eps_opis_excess": self.eps_opis_excess,
            ci_key("opis_debiased", self.ci_level): _listed(self.opis_debiased_ci),
        }

    def _verification_dict(self) -> dict:
        """The verification keys (``tcdml.metrics.verification``), None where undefined (no pairs)."""

        def key_of(metric: str) -> str:
            return ci_key(metric, self.ci_level) if self.ci_level is not None else metric

        if self.verification is not None:
            return self.verification.to_dict(key_of if self.ci_level is not None else None)
        keys = ["auc", "eer", *(fmr_key(a) for a in self.fmr_targets)]
        out: dict = {}
        for key in keys:
            out[key] = None
            if self.ci_level is not None:
                out[key_of(key)] = None
        out["eer_threshold"] = None
        out.update({fmr_key(a, "threshold@fmr="): None for a in self.fmr_targets})
        out["verification_resolution"] = None
        return out


def opis_needed(purpose: str, reason: str) -> TcdmlInputError:
    """The one-line error for ``purpose`` (e.g. "--plot") needing OPIS where it is undefined (``reason``)."""
    return TcdmlInputError(f"{purpose} needs OPIS and the utility curves, undefined for this set: {reason}")


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else list(interval)


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
