"""Embed a dataset with a trained model or its untrained starting point: into an embedding file
(docs/spec.md; ``embed_dataset``, for ``evaluate`` / ``calibrate`` / ``compare``) or into arrays
(``embed_split``). Both run ``embed_samples``.

A model comes from a checkpoint (``model_from_checkpoint``) or, with no checkpoint, from a backbone name
(``starting_point``: the backbone's pooled features, L2-normalised, no head), and then goes through the same
path: the same samples in the same order, so ``tcdml compare start.npz trained.npz`` pairs them. Image
datasets get the test transform (resize + centre crop, the model's normalisation); text datasets are passed
to the model as lists of ``str``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tcdml.errors import TcdmlInputError, first_line
from tcdml.io import save_embeddings_file
from tcdml.metrics.validation import check_device
from tcdml.models import EmbeddingModel, ModelConfig, build_model
from tcdml.models.embedding import LOCAL_BACKBONES
from tcdml.models.feature_store import check_folder, open_store
from tcdml.training.checkpoint import model_from_checkpoint
from tcdml.training.config import DataConfig
from tcdml.training.data import load_split

#: How ``backbone`` names a timm model explicitly (a bare timm name works too).
TIMM_PREFIX = "timm:"


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
    checkpoint: str | os.PathLike | None,
    root: str | os.PathLike | None,
    output: str | os.PathLike,
    *,
    dataset: str | None = None,
    split: str = "test",
    batch_size: int = 128,
    num_workers: int = 4,
    device: str = "cpu",
    backbone: str | None = None,
    pretrained: str | os.PathLike | None = None,
    feature_cache: bool | str | os.PathLike | None = None,
    start: bool = False,
) -> dict[str, Any]:
    """Write ``embeddings`` (N x D float32), ``labels`` and ``ids`` (sample ids) of ``split`` to ``output``.

    The model is a trained ``checkpoint`` (its image size and normalisation, and by default the layout it
    was trained on with the training config's ``data.options``, e.g. the same class subset), or, with
    ``checkpoint=None``, the untrained ``starting_point(backbone, pretrained)`` (then ``dataset`` is
    required and read with its default options). Images get the test transform (resize + centre crop).
    ``feature_cache``: a ``data.feature_cache`` value for a frozen text encoder (None: the checkpoint's, or
    the default folder). ``start=True`` (with a checkpoint): the untrained starting point of that run
    (``starting_point`` of its ``model.backbone`` and ``model.pretrained``) on the very samples, image size
    and normalisation the checkpoint's embedding would use, for ``tcdml compare start.npz trained.npz``.
    Every argument is checked before a model is built. Returns a summary dict.
    """
    check_device(device)  # before anything is loaded
    if batch_size < 1 or num_workers < 0:
        raise TcdmlInputError(f"batch_size={batch_size}, num_workers={num_workers}: expected >= 1 and >= 0")
    if checkpoint is not None and backbone is not None:
        raise TcdmlInputError("embed: both a checkpoint and --backbone given; expected one of them")
    if checkpoint is None and backbone is None:
        raise TcdmlInputError(
            "embed: neither a checkpoint nor --backbone given; expected a checkpoint, or --backbone NAME for "
            "the untrained starting point"
        )
    if checkpoint is not None and pretrained is not None:
        raise TcdmlInputError("--pretrained goes with --backbone (a checkpoint holds every weight)")
    if start and checkpoint is None:
        raise TcdmlInputError("--start goes with a checkpoint (the start of its run); --backbone is a start")
    if backbone is not None and dataset is None:
        raise TcdmlInputError("--dataset is required with --backbone (no checkpoint to take the layout from)")
    if feature_cache is not None and not isinstance(feature_cache, bool):
        check_folder(feature_cache, "--feature-cache")
    if checkpoint is not None:
        model, config = model_from_checkpoint(checkpoint)
        if start:
            pretrained = config.model.pretrained
            if pretrained is not None and not Path(pretrained).expanduser().is_file():
                raise TcdmlInputError(
                    f"{checkpoint}: its model.pretrained {pretrained} is not on this machine (the start of "
                    "the run needs the backbone's original weights)"
                )
            cache = True if feature_cache is None else feature_cache
            model = starting_point(config.model.backbone, pretrained, feature_cache=cache)
        elif model.feature_cache is not None:
            if feature_cache is None:  # the run's folder, which need not exist on this machine
                store = open_store(
                    config.data.feature_cache, "the checkpoint's data.feature_cache", strict=False
                )
            else:
                store = open_store(feature_cache, "--feature-cache")
            model.feature_cache.store = store
        # No root: the checkpoint's (None for the datasets a package ships, e.g. hscodes, mnist).
        source = config.data if root is None else dataclasses.replace(config.data, root=str(root))
        if dataset is not None and dataset != config.data.dataset:  # another dataset may not take its options
            source = dataclasses.replace(source, dataset=dataset, options={})
    else:
        model = starting_point(
            backbone, pretrained, feature_cache=True if feature_cache is None else feature_cache
        )
        source = DataConfig(dataset=dataset, root=None if root is None else str(root))
    transforms = source.transform_config(model.mean, model.std)
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


def backbone_name(backbone: str) -> str:
    """The ``ModelConfig.backbone`` of a ``--backbone`` value: tcdml's own (``minilm_l6``,
    ``efficientnet_lite0``, ``small_cnn``) or a timm model, as ``timm:NAME`` or ``NAME``; ``TcdmlInputError``
    for a name neither knows."""
    name = backbone.removeprefix(TIMM_PREFIX)
    if backbone.startswith(TIMM_PREFIX) or name not in LOCAL_BACKBONES:
        import timm

        if not name or not timm.is_model(name):
            raise TcdmlInputError(
                f"--backbone {backbone!r}: unknown (expected {', '.join(LOCAL_BACKBONES)} or "
                f"{TIMM_PREFIX}NAME with NAME one of timm.list_models())"
            )
    return name


def starting_point(
    backbone: str,
    pretrained: str | os.PathLike | None = None,
    *,
    feature_cache: bool | str | os.PathLike = False,
) -> EmbeddingModel:
    """The untrained starting point of a run on ``backbone`` (``backbone_name``), in eval mode:
    ``normalize(f(x))``, the backbone's pooled features L2-normalised, without a head.

    ``pretrained`` is a weights file as ``model.pretrained`` takes it (missing, or of another architecture:
    ``TcdmlInputError`` naming it); the backbone is frozen, so a text encoder's features are cached as in a
    frozen-encoder run (``feature_cache``: a ``data.feature_cache`` value).
    """
    name = backbone_name(backbone)
    if pretrained is not None and not Path(pretrained).expanduser().is_file():
        raise TcdmlInputError(f"--pretrained {pretrained}: no such file (expected the backbone's weights)")
    config = ModelConfig(
        backbone=name, pretrained=None if pretrained is None else str(pretrained), trainable_blocks=0
    )
    try:
        model = build_model(config, feature_cache=feature_cache)
    except TcdmlInputError as exc:
        if pretrained is None:
            raise
        raise TcdmlInputError(f"--pretrained {pretrained}: {first_line(exc)}") from None
    model.head = nn.Identity()  # the pooled features themselves (EmbeddingModel normalises them)
    return model.eval()


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
