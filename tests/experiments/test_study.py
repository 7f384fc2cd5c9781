"""A reduced study end to end on MNIST (2-batch epochs): result.json per cell, tables, resume, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mlxtend")
pytest.importorskip("pytorch_lightning")

from tcdml.experiments.study import CellFailed, run_study
from tcdml.experiments.study_config import load_study
from tcdml.experiments.study_table import write_tables
from tests.experiments.study_helpers import BROKEN, short_epochs, write_study

METRICS = ("recall@1", "map@r", "opis", "eps_opis", "far_spread", "frr_spread")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny study run once: 2 losses x base/+TCM x 1 seed = 4 cells."""
    folder = tmp_path_factory.mktemp("study")
    monkeypatch = pytest.MonkeyPatch()
    fitted = short_epochs(monkeypatch)
    lines: list[str] = []
    study = load_study(write_study(folder))
    run = run_study(study, quiet=True, echo=lines.append)
    yield study, run, lines, fitted
    monkeypatch.undo()


def test_every_cell_writes_its_result(finished) -> None:
    study, run, lines, fitted = finished
    assert len(run.ran) == 4 and not run.skipped
    assert lines[0].startswith("[1/4] mnist / smooth_ap / default / base / seed 0 … ")
    for cell in run.cells:
        result = json.loads((cell.directory(study.output_dir) / "result.json").read_text())
        assert result["cell"] == cell.keys() and result["seed"] == 0 and result["seconds"] > 0
        assert all(isinstance(result["metrics"][key], float) for key in METRICS)
        loss = result["config"]["loss"]
        # The benchmark's own loss (ArcFace + TCM) is replaced; base cells have TCM off.
        assert loss["name"] == cell.loss and bool(loss["tcm"]) == cell.tcm
        assert result["config"]["trainer"]["progress_bar"] is False
    arcface = [config for config in fitted if config.loss.name == "arcface"]
    assert arcface and all(
        c.loss.params == {"scale": 16, "margin": 10, "num_classes": 10, "embedding_size": 8} for c in arcface
    )


def test_tables_from_the_finished_cells(finished) -> None:
    study = finished[0]
    files = write_tables(study.output_dir)
    assert [path.name for path in files] == ["results.csv", "table.csv", "table.md"]
    results = (study.output_dir / "results.csv").read_text().splitlines()
    assert len(results) == 5 and all(key in results[0] for key in METRICS)
    table = (study.output_dir / "table.md").read_text()
    assert all(label in table for label in ("R@1", "OPIS x1e-3", "noise floor x1e-3", "eps-OPIS x1e-3"))
    assert "| mnist | smooth_ap | default | tcm |" in table and "| mnist | arcface | default | tcm |" in table
    assert "- mnist / tcm: OPIS better in" in table
    smooth = next(line for line in table.splitlines() if "| smooth_ap |" in line)
    assert "no interval" not in smooth and " [" in smooth  # every cell kept its embeddings


def test_a_cell_without_embeddings_gets_them_from_its_checkpoint(finished, monkeypatch) -> None:
    """Cells measured by an older tcdml have no embeddings.npz: the next run writes it, training nothing."""
    from tcdml.experiments import runs
    from tcdml.io import load_embeddings_file

    study = finished[0]
    cell = finished[1].cells[0]
    path = cell.directory(study.output_dir) / "embeddings.npz"
    kept = load_embeddings_file(path)
    path.unlink()
    monkeypatch.setattr(runs, "fit_module", lambda *a, **k: pytest.fail("a finished cell was trained again"))
    lines: list[str] = []
    run_study(study, only=[f"loss={cell.loss}", f"tcm={cell.arm}", "seed=0"], echo=lines.append)
    assert "embeddings written from its last checkpoint" in lines[0]
    again = load_embeddings_file(path)
    np.testing.assert_allclose(again.embeddings, kept.embeddings, atol=1e-6)
    np.testing.assert_array_equal(again.labels, kept.labels)


def test_second_run_skips_every_cell(finished, monkeypatch) -> None:
    study = finished[0]
    results = [cell.directory(study.output_dir) / "result.json" for cell in finished[1].cells]
    before = [path.stat().st_mtime_ns for path in results]
    from tcdml.experiments import runs

    monkeypatch.setattr(runs, "fit_module", lambda *a, **k: pytest.fail("a finished cell was trained again"))
    lines: list[str] = []
    run = run_study(study, echo=lines.append)
    assert len(run.skipped) == 4 and not run.ran
    assert all("skipped" in line for line in lines)
    assert [path.stat().st_mtime_ns for path in results] == before


def test_a_cell_without_result_resumes_from_its_checkpoint(finished, monkeypatch) -> None:
    study = finished[0]
    short_epochs(monkeypatch)
    result = finished[1].cells[0].directory(study.output_dir) / "result.json"
    before = json.loads(result.read_text())
    result.unlink()
    run = run_study(study, only=["loss=smooth_ap", "tcm=base"], quiet=True, echo=lambda line: None)
    after = json.loads(result.read_text())
    assert len(run.ran) == 1 and after["resumed_from"].endswith("last.ckpt")
    assert after["metrics"]["recall@1"] == before["metrics"]["recall@1"]


def test_a_result_of_another_config_is_not_kept(finished, monkeypatch) -> None:
    """A result.json measured with other settings (here: other TCM margins) is measured again."""
    study = finished[0]
    short_epochs(monkeypatch)
    cell = next(cell for cell in finished[1].cells if cell.tcm and cell.loss == "smooth_ap")
    result = cell.directory(study.output_dir) / "result.json"
    stale = json.loads(result.read_text())
    stale["config"]["loss"]["tcm"]["margin_neg"] = 0.1
    stale["metrics"]["recall@1"] = -1.0
    result.write_text(json.dumps(stale))
    lines: list[str] = []
    run = run_study(study, only=["loss=smooth_ap", "tcm=tcm"], quiet=True, echo=lines.append)
    assert len(run.ran) == 1 and "config changed" in lines[0]
    assert json.loads(result.read_text())["metrics"]["recall@1"] >= 0


def test_a_failing_cell_stops_with_its_name(tmp_path) -> None:
    path = write_study(tmp_path, losses={"broken": BROKEN})
    with pytest.raises(CellFailed, match=r"cell mnist / broken / default / base / seed 0 failed: "):
        run_study(load_study(path), quiet=True, echo=lambda line: None)
    assert (tmp_path / "out/mnist/broken/default/base/seed0/error.log").is_file()
    assert not list((tmp_path / "out").rglob("result.json"))


def test_the_feature_cache_setting_does_not_rerun_finished_cells(finished, tmp_path, monkeypatch) -> None:
    """Where features are cached cannot change a result: neither another folder nor its absence from an
    older record makes a finished cell train again."""
    from tcdml.experiments import runs

    study, run = finished[0], finished[1]
    path = run.cells[0].directory(study.output_dir) / "result.json"
    record = json.loads(path.read_text())
    del record["config"]["data"]["feature_cache"]  # measured before the key existed
    path.write_text(json.dumps(record))
    monkeypatch.setattr(runs, "fit_module", lambda *a, **k: pytest.fail("a finished cell was trained again"))
    again = run_study(study, feature_cache=str(tmp_path / "cache"), echo=lambda line: None)
    assert len(again.skipped) == 4 and not again.ran
