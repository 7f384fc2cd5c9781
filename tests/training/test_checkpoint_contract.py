"""A checkpoint is read back for its model and input contract only: a run trained with a loss added by
``register_loss`` and a dataset added to ``DATASETS`` embeds and exports in a fresh process that never
registered them (issue 22, defect 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcdml.data import DATASETS
from tcdml.data.folder import load_image_folder
from tcdml.losses import SmoothAPLoss, register_loss
from tcdml.losses.registry import NATIVE
from tcdml.training.config import TrainConfig
from tcdml.training.trainer import fit
from tests.helpers import tiny_config

SRC = str(Path(__file__).resolve().parents[2] / "src")


class PluginSmoothAP(SmoothAPLoss):
    """A user's loss, known only to the process that registers it."""


def plugin_folder(root: str, split: str = "train", transform=None):
    """A user's dataset: the folder layout under another name, known only to this process."""
    return load_image_folder(root, split=split, transform=transform)


@pytest.fixture
def plugins():
    losses = dict(NATIVE)
    register_loss(PluginSmoothAP, "plugin_smooth_ap")
    DATASETS["plugin_folder"] = plugin_folder
    yield
    del DATASETS["plugin_folder"]
    NATIVE.clear()
    NATIVE.update(losses)


def fresh(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``tcdml ARGS`` in a new interpreter (no plugin is registered there)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    command = [sys.executable, "-m", "tcdml.cli.main", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def summary(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout[done.stdout.index("{") :])


def test_a_plugin_trained_checkpoint_embeds_and_exports_without_the_plugins(
    plugins, image_tree: Path, tmp_path: Path
) -> None:
    values = tiny_config(
        image_tree,
        tmp_path / "run",
        data={"dataset": "plugin_folder"},
        loss={"name": "plugin_smooth_ap", "tcm": None},
        trainer={"max_epochs": 1},
    )
    result = fit(TrainConfig.from_dict(values))
    checkpoint = result.last_checkpoint
    embed = ["embed", checkpoint, "--dataset", "folder", "--data", str(image_tree), "-o", "emb.npz"]
    embedded = summary(fresh([*embed, "--num-workers", "0"], tmp_path))
    assert embedded["embedding_size"] == 16 and embedded["num_samples"] > 0
    calibrated = fresh(["calibrate", "emb.npz", "--target-far", "0.1", "-o", "t.json"], tmp_path)
    assert calibrated.returncode == 0, calibrated.stderr
    exported = summary(fresh(["export", checkpoint, "--calibration", "t.json", "-o", "served"], tmp_path))
    assert (tmp_path / "served" / exported["onnx"]).is_file()


def test_a_fresh_process_without_the_plugin_dataset_names_it_when_asked_to_read_it(
    plugins, image_tree: Path, tmp_path: Path
) -> None:
    values = tiny_config(
        image_tree, tmp_path / "run", data={"dataset": "plugin_folder"}, trainer={"max_epochs": 1}
    )
    checkpoint = fit(TrainConfig.from_dict(values)).last_checkpoint
    args = ["embed", checkpoint, "--data", str(image_tree), "-o", "emb.npz", "--num-workers", "0"]
    done = fresh(args, tmp_path)
    assert done.returncode == 2 and "plugin_folder" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "emb.npz").exists()
