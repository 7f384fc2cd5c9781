"""``tcdml export`` bad input: one line naming the file/key/value, exit 2, no output folder nor temporary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tcdml.cli.main import main
from tcdml.models import ModelConfig, build_model
from tests.badinput.harness import expect_clean_failure
from tests.deploy.helpers import write_calibration, write_checkpoint

CONFIG = {
    "data": {"dataset": "mnist", "image_size": 28},
    "model": {"backbone": "small_cnn", "embedding_size": 8},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict(CONFIG["model"]))
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.ckpt", model, CONFIG)


def _argv(source: Path, calibration: Path, out: Path, *extra: str) -> list:
    return ["export", source, "--calibration", calibration, "-o", out, *extra]


def _calibration_with(tmp_path: Path, **changes) -> Path:
    path = write_calibration(tmp_path / "t.json")
    data = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps({k: v for k, v in data.items() if v != "DROP"}))
    return path


@pytest.mark.parametrize(
    ("changes", "contains"),
    [
        ({"threshold": "DROP"}, ["t.json", "no 'threshold' key"]),
        ({"threshold": 1.5}, ["t.json", "threshold=1.5", "[-1, 1]"]),
        ({"threshold": "0.5"}, ["threshold='0.5'"]),
        ({"target": "tpr"}, ["target='tpr'"]),
        ({"target_rate": 0}, ["target_rate=0"]),
        ({"embedding_size": 32}, ["embedding_size=32", "8"]),
        ({"far": 3}, ["far=3"]),
    ],
    ids=["no-threshold", "threshold-range", "threshold-type", "target", "target-rate", "width", "far"],
)
def test_bad_calibration(checkpoint: Path, tmp_path: Path, capsys, changes: dict, contains: list) -> None:
    calibration = _calibration_with(tmp_path, **changes)
    out = tmp_path / "out"
    expect_clean_failure(_argv(checkpoint, calibration, out), capsys, watched=[tmp_path], contains=contains)


def test_calibration_not_json_or_missing(checkpoint: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "t.json").write_text("threshold: 0.5")
    out = tmp_path / "out"
    expect_clean_failure(
        _argv(checkpoint, tmp_path / "t.json", out), capsys, watched=[tmp_path], contains="not JSON"
    )
    expect_clean_failure(
        _argv(checkpoint, tmp_path / "nope.json", out),
        capsys,
        watched=[tmp_path],
        contains="no such calibration",
    )


def test_not_a_checkpoint(tmp_path: Path, capsys) -> None:
    (tmp_path / "x.ckpt").write_bytes(b"not a checkpoint")
    calibration = write_calibration(tmp_path / "t.json")
    expect_clean_failure(
        _argv(tmp_path / "x.ckpt", calibration, tmp_path / "out"),
        capsys,
        watched=[tmp_path],
        contains=["x.ckpt", "cannot read as a tcdml checkpoint"],
    )
    (tmp_path / "folder").mkdir()
    expect_clean_failure(
        _argv(tmp_path / "folder", calibration, tmp_path / "out"),
        capsys,
        watched=[tmp_path],
        contains="adapter.json",
    )


def test_output_folder_rules(checkpoint: Path, tmp_path: Path, capsys) -> None:
    calibration = write_calibration(tmp_path / "t.json")
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "keep.txt").write_text("data")
    expect_clean_failure(
        _argv(checkpoint, calibration, tmp_path / "exists"),
        capsys,
        watched=[tmp_path],
        contains="already exists",
    )
    expect_clean_failure(  # --force replaces export folders only
        _argv(checkpoint, calibration, tmp_path / "exists", "--force"),
        capsys,
        watched=[tmp_path],
        contains="not an export",
    )
    expect_clean_failure(
        _argv(checkpoint, calibration, tmp_path / "no" / "out"),
        capsys,
        watched=[tmp_path],
        contains="does not exist",
    )
    expect_clean_failure(  # the output folder may not hold the input
        _argv(checkpoint, calibration, checkpoint.parent, "--force"),
        capsys,
        watched=[checkpoint.parent],
        contains="holds the input",
    )


def test_a_layer_without_onnx_conversion(checkpoint: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """--format onnx on a model with an FFT layer: the error names the operator and the layer; no folder."""
    import tcdml.training.checkpoint as checkpoints

    class Spectral(torch.nn.Module):
        num_features = 15

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft(x.flatten(1)[:, :28], dim=1).abs()

    original = checkpoints.model_from_checkpoint

    def with_fft(path):
        model, config = original(path)
        model.backbone = torch.nn.Sequential()
        model.backbone.add_module("spectrum", Spectral())
        model.head = torch.nn.Linear(15, 8)
        return model.eval(), config

    monkeypatch.setattr(checkpoints, "model_from_checkpoint", with_fft)
    calibration = write_calibration(tmp_path / "t.json")
    expect_clean_failure(
        _argv(checkpoint, calibration, tmp_path / "out", "--format", "onnx"),
        capsys,
        watched=[tmp_path],
        contains=["aten::fft_rfft", "layer 'backbone.spectrum'", "--format torchscript"],
    )


def test_bad_format(checkpoint: Path, tmp_path: Path, capsys) -> None:
    calibration = write_calibration(tmp_path / "t.json")
    expect_clean_failure(
        _argv(checkpoint, calibration, tmp_path / "out", "--format", "tflite"),
        capsys,
        watched=[tmp_path],
        contains="tflite",
    )


def test_a_calibration_of_other_embeddings_is_refused(tmp_path: Path, capsys) -> None:
    """``calibrate -o`` records the embedding size; export checks it against the model (an adapter here)."""
    from sklearn.datasets import load_digits

    from tcdml.io.embeddings_file import save_embeddings_file

    x, y = load_digits(return_X_y=True)
    data = tmp_path / "digits.npz"
    save_embeddings_file(data, x.astype("float32"), y)
    adapter = tmp_path / "adapter"
    argv = ["adapt", "train", str(data), "-o", str(adapter), "--kind", "linear", "--embedding-size", "16"]
    assert main([*argv, "--epochs", "1", "--no-progress"]) == 0
    calibration = tmp_path / "threshold.json"
    assert main(["calibrate", str(data), "--target-far", "0.01", "-o", str(calibration)]) == 0
    assert json.loads(calibration.read_text())["embedding_size"] == 64
    capsys.readouterr()
    argv = ["export", str(adapter), "--calibration", str(calibration), "-o", str(tmp_path / "served")]
    expect_clean_failure(argv, capsys, watched=[tmp_path], contains=["embedding_size", "64", "16"])
