"""The text model (minilm_l6 + head) exports as ONNX on token ids and attention mask with its tokenizer.json;
load_matcher tokenises with the ``tokenizers`` package and gives tcdml's embeddings of HS-code texts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from tcdml.deploy import load_matcher
from tcdml.export import export_checkpoint
from tcdml.models import ModelConfig, build_model
from tests.deploy.helpers import reference, write_calibration, write_checkpoint


def test_text_checkpoint_exports_and_serves_without_transformers(tmp_path: Path) -> None:
    from tcdml.data.hscodes import load_hscodes

    torch.manual_seed(0)
    config = {
        "data": {"dataset": "hscodes", "root": "data"},
        "model": {"backbone": "minilm_l6", "embedding_size": 16, "trainable_blocks": 0},
    }
    model = build_model(ModelConfig.from_dict(config["model"])).eval()
    checkpoint = write_checkpoint(tmp_path / "text.ckpt", model, config)
    calibration = write_calibration(tmp_path / "t.json", threshold=0.7, embedding_size=16)
    result = export_checkpoint(checkpoint, calibration, tmp_path / "export")
    manifest = result.manifest
    assert manifest["input"]["kind"] == "text" and manifest["input"]["max_length"] == 128
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json"}
    assert manifest["source"]["backbone"] == "minilm_l6" and manifest["threshold"] == 0.7
    print(f"minilm_l6: model.onnx {result.files['model.onnx']} bytes")

    data = load_hscodes(split="test")
    texts = [data[i][0] for i in range(0, 400, 10)]
    expected = reference(model, texts)
    matcher = load_matcher(tmp_path / "export", batch_size=16)
    embedded = matcher.embed(texts)
    difference = np.abs(embedded - expected).max()
    print(f"minilm_l6: onnx vs torch {difference:.2e}")
    assert difference <= 1e-4

    code = (
        "import sys\nfrom tcdml.deploy import load_matcher\n"
        f"m = load_matcher({str(tmp_path / 'export')!r})\n"
        f"e = m.embed({texts[:3]!r})\n"
        "print(e.shape, ','.join(n for n in ('transformers', 'torch', 'timm') if n in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "(3, 16)"
    json.loads((tmp_path / "export" / "tcdml-export.json").read_text())
