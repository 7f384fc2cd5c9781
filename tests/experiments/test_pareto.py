"""Pareto frontier and knee on hand-made points; the figure and pareto.md from hand-made results."""

from __future__ import annotations

import pytest

from tcdml.experiments.pareto import (
    ParetoRun,
    frontier_window,
    knee_index,
    pareto_frontier,
    pareto_runs,
    summarise_pareto,
    use_log_scale,
    write_pareto,
)
from tests.experiments.study_helpers import record, write_records


def test_frontier_keeps_the_non_dominated_points_sorted_by_x() -> None:
    points = [(0.3, 0.1), (0.1, 0.5), (0.2, 0.2), (0.25, 0.3), (0.1, 0.6), (0.4, 0.1)]
    # (0.25, 0.3) is dominated by (0.2, 0.2); (0.1, 0.6) by (0.1, 0.5); (0.4, 0.1) by (0.3, 0.1).
    assert pareto_frontier(points) == [1, 2, 0]
    assert pareto_frontier([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]
    assert pareto_frontier([]) == []


def test_knee_is_the_point_farthest_from_the_chord() -> None:
    # An L: steep drop, then flat; the corner (0.2, 0.1) is the knee.
    assert knee_index([(0.1, 1.0), (0.15, 0.4), (0.2, 0.1), (0.6, 0.05), (1.0, 0.0)]) == 2
    # Normalising matters: the same shape with OPIS in another unit has the same knee.
    assert knee_index([(0.1, 1e-3), (0.15, 4e-4), (0.2, 1e-4), (0.6, 5e-5), (1.0, 0.0)]) == 2
    assert knee_index([(0.0, 1.0), (1.0, 0.0)]) is None  # fewer than three points
    assert knee_index([(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]) is None  # all on the chord


def test_log_scale_only_for_a_wide_spread() -> None:
    assert (
        use_log_scale([0.001, 0.02]) and not use_log_scale([0.001, 0.005]) and not use_log_scale([0.0, 1.0])
    )


def test_summary_arrows_and_down_left() -> None:
    runs = [
        ParetoRun("a", "bs64", False, 0.30, 0.010, 2),
        ParetoRun("a", "bs64", True, 0.28, 0.008, 2),  # down-left
        ParetoRun("b", "bs64", False, 0.20, 0.020, 2),
        ParetoRun("b", "bs64", True, 0.22, 0.010, 2),  # error up
        ParetoRun("c", "bs64", False, 0.40, 0.030, 2),  # no twin
    ]
    summary = summarise_pareto(runs, "bench")
    assert summary.arrows == [(0, 1), (2, 3)] and summary.down_left() == 1
    assert summary.base_frontier == [2, 0] and summary.tcm_frontier == [3, 1]
    assert summary.knee is None and not summary.log_scale


def test_runs_are_seed_averaged() -> None:
    items = [
        record("g", "a", "bs64", False, 0, **{"recall@1": 0.7, "opis": 0.01}),
        record("g", "a", "bs64", False, 1, **{"recall@1": 0.8, "opis": 0.03}),
        record("other", "a", "bs64", False, 0, **{"recall@1": 0.1, "opis": 0.5}),
    ]
    (run,) = pareto_runs(items, "g")
    assert (run.error, run.opis, run.seeds) == (pytest.approx(0.25), pytest.approx(0.02), 2)


def test_write_pareto_figure_and_report(tmp_path) -> None:
    items = []
    for i, loss in enumerate(("smooth_ap", "arcface")):
        for j, variant in enumerate(("bs64", "bs128", "bs256")):
            for seed in (0, 1):
                error, opis = 0.2 + 0.05 * i + 0.02 * j, 0.02 / (1 + j + 3 * i)
                base = {"recall@1": 1 - error, "opis": opis + 0.001 * seed}
                tcm = {"recall@1": 1 - error + 0.01, "opis": 0.8 * opis + 0.001 * seed}
                items += [record("glyphs", loss, variant, False, seed, **base)]
                items += [record("glyphs", loss, variant, True, seed, **tcm)]
    folder = write_records(tmp_path / "study", items)
    files = write_pareto(folder, tmp_path / "figures")
    assert sorted(path.name for path in files) == ["pareto.md", "pareto.png", "pareto.svg"]
    assert all(path.stat().st_size > 0 for path in files)
    report = (tmp_path / "figures" / "pareto.md").read_text()
    assert "![Pareto: error vs OPIS](pareto.png)" in report
    assert "(TCM lowered error and OPIS): 6 of 6" in report and "knee of the base frontier:" in report


def test_zoom_window_only_when_the_frontiers_sit_in_a_corner() -> None:
    def run(loss: str, tcm: bool, error: float, opis: float) -> ParetoRun:
        return ParetoRun(loss, "v", tcm, error, opis, 1)

    near = [run("a", False, 0.10, 0.010), run("a", True, 0.09, 0.009), run("b", False, 0.11, 0.008)]
    far = [run("c", False, 0.50, 0.050), run("c", True, 0.45, 0.040)]
    (x_low, x_high), (y_low, y_high) = frontier_window(summarise_pareto(near + far, "bench"))
    assert x_low < 0.09 and 0.11 < x_high < 0.2 and y_low < 0.008 and 0.01 < y_high < 0.02
    # Frontier runs spread over the whole plot: no zoom.
    spread = [run("a", False, 0.1, 0.05), run("a", True, 0.5, 0.01), run("b", False, 0.3, 0.03)]
    assert frontier_window(summarise_pareto(spread, "bench")) is None


def test_pareto_notes_carry_the_paired_intervals(tmp_path) -> None:
    from tests.experiments.study_helpers import embedded_study

    folder = embedded_study(tmp_path / "study")
    write_pareto(folder)
    notes = (folder / "pareto.md").read_text()
    smooth = next(line for line in notes.splitlines() if line.startswith("| smooth_ap |"))
    arcface = next(line for line in notes.splitlines() if line.startswith("| arcface |"))
    assert "✓" in smooth and " [" in smooth and "✓" not in arcface and "✗" not in arcface
