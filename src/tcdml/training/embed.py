"""Embed a dataset with a trained model: into an embedding file (docs/spec.md; ``embed_dataset``, for
``evaluate`` / ``calibrate``) or into arrays (``embed_split``). Both run ``embed_samples``.

Image datasets get the test transform (resize + centre crop, the model's normalisation); text datasets are
passed to the model as lists of ``str``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tcdml.errors import TcdmlInputError
from tcdml.io import save_embeddings_file
from tcdml.metrics.validation import check_device
from tcdml.training.checkpoint import model_from_checkpoint
from tcdml.training.config import DataConfig
from tcdml.training.data import load_split


def embed_samples(
    model: torch.nn.Module, dataset: Dataset, *, batch_size: int, num_workers: int = 0, device: str = "cpu"
) -> np.ndarray:
    """(N x D float32) embeddings of ``dataset``'s samples in dataset order.

    The model is put in eval mode on ``device`` and run without gradients, ``batch_size`` samples at a time
    (image tensors are moved to ``device``; text backbones move their own tokens).
    """
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    model.eval().to(device)
    parts = []
    with torch.inference_mode():
        for inputs, _ in loader:
            if isinstance(inputs, torch.Tensor):
                inputs = inputs.to(device)
            parts.append(model(inputs).float().cpu())
    return torch.cat(parts).numpy()


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
    """Write ``embeddings`` (N x D float32), ``labels`` and ``ids`` (sample paths) of ``split`` to ``output``.

    The model, image size and normalisation come from the checkpoint; ``dataset`` defaults to the layout the
    model was trained on (then with the training config's ``data.options``, e.g. the same class subset).
    Images get the test transform (resize + centre crop). Returns a summary dict.
    """
    check_device(device)  # before anything is loaded
    if batch_size < 1 or num_workers < 0:
        raise TcdmlInputError(f"batch_size={batch_size}, num_workers={num_workers}: expected >= 1 and >= 0")
    model, config = model_from_checkpoint(checkpoint)
    transforms = config.data.transform_config(model.mean, model.std)
    source = dataclasses.replace(config.data, root=str(root))
    if dataset is not None and dataset != config.data.dataset:  # another dataset may not take its options
        source = dataclasses.replace(source, dataset=dataset, options={})
    data = load_split(source, split, transforms, train=False)
    embeddings = embed_samples(model, data, batch_size=batch_size, num_workers=num_workers, device=device)
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

    Samples get the test transform of ``data`` (resize + centre crop, the model's normalisation; none for
    text); the model is put in eval mode and run without gradients, ``data.eval_batch_size`` at a time.
    """
    transforms = data.transform_config(model.mean, model.std)
    dataset = load_split(data, split or data.eval_split, transforms, train=False)
    embeddings = embed_samples(model, dataset, batch_size=data.eval_batch_size, device=device)
    return embeddings, dataset.labels.copy()
