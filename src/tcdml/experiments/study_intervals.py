"""Paired intervals for a study's table: each TCM arm against base, classes resampled, seeds pooled.

For one table row (benchmark, loss, variant, TCM arm) every seed finished in both arms gives a pair of
evaluations of the same test samples (each cell keeps its ``embeddings.npz``). ``row_intervals`` evaluates
them with the cell's ``eval`` settings and calls ``tcdml.metrics.compare.pooled_deltas``: one draw of
classes per resample, applied to every seed's pair, the change averaged over seeds; the 95 % interval is the
percentile interval of those averages. It also returns each arm's mean noise floor and excess OPIS.

The excess change is reported as a point value (relative); its uncertainty is that of the OPIS change, since
each arm's floor depends only on its class sizes and pooled similarity distributions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.metrics.catalogue import DEFAULT_FAR_RANGE
from tcdml.metrics.compare import Delta

#: The embedding file every finished cell keeps (its test split's embeddings).
EMBEDDINGS_FILE = "embeddings.npz"


@dataclass(frozen=True)
class RowIntervals:
    """A row's paired changes (``Delta`` per compared metric, ``tcdml.metrics.compare``), each arm's mean
    noise floor, excess OPIS and debiased OPIS."""

    deltas: dict[str, Delta]
    pairs: int
    floor_base: float
    floor_tcm: float
    excess_base: float
    excess_tcm: float
    debiased_base: float = math.nan
    debiased_tcm: float = math.nan

    @property
    def excess_change(self) -> float:
        """Relative change of excess OPIS, ``(excess_tcm - excess_base) / excess_base``."""
        return (self.excess_tcm - self.excess_base) / self.excess_base if self.excess_base > 0 else math.nan


def row_intervals(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], settings: Any = None
) -> RowIntervals | None:
    """Intervals of one row from its (base record, TCM record) pairs (records as ``load_records`` returns
    them, with ``directory``); None when no pair has both embedding files (cells measured by an old tcdml)."""
    from tcdml.metrics.compare import pooled_deltas
    from tcdml.metrics.uncertainty import UncertaintySettings

    evaluated = []
    for base, tcm in pairs:
        if not all((Path(record["directory"]) / EMBEDDINGS_FILE).is_file() for record in (base, tcm)):
            continue
        pair = (_evaluate(base), _evaluate(tcm))
        if all(result.opis_undefined is None for result in pair):  # a pair without OPIS has no interval
            evaluated.append(pair)
    if not evaluated:
        return None
    settings = settings or UncertaintySettings()
    floors = [[result.opis_noise_floor for result in arm] for arm in zip(*evaluated, strict=True)]
    excess = [[result.opis_excess for result in arm] for arm in zip(*evaluated, strict=True)]
    debiased = [[_nan(result.opis_debiased) for result in arm] for arm in zip(*evaluated, strict=True)]
    return RowIntervals(
        deltas=pooled_deltas(evaluated, settings),
        pairs=len(evaluated),
        floor_base=float(np.mean(floors[0])),
        floor_tcm=float(np.mean(floors[1])),
        excess_base=float(np.mean(excess[0])),
        excess_tcm=float(np.mean(excess[1])),
        debiased_base=float(np.mean(debiased[0])),
        debiased_tcm=float(np.mean(debiased[1])),
    )


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _evaluate(record: dict[str, Any]) -> Any:
    """The cell's embeddings evaluated with its config's ``eval`` settings (R@1 always included)."""
    from tcdml.io.embeddings_file import load_embeddings_file
    from tcdml.metrics import evaluate

    data = load_embeddings_file(Path(record["directory"]) / EMBEDDINGS_FILE)
    settings = record.get("config", {}).get("eval", {})
    return evaluate(
        data.embeddings,
        data.labels,
        ks=tuple(sorted({1, *settings.get("ks", (1,))})),
        far_range=tuple(settings.get("far_range", DEFAULT_FAR_RANGE)),
        beta=settings.get("beta", 1.0),
        eps=settings.get("eps", 0.1),
    )


def seed_pairs(
    base: dict[int, dict[str, Any]], tcm: dict[int, dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(base, TCM) records of the seeds finished in both arms, by seed."""
    return [(base[seed], tcm[seed]) for seed in sorted(set(base) & set(tcm))]
