"""The Pareto study: recognition error (1 - R@1) against OPIS for every run, and where TCM moves each run.

From a study's ``result.json`` files (typically losses x batch-size variants on one benchmark), per
benchmark: every (loss, variant) is averaged over seeds per arm; the base run is a filled marker and an arrow
leads to its +TCM twin (open marker). Both arms' Pareto frontiers (minimising error and OPIS) are drawn as
step lines, and the knee of the base frontier is marked.

Knee rule: on the axes as plotted (OPIS in log10 when the plot is log-scaled), normalise the frontier's
error and OPIS to [0, 1] by their ranges over the frontier; the knee is the frontier point farthest from the
chord joining the frontier's two extreme points (lowest error, lowest OPIS). No knee with fewer than three
frontier points, or when they all lie on the chord.

``write_pareto(study_dir)`` writes ``pareto[_<benchmark>].png/.svg`` and ``pareto.md`` (frontier members,
knee, how many arrows point down-left, i.e. TCM lowered both error and OPIS).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError
from tcdml.experiments.study_config import BASE_ARM
from tcdml.experiments.study_table import arm_of, load_records, mean_std, summarise

#: OPIS is drawn on a log axis when its largest value is at least this many times its smallest.
LOG_SPREAD = 10.0
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class ParetoRun:
    """A (loss, variant) of one benchmark, one arm, averaged over its seeds."""

    loss: str
    variant: str
    tcm: bool
    error: float
    opis: float
    seeds: int

    @property
    def name(self) -> str:
        """``arcface / bs128`` (+ `` +TCM``)."""
        return f"{self.loss} / {self.variant}" + (" +TCM" if self.tcm else "")


def pareto_runs(records: Iterable[dict[str, Any]], benchmark: str) -> list[ParetoRun]:
    """Seed-averaged runs of ``benchmark``: error = 1 - mean R@1, OPIS = mean OPIS, in study order."""
    records = [record for record in records if record["cell"]["benchmark"] == benchmark]
    arms = sorted({arm_of(record["cell"]) for record in records} - {BASE_ARM})
    if len(arms) > 1:
        raise TcdmlInputError(
            f"benchmark {benchmark}: the figure draws base against one TCM arm; this study has "
            f"{', '.join(arms)}"
        )
    seeds: dict[tuple[str, str, bool], list[tuple[float, float]]] = {}
    for record in records:
        cell, metrics = record["cell"], record["metrics"]
        if metrics.get("recall@1") is None or metrics.get("opis") is None:
            continue
        key = (cell["loss"], cell["variant"], bool(cell["tcm"]))
        seeds.setdefault(key, []).append((1.0 - float(metrics["recall@1"]), float(metrics["opis"])))
    return [
        ParetoRun(
            loss,
            variant,
            tcm,
            mean_std([e for e, _ in vals])[0],
            mean_std([o for _, o in vals])[0],
            len(vals),
        )
        for (loss, variant, tcm), vals in seeds.items()
    ]


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (minimising both coordinates), sorted by x then y.

    ``i`` is dominated when some ``j`` has ``x_j <= x_i`` and ``y_j <= y_i`` with one inequality strict;
    identical points are all kept.
    """

    def dominated(i: int) -> bool:
        xi, yi = points[i]
        return any(xj <= xi and yj <= yi and (xj < xi or yj < yi) for xj, yj in points)

    return sorted((i for i in range(len(points)) if not dominated(i)), key=lambda i: points[i])


def knee_index(frontier: Sequence[tuple[float, float]]) -> int | None:
    """Position in ``frontier`` (sorted by x) of its knee (module docstring), or None.

    With ``u = (x - min x) / range x`` and ``v = (y - min y) / range y``, the distance of a point to the chord
    from the first to the last point is ``|(p - a) x (b - a)| / |b - a|``; the knee maximises it.
    """
    if len(frontier) < 3:
        return None
    xs, ys = [p[0] for p in frontier], [p[1] for p in frontier]
    x_range, y_range = max(xs) - min(xs), max(ys) - min(ys)
    if x_range <= 0 or y_range <= 0:
        return None
    u = [(x - min(xs)) / x_range for x in xs]
    v = [(y - min(ys)) / y_range for y in ys]
    du, dv = u[-1] - u[0], v[-1] - v[0]
    norm = math.hypot(du, dv)
    distances = [abs((u[i] - u[0]) * dv - (v[i] - v[0]) * du) / norm for i in range(len(frontier))]
    best = max(range(len(frontier)), key=lambda i: distances[i])
    return best if distances[best] > 1e-12 else None


