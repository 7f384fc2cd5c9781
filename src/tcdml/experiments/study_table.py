"""A study's results as the paper's table: +TCM value (mean ± std over seeds) and the paired change vs base.

From the ``result.json`` of every finished cell (``study.run_study``) ``write_tables`` writes:

- ``results.csv``: one row per cell (its keys, every headline metric, seconds);
- ``table.csv`` / ``table.md``: one row per (benchmark, loss, variant). Per metric: the +TCM mean and
  sample std over seeds, and the change ``mean_s(tcm_s - base_s)`` over the seeds finished in both arms
  (paired by seed), e.g. ``0.8120 ± 0.0040 (+0.0110)``. A row where TCM did not help (R@1 down or OPIS up)
  is marked ``!`` on that number and named in the last column; a per-benchmark summary follows the table.

The maths (``mean_std``, ``paired_change``, ``summarise``) is pure and takes plain records.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError

#: The table's metrics: (key in a record's ``metrics``, label, whether higher is better).
TABLE_METRICS = (
    ("recall@1", "R@1", True),
    ("map@r", "MAP@R", True),
    ("opis", "OPIS", False),
    ("eps_opis", "eps-OPIS", False),
)
#: ``results.csv`` and ``table.csv`` also carry the per-class rate spreads at the calibrated threshold.
CSV_METRICS = (*TABLE_METRICS, ("far_spread", "FAR spread", False), ("frr_spread", "FRR spread", False))
#: Values shown in ``table.md`` multiplied by this (the paper reports OPIS in units of 1e-3); CSVs stay raw.
DISPLAY_SCALE = {"opis": 1e3, "eps_opis": 1e3}
#: "TCM did not help": these metrics moved the wrong way (mean paired change).
HELP_CRITERIA = ("recall@1", "opis")
ROW_KEYS = ("benchmark", "loss", "variant")


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one table row: the +TCM and base seeds' mean / std and the paired change."""

    tcm_mean: float
    tcm_std: float
    base_mean: float
    base_std: float
    change: float
    change_std: float
    pairs: int

    def worse(self, higher_is_better: bool) -> bool:
        """Whether the paired change went the wrong way (False when there is no pair)."""
        if math.isnan(self.change):
            return False
        return self.change < 0 if higher_is_better else self.change > 0


@dataclass(frozen=True)
class RowSummary:
    """A table row: (benchmark, loss, variant), seeds per arm and every metric's ``MetricSummary``."""

    benchmark: str
    loss: str
    variant: str
    tcm_seeds: int
    base_seeds: int
    metrics: dict[str, MetricSummary]

    def not_helped(self) -> list[str]:
        """``["R@1 down", "OPIS up"]``-style reasons TCM did not help (``HELP_CRITERIA``), empty if it did."""
        reasons = []
        for key, label, higher in TABLE_METRICS:
            if key in HELP_CRITERIA and key in self.metrics and self.metrics[key].worse(higher):
                reasons.append(f"{label} {'down' if higher else 'up'}")
        return reasons


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, sample std)``, ``std = sqrt(sum (v - mean)^2 / (n - 1))``; std NaN if n < 2, both if n = 0."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1))


def paired_change(base: dict[int, float], tcm: dict[int, float]) -> tuple[float, float, int]:
    """``(mean, std, n)`` of ``tcm[s] - base[s]`` over the seeds ``s`` present in both (``mean_std``)."""
    seeds = sorted(set(base) & set(tcm))
    mean, std = mean_std([tcm[seed] - base[seed] for seed in seeds])
    return mean, std, len(seeds)


