"""Embed a dataset with a trained checkpoint into SPEC's embedding file (for ``evaluate`` / ``calibrate``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from tcdml.data import TransformConfig, build_dataset, build_transform
from tcdml.errors import TcdmlInputError
from tcdml.io import save_embeddings_file
from tcdml.training.checkpoint import model_from_checkpoint
from tcdml.training.config import DataConfig


def embed_dataset(
    checkpoint: str | os.PathLike,
    root: str | os.PathLike,
    output: str | os.PathLike,
    *,
    dataset: str | None = None,
    split: str = "test",
    batch_size: int = 128,
    num_workers: int = 4,
    device: str = "cpu",
) -> dict[str, Any]:
    """Write ``embeddings`` (N x D float32), ``labels`` and ``ids`` (image paths) of ``split`` to ``output``.

    The model, image size and normalisation come from the checkpoint; ``dataset`` defaults to the layout the
    model was trained on. Images get the test transform (resize + centre crop). Returns a summary dict.
    """
    if batch_size < 1 or num_workers < 0:
        raise TcdmlInputError(f"batch_size={batch_size}, num_workers={num_workers}: expected >= 1 and >= 0")
    model, config = model_from_checkpoint(checkpoint)
    transforms = TransformConfig(
        image_size=config.data.image_size,
        resize_size=config.data.resize_size,
        mean=model.mean,
        std=model.std,
    )
    data = build_dataset(
        dataset or config.data.dataset, root, split, build_transform(transforms, train=False)
    )
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers)
    model.to(device)
    parts = []
    with torch.inference_mode():
        for images, _ in loader:
            parts.append(model(images.to(device)).cpu())
    embeddings = torch.cat(parts).numpy()
    ids = np.array([str(path) for path in data.paths])
    path = save_embeddings_file(output, embeddings, data.labels, ids=ids)
    return {
        "output": str(path),
        "num_samples": len(data),
        "num_classes": data.num_classes,
        "embedding_size": int(embeddings.shape[1]),
        "split": split,
    }


def embed_split(
    model: torch.nn.Module, data: DataConfig, split: str | None = None, *, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (N x D float32, dataset order) and labels of ``split`` (default ``data.eval_split``).

    Samples get the test transform of ``data`` (resize + centre crop, the model's normalisation); the model is
    put in eval mode and run without gradients, ``data.eval_batch_size`` samples at a time.
    """
    transform = build_transform(
        TransformConfig(
            image_size=data.image_size, resize_size=data.resize_size, mean=model.mean, std=model.std
        ),
        train=False,
    )
    dataset = build_dataset(data.dataset, data.root, split or data.eval_split, transform)
    loader = DataLoader(dataset, batch_size=data.eval_batch_size)
    model.eval().to(device)
    with torch.inference_mode():
        parts = [model(images.to(device)).float().cpu() for images, _ in loader]
    return torch.cat(parts).numpy(), dataset.labels.copy()