def use_log_scale(values: Sequence[float]) -> bool:
    """Whether OPIS values spread over at least ``LOG_SPREAD``x (and are all positive): plot them in log."""
    return bool(values) and min(values) > 0 and max(values) >= LOG_SPREAD * min(values)


@dataclass(frozen=True)
class ParetoSummary:
    """One benchmark's runs, both frontiers (indices into ``runs``), the base knee and the arrows."""

    benchmark: str
    runs: list[ParetoRun]
    base_frontier: list[int]
    tcm_frontier: list[int]
    knee: int | None
    log_scale: bool
    arrows: list[tuple[int, int]]

    def down_left(self) -> int:
        """Arrows along which TCM lowered both the error and OPIS."""
        return sum(
            self.runs[t].error < self.runs[b].error and self.runs[t].opis < self.runs[b].opis
            for b, t in self.arrows
        )


def summarise_pareto(runs: Sequence[ParetoRun], benchmark: str) -> ParetoSummary:
    """Frontiers of each arm, the knee of the base frontier (on the plotted axes) and base -> +TCM arrows."""
    runs = list(runs)
    log_scale = use_log_scale([run.opis for run in runs])

    def frontier(tcm: bool) -> list[int]:
        members = [i for i, run in enumerate(runs) if run.tcm == tcm]
        return [members[j] for j in pareto_frontier([(runs[i].error, runs[i].opis) for i in members])]

    base = frontier(False)
    axis = [(runs[i].error, math.log10(runs[i].opis) if log_scale else runs[i].opis) for i in base]
    knee = knee_index(axis)
    twins = {(run.loss, run.variant): i for i, run in enumerate(runs) if run.tcm}
    arrows = [
        (i, twins[(run.loss, run.variant)])
        for i, run in enumerate(runs)
        if not run.tcm and (run.loss, run.variant) in twins
    ]
    return ParetoSummary(
        benchmark, runs, base, frontier(True), None if knee is None else base[knee], log_scale, arrows
    )


def frontier_window(summary: ParetoSummary, pad: float = 0.25) -> tuple[tuple[float, float], ...] | None:
    """The (x, y) limits of a zoom on both frontiers, or None when they already fill the plot.

    The window is the bounding box of the frontiers' runs and their base/+TCM twins, padded by ``pad`` of its
    size on each side (in log10 OPIS when log-scaled); a zoom is worth it when that box is under a third of
    the runs' range on both axes.
    """
    runs = summary.runs
    members = set(summary.base_frontier) | set(summary.tcm_frontier)
    # With each frontier run's twin (the other end of its arrow), so the zoom shows what TCM did to them.
    members |= {t for b, t in summary.arrows if b in members} | {b for b, t in summary.arrows if t in members}

    def axis(values: list[float], log: bool) -> tuple[float, float, float]:
        values = [math.log10(v) for v in values] if log else values
        return min(values), max(values), max(values) - min(values)

    if len(members) < 2:
        return None
    limits = []
    for attribute, log in (("error", False), ("opis", summary.log_scale)):
        low, high, size = axis([getattr(runs[i], attribute) for i in members], log)
        _, _, span = axis([getattr(run, attribute) for run in runs], log)
        if span == 0 or size >= span / 3:
            return None
        margin = pad * size if size > 0 else 0.05 * span
        low, high = low - margin, high + margin
        limits.append((10**low, 10**high) if log else (low, high))
    return tuple(limits)


