"""A study's results as the paper's table: each TCM arm against base, with paired 95 % intervals.

From the ``result.json`` (and ``embeddings.npz``) of every finished cell ``write_tables`` writes:

- ``results.csv``: one row per cell (its keys, every headline metric, seconds);
- ``table.csv`` / ``table.md``: one row per (benchmark, loss, variant, TCM arm). Per metric: the base and
  TCM means over seeds, and the change (TCM minus base, mean over the seeds finished in both arms) with its
  95 % interval: a paired bootstrap over classes pooled over seeds (``study_intervals``). Also each arm's
  noise floor and excess OPIS (``tcdml.metrics.uncertainty``). A metric is marked **better** or **worse**
  only when its interval excludes 0; a per-(benchmark, arm) summary follows the table.

The maths on records (``mean_std``, ``paired_change``, ``summarise``) is pure; intervals need the cells'
embedding files (cells measured by an older tcdml show ``n/a`` until ``tcdml study`` re-embeds them).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError
from tcdml.experiments.study_config import BASE_ARM
from tcdml.experiments.study_intervals import RowIntervals, row_intervals, seed_pairs
from tcdml.metrics.catalogue import metric


def _rows(*keys: str) -> tuple[tuple[str, str, bool], ...]:
    """``(key, short name, higher is better)`` of each key, from the metric catalogue."""
    return tuple((key, metric(key).name, metric(key).higher_is_better) for key in keys)


#: The table's metrics: (key in a record's ``metrics``, label, whether higher is better).
TABLE_METRICS = _rows("recall@1", "map@r", "opis", "eps_opis")
#: ``results.csv`` and ``table.csv`` also carry the per-class rate spreads at the calibrated threshold.
CSV_METRICS = (*TABLE_METRICS, *_rows("far_spread", "frr_spread"))
#: Values shown in ``table.md`` multiplied by this (the paper reports OPIS in units of 1e-3); CSVs stay raw.
DISPLAY_SCALE = {key: metric(key).scale for key, _, _ in TABLE_METRICS if metric(key).scale != 1.0}
#: Metrics whose interval decides a row's verdict.
VERDICT_METRICS = ("recall@1", "opis", "eps_opis")
#: Goal of the margins study: excess OPIS lower by at least this fraction.
EXCESS_GOAL = -0.30
ROW_KEYS = ("benchmark", "loss", "variant")


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one table row: the TCM and base seeds' mean / std and the paired change."""

    tcm_mean: float
    tcm_std: float
    base_mean: float
    base_std: float
    change: float
    change_std: float
    pairs: int


@dataclass(frozen=True)
class RowSummary:
    """A table row: (benchmark, loss, variant, TCM arm), seeds per arm, every metric's ``MetricSummary``
    and, where the cells' embeddings exist, the paired intervals (``RowIntervals``)."""

    benchmark: str
    loss: str
    variant: str
    arm: str
    tcm_seeds: int
    base_seeds: int
    metrics: dict[str, MetricSummary]
    intervals: RowIntervals | None = None

    def verdicts(self) -> dict[str, str]:
        """Per ``VERDICT_METRICS``: ``better`` / ``worse`` (interval excludes 0) or ``no detectable change``;
        empty without intervals."""
        if self.intervals is None:
            return {}
        return {key: self.intervals.deltas[key].verdict for key in VERDICT_METRICS}

    def marked(self, verdict: str) -> list[str]:
        """Labels of the metrics with this verdict (``better`` or ``worse``)."""
        labels = {key: label for key, label, _ in TABLE_METRICS}
        return [labels[key] for key, value in self.verdicts().items() if value == verdict]


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


def arm_of(cell: dict[str, Any]) -> str:
    """A record's arm (``base`` or a TCM arm; records of older studies have only ``tcm``: true / false)."""
    return cell.get("arm") or ("tcm" if cell["tcm"] else BASE_ARM)


