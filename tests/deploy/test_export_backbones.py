"""Exported models give tcdml's embeddings on real inputs: ONNX (onnxruntime) and TorchScript (torch) vs the
original model within 1e-4, for tcdml's own backbones, a timm CNN, a timm ViT and an adapter head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tcdml.deploy import load_matcher
from tcdml.export import export_module
from tcdml.models import ModelConfig, build_model
from tests.deploy.helpers import prepared_images, reference, write_calibration

TOLERANCE = 1e-4
#: backbone -> (extra ModelConfig fields, dataset, image size, resize size, dataset options)
BACKBONES = {
    "small_cnn": ({}, "mnist", 28, 28, {}),
    "efficientnet_lite0": ({}, "glyphs", 32, None, {"image_size": 32, "max_classes": 10}),
    "resnet18": ({}, "glyphs", 32, None, {"image_size": 32, "max_classes": 10}),
    "vit_tiny_patch16_224": ({"img_size": 32}, "glyphs", 32, None, {"image_size": 32, "max_classes": 10}),
}


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_exported_image_model_matches_the_original(backbone: str, tmp_path: Path) -> None:
    extra, dataset, size, resize, options = BACKBONES[backbone]
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, embedding_size=16, **extra)).eval()
    images = prepared_images(
        dataset, 24, image_size=size, resize_size=resize, mean=model.mean, std=model.std, options=options
    )
    contract = {"kind": "image", "image_size": size, "mean": list(model.mean), "std": list(model.std)}
    result = export_module(
        model,
        torch.from_numpy(images[:2]),
        contract,
        write_calibration(tmp_path / "t.json", threshold=0.3),
        tmp_path / "export",
        format="both",
        check_input=torch.from_numpy(images[2:7]),
    )
    expected = reference(model, images)
    onnx = load_matcher(tmp_path / "export", batch_size=5)  # 24 = 4 x 5 + 4: batches of two sizes
    script = load_matcher(tmp_path / "export", backend="torchscript")
    from_onnx, from_script = onnx.embed(images), script.embed(images)
    assert onnx.backend == "onnx" and script.backend == "torchscript"
    assert from_onnx.dtype == np.float32 and from_onnx.shape == (24, 16)
    np.testing.assert_allclose(np.linalg.norm(from_onnx, axis=1), 1.0, atol=1e-5)
    assert np.abs(from_onnx - expected).max() <= TOLERANCE
    assert np.abs(from_script - expected).max() <= TOLERANCE
    assert np.abs(from_onnx - from_script).max() <= TOLERANCE
    assert result.manifest["model"]["check"]["max_abs_diff"] <= TOLERANCE
    assert onnx.threshold == 0.3 == json.loads((tmp_path / "t.json").read_text())["threshold"]
    print(
        f"{backbone}: model.onnx {result.files['model.onnx']} bytes, onnx vs torch "
        f"{np.abs(from_onnx - expected).max():.2e}"
    )


def test_adapter_folder_exports_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A ``tcdml adapt train`` folder (written here by tcdml.adapt, with a trained-looking residual head)."""
    from tcdml.adapt import build_head, write_adapter_dir
    from tcdml.cli.main import main

    torch.manual_seed(0)
    head = build_head("residual", 16, 16, 32)
    with torch.no_grad():
        head.down.weight.normal_(std=0.2)  # not the identity any more
    meta = {"kind": "residual", "input_size": 16, "hidden": 32, "embedding_size": 16}
    adapter = write_adapter_dir(tmp_path / "adapter", head, meta)
    calibration = write_calibration(tmp_path / "t.json", threshold=0.6, embedding_size=16)
    assert main(["export", str(adapter), "--calibration", str(calibration), "-o", str(tmp_path / "out")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["input"] == "embedding" and summary["onnx"] == "model.onnx"
    matcher = load_matcher(tmp_path / "out")
    assert matcher.input == {"kind": "embedding", "input_size": 16, "dtype": "float32"}
    inputs = np.random.default_rng(1).normal(size=(40, 16)).astype(np.float32)
    assert np.abs(matcher.embed(inputs) - reference(head, inputs)).max() <= TOLERANCE
    manifest = json.loads((tmp_path / "out" / "tcdml-export.json").read_text())
    assert manifest["source"]["kind"] == "adapter" and manifest["calibration"]["embedding_size"] == 16


def test_a_layer_onnx_cannot_export_falls_back_to_torchscript(tmp_path: Path) -> None:
    """format auto: ONNX where it works, else TorchScript, and the manifest says why."""

    class Spectral(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(torch.fft.rfft(x, dim=1).abs(), dim=1)

    inputs = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    result = export_module(
        Spectral(),
        inputs[:2],
        {"kind": "embedding", "input_size": 8},
        write_calibration(tmp_path / "t.json"),
        tmp_path / "out",
    )
    model = result.manifest["model"]
    assert model["onnx"] is None and model["torchscript"] == "model.pt"
    assert any("aten::fft_rfft" in line for line in model["not_exported"])
    matcher = load_matcher(tmp_path / "out")
    assert matcher.backend == "torchscript"
    assert np.abs(matcher.embed(inputs.numpy()) - reference(Spectral(), inputs.numpy())).max() <= TOLERANCE