def plot_pareto(summary: ParetoSummary, folder: str | os.PathLike, stem: str) -> list[Path]:
    """The figure of ``summary`` as ``stem.png`` / ``stem.svg`` in ``folder`` (tcdml's figure style).

    With a ``frontier_window``, a second panel zooms on the frontiers (the first one shows every run).
    """
    from matplotlib.lines import Line2D

    from tcdml.figures import OKABE_ITO, new_figure, save_figure

    runs = summary.runs
    losses = list(dict.fromkeys(run.loss for run in runs))
    variants = list(dict.fromkeys(run.variant for run in runs))
    colour = {loss: OKABE_ITO[i % len(OKABE_ITO)] for i, loss in enumerate(losses)}
    marker = {variant: MARKERS[i % len(MARKERS)] for i, variant in enumerate(variants)}
    window = frontier_window(summary)
    fig, axes = new_figure(ncols=2 if window else 1, width=6.5 if window else 7.5, height=5.0)
    axes = list(axes) if window else [axes]
    for ax in axes:
        _draw_runs(ax, summary, colour, marker)
        if summary.log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("recognition error (1 - R@1)")
    axes[0].set_ylabel("OPIS (lower is more threshold-consistent)")
    axes[0].set_title(f"{summary.benchmark}: base -> +TCM" + (", every run" if window else ""))
    if window:
        (x_limits, y_limits), zoom = window, axes[1]
        zoom.set_xlim(*x_limits)
        zoom.set_ylim(*y_limits)
        zoom.set_title("zoom on the frontiers")
        axes[0].add_patch(_rectangle(x_limits, y_limits))
    handles = [Line2D([], [], color=colour[loss], lw=0, marker="o", label=loss) for loss in losses]
    handles += [Line2D([], [], color="0.4", lw=0, marker=marker[v], label=v) for v in variants]
    handles += [
        Line2D([], [], color="0.4", lw=0, marker="o", markerfacecolor="none", label="open: +TCM"),
        Line2D([], [], color="0.25", linestyle="--", label="base frontier"),
        Line2D([], [], color="0.25", linestyle=":", label="+TCM frontier"),
    ]
    axes[0].legend(handles=handles, loc="best", fontsize=8, ncol=2)
    return save_figure(fig, folder, stem)


def _draw_runs(ax: Any, summary: ParetoSummary, colour: dict, marker: dict) -> None:
    """Points, base -> +TCM arrows, both frontiers and the knee of ``summary`` on ``ax``."""
    runs = summary.runs
    for run in runs:
        ax.scatter(
            run.error,
            run.opis,
            s=55,
            marker=marker[run.variant],
            facecolors="none" if run.tcm else colour[run.loss],
            edgecolors=colour[run.loss],
            linewidths=1.5,
            zorder=3,
        )
    for b, t in summary.arrows:
        ax.annotate(
            "",
            xy=(runs[t].error, runs[t].opis),
            xytext=(runs[b].error, runs[b].opis),
            arrowprops={
                "arrowstyle": "->",
                "color": colour[runs[b].loss],
                "lw": 1.2,
                "shrinkA": 4,
                "shrinkB": 4,
            },
        )
    for members, style in ((summary.base_frontier, "--"), (summary.tcm_frontier, ":")):
        if members:
            ax.step(
                [runs[i].error for i in members],
                [runs[i].opis for i in members],
                where="post",
                color="0.25",
                linestyle=style,
                lw=1.2,
                zorder=2,
            )
    if summary.knee is not None:
        knee = runs[summary.knee]
        ax.scatter(
            knee.error, knee.opis, s=260, facecolors="none", edgecolors="black", linewidths=1.0, zorder=4
        )
        ax.annotate("knee", (knee.error, knee.opis), textcoords="offset points", xytext=(10, -14), fontsize=9)


def _rectangle(x_limits: tuple[float, float], y_limits: tuple[float, float]) -> Any:
    """The zoom window's outline, for the overview panel."""
    from matplotlib.patches import Rectangle

    (x0, x1), (y0, y1) = x_limits, y_limits
    return Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="0.4", linestyle="-", lw=0.8, zorder=1)


