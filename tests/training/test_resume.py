"""Resume: an interrupted run continued from its last checkpoint ends exactly like an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from tcdml.cli.main import main
from tcdml.training.config import TrainConfig
from tcdml.training.trainer import fit
from tests.helpers import tiny_config


class Interrupted(RuntimeError):
    pass


class InterruptAt(pl.Callback):
    """Fail at the given (epoch, batch), like a killed job: no checkpoint is written for that epoch."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if (trainer.current_epoch, args[-1]) == self.at:
            raise Interrupted


def test_resume_after_interruption_matches_uninterrupted_run(
    image_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    overrides = {"trainer": {"max_epochs": 3, "log_every_n_steps": 1}, "data": {"num_workers": 1}}
    whole = fit(TrainConfig.from_dict(tiny_config(image_tree, tmp_path / "whole", **overrides)))

    values = tiny_config(image_tree, tmp_path / "split", **overrides)
    with pytest.raises(Interrupted):
        fit(TrainConfig.from_dict(values), callbacks=[InterruptAt(epoch=2, batch=1)])
    last = tmp_path / "split" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1  # the state after 2 of 3 epochs

    stale = last.parent / ".last.ckpt.killed.tmp"  # what a writer killed mid-checkpoint leaves
    stale.write_bytes(b"")

    config_file = tmp_path / "split.yaml"
    config_file.write_text(yaml.safe_dump(values))
    capsys.readouterr()
    assert main(["train", str(config_file), "--resume", str(last)]) == 0
    out = capsys.readouterr().out
    resumed = json.loads(out[out.index("{") :])

    assert resumed["metrics"] == whole.metrics
    expected = torch.load(whole.last_checkpoint, weights_only=True)
    actual = torch.load(resumed["last_checkpoint"], weights_only=True)
    assert actual["epoch"] == expected["epoch"] == 2 and actual["global_step"] == expected["global_step"]
    for key, tensor in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][key], tensor), key
    for got, want in zip(
        actual["optimizer_states"][0]["state"].values(),
        expected["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(got[name], want[name]) for name in want)
    assert actual["lr_schedulers"] == expected["lr_schedulers"]

    # One log per run, continued on resume: no second folder, no step logged twice, every epoch's rows.
    logs = tmp_path / "split" / "logs"
    assert sorted(path.name for path in logs.iterdir()) == ["metrics.csv"]
    rows = list(csv.DictReader((logs / "metrics.csv").open()))
    assert rows == list(csv.DictReader((tmp_path / "whole" / "logs" / "metrics.csv").open()))
    step_rows = [row["step"] for row in rows if row["train/loss_step"]]
    assert len(step_rows) == len(set(step_rows)) == 9  # 3 epochs x 3 batches
    assert [row["epoch"] for row in rows if row["train/loss_epoch"]] == ["0", "1", "2"]
    assert [row["epoch"] for row in rows if row["val/recall@1"]] == ["0", "1", "2"]
    assert not list(last.parent.glob("*.tmp"))


def test_a_run_leaves_no_temporary_files(image_tree: Path, tmp_path: Path) -> None:
    result = fit(TrainConfig.from_dict(tiny_config(image_tree, tmp_path / "run")))
    folder = Path(result.last_checkpoint).parent
    assert sorted(path.name for path in folder.iterdir()) == ["best.ckpt", "last.ckpt"]


class SendInterrupt(pl.Callback):
    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if args[-1] == 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupt_reaches_the_caller(image_tree: Path, tmp_path: Path) -> None:
    """Lightning turns Ctrl-C into SystemExit(1) and then ignores SIGINT; fit re-raises and restores it."""
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit(TrainConfig.from_dict(tiny_config(image_tree, tmp_path / "run")), callbacks=[SendInterrupt()])
    assert signal.getsignal(signal.SIGINT) is before