def summarise(records: Iterable[dict[str, Any]], metrics: Sequence[tuple] = CSV_METRICS) -> list[RowSummary]:
    """One ``RowSummary`` per (benchmark, loss, variant) of ``records`` (``result.json`` contents).

    Rows keep the study file's order (a record's ``order``), then names. Per metric: mean/std over the
    +TCM seeds, over the base seeds, and ``paired_change`` between them.
    """
    groups: dict[tuple[str, str, str], dict[bool, dict[int, dict[str, float]]]] = {}
    order: dict[tuple[str, str, str], list[int]] = {}
    for record in records:
        cell = record["cell"]
        key = (cell["benchmark"], cell["loss"], cell["variant"])
        arms = groups.setdefault(key, {False: {}, True: {}})
        arms[bool(cell["tcm"])][int(cell["seed"])] = record["metrics"]
        order.setdefault(key, list(record.get("order") or []))
    rows = []
    for key in sorted(groups, key=lambda k: (order[k], k)):
        base, tcm = groups[key][False], groups[key][True]
        summaries = {}
        for name, _, _ in metrics:
            base_values = _metric(base, name)
            tcm_values = _metric(tcm, name)
            change, change_std, pairs = paired_change(base_values, tcm_values)
            summaries[name] = MetricSummary(
                *mean_std(list(tcm_values.values())),
                *mean_std(list(base_values.values())),
                change,
                change_std,
                pairs,
            )
        rows.append(RowSummary(*key, tcm_seeds=len(tcm), base_seeds=len(base), metrics=summaries))
    return rows


def _metric(arm: dict[int, dict[str, float]], name: str) -> dict[int, float]:
    """Seed -> value of ``name`` (seeds where it is missing or null are left out)."""
    return {seed: float(values[name]) for seed, values in arm.items() if values.get(name) is not None}


def benchmark_summary(rows: Sequence[RowSummary]) -> dict[str, dict[str, float]]:
    """Per benchmark, over its rows with at least one seed finished in both arms (``rows``): the mean paired
    OPIS change ``mean_opis_change``, ``mean_r1_change`` likewise, and ``helped`` (rows with no
    ``not_helped`` reason). A benchmark without such a row has ``rows`` 0 and NaN means."""
    out: dict[str, dict[str, float]] = {}
    for benchmark in dict.fromkeys(row.benchmark for row in rows):
        mine = [
            row
            for row in rows
            if row.benchmark == benchmark and not math.isnan(row.metrics["recall@1"].change)
        ]
        out[benchmark] = {
            "mean_opis_change": _mean_finite(row.metrics["opis"].change for row in mine),
            "mean_r1_change": _mean_finite(row.metrics["recall@1"].change for row in mine),
            "rows": len(mine),
            "helped": sum(not row.not_helped() for row in mine),
        }
    return out


def _mean_finite(values: Iterable[float]) -> float:
    return mean_std([value for value in values if not math.isnan(value)])[0]


def format_value(summary: MetricSummary, marked: bool = False, scale: float = 1.0) -> str:
    """``0.8120 ± 0.0040 (+0.0110)``; no ``±`` for one seed, ``(n/a)`` without a pair, ``!`` if marked."""
    if math.isnan(summary.tcm_mean):
        return "n/a"
    text = f"{summary.tcm_mean * scale:.4f}"
    if not math.isnan(summary.tcm_std):
        text += f" ± {summary.tcm_std * scale:.4f}"
    text += " (n/a)" if math.isnan(summary.change) else f" ({summary.change * scale:+.4f})"
    return text + (" !" if marked else "")


