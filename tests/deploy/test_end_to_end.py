"""The whole path on real digits: tcdml train (small_cnn on MNIST, 1 epoch) -> tcdml embed -> tcdml calibrate
-o -> tcdml export -> load_matcher, whose embeddings, threshold and decisions are tcdml's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tcdml.cli.main import main
from tcdml.deploy import load_matcher
from tcdml.io import load_embeddings_file
from tests.badinput.harness import expect_clean_failure
from tests.deploy.helpers import prepared_images


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert main([str(arg) for arg in args]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])  # Lightning may print above the summary


def test_train_calibrate_export_serve(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = {
        "data": {
            "dataset": "mnist",
            "root": "unused",
            "image_size": 28,
            "resize_size": 28,
            "crop_scale": [0.8, 1.0],
            "hflip": False,
            "classes_per_batch": 10,
            "samples_per_class": 16,
            "eval_batch_size": 500,
            "num_workers": 0,
            "val_classes": 0,  # closed set
        },
        "model": {"backbone": "small_cnn", "embedding_size": 16, "channels_last": False},
        "loss": {"name": "smooth_ap", "tcm": True},
        "optim": {"optimizer": "adamw", "lr": 3e-3, "warmup_epochs": 0.2},
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "progress_bar": False},
        "eval": {"ks": [1]},
        "seed": 0,
        "output_dir": str(tmp_path / "run"),
    }
    (tmp_path / "mnist.yaml").write_text(yaml.safe_dump(config))
    trained = run_cli(["train", tmp_path / "mnist.yaml"], capsys)
    checkpoint = trained["last_checkpoint"]
    run_cli(
        ["embed", checkpoint, "--data", "unused", "-o", tmp_path / "emb.npz", "--num-workers", "0"], capsys
    )
    calibrated = run_cli(
        [
            "calibrate",
            tmp_path / "emb.npz",
            "--target-far",
            "0.01",
            "-o",
            tmp_path / "t.json",
            "--format",
            "json",
        ],
        capsys,
    )
    exported = run_cli(
        ["export", checkpoint, "--calibration", tmp_path / "t.json", "-o", tmp_path / "served"], capsys
    )
    assert exported["threshold"] == calibrated["threshold"] and exported["onnx"] == "model.onnx"

    matcher = load_matcher(tmp_path / "served", manifest_sha256=exported["manifest_sha256"])  # pinned
    manifest = matcher.manifest.to_dict()
    assert matcher.threshold == calibrated["threshold"]
    assert manifest["calibration"]["target"] == "far" and manifest["calibration"]["target_far"] == 0.01
    assert manifest["calibration"]["far"] == calibrated["far"]
    assert manifest["calibration"]["class_far"] == calibrated["class_far"]
    assert manifest["input"]["image_size"] == 28 and manifest["input"]["resize_size"] == 28
    data = load_embeddings_file(tmp_path / "emb.npz")
    contract = matcher.input
    images = prepared_images(  # the first digits of the test split, through tcdml's test transform
        "mnist", 1000, image_size=28, resize_size=28, mean=contract["mean"], std=contract["std"]
    )
    embedded = matcher.embed(images)
    assert np.abs(embedded - data.embeddings).max() <= 1e-4
    same, different = (
        np.flatnonzero(data.labels == data.labels[0]),
        np.flatnonzero(data.labels != data.labels[0]),
    )
    result = matcher.match(images[[0, 0]], images[[same[1], different[0]]])
    sims = data.embeddings[[same[1], different[0]]] @ data.embeddings[0]
    np.testing.assert_array_equal(result.accept, sims >= matcher.threshold)

    # the folder exists now: without --force nothing changes; with --force it is replaced whole
    expect_clean_failure(
        ["export", checkpoint, "--calibration", tmp_path / "t.json", "-o", tmp_path / "served"],
        capsys,
        watched=[tmp_path / "served"],
        contains="already exists (use --force",
    )
    run_cli(
        ["export", checkpoint, "--calibration", tmp_path / "t.json", "-o", tmp_path / "served", "--force"],
        capsys,
    )
    assert sorted(p.name for p in (tmp_path / "served").iterdir()) == ["model.onnx", "tcdml-export.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