def summarise(
    records: Iterable[dict[str, Any]], metrics: Sequence[tuple] = CSV_METRICS, intervals: bool = False
) -> list[RowSummary]:
    """One ``RowSummary`` per (benchmark, loss, variant, TCM arm) of ``records`` (``result.json`` contents).

    Rows keep the study file's order (a record's ``order``, then the arms' order), then names. Per metric:
    mean/std over the TCM seeds and over the base seeds (only the seeds finished in both arms, when there
    are such), and ``paired_change`` between them. ``intervals``:
    also the paired bootstrap intervals (needs each record's ``directory`` with its embeddings).
    """
    groups: dict[tuple[str, str, str], dict[str, dict[int, dict[str, Any]]]] = {}
    order: dict[tuple[str, str, str], list[int]] = {}
    for record in records:
        cell = record["cell"]
        key = (cell["benchmark"], cell["loss"], cell["variant"])
        groups.setdefault(key, {BASE_ARM: {}}).setdefault(arm_of(cell), {})[int(cell["seed"])] = record
        order.setdefault(key, list(record.get("order") or []))
    rows = []
    for key in sorted(groups, key=lambda k: (order[k], k)):
        base = groups[key][BASE_ARM]
        for arm, tcm in groups[key].items():
            if arm == BASE_ARM:
                continue
            summaries = {}
            paired = set(base) & set(tcm)  # the means shown are over the paired seeds, like the changes
            for name, _, _ in metrics:
                base_values, tcm_values = _metric(base, name, paired), _metric(tcm, name, paired)
                change, change_std, pairs = paired_change(base_values, tcm_values)
                summaries[name] = MetricSummary(
                    *mean_std(list(tcm_values.values())),
                    *mean_std(list(base_values.values())),
                    change,
                    change_std,
                    pairs,
                )
            found = row_intervals(seed_pairs(base, tcm)) if intervals else None
            rows.append(RowSummary(*key, arm, len(tcm), len(base), summaries, found))
    return rows


def _metric(arm: dict[int, dict[str, Any]], name: str, seeds: set[int]) -> dict[int, float]:
    """Seed -> value of ``name`` over ``seeds`` (all the arm's seeds when empty; seeds where it is missing or
    null are left out)."""
    return {
        seed: float(record["metrics"][name])
        for seed, record in arm.items()
        if record["metrics"].get(name) is not None and (not seeds or seed in seeds)
    }


