"""The evaluator's two groups of parameters, each checked once when built.

- ``MetricSettings``: what is measured (Recall@k's k, the calibration range, beta, eps, the grid, the table's
  threshold, the intervals). Changing one changes the numbers.
- ``PassSettings``: how the one pass runs (exact or binned, bins, neighbour backend, device, block memory,
  progress bar). Up to the histogram resolution the numbers do not depend on them.
- ``EvaluationSettings``: both, the user-facing combination (``evaluate(x, y, ks=(1, 5), mode="exact")``); it
  is a ``MetricSettings`` and a ``PassSettings``, so it goes wherever either is expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tcdml.checks import check_choice
from tcdml.errors import ParameterError, TcdmlInputError
from tcdml.metrics.catalogue import DEFAULT_FAR_RANGE, DEFAULT_FMR_TARGETS
from tcdml.metrics.uncertainty import UncertaintySettings
from tcdml.metrics.validation import (
    check_device,
    check_far_pair,
    check_fmr_targets,
    check_integer,
    check_ks,
    check_num_thresholds,
    check_open_unit,
    check_positive,
    is_real,
    show,
)

MODES = ("histogram", "exact")
KNN_BACKENDS = ("torch", "faiss")
#: Default histogram resolution: bins of width 2 / 16384 ~ 1.2e-4 in cosine similarity.
DEFAULT_NUM_BINS = 1 << 14
#: The per-class histograms may use at most this much memory; more classes get coarser bins.
HISTOGRAM_BUDGET_BYTES = 1 << 30
#: The most histogram bins a user may ask for (``num_bins``).
MAX_NUM_BINS = 1 << 22
#: Cells of the per-sample histograms of the sample jackknife (``opis_debiased``): width 2 / 256 ~ 0.008.
SAMPLE_CELLS = 256
#: The per-sample histograms may use at most this much memory; more samples get fewer cells (at least 16).
SAMPLE_BUDGET_BYTES = 1 << 30
#: Bytes per (class, grid threshold): the per-class counts, rates and utilities (float64) held at once.
GRID_BYTES_PER_CELL = 8 * 8


def _available(available: int | None) -> int:
    """``available`` bytes, or what ``psutil`` reports as available now."""
    if available is not None:
        return available
    import psutil

    return int(psutil.virtual_memory().available)


@dataclass(frozen=True)
class MetricSettings:
    """What an evaluation measures (docs/spec.md's defaults).

    ``ks``: the k of Recall@k. ``far_range``: (far_min, far_max) of the calibration range.
    ``beta``: the F-beta weight of the utility. ``eps``: the worst fraction in eps-OPIS.
    ``num_thresholds``: K grid thresholds.
    ``threshold``: where the per-class FAR/FRR table is read (default: middle of the calibration range).
    ``fmr_targets``: the FMR (= FAR) targets of FNMR@FMR (1 to 20 distinct rates in (0, 1)).
    ``uncertainty``: bootstrap resamples, interval level, noise-floor draws and seed of the OPIS intervals
    and noise floor (``tcdml.metrics.uncertainty``); None skips them.
    """

    ks: tuple[int, ...] = (1, 2, 4, 8)
    far_range: tuple[float, float] = DEFAULT_FAR_RANGE
    beta: float = 1.0
    eps: float = 0.1
    num_thresholds: int = 100
    threshold: float | None = None
    uncertainty: UncertaintySettings | None = field(default_factory=UncertaintySettings)
    fmr_targets: tuple[float, ...] = DEFAULT_FMR_TARGETS

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", check_ks(self.ks))
        object.__setattr__(self, "fmr_targets", check_fmr_targets(self.fmr_targets))
        object.__setattr__(self, "far_range", check_far_pair(self.far_range))
        object.__setattr__(self, "beta", check_positive(self.beta, "beta"))
        object.__setattr__(self, "eps", check_open_unit(self.eps, "eps"))
        object.__setattr__(self, "num_thresholds", check_num_thresholds(self.num_thresholds))
        if self.threshold is not None:
            if not (is_real(self.threshold) and -1.0 <= self.threshold <= 1.0):
                raise ParameterError(
                    f"threshold={show(self.threshold)}: a cosine threshold must lie in [-1, 1]",
                    "threshold",
                    self.threshold,
                    "a cosine threshold in [-1, 1]",
                )
            object.__setattr__(self, "threshold", float(self.threshold))
        if self.uncertainty is not None and not isinstance(self.uncertainty, UncertaintySettings):
            raise ParameterError.of("uncertainty", self.uncertainty, "UncertaintySettings or None")

    def check_grid_memory(self, num_classes: int, available: int | None = None) -> None:
        """Refuse a grid whose per-class curves for ``num_classes`` classes would not fit ``available`` bytes
        (default: what ``psutil`` reports as available now)."""
        available = _available(available)
        grid = num_classes * self.num_thresholds * GRID_BYTES_PER_CELL
        if grid > available:
            raise TcdmlInputError(
                f"thresholds={self.num_thresholds}: the per-class curves of {num_classes:,} classes would "
                f"need {grid:,} bytes, more than the {available:,} available; ask for fewer thresholds"
            )


@dataclass(frozen=True)
class PassSettings:
    """How the one pass over the similarities runs.

    ``mode``: "histogram" (one pass, bounded memory) or "exact" (brute force, small sets). ``num_bins``:
    histogram bins on [-1, 1] (default: 16384, fewer if the classes would need over 1 GiB).
    ``knn_backend``: "torch" (top-k inside the pass) or "faiss". ``device``: e.g. "cuda" (default: the
    embeddings' device). ``max_block_bytes``: memory budget of one similarity block (default: adaptive).
    ``progress``: show a progress bar on stderr (default: for sets over 20,000 samples).
    """

    mode: str = "histogram"
    num_bins: int | None = None
    knn_backend: str = "torch"
    device: str | None = None
    max_block_bytes: int | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_choice("knn_backend", self.knn_backend, KNN_BACKENDS)
        if self.num_bins is not None:
            object.__setattr__(self, "num_bins", check_integer(self.num_bins, "num_bins", 16, MAX_NUM_BINS))
        if self.max_block_bytes is not None:
            check_integer(self.max_block_bytes, "max_block_bytes", 1)
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ParameterError.of("progress", self.progress, "True, False or None")
        if self.device is not None:
            check_device(self.device)

    def check_histogram_memory(
        self, num_classes: int, available: int | None = None, num_samples: int = 0
    ) -> None:
        """Refuse histograms for ``num_classes`` classes (and the per-sample histograms of ``num_samples``)
        that would not fit ``available`` bytes (default: what ``psutil`` reports as available now); nothing
        to check in exact mode."""
        if self.mode != "histogram":
            return
        available = _available(available)
        histogram = num_classes * self.bins_for(num_classes) * 32
        if histogram > available:
            raise TcdmlInputError(
                f"num_bins={self.bins_for(num_classes)}: the histograms of {num_classes:,} classes "
                f"would need {histogram:,} bytes, more than the {available:,} available; ask for fewer"
            )
        cells = self.sample_cells_for(num_samples)
        total = histogram + num_samples * cells * 32
        if total > available:
            raise TcdmlInputError(
                f"{num_samples:,} samples: their per-sample histograms ({cells} cells, for opis_debiased) "
                f"and the class histograms would need {total:,} bytes, more than the {available:,} available"
            )

    @staticmethod
    def sample_cells_for(num_samples: int) -> int:
        """Cells of the per-sample histograms for ``num_samples``: ``SAMPLE_CELLS``, halved (down to 16) to
        stay within ``SAMPLE_BUDGET_BYTES`` (float64 positive + negative, twice while accumulating)."""
        cells = SAMPLE_CELLS
        while cells > 16 and num_samples * cells * 32 > SAMPLE_BUDGET_BYTES:
            cells //= 2
        return cells

    def bins_for(self, num_classes: int) -> int:
        """Histogram bins for ``num_classes`` classes: the setting, or the default within the budget."""
        if self.num_bins is not None:
            return int(self.num_bins)
        # float64 positive + negative counts, twice while the pass accumulates on the device: 32 B a bin.
        affordable = HISTOGRAM_BUDGET_BYTES // (32 * max(num_classes, 1))
        bins = DEFAULT_NUM_BINS
        while bins > 1024 and bins > affordable:
            bins //= 2
        return bins


@dataclass(frozen=True)
class EvaluationSettings(PassSettings, MetricSettings):
    """Every parameter of ``tcdml.metrics.evaluate``: the fields of ``MetricSettings`` (``ks``, ``far_range``,
    ``beta``, ``eps``, ``num_thresholds``, ``threshold``, ``uncertainty``) then those of ``PassSettings``
    (``mode``, ``num_bins``, ``knn_backend``, ``device``, ``max_block_bytes``, ``progress``), each checked
    by its own group."""

    def __post_init__(self) -> None:
        MetricSettings.__post_init__(self)
        PassSettings.__post_init__(self)
        smallest = min(self.fmr_targets)
        needed = bins_needed(smallest)
        if self.mode == "histogram" and self.num_bins is not None and self.num_bins < needed:
            raise ParameterError(
                f"num_bins={self.num_bins} is too coarse for fmr={smallest:g}: a bin must hold at most that "
                f"share of evenly spread negatives; use num_bins >= {needed:,} (or mode='exact', or a larger "
                "smallest fmr)",
                "num_bins",
                self.num_bins,
                f"num_bins >= {needed:,} for fmr={smallest:g}",
            )


def bins_needed(fmr: float) -> int:
    """The fewest histogram bins for an FMR target: ``ceil(1 / fmr)``, so that negatives spread evenly over
    [-1, 1] put at most ``fmr`` of them in one bin (a floor: concentrated negatives need more; the result's
    ``verification_resolution`` gives the bound actually reached)."""
    return math.ceil(round(1.0 / fmr, 6))


Settings = TypeVar("Settings", MetricSettings, PassSettings, EvaluationSettings)


def resolve_settings(kind: type[Settings], settings: Settings | None, overrides: dict[str, Any]) -> Settings:
    """``settings`` as given (a ``kind``), or a ``kind`` built from keyword overrides (never both)."""
    if settings is not None and overrides:
        raise TypeError("pass either settings= or keyword overrides, not both")
    if settings is None:
        return kind(**overrides)
    if not isinstance(settings, kind):
        raise TcdmlInputError(f"settings={settings!r}: expected {kind.__name__}")
    return settings
