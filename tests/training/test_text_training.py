"""A tiny end-to-end text run: fit MiniLM (last block + head) on 4 HS headings, embed the 4 held out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tcdml.data import load_hscodes
from tcdml.io import load_embeddings_file
from tcdml.training.checkpoint import model_from_checkpoint
from tcdml.training.config import TrainConfig
from tcdml.training.embed import embed_dataset, embed_split
from tcdml.training.trainer import fit


def test_fit_and_embed_hscodes(tmp_path: Path) -> None:
    config = TrainConfig.from_dict(
        {
            "data": {
                "dataset": "hscodes",
                "root": "unused",
                "options": {"max_classes": 8},  # 4 train and 4 test headings
                "classes_per_batch": 2,
                "samples_per_class": 2,
                "eval_batch_size": 16,
                "num_workers": 0,
            },
            "model": {"backbone": "minilm_l6", "embedding_size": 8, "trainable_blocks": 1},
            "optim": {"lr": 1e-4, "head_lr": 1e-2},
            "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "progress_bar": False},
            "eval": {"ks": [1]},
            "seed": 0,
            "output_dir": str(tmp_path / "run"),
        }
    )
    result = fit(config)
    assert 0.0 <= result.metrics["val/recall@1"] <= 1.0 and np.isfinite(result.metrics["train/loss_epoch"])
    model, stored = model_from_checkpoint(result.last_checkpoint)
    assert stored.model.trainable_blocks == 1
    embeddings, labels = embed_split(model, stored.data)
    test = load_hscodes(split="test", max_classes=8)
    assert embeddings.shape == (len(test), 8) and np.array_equal(labels, test.labels)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    summary = embed_dataset(result.last_checkpoint, "unused", tmp_path / "test.npz", num_workers=0)
    written = load_embeddings_file(summary["output"])
    assert list(written.ids) == [str(path) for path in test.paths]
    torch.testing.assert_close(torch.as_tensor(written.embeddings), torch.as_tensor(embeddings))
