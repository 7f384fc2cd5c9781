"""Printing results: one JSON object on stdout, or a human-readable table (rich)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from tcdml.io.json_file import json_safe


def print_json(data: dict) -> None:
    """Exactly one JSON object on stdout (NaN written as null)."""
    sys.stdout.write(json.dumps(json_safe(data), indent=2) + "\n")


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """A two-column table (name, value) on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, _format(value))
    Console(file=sys.stdout, width=100).print(table)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_format_item(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key} {_format(item)}" for key, item in value.items())
    return str(value)


def _format_item(item: Any) -> str:
    if isinstance(item, dict):
        label = item.get("label")
        rest = [f"{v:.3g}" for k, v in item.items() if k != "label" and isinstance(v, float)]
        return f"{label} ({', '.join(rest)})"
    return _format(item)


#: Evaluate's table sections: (title, the JSON keys in it; ``recall@k`` and the FMR keys are added).
EVALUATE_GROUPS = (
    ("retrieval", ("map@r",)),
    (
        "consistency",
        ("opis", "eps_opis", "opis_debiased", "opis_noise_floor", "eps_opis_noise_floor", "opis_excess"),
    ),
    ("verification", ("auc", "eer", "eer_threshold")),
    (
        "calibration range",
        ("far_min", "far_max", "t_lo", "t_hi", "num_thresholds", "eps", "beta", "threshold"),
    ),
    (
        "counts",
        (
            *("num_samples", "num_queries", "num_left_out_queries", "num_classes", "num_opis_classes"),
            *("num_left_out_classes", "mode", "num_bins"),
        ),
    ),
)
#: Verdict colours (shown only on a terminal: rich drops the style elsewhere).
VERDICT_STYLE = {"better": "green", "worse": "red"}


def _interval(ci: list | None, scale: float) -> str:
    return "" if ci is None else f"[{ci[0] * scale:.4g}, {ci[1] * scale:.4g}]"


def _entry(key: str) -> tuple[str, float]:
    """(display name, scale) of a key: the catalogue's for a metric, else the key itself at scale 1."""
    from tcdml.metrics.catalogue import metric

    try:
        found = metric(key)
    except ValueError:
        return key, 1.0
    return found.display, found.scale


def evaluate_rows(summary: dict, level_key) -> list[tuple[str, str, str, str, str]]:
    """Evaluate's table: ``(section, metric, JSON key, value, interval)`` rows; None values are left out."""
    interval_suffix = level_key("")
    fmr = [
        key
        for key in summary
        if key.startswith(("fnmr@fmr=", "threshold@fmr=")) and not key.endswith(interval_suffix)
    ]
    recall = [key for key in summary if key.startswith("recall@")]
    rows = []
    for section, keys in EVALUATE_GROUPS:
        extra = recall if section == "retrieval" else fmr if section == "verification" else []
        for key in [*extra, *keys] if section == "retrieval" else [*keys, *extra]:
            value = summary.get(key)
            if value is None:
                continue
            name, scale = _entry(key)
            shown = _format(value * scale) if isinstance(value, float) else _format(value)
            rows.append((section, name, key, shown, _interval(summary.get(level_key(key)), scale)))
    return rows


def print_evaluation(title: str, summary: dict, level_key, notes: list[str]) -> None:
    """Evaluate's grouped table (retrieval, consistency, verification, calibration range, counts); the
    ``notes`` (why a metric is undefined, the worst classes, the resolution) under it."""
    from rich.console import Console
    from rich.table import Table

    rows = evaluate_rows(summary, level_key)
    shown = [level_key(key) for _, _, key, _, interval in rows if interval]
    caption = f"Intervals: bootstrap over classes (JSON keys {', '.join(shown)})." if shown else None
    table = Table(title=title, show_header=True, header_style="bold", caption=caption)
    for column, justify in (("", "left"), ("metric", "left"), ("key", "left"), ("value", "right")):
        table.add_column(column, justify=justify)
    table.add_column("interval", justify="right")
    previous = None
    for section, name, key, value, interval in rows:
        table.add_row(section if section != previous else "", name, key, value, interval)
        previous = section
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


def print_comparison(title: str, rows: list[tuple[str, str, str, str, str]], notes: list[str]) -> None:
    """Compare's table: ``metric | A | B | B − A [interval] | verdict``, verdicts coloured on a terminal."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_header=True, header_style="bold")
    for column, justify in (("metric", "left"), ("A", "right"), ("B", "right")):
        table.add_column(column, justify=justify)
    table.add_column("B − A [95 % interval]", justify="right")
    table.add_column("verdict")
    for name, a, b, change, verdict in rows:
        table.add_row(name, a, b, change, Text(verdict, style=VERDICT_STYLE.get(verdict, "")))
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


def evaluation_notes(summary: dict) -> list[str]:
    """The lines under evaluate's table: why OPIS is undefined, the worst classes, the histogram bounds."""
    notes = []
    if summary.get("opis_undefined"):
        notes.append(f"opis_undefined: {summary['opis_undefined']}")
    if summary.get("worst_classes"):
        worst = ", ".join(f"{w['label']} ({w['mean_utility']:.3g})" for w in summary["worst_classes"][:5])
        notes.append(f"Worst classes (mean utility over the calibration range): {worst}")
    resolution = summary.get("verification_resolution")
    if resolution and any(resolution.values()):
        bounds = ", ".join(f"{key} {value:.2g}" for key, value in resolution.items())
        notes.append(
            f"Histogram resolution (each value within this of the exact one, docs/metrics.md): {bounds}"
        )
    return notes
