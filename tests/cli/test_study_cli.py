"""``tcdml study`` / ``study-report`` / ``pareto`` through ``main()``: dry run, a 2-cell run, errors."""

from __future__ import annotations

import pytest

from tcdml.cli.main import main
from tests.experiments.study_helpers import BROKEN, record, short_epochs, write_records, write_study


def test_dry_run_lists_every_cell(tmp_path, capsys) -> None:
    path = write_study(tmp_path, seeds=[0, 1], variants={"bs64": [], "bs128": []})
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[1/16] mnist / smooth_ap / bs64 / base / seed 0" and len(out) == 17
    assert out[-1].startswith("16 cells (0 done, 16 to run) in ")
    assert main(["study", str(path), "--dry-run", "--only", "loss=arcface", "--only", "seed=1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("4 cells (0 done, 4 to run)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["study", "absent.yaml"], "absent.yaml: no such study config file"),
        (["study", "{study}", "--only", "loss=nope"], "--only loss=nope: no such loss"),
        (["study-report", "absent"], "absent: no such study folder"),
        (["pareto", "{folder}"], "no finished cell"),
    ],
)
def test_errors_are_one_line(tmp_path, capsys, args, message) -> None:
    study = write_study(tmp_path)
    args = [arg.format(study=study, folder=tmp_path) for arg in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcdml: error: ") and message in err and err.count("\n") == 1


def test_study_runs_then_reports(tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("mlxtend")
    short_epochs(monkeypatch)
    path = write_study(tmp_path, losses={"smooth_ap": {"name": "smooth_ap"}})
    assert main(["study", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "[2/2] mnist / smooth_ap / default / +tcm / seed 0 … " in out
    assert "2 cells trained, 0 skipped" in out and "table.md" in out
    assert main(["study-report", str(path)]) == 0  # the YAML stands for its output_dir
    assert "| mnist | smooth_ap | default |" in capsys.readouterr().out
    assert main(["study", str(path), "--dry-run"]) == 0
    assert "2 cells (2 done, 0 to run)" in capsys.readouterr().out


def test_a_failing_cell_is_one_line_naming_it(tmp_path, capsys) -> None:
    path = write_study(tmp_path, losses={"broken": BROKEN})
    assert main(["study", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcdml: error: cell mnist / broken / default / base / seed 0 failed: ")


def test_pareto_writes_figure_and_report(tmp_path, capsys) -> None:
    items = [
        record("g", loss, "bs64", tcm, 0, **{"recall@1": 0.8 - 0.1 * i + 0.01 * tcm, "opis": 0.01 * (i + 1)})
        for i, loss in enumerate(("a", "b", "c"))
        for tcm in (False, True)
    ]
    folder = write_records(tmp_path / "study", items)
    assert main(["pareto", str(folder), "-o", str(tmp_path / "fig")]) == 0
    assert "pareto.png" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "fig").iterdir()} == {"pareto.png", "pareto.svg", "pareto.md"}


def test_a_loss_typo_stops_the_study_before_any_cell_trains(tmp_path, capsys) -> None:
    path = write_study(tmp_path, losses={"typo": {"name": "smooth_ap", "params": {"bogus": 1}}})
    assert main(["study", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key 'loss.params.bogus' = 1" in err
    assert not (tmp_path / "out").exists()