def table_markdown(rows: Sequence[RowSummary]) -> str:
    """The paper-style Markdown table of ``rows`` plus the per-benchmark summary lines."""
    labels = [f"{label} x1e-3" if key in DISPLAY_SCALE else label for key, label, _ in TABLE_METRICS]
    lines = [
        "| benchmark | loss | variant | "
        + " | ".join(f"{label} +TCM (change)" for label in labels)
        + " | seeds | TCM did not help |",
        "|---|---|---|" + "---:|" * len(labels) + "---:|---|",
    ]
    for row in rows:
        bad = row.not_helped()
        cells = []
        for key, label, _ in TABLE_METRICS:
            marked = any(reason.startswith(f"{label} ") for reason in bad)
            cells.append(format_value(row.metrics[key], marked, DISPLAY_SCALE.get(key, 1.0)))
        seeds = str(row.tcm_seeds) if row.tcm_seeds == row.base_seeds else f"{row.tcm_seeds}/{row.base_seeds}"
        lines.append(
            f"| {row.benchmark} | {row.loss} | {row.variant} | {' | '.join(cells)} | {seeds} "
            f"| {', '.join(bad)} |"
        )
    lines += [
        "",
        "Values: +TCM mean ± sample std over seeds; in brackets the change, the mean over seeds of +TCM "
        "minus base (paired by seed). `!` marks a change where TCM did not help (R@1 down or OPIS up). "
        "Seeds: +TCM/base when they differ.",
        "",
        "Per benchmark (mean over its rows of the paired change, +TCM minus base):",
        "",
    ]
    for name, values in benchmark_summary(rows).items():
        if not values["rows"]:
            lines.append(f"- {name}: no seed finished both without and with TCM yet")
            continue
        lines.append(
            f"- {name}: OPIS {values['mean_opis_change'] * 1e3:+.4f} x1e-3, "
            f"R@1 {values['mean_r1_change']:+.4f}; TCM helped in {values['helped']} of {values['rows']} rows"
        )
    return "\n".join(lines) + "\n"


def table_csv_rows(rows: Sequence[RowSummary]) -> list[dict[str, Any]]:
    """``table.csv``: per row and metric the +TCM/base mean and std, the paired change, its std and n."""
    out = []
    for row in rows:
        line: dict[str, Any] = {"benchmark": row.benchmark, "loss": row.loss, "variant": row.variant}
        for key, summary in row.metrics.items():
            line.update(
                {
                    f"{key}_tcm": summary.tcm_mean,
                    f"{key}_tcm_std": summary.tcm_std,
                    f"{key}_base": summary.base_mean,
                    f"{key}_base_std": summary.base_std,
                    f"{key}_change": summary.change,
                    f"{key}_change_std": summary.change_std,
                }
            )
        line.update(
            {
                "tcm_seeds": row.tcm_seeds,
                "base_seeds": row.base_seeds,
                "not_helped": "; ".join(row.not_helped()),
            }
        )
        out.append(line)
    return out


def results_csv_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results.csv``: one row per cell, its keys, the ``CSV_METRICS`` and seconds."""
    rows = []
    for record in records:
        cell = record["cell"]
        row = {key: cell[key] for key in (*ROW_KEYS, "tcm", "seed")}
        row.update({key: record["metrics"].get(key) for key, _, _ in CSV_METRICS})
        row["seconds"] = record.get("seconds")
        rows.append(row)
    return rows


def load_records(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The ``result.json`` of every finished cell under ``output_dir``, sorted by cell (study order)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        raise TcdmlInputError(f"{folder}: no such study folder")
    records = []
    for path in sorted(folder.rglob("result.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TcdmlInputError(f"{path}: unreadable result ({exc})") from None
        if not isinstance(record, dict) or "cell" not in record or "metrics" not in record:
            raise TcdmlInputError(f"{path}: not a study result (no 'cell' / 'metrics')")
        records.append(record)
    return sorted(records, key=lambda r: (r.get("order") or [], [str(r["cell"][k]) for k in ROW_KEYS]))


def write_tables(output_dir: str | os.PathLike) -> list[Path]:
    """Write ``results.csv``, ``table.csv`` and ``table.md`` into ``output_dir`` from its finished cells."""
    from tcdml.io.atomic import atomic_write

    folder = Path(output_dir)
    records = load_records(folder)
    if not records:
        raise TcdmlInputError(f"{folder}: no finished cell (no result.json) yet")
    rows = summarise(records)
    files = []
    for name, lines in (("results.csv", results_csv_rows(records)), ("table.csv", table_csv_rows(rows))):
        with atomic_write(folder / name, newline="") as handle:
            handle.write(_csv_text(lines))
        files.append(folder / name)
    with atomic_write(folder / "table.md") as handle:
        handle.write(f"# Study results: {folder}\n\n{table_markdown(rows)}")
    return [*files, folder / "table.md"]


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if _missing(value) else value for key, value in row.items()})
    return buffer.getvalue()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
