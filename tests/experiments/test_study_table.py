"""The study table on hand-made records: means over seeds, paired changes, intervals that decide the marks."""

from __future__ import annotations

import csv
import math

import pytest

from tcdml.errors import TcdmlInputError
from tcdml.experiments.study_table import (
    benchmark_summary,
    load_records,
    mean_std,
    paired_change,
    summarise,
    table_markdown,
    write_tables,
)
from tests.experiments.study_helpers import embedded_study, record, write_records


def records() -> list[dict]:
    """smooth_ap: TCM raised R@1 and lowered OPIS on both seeds; arcface: the reverse (one seed)."""
    return [
        record("b", "smooth_ap", "default", False, 0, **{"recall@1": 0.80, "opis": 0.010, "map@r": 0.5}),
        record("b", "smooth_ap", "default", False, 1, **{"recall@1": 0.82, "opis": 0.012, "map@r": 0.5}),
        record("b", "smooth_ap", "default", True, 0, **{"recall@1": 0.81, "opis": 0.008, "map@r": 0.5}),
        record("b", "smooth_ap", "default", True, 1, **{"recall@1": 0.85, "opis": 0.006, "map@r": 0.5}),
        record("b", "arcface", "default", False, 0, **{"recall@1": 0.70, "opis": 0.010, "map@r": 0.4}),
        record("b", "arcface", "default", True, 0, **{"recall@1": 0.69, "opis": 0.011, "map@r": 0.4}),
    ]


def test_mean_std_and_paired_change() -> None:
    assert mean_std([1.0, 3.0]) == (2.0, math.sqrt(2.0))
    mean, std = mean_std([5.0])
    assert mean == 5.0 and math.isnan(std)
    assert all(math.isnan(v) for v in mean_std([]))
    # Only seeds present in both arms pair up.
    change, std, n = paired_change({0: 0.5, 1: 0.6, 2: 0.9}, {0: 0.7, 1: 0.7})
    assert n == 2 and change == pytest.approx(0.15) and std == pytest.approx(math.sqrt(0.005))


def test_summarise_rows_and_means() -> None:
    rows = summarise(records())
    assert [(row.loss, row.arm, row.tcm_seeds, row.base_seeds) for row in rows] == [
        ("arcface", "tcm", 1, 1),
        ("smooth_ap", "tcm", 2, 2),
    ]
    smooth = rows[1].metrics
    assert smooth["recall@1"].tcm_mean == pytest.approx(0.83)
    assert smooth["recall@1"].tcm_std == pytest.approx(math.sqrt(0.0008))
    assert smooth["recall@1"].change == pytest.approx(0.02)  # mean of (+0.01, +0.03)
    assert smooth["opis"].change == pytest.approx(-0.004) and smooth["opis"].pairs == 2
    assert math.isnan(smooth["eps_opis"].tcm_mean)  # absent from the records
    # Without embeddings there are no intervals, so nothing is marked better or worse.
    assert rows[0].verdicts() == {} and rows[0].marked("worse") == []


def test_named_arms_are_rows_against_the_one_base() -> None:
    items = [
        record("b", "smooth_ap", "default", "base", 0, **{"recall@1": 0.80, "opis": 0.010}),
        record("b", "smooth_ap", "default", "fixed", 0, **{"recall@1": 0.81, "opis": 0.009}),
        record("b", "smooth_ap", "default", "auto", 0, **{"recall@1": 0.79, "opis": 0.007}),
    ]
    rows = summarise(items)
    assert [row.arm for row in rows] == ["fixed", "auto"]
    assert rows[1].metrics["opis"].change == pytest.approx(-0.003)


def test_study_order_beats_names() -> None:
    items = records()
    for item in items:
        item["order"] = [0, 0 if item["cell"]["loss"] == "smooth_ap" else 1, 0]
    assert [row.loss for row in summarise(items)] == ["smooth_ap", "arcface"]


def test_only_rows_whose_interval_excludes_zero_are_marked(tmp_path) -> None:
    folder = embedded_study(tmp_path / "study")
    rows = {row.loss: row for row in summarise(load_records(folder), intervals=True)}
    smooth, arcface = rows["smooth_ap"], rows["arcface"]
    assert smooth.intervals.pairs == 2 and smooth.intervals.deltas["opis"].ci[1] < 0
    assert "OPIS" in smooth.marked("better") and smooth.intervals.excess_change < -0.3
    assert arcface.marked("better") == [] and arcface.marked("worse") == []
    low, high = arcface.intervals.deltas["opis"].ci
    assert low <= 0 <= high
    summary = benchmark_summary(list(rows.values()))[("b", "tcm")]
    assert (summary["rows"], summary["opis_better"], summary["excess_goal"]) == (2, 1, 1)
    table = table_markdown(list(rows.values()))
    smooth_line = next(line for line in table.splitlines() if "| smooth_ap |" in line)
    assert "✓" in smooth_line and "✗" not in next(
        line for line in table.splitlines() if "| arcface |" in line
    )
    assert "- b / tcm: OPIS better in 1 of 2 rows" in table


def test_write_tables(tmp_path) -> None:
    folder = embedded_study(tmp_path / "study")
    files = write_tables(folder)
    assert [path.name for path in files] == ["results.csv", "table.csv", "table.md"]
    with open(folder / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    with open(folder / "table.csv") as handle:
        rows = {row["loss"]: row for row in csv.DictReader(handle)}
    assert rows["smooth_ap"]["opis_verdict"] == "better" and float(rows["smooth_ap"]["opis_ci_high"]) < 0
    assert rows["arcface"]["opis_verdict"] == "no detectable change"
    assert float(rows["smooth_ap"]["floor_base"]) > 0


def test_empty_or_missing_study(tmp_path) -> None:
    with pytest.raises(TcdmlInputError, match="no such study folder"):
        write_tables(tmp_path / "absent")
    with pytest.raises(TcdmlInputError, match="no finished cell"):
        write_tables(tmp_path)
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(TcdmlInputError, match="not a study result"):
        write_tables(tmp_path)


def test_rows_without_embeddings_have_no_interval(tmp_path) -> None:
    folder = write_records(tmp_path / "old", records())
    write_tables(folder)
    table = (folder / "table.md").read_text()
    assert "no interval" in table and "- b / tcm: no seed with embeddings finished in both arms yet" in table
