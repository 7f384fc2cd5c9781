"""docs/study.md's table of adapter arms by the rule of "Consistency: which recipe a user should pick", from
the rows ``benchmarks/adapt_hscodes.py`` keeps, run by hand:
``python benchmarks/study_table.py hscodes=runs/adapt_hscodes/study17 glyphs=runs/glyphs_raw/study17``.

One line per (situation, variant), the seeds joined by " / ": R@1, Δ R@1 against the start (the raw
embeddings) and against the base (``no-tcm``, the same seed), OPIS ×1e-3 and its Δ against both (95 % paired
bootstrap intervals over classes, from ``tcdml compare``), the rule's guard and goal (cells meeting it of the
arm's cells) and, for arms other than the base, whether the added term earns its place (rule 3).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _pt(value: float, interval: list[float], scale: float, digits: int) -> str:
    return (
        f"{value * scale:+.{digits}f} [{interval[0] * scale:+.{digits}f}, {interval[1] * scale:+.{digits}f}]"
    )


def _mark(interval: list[float], lower_is_better: bool) -> str:
    if interval[0] > 0:
        return " ✗" if lower_is_better else " ✓"
    if interval[1] < 0:
        return " ✓" if lower_is_better else " ✗"
    return ""


def table_line(situation: str, variant: str, rows: list[dict]) -> str:
    """The markdown line of one arm: ``rows`` are its seeds' rows (module docstring)."""
    rows = sorted(rows, key=lambda r: r["seed"])
    join = " / ".join
    guard = all(r["delta_recall@1_ci95"][1] >= 0 for r in rows)
    goals = sum(
        r["delta_opis"] <= -0.3 * r["test_before"]["opis"] and r["delta_opis_ci95"][1] < 0 for r in rows
    )
    based = [r["vs_base"] for r in rows if "vs_base" in r]
    cells = [
        situation,
        variant,
        join(str(r["seed"]) for r in rows),
        join(f"{r['test_after']['recall@1']:.4f}" for r in rows),
        join(_pt(r["delta_recall@1"], r["delta_recall@1_ci95"], 100, 2) for r in rows),
        join(
            _pt(b["delta_recall@1"], b["delta_recall@1_ci95"], 100, 2)
            + _mark(b["delta_recall@1_ci95"], False)
            for b in based
        )
        or "(base)",
        join(f"{r['test_after']['opis'] * 1e3:.1f}" for r in rows),
        join(_pt(r["delta_opis"], r["delta_opis_ci95"], 1e3, 1) for r in rows)
        + " ("
        + join(f"{100 * r['delta_opis'] / r['test_before']['opis']:+.0f}" for r in rows)
        + " %)",
        join(
            _pt(b["delta_opis"], b["delta_opis_ci95"], 1e3, 1) + _mark(b["delta_opis_ci95"], True)
            for b in based
        )
        or "(base)",
        "✓" if guard else "✗",
        f"{'✓' if goals >= 0.75 * len(rows) else '✗'} {goals}/{len(rows)}",
        _verdict(based, len(rows)),
        join(f"{r['train_seconds']:.0f}" for r in rows),
    ]
    return "| " + " | ".join(cells) + " |"


def _verdict(based: list[dict], seeds: int) -> str:
    """Rule 3: OPIS better than the base beyond its interval in >= 2 of 3 seeds, R@1 never worse beyond it."""
    if not based:
        return "—"
    better = sum(b["delta_opis_ci95"][1] < 0 for b in based)
    worse = sum(b["delta_opis_ci95"][0] > 0 for b in based)
    r1_worse = sum(b["delta_recall@1_ci95"][1] < 0 for b in based)
    earns = better >= 2 and r1_worse == 0 and len(based) == seeds
    counts = f"OPIS better {better}, worse {worse}, R@1 worse {r1_worse} of {len(based)}"
    return f"{'earns' if earns else 'no'} ({counts})"


def main(arguments: list[str]) -> None:
    print(
        "| situation | arm | seeds | R@1 | Δ R@1 vs start (pt) | Δ R@1 vs base (pt) | OPIS | Δ OPIS vs start "
        "| Δ OPIS vs base | guard | goal | TCM / term earns its place | train s |"
    )
    print("|" + "---|" * 13)
    for argument in arguments:
        situation, folder = argument.split("=", 1)
        rows = [json.loads(path.read_text()) for path in sorted(Path(folder).glob("row-*.json"))]
        variants = list(dict.fromkeys(r["variant"] for r in rows))
        for variant in sorted(variants, key=lambda v: (v != "no-tcm", v)):
            print(table_line(situation, variant, [r for r in rows if r["variant"] == variant]))


if __name__ == "__main__":
    main(sys.argv[1:])