def pareto_markdown(
    summary: ParetoSummary, figure: str, intervals: dict[tuple[str, str], Any] | None = None
) -> str:
    """The ``pareto.md`` section of one benchmark: figure, frontier members, knee, arrow directions and,
    per arrow, the paired 95 % intervals of the R@1 and OPIS changes (``intervals``: (loss, variant) ->
    ``RowIntervals``; the study table's, ``study_intervals``)."""
    runs = summary.runs
    intervals = intervals or {}

    def change(b: int, key: str) -> str:
        found = intervals.get((runs[b].loss, runs[b].variant))
        if found is None:
            return "n/a"
        delta = found.deltas[key]
        mark = {"better": " ✓", "worse": " ✗"}.get(delta.verdict, "")
        return f"{delta.value:+.4f} [{delta.ci[0]:+.4f}, {delta.ci[1]:+.4f}]{mark}"

    def where(b: int, t: int) -> str:
        error, opis = runs[t].error - runs[b].error, runs[t].opis - runs[b].opis
        return f"error {_direction(error)}, OPIS {_direction(opis)}"

    knee = (
        "none (fewer than 3 frontier points, or all on the chord)"
        if summary.knee is None
        else runs[summary.knee].name
    )
    lines = [
        f"## {summary.benchmark}",
        "",
        f"![Pareto: error vs OPIS]({figure})",
        "",
        f"- base frontier: {', '.join(runs[i].name for i in summary.base_frontier) or 'none'}",
        f"- +TCM frontier: {', '.join(runs[i].name for i in summary.tcm_frontier) or 'none'}",
        f"- knee of the base frontier: {knee}",
        f"- arrows pointing down-left (TCM lowered error and OPIS): {summary.down_left()} of "
        f"{len(summary.arrows)}",
        f"- OPIS axis: {'log' if summary.log_scale else 'linear'}",
        "",
        "| loss | variant | seeds | error base | OPIS base | error +TCM | OPIS +TCM | TCM moved "
        "| R@1 change [95 % CI] | OPIS change [95 % CI] | base frontier |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for b, t in summary.arrows:
        base, tcm = runs[b], runs[t]
        lines.append(
            f"| {base.loss} | {base.variant} | {base.seeds} | {base.error:.4f} | {base.opis:.4f} "
            f"| {tcm.error:.4f} | {tcm.opis:.4f} | {where(b, t)} | {change(b, 'recall@1')} "
            f"| {change(b, 'opis')} | {'yes' if b in summary.base_frontier else ''} |"
        )
    if intervals:
        lines += [
            "",
            "Changes: +TCM minus base, mean over seeds, with the 95 % paired bootstrap interval over classes "
            "(pooled over seeds); ✓ / ✗ where the interval excludes 0 (better / worse). An arrow's direction "
            "alone is not a result.",
        ]
    return "\n".join(lines) + "\n"


def _direction(delta: float) -> str:
    return "down" if delta < 0 else "up" if delta > 0 else "same"


def write_pareto(study_dir: str | os.PathLike, folder: str | os.PathLike | None = None) -> list[Path]:
    """Figure(s) and ``pareto.md`` of the study in ``study_dir``, into ``folder`` (default: ``study_dir``).

    One figure per benchmark: ``pareto.png/.svg`` for a single benchmark, else ``pareto_<benchmark>.*``.
    """
    from tcdml.io.atomic import atomic_write

    records = load_records(study_dir)
    benchmarks = list(dict.fromkeys(record["cell"]["benchmark"] for record in records))
    if not benchmarks:
        raise TcdmlInputError(f"{study_dir}: no finished cell (no result.json) yet")
    folder = Path(folder) if folder is not None else Path(study_dir)
    planned = []  # everything is computed (and refused) before the first file is written
    for benchmark in benchmarks:
        summary = summarise_pareto(pareto_runs(records, benchmark), benchmark)
        mine = [record for record in records if record["cell"]["benchmark"] == benchmark]
        rows = summarise(mine, intervals=True)
        found = {(row.loss, row.variant): row.intervals for row in rows if row.intervals is not None}
        planned.append((summary, "pareto" if len(benchmarks) == 1 else f"pareto_{benchmark}", found))
    files, sections = [], []
    for summary, stem, found in planned:
        files += plot_pareto(summary, folder, stem)
        sections.append(pareto_markdown(summary, f"{stem}.png", found))
    rule = (
        "Each point is a (loss, variant) averaged over its seeds: filled = base, open = +TCM, an arrow from "
        "each base run to its +TCM twin. Frontiers minimise both error (1 - R@1) and OPIS. Knee: on the "
        "plotted axes (log10 OPIS when log-scaled), both coordinates normalised to [0, 1] over the base "
        "frontier; the frontier point farthest from the chord joining its two extremes."
    )
    with atomic_write(folder / "pareto.md") as handle:
        handle.write(f"# Pareto study: {study_dir}\n\n{rule}\n\n" + "\n".join(sections))
    return [*files, folder / "pareto.md"]
