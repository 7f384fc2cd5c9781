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
