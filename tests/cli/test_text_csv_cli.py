"""One's own texts through the CLI: a CSV trains a frozen MiniLM + head (1 epoch), embeds and evaluates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

from tcdml.cli.main import main
from tcdml.data import build_dataset
from tcdml.io.embedding_inputs import read_embeddings

TOPICS = {
    "fruit": ["apples", "pears", "cherries", "plums", "bananas"],
    "tools": ["hammers", "screwdrivers", "wrenches", "pliers", "saws"],
    "fish": ["salmon", "trout", "cod", "herring", "tuna"],
    "shoes": ["sneakers", "boots", "sandals", "slippers", "loafers"],
    "desserts": ["crème brûlée", "tiramisu", "cheesecake", "pudding", "sorbet"],
    "vehicles": ["bicycles", "motorcycles", "trucks", "buses", "tractors"],
    "flowers": ["roses", "tulips", "lilies", "daisies", "orchids"],
    "metals": ["copper wire", "steel bars", "aluminium sheets", "zinc plates", "tin cans"],
    "toys": ["dolls", "puzzles", "kites", "marbles", "teddy bears"],
    "drinks": ["coffee", "tea", "lemonade", "orange juice", "cocoa"],
    "textiles": ["cotton fabric", "wool yarn", "silk scarves", "linen sheets", "denim"],
    "medicine": ["aspirin tablets", "bandages", "cough syrup", "vitamin pills", "antiseptic cream"],
}


def write_texts(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["text", "label"])
        for label, items in TOPICS.items():
            writer.writerows([f"{item}, sold in bulk", label] for item in items)
    return path


def text_config(texts: Path, output_dir: Path) -> dict:
    return {
        "data": {
            "dataset": "text_csv",
            "root": str(texts),
            "classes_per_batch": 3,
            "samples_per_class": 2,
            "eval_batch_size": 32,
            "num_workers": 0,
        },
        "model": {"backbone": "minilm_l6", "embedding_size": 16, "trainable_blocks": 0},
        "loss": {"name": "smooth_ap", "params": {"temperature": 0.01}},
        "optim": {"optimizer": "adamw", "lr": 1e-3, "warmup_epochs": 0},
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "progress_bar": False},
        "eval": {"ks": [1]},
        "seed": 0,
        "output_dir": str(output_dir),
    }


def test_text_csv_trains_embeds_and_evaluates(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = write_texts(tmp_path / "texts.csv")
    config = tmp_path / "texts.yaml"
    config.write_text(yaml.safe_dump(text_config(texts, tmp_path / "run")), encoding="utf-8")
    assert main(["train", str(config)]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert np.isfinite(trained["metrics"]["train/loss_epoch"])
    out = tmp_path / "test.npz"
    argv = ["embed", trained["last_checkpoint"], "--data", str(texts), "-o", str(out), "--num-workers", "0"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    test = build_dataset("text_csv", texts, "test")
    assert summary["num_samples"] == len(test) == 30 and summary["num_classes"] == 6
    written = read_embeddings(out)
    assert list(written.ids) == [str(path) for path in test.paths]
    assert np.array_equal(written.labels, test.labels)
    assert main(["evaluate", str(out), "--format", "json", "--bootstrap", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_classes"] == 6 and 0.0 <= result["recall@1"] <= 1.0
    assert main(["calibrate", str(out), "--target-far", "0.1", "-o", str(tmp_path / "t.json")]) == 0
    calibration = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert -1.0 <= calibration["threshold"] <= 1.0 and calibration["far"] <= 0.1
