"""Test data builders that tests import (fixtures stay in conftest.py): seeded, generated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tcdml.adapt.settings import AdaptSettings


def clustered_embeddings(
    class_sizes: list[int], dim: int = 16, spread: float | list[float] = 0.6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters around random unit centres; per-class ``spread`` makes classes unequally compact."""
    rng = np.random.default_rng(seed)
    spreads = np.broadcast_to(np.asarray(spread, dtype=float), (len(class_sizes),))
    parts, labels = [], []
    for label, (size, sigma) in enumerate(zip(class_sizes, spreads, strict=True)):
        centre = rng.normal(size=dim)
        centre /= np.linalg.norm(centre)
        parts.append(centre + sigma * rng.normal(size=(size, dim)) / np.sqrt(dim))
        labels.append(np.full(size, label))
    return np.concatenate(parts).astype(np.float32), np.concatenate(labels).astype(np.int64)


TRAIN_CLASSES = 5
TEST_CLASSES = 3
IMAGES_PER_CLASS = 6


def make_image_tree(root: Path, seed: int = 0) -> Path:
    """8 classes x 6 PNGs (40 px) of class-coloured noise, split by folder: 5 train classes (the default
    ``data.val_classes`` holds 2 out for validation: 3 train) and 3 test classes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in range(TRAIN_CLASSES + TEST_CLASSES):
        colour = 128 + rng.integers(-40, 40, size=3)  # close colours under strong noise: not trivially easy
        folder = root / ("train" if label < TRAIN_CLASSES else "test") / f"class_{label}"
        folder.mkdir(parents=True)
        for index in range(IMAGES_PER_CLASS):
            noise = rng.integers(-100, 100, size=(40, 40, 3))
            pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def tiny_config(data_root: Path, output_dir: Path, **sections: dict) -> dict:
    """A config dict for a 2-epoch CPU run of timm's ``test_resnet`` at 32 px with Smooth-AP + TCM."""
    config = {
        "data": {
            "dataset": "folder",
            "root": str(data_root),
            "image_size": 32,
            "classes_per_batch": 3,
            "samples_per_class": 2,
            "eval_batch_size": 8,
            "num_workers": 0,
        },
        "model": {"backbone": "test_resnet", "embedding_size": 16},
        "loss": {"name": "smooth_ap", "tcm": {"margin_pos": 0.9, "margin_neg": 0.5}},
        "optim": {"optimizer": "adamw", "lr": 1e-3, "head_lr": 1e-2, "warmup_epochs": 0.5},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "progress_bar": False},
        "eval": {"ks": [1, 2]},
        "seed": 3,
        "output_dir": str(output_dir),
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


#: Small and fast: 12 classes-slots of 4 per batch, a 32-wide residual head.
FAST = {"batch_size": 48, "m_per_class": 4, "hidden": 32}


def fast(**changes) -> AdaptSettings:
    """``AdaptSettings`` for tests: small batches and head, 3 epochs unless changed."""
    return AdaptSettings(**{"epochs": 3, **FAST, **changes})