def benchmark_summary(rows: Sequence[RowSummary]) -> dict[tuple[str, str], dict[str, float]]:
    """Per (benchmark, TCM arm), over its rows with intervals: ``rows``, ``opis_better``, ``r1_worse`` (rows
    whose interval says so), ``median_excess_change`` (relative) and ``excess_goal`` (rows whose excess OPIS
    fell by at least 30 %)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for key in dict.fromkeys((row.benchmark, row.arm) for row in rows):
        mine = [row for row in rows if (row.benchmark, row.arm) == key and row.intervals is not None]
        changes = [row.intervals.excess_change for row in mine if not math.isnan(row.intervals.excess_change)]
        out[key] = {
            "rows": len(mine),
            "opis_better": sum(row.verdicts()["opis"] == "better" for row in mine),
            "r1_worse": sum(row.verdicts()["recall@1"] == "worse" for row in mine),
            "median_excess_change": statistics.median(changes) if changes else math.nan,
            "excess_goal": sum(change <= EXCESS_GOAL for change in changes),
        }
    return out


def format_change(row: RowSummary, key: str) -> str:
    """``0.8120 → 0.8230 (+0.0110 [+0.0040, +0.0180])`` (scaled for OPIS), ``n/a`` parts where missing."""
    summary, scale = row.metrics[key], DISPLAY_SCALE.get(key, 1.0)
    if math.isnan(summary.tcm_mean):
        return "n/a"
    text = f"{summary.base_mean * scale:.4f} → {summary.tcm_mean * scale:.4f}"
    if math.isnan(summary.change):
        return text + " (n/a)"
    if row.intervals is None:
        return text + f" ({summary.change * scale:+.4f}, no interval)"
    delta = row.intervals.deltas[key]
    if delta.value is None or delta.ci is None:
        return text + f" ({summary.change * scale:+.4f}, no interval)"
    low, high = (value * scale for value in delta.ci)
    mark = {"better": " ✓", "worse": " ✗"}.get(delta.verdict, "")
    return text + f" ({delta.value * scale:+.4f} [{low:+.4f}, {high:+.4f}]){mark}"


def format_excess(row: RowSummary) -> tuple[str, str, str]:
    """(noise floor base → TCM, debiased OPIS base → TCM with its paired change and interval, excess OPIS
    base → TCM with its relative change), x1e-3."""
    found = row.intervals
    if found is None:
        return "n/a", "n/a", "n/a"
    floor = f"{found.floor_base * 1e3:.4f} → {found.floor_tcm * 1e3:.4f}"
    debiased = f"{found.debiased_base * 1e3:.4f} → {found.debiased_tcm * 1e3:.4f}"
    delta = found.deltas.get("opis_debiased")
    if delta is not None and delta.ci is not None:
        mark = {"better": " ✓", "worse": " ✗"}.get(delta.verdict, "")
        low, high = (value * 1e3 for value in delta.ci)
        debiased += f" ({delta.value * 1e3:+.4f} [{low:+.4f}, {high:+.4f}]){mark}"
    change = "n/a" if math.isnan(found.excess_change) else f"{found.excess_change:+.0%}"
    return floor, debiased, f"{found.excess_base * 1e3:.4f} → {found.excess_tcm * 1e3:.4f} ({change})"


def table_markdown(rows: Sequence[RowSummary]) -> str:
    """The Markdown table of ``rows`` plus the per-(benchmark, arm) summary lines."""
    lines = [
        "| benchmark | loss | variant | arm | seeds | R@1 | OPIS x1e-3 | noise floor x1e-3 | "
        "debiased OPIS x1e-3 | excess OPIS x1e-3 | eps-OPIS x1e-3 | better | worse |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        seeds = str(row.tcm_seeds) if row.tcm_seeds == row.base_seeds else f"{row.tcm_seeds}/{row.base_seeds}"
        floor, debiased, excess = format_excess(row)
        cells = [format_change(row, key) for key in ("recall@1", "opis")]
        cells += [floor, debiased, excess, format_change(row, "eps_opis")]
        verdicts = [", ".join(row.marked("better")), ", ".join(row.marked("worse"))]
        lines.append(
            f"| {row.benchmark} | {row.loss} | {row.variant} | {row.arm} | {seeds} | {' | '.join(cells)} "
            f"| {' | '.join(verdicts)} |"
        )
    lines += [
        "",
        "Values: base → TCM arm, means over seeds; in brackets the change (mean over seeds of TCM minus "
        "base, paired by seed) and its 95 % interval (paired bootstrap over classes, pooled over seeds). "
        "✓ / ✗: the interval excludes 0 (better / worse); only those are listed as better or worse. Excess "
        "OPIS = OPIS minus the noise floor (a consistent model's OPIS with the same class sizes: a lower "
        "bound of the noise); its change is relative. Debiased OPIS = OPIS minus each class's sampling "
        "variance (sample jackknife, docs/metrics.md): the one to read. Seeds: TCM/base when they differ.",
        "",
        "Per benchmark and arm (rows with intervals):",
        "",
    ]
    for (name, arm), values in benchmark_summary(rows).items():
        if not values["rows"]:
            lines.append(f"- {name} / {arm}: no seed with embeddings finished in both arms yet")
            continue
        lines.append(
            f"- {name} / {arm}: OPIS better in {values['opis_better']} of {values['rows']} rows, R@1 worse "
            f"in {values['r1_worse']}; median excess-OPIS change {values['median_excess_change']:+.0%}, "
            f"at least -30 % in {values['excess_goal']} of {values['rows']}"
        )
    return "\n".join(lines) + "\n"


def table_csv_rows(rows: Sequence[RowSummary]) -> list[dict[str, Any]]:
    """``table.csv``: per row and metric the TCM/base mean and std, the paired change, its interval, and the
    floors and excess OPIS."""
    out = []
    for row in rows:
        line: dict[str, Any] = {key: getattr(row, key) for key in (*ROW_KEYS, "arm")}
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
            delta = row.intervals.deltas.get(key) if row.intervals else None
            low, high = delta.ci if delta else (math.nan, math.nan)
            line.update({f"{key}_ci_low": low, f"{key}_ci_high": high})
            line[f"{key}_verdict"] = delta.verdict if delta else ""
        found = row.intervals
        names = ("floor_base", "floor_tcm", "debiased_base", "debiased_tcm", "excess_base", "excess_tcm")
        for name in (*names, "excess_change"):
            line[name] = getattr(found, name) if found else math.nan
        line.update({"tcm_seeds": row.tcm_seeds, "base_seeds": row.base_seeds})
        out.append(line)
    return out


def results_csv_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results.csv``: one row per cell, its keys, the ``CSV_METRICS`` and seconds."""
    rows = []
    for record in records:
        cell = record["cell"]
        row = {key: cell[key] for key in ROW_KEYS}
        row.update({"arm": arm_of(cell), "seed": cell["seed"]})
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
        record["directory"] = str(path.parent)  # where its embeddings are (not stored)
        records.append(record)
    return sorted(records, key=lambda r: (r.get("order") or [], [str(r["cell"][k]) for k in ROW_KEYS]))


def write_tables(output_dir: str | os.PathLike) -> list[Path]:
    """Write ``results.csv``, ``table.csv`` and ``table.md`` into ``output_dir`` from its finished cells."""
    from tcdml.io.atomic import atomic_write

    folder = Path(output_dir)
    records = load_records(folder)
    if not records:
        raise TcdmlInputError(f"{folder}: no finished cell (no result.json) yet")
    rows = summarise(records, intervals=True)
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
