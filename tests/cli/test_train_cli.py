"""End to end: ``tcdml train`` a tiny timm model for 2 epochs, then ``tcdml embed`` and ``tcdml evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tcdml.cli.main import main
from tcdml.io import load_embeddings_file


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])  # Lightning may print above the summary


def test_train_writes_checkpoints_logs_and_an_embedding_file(
    config_file: Path, image_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    summary = run_cli(["train", str(config_file), "trainer.max_epochs=2", "loss.tcm.margin_pos=0.85"], capsys)
    run = tmp_path / "run"
    assert summary["last_checkpoint"] == str(run / "checkpoints" / "last.ckpt")
    assert summary["best_checkpoint"] == str(run / "checkpoints" / "best.ckpt")
    for key in ("val/recall@1", "val/recall@2", "val/map@r", "val/opis", "val/eps_opis", "train/loss_epoch"):
        assert np.isfinite(summary["metrics"][key]), key
    checkpoint = torch.load(summary["last_checkpoint"], weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["tcdml_config"]["loss"]["tcm"]["margin_pos"] == 0.85
    assert {"optimizer_states", "lr_schedulers", "loops", "MetricDataModule"} <= set(checkpoint)
    assert checkpoint["MetricDataModule"] == {"seed": 3, "epoch": 1}
    log = (run / "logs" / "metrics.csv").read_text()
    assert "val/opis" in log and "train/loss_epoch" in log

    out = tmp_path / "emb.npz"
    embedded = run_cli(
        [
            "embed",
            summary["best_checkpoint"],
            "--data",
            str(image_tree),
            "-o",
            str(out),
            "--num-workers",
            "0",
        ],
        capsys,
    )
    assert embedded["num_samples"] == 18 and embedded["embedding_size"] == 16
    data = load_embeddings_file(out)
    assert data.embeddings.shape == (18, 16) and data.ids is not None
    np.testing.assert_allclose(np.linalg.norm(data.embeddings, axis=1), 1.0, rtol=1e-5)

    metrics = run_cli(["evaluate", str(out), "--format", "json", "--k", "1,2"], capsys)
    # The same model (the kept one) on the same images as the test report after training.
    assert summary["test"] == json.loads((run / "test_report.json").read_text())
    assert summary["test"]["kept_epoch"] == summary["kept_epoch"] in (0, 1, 2)
    for key in ("recall@1", "map@r", "opis", "eps_opis"):
        assert metrics[key] == pytest.approx(summary["test"][key], rel=1e-4), key


def test_bad_override_is_a_one_line_error(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(config_file), "trainer.max_epoch=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'trainer.max_epoch'" in err and "override" in err


def test_embed_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bogus = tmp_path / "x.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    assert main(["embed", str(bogus), "--data", str(tmp_path), "-o", str(tmp_path / "o.npz")]) == 2
    assert "cannot read as a tcdml checkpoint" in capsys.readouterr().err
