"""`tcdml evaluate` and `tcdml calibrate`: the docs/spec.md interface, files written, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tcdml.cli.main import main
from tcdml.io import save_embeddings_file

SPEC_MD_KEYS = {
    "recall@1",
    "recall@2",
    "recall@4",
    "recall@8",
    "map@r",
    "opis",
    "eps_opis",
    "t_lo",
    "t_hi",
    "num_classes",
}


@pytest.fixture
def digits_file(tmp_path, digits):
    x, y = digits
    return save_embeddings_file(tmp_path / "digits.npz", x, y)


def test_evaluate_json_is_the_only_stdout(digits_file, tmp_path, capsys) -> None:
    plots, table = tmp_path / "plots", tmp_path / "classes.csv"
    argv = ["evaluate", str(digits_file), "--format", "json", "--plot", str(plots), "--per-class", str(table)]
    assert (
        main([*argv, "--far-min", "0.005", "--beta", "2", "--eps", "0.2", "--thresholds", "50", "--k", "1,5"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert {"recall@1", "recall@5", "map@r", "opis", "eps_opis", "t_lo", "t_hi", "num_classes"} <= set(out)
    assert (
        out["far_min"] == 0.005 and out["beta"] == 2.0 and out["eps"] == 0.2 and out["num_thresholds"] == 50
    )
    assert sorted(p.name for p in plots.iterdir()) == ["utility_curves.png", "utility_curves.svg"]
    rows = table.read_text().splitlines()
    assert (
        rows[0].startswith("label,size,positive_pairs,negative_pairs,mean_utility,far@") and len(rows) == 11
    )


def test_evaluate_defaults_give_spec_keys(digits_file, capsys) -> None:
    assert main(["evaluate", str(digits_file), "--format", "json", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "query" in captured.err  # the progress bar goes to stderr; stdout stays pure JSON
    out = json.loads(captured.out)
    assert SPEC_MD_KEYS <= set(out)
    assert out["num_classes"] == 10


def test_evaluate_table_format(digits_file, capsys) -> None:
    assert main(["evaluate", str(digits_file)]) == 0
    out = capsys.readouterr().out
    assert "opis" in out and "recall@1" in out


def test_calibrate_writes_json_and_figure(digits_file, tmp_path, capsys) -> None:
    out_json, plots = tmp_path / "threshold.json", tmp_path / "fig"
    argv = ["calibrate", str(digits_file), "--target-far", "1e-3", "-o", str(out_json), "--plot", str(plots)]
    assert main([*argv, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out_json.read_text()) == printed
    assert printed["far"] <= 1e-3 and printed["target"] == "far"
    assert {"min", "median", "p90", "max"} == set(printed["class_far"])
    assert sorted(p.name for p in plots.iterdir()) == ["class_far_frr.png", "class_far_frr.svg"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--far-min", "0.2", "--far-max", "0.1"], "far_min=0.2 must be smaller than far_max=0.1"),
        (["--eps", "1.5"], "eps=1.5 must lie in (0, 1)"),
        (["--thresholds", "1"], "at least 2 thresholds"),
        (["--k", "5000"], "k=5000 is larger than the 1796 neighbours"),
        (["--k", "one"], "expected comma-separated positive integers"),
        (["--format", "xml"], "'xml' is not one of"),
    ],
)
def test_bad_options_one_line_and_nothing_written(digits_file, tmp_path, capsys, extra, message) -> None:
    plots, table = tmp_path / "plots", tmp_path / "c.csv"
    argv = ["evaluate", str(digits_file), "--plot", str(plots), "--per-class", str(table), *extra]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tcdml: error: ") and message in captured.err
    assert captured.err.count("\n") == 1
    assert not plots.exists() and not table.exists()


def test_bad_files(tmp_path, capsys) -> None:
    missing_key = tmp_path / "nolabels.npz"
    np.savez(missing_key, embeddings=np.ones((4, 2)))
    assert main(["evaluate", str(missing_key)]) == 2
    assert "nolabels.npz: missing array 'labels'" in capsys.readouterr().err
    nan_file = save_embeddings_file(
        tmp_path / "nan.npz", np.array([[1.0, 0], [np.nan, 1], [0, 1]]), np.array([0, 0, 1])
    )
    assert main(["calibrate", str(nan_file), "--target-far", "0.1"]) == 2
    assert "NaN or Inf" in capsys.readouterr().err
    assert main(["calibrate", str(nan_file)]) == 2
    assert main(["evaluate", str(tmp_path / "absent.npz")]) == 2


def test_installed_entry_point(digits_file) -> None:
    exe = shutil.which("tcdml", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("tcdml entry point not installed beside this Python")
    run = subprocess.run(
        [exe, "evaluate", str(digits_file), "--format", "json"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert SPEC_MD_KEYS <= set(json.loads(run.stdout))
    bad = subprocess.run([exe, "evaluate", str(digits_file), "--eps", "0"], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and bad.stdout == ""


def test_bare_tcdml_lists_the_commands_and_says_one_line(capsys) -> None:
    from tests.badinput.harness import expect_clean_failure

    expect_clean_failure([], capsys, contains="no command given")
