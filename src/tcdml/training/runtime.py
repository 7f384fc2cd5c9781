"""What a run needs from this machine and from the checkpoint it continues, checked before Lightning starts.

Cheap checks only (no Lightning import): ``tcdml train --check`` runs them without training, ``fit`` runs
them first.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tcdml.errors import TcdmlInputError
from tcdml.training.config import TrainConfig

#: Model and loss keys a resumed run must share with its checkpoint (they shape the weights, the loss's state
#: and the optimiser state); ``seed`` and the batch composition fix the batches and augmentations.
RESUME_KEYS = (
    "model.backbone",
    "model.embedding_size",
    "model.pooling",
    "model.img_size",
    "model.freeze_bn",
    "model.trainable_blocks",
    "loss.name",
    "loss.params",
    "loss.tcm",
    "data.classes_per_batch",
    "data.samples_per_class",
    "optim.optimizer",
    "seed",
)


def check_resume(config: TrainConfig, path: str | os.PathLike) -> int:
    """Check that ``config`` can continue the checkpoint ``path``; return the checkpoint's global step.

    The checkpoint must have been written by ``tcdml train`` with the same ``RESUME_KEYS`` (the loss's runtime
    parameters the config leaves out are not compared: the run fills them) and be at an
    epoch below ``trainer.max_epochs`` (a checkpoint at exactly ``max_epochs`` epochs resumes to nothing
    left to train). Raises ``TcdmlInputError`` naming the key and both values.
    """
    from tcdml.training.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(path, map_location="cpu")
    stored = checkpoint.get("tcdml_config")
    if not isinstance(stored, dict):
        raise TcdmlInputError(
            f"--resume {path}: checkpoint has no 'tcdml_config' (not written by tcdml train)"
        )
    current = config.to_dict()
    for key in RESUME_KEYS:
        was, now = _dotted(stored, key), _dotted(current, key)
        if key == "loss.params" and isinstance(was, dict) and isinstance(now, dict):
            was = _unfilled(was, now)
        if was is not _MISSING and _plain(was) != _plain(now):
            raise TcdmlInputError(
                f"--resume {path}: the checkpoint was trained with {key}={_plain(was)!r}, the config has "
                f"{key}={_plain(now)!r} (they must match to resume; start a new run to change it)"
            )
    epoch, max_epochs = checkpoint.get("epoch"), config.trainer.max_epochs
    if isinstance(epoch, int) and epoch >= max_epochs:
        raise TcdmlInputError(
            f"--resume {path}: the checkpoint has trained {epoch + 1} epochs, more than "
            f"trainer.max_epochs={max_epochs} (expected trainer.max_epochs >= {epoch + 1})"
        )
    step = checkpoint.get("global_step", 0)
    return step if isinstance(step, int) else 0


_MISSING = object()


def _unfilled(stored: dict, params: dict) -> dict:
    """``stored`` loss parameters without the runtime ones (``num_classes``, ``embedding_size``) that
    ``params`` leaves out: the run fills those (``tcdml.training.build``); a stored config has them."""
    from tcdml.losses.registry import RUNTIME_PARAMS

    return {key: value for key, value in stored.items() if key in params or key not in RUNTIME_PARAMS}


def _dotted(values: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(values, dict) or part not in values:
            return _MISSING
        values = values[part]
    return values


def _plain(value: Any) -> Any:
    """Tuples as lists, so a stored config and a current one compare by value."""
    return json.loads(json.dumps(value))


def check_runtime(config: TrainConfig) -> None:
    """Settings this machine cannot run (e.g. a GPU accelerator without CUDA, a feature cache folder that is
    a file or not writable), before Lightning starts."""
    import torch

    from tcdml.models.embedding import caches_features
    from tcdml.models.feature_store import check_folder

    if caches_features(config.model) and not isinstance(config.data.feature_cache, bool):
        check_folder(config.data.feature_cache, "data.feature_cache")

    settings = config.trainer
    cuda = torch.cuda.is_available()
    if settings.accelerator in ("gpu", "cuda") and not cuda:
        raise TcdmlInputError(
            f"key 'trainer.accelerator' = {settings.accelerator!r}, but CUDA is not available here "
            "(expected cpu or auto)"
        )
    if settings.accelerator == "mps" and not torch.backends.mps.is_available():
        raise TcdmlInputError(
            "key 'trainer.accelerator' = 'mps', but MPS is not available here (expected cpu or auto)"
        )
    on_cpu = settings.accelerator == "cpu" or (settings.accelerator == "auto" and not cuda)
    if on_cpu and settings.precision in ("16-mixed", "16"):
        raise TcdmlInputError(
            f"key 'trainer.precision' = {settings.precision!r}: fp16 AMP needs a GPU, this run is on the CPU "
            "(expected 32-true or bf16-mixed)"
        )
    if (
        not on_cpu
        and cuda
        and isinstance(settings.devices, int)
        and settings.devices > torch.cuda.device_count()
    ):
        raise TcdmlInputError(
            f"key 'trainer.devices' = {settings.devices}, but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
