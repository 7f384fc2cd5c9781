"""The study table's maths on hand-made records: mean ± std over seeds, paired change, "did not help"."""

from __future__ import annotations

import csv
import math

import pytest

from tcdml.errors import TcdmlInputError
from tcdml.experiments.study_table import (
    MetricSummary,
    benchmark_summary,
    format_value,
    mean_std,
    paired_change,
    summarise,
    table_markdown,
    write_tables,
)
from tests.experiments.study_helpers import record, write_records


def records() -> list[dict]:
    """smooth_ap: TCM helps on both seeds; arcface: R@1 drops and OPIS rises (did not help)."""
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


def test_summarise_rows_means_and_marks() -> None:
    rows = summarise(records())
    assert [(row.loss, row.tcm_seeds, row.base_seeds) for row in rows] == [
        ("arcface", 1, 1),
        ("smooth_ap", 2, 2),
    ]
    smooth = rows[1].metrics
    assert smooth["recall@1"].tcm_mean == pytest.approx(0.83)
    assert smooth["recall@1"].tcm_std == pytest.approx(math.sqrt(0.0008))
    assert smooth["recall@1"].change == pytest.approx(0.02)  # mean of (+0.01, +0.03)
    assert smooth["opis"].change == pytest.approx(-0.004) and smooth["opis"].pairs == 2
    assert math.isnan(smooth["eps_opis"].tcm_mean)  # absent from the records
    assert rows[1].not_helped() == [] and rows[0].not_helped() == ["R@1 down", "OPIS up"]
    summary = benchmark_summary(rows)["b"]
    assert summary["mean_opis_change"] == pytest.approx((0.001 - 0.004) / 2)
    assert (summary["rows"], summary["helped"]) == (2, 1)


def test_study_order_beats_names() -> None:
    items = records()
    for item in items:
        item["order"] = [0, 0 if item["cell"]["loss"] == "smooth_ap" else 1, 0]
    assert [row.loss for row in summarise(items)] == ["smooth_ap", "arcface"]


def test_format_value() -> None:
    value = MetricSummary(0.812, 0.004, 0.8, 0.0, 0.011, 0.001, 2)
    assert format_value(value) == "0.8120 ± 0.0040 (+0.0110)"
    assert format_value(value, marked=True, scale=1e3).endswith("(+11.0000) !")
    alone = MetricSummary(0.5, math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    assert format_value(alone) == "0.5000 (n/a)"


def test_markdown_marks_what_did_not_help() -> None:
    table = table_markdown(summarise(records()))
    arcface = next(line for line in table.splitlines() if "| arcface |" in line)
    assert "0.6900 (-0.0100) !" in arcface and "11.0000 (+1.0000) !" in arcface
    assert arcface.rstrip().endswith("| R@1 down, OPIS up |")
    smooth = next(line for line in table.splitlines() if "| smooth_ap |" in line)
    assert "!" not in smooth and "0.8300 ± 0.0283 (+0.0200)" in smooth
    assert "- b: OPIS -1.5000 x1e-3" in table


def test_write_tables(tmp_path) -> None:
    folder = write_records(tmp_path / "study", records())
    files = write_tables(folder)
    assert [path.name for path in files] == ["results.csv", "table.csv", "table.md"]
    with open(folder / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    with open(folder / "table.csv") as handle:
        rows = {row["loss"]: row for row in csv.DictReader(handle)}
    assert float(rows["smooth_ap"]["opis_change"]) == pytest.approx(-0.004)
    assert rows["arcface"]["not_helped"] == "R@1 down; OPIS up" and rows["arcface"]["recall@1_tcm_std"] == ""


def test_empty_or_missing_study(tmp_path) -> None:
    with pytest.raises(TcdmlInputError, match="no such study folder"):
        write_tables(tmp_path / "absent")
    with pytest.raises(TcdmlInputError, match="no finished cell"):
        write_tables(tmp_path)
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(TcdmlInputError, match="not a study result"):
        write_tables(tmp_path)


def test_rows_without_a_pair_are_not_counted() -> None:
    """A benchmark whose only row has base runs but no +TCM run yet: no "helped" count, an explicit line."""
    unpaired = [record("c", "smooth_ap", "default", False, 0, **{"recall@1": 0.5, "opis": 0.01})]
    rows = summarise(records() + unpaired)
    assert benchmark_summary(rows)["c"]["rows"] == 0 and benchmark_summary(rows)["b"]["rows"] == 2
    assert "- c: no seed finished both without and with TCM yet" in table_markdown(rows)
