"""`tcdml compare A B` and the intervals of `tcdml evaluate`: docs/spec.md keys, figure, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tcdml.cli.main import main
from tcdml.io import save_embeddings_file
from tests.badinput.harness import expect_clean_failure

DELTA_KEYS = {
    "delta_opis",
    "delta_opis_ci95",
    "delta_eps_opis",
    "delta_eps_opis_ci95",
    "delta_recall@1",
    "delta_recall@1_ci95",
    "delta_map@r",
    "delta_map@r_ci95",
}


@pytest.fixture
def pair(tmp_path, digits):
    x, y = digits
    rng = np.random.default_rng(0)
    ids = np.array([f"digit-{i}" for i in range(len(y))])
    a = save_embeddings_file(tmp_path / "a.npz", x, y, ids=ids)
    b = save_embeddings_file(tmp_path / "b.npz", x + rng.normal(size=x.shape).astype(np.float32), y, ids=ids)
    return a, b


def test_compare_json_has_every_delta_and_a_figure(pair, tmp_path, capsys) -> None:
    a, b = pair
    figures = tmp_path / "figures"
    assert main(["compare", str(a), str(b), "--format", "json", "--plot", str(figures)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert DELTA_KEYS <= set(out)
    assert out["delta_opis"] == pytest.approx(out["b"]["opis"] - out["a"]["opis"])
    low, high = out["delta_map@r_ci95"]
    assert low <= out["delta_map@r"] <= high
    assert sorted(p.name for p in figures.iterdir()) == [
        "utility_curves_compare.png",
        "utility_curves_compare.svg",
    ]


def test_compare_with_itself_gives_zero_deltas(pair, capsys) -> None:
    a, _ = pair
    assert main(["compare", str(a), str(a), "--format", "json", "--bootstrap", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("opis", "eps_opis", "recall@1", "map@r"):
        assert out[f"delta_{key}"] == 0.0
        assert out[f"delta_{key}_ci95"][0] <= 0.0 <= out[f"delta_{key}_ci95"][1]
        assert out[f"verdict_{key}"] == "no detectable change"


def test_evaluate_prints_intervals_and_noise_floor(pair, capsys) -> None:
    a, _ = pair
    assert main(["evaluate", str(a), "--format", "json", "--level", "0.9", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["opis_ci90"][0] <= out["opis"] <= out["opis_ci90"][1]
    assert out["opis_excess"] == pytest.approx(out["opis"] - out["opis_noise_floor"])
    assert main(["evaluate", str(a)]) == 0
    table = capsys.readouterr().out
    assert "opis_ci95" in table and "opis_noise_floor" in table and "opis_excess" in table


def _variant(tmp_path, digits, name, **changes):
    x, y = digits
    arrays = {"embeddings": x, "labels": y, "ids": np.array([f"digit-{i}" for i in range(len(y))])}
    arrays.update(changes)
    return save_embeddings_file(tmp_path / name, **arrays)


BAD = {
    "fewer_rows": (
        lambda d: {"embeddings": d[0][:-1], "labels": d[1][:-1], "ids": None},
        "1797 vs 1796 samples",
    ),
    "other_labels": (lambda d: {"labels": np.roll(d[1], 1)}, "'labels' differ (first at row 0"),
    "other_ids": (
        lambda d: {"ids": np.array([f"x-{i}" for i in range(len(d[1]))])},
        "'ids' differ (first at row 0",
    ),
    "mask_in_one": (lambda d: {"is_query": np.arange(len(d[1])) % 2 == 0}, "only one file has 'is_query'"),
    "nan_row": (lambda d: {"embeddings": np.where(np.arange(len(d[1]))[:, None] == 5, np.nan, d[0])}, "NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_compare_refuses_different_samples(case, pair, tmp_path, digits, capsys) -> None:
    a, _ = pair
    make, message = BAD[case]
    b = _variant(tmp_path, digits, "other.npz", **make(digits))
    figures = tmp_path / "figures"
    argv = ["compare", a, b, "--plot", figures, "--format", "json"]
    expect_clean_failure(argv, capsys, watched=[figures], contains=message)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--bootstrap", "0"], "--bootstrap=0: expected an integer in [1, 100,000]"),
        (["--bootstrap", "-5"], "--bootstrap=-5"),
        (["--bootstrap", "1.5"], "--bootstrap"),
        (["--level", "0"], "--level=0.0: expected a confidence level in (0, 1)"),
        (["--level", "1"], "--level=1.0"),
        (["--level", "nan"], "--level=nan"),
        (["--seed", "-1"], "--seed=-1"),
        (["--bootstrap", "1000000000"], "--bootstrap=1000000000: expected an integer in [1, 100,000]"),
    ],
)
@pytest.mark.parametrize("command", ["compare", "evaluate"])
def test_bad_interval_options(command, option, message, pair, tmp_path, capsys) -> None:
    a, b = pair
    files = [a, b] if command == "compare" else [a]
    figures = tmp_path / "figures"
    expect_clean_failure(
        [command, *files, *option, "--plot", figures], capsys, watched=[figures], contains=message
    )


def test_compare_table_reads_one_row_per_metric(pair, capsys) -> None:
    a, b = pair
    assert main(["compare", str(a), str(b), "--bootstrap", "100", "--fmr", "1e-3,1e-2"]) == 0
    table = capsys.readouterr().out
    assert "B − A [95 % interval]" in table and "verdict" in table
    for name in ("R@1", "MAP@R", "OPIS x1e-3", "OPIS debiased x1e-3", "OPIS noise floor x1e-3", "ROC AUC"):
        assert name in table, name
    assert "EER" in table and "FNMR @ FMR 1e-3" in table and "FNMR @ FMR 1e-4" not in table
    assert "None" not in table and "opis_undefined" not in table
    rows = [line for line in table.splitlines() if line.startswith("│ R@1")]
    assert len(rows) == 1 and rows[0].rstrip(" │").endswith(("better", "worse", "no detectable change"))


def test_compare_json_keeps_its_keys_and_adds_the_verification_deltas(pair, capsys) -> None:
    a, b = pair
    assert main(["compare", str(a), str(b), "--format", "json", "--bootstrap", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert DELTA_KEYS <= set(out) and "opis_undefined" in out and "resamples" in out
    for key in ("auc", "eer", "fnmr@fmr=1e-4", "fnmr@fmr=1e-3", "fnmr@fmr=1e-2", "opis_debiased"):
        low, high = out[f"delta_{key}_ci95"]
        assert low <= out[f"delta_{key}"] <= high and out[f"verdict_{key}"], key
    assert {"opis_debiased", "auc", "eer", "opis_noise_floor"} <= set(out["a"])


def test_evaluate_table_is_grouped_and_has_no_none(pair, capsys) -> None:
    a, _ = pair
    assert main(["evaluate", str(a), "--bootstrap", "100"]) == 0
    table = capsys.readouterr().out
    for section in ("retrieval", "consistency", "verification", "calibration range", "counts"):
        assert section in table, section
    assert "fnmr@fmr=1e-3" in table and "opis_debiased" in table and "None" not in table
