"""Checkpoints: atomic writes, tensor-only loading, RNG and sampler state, and the model back from a file.

A checkpoint is Lightning's full training state (model, loss parameters, optimiser, scheduler, AMP scaler,
loop progress, callbacks) plus ``tcdml_config`` (the run's config as a plain dict), the data module's
sampler position and ``EpochSeed``'s RNG states. Files are written to a temporary name and renamed
(``tcdml.io.atomic_write``), and always read with ``torch.load(weights_only=True)``: tensors and plain
containers only, no code from the file is run; the zip's CRCs are checked on every read.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from tcdml.errors import TcdmlInputError
from tcdml.io.atomic import atomic_write
from tcdml.io.torch_file import load_torch_file
from tcdml.models import EmbeddingModel, ModelConfig, build_model
from tcdml.training.config import DataConfig, TrainConfig


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with rename-atomic writes and ``weights_only=True`` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically (a crash leaves the previous file intact)."""
        with atomic_write(path, "wb") as handle:
            torch.save(checkpoint, handle)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        """Read a checkpoint with ``weights_only=True`` whatever the caller asks for."""
        return read_checkpoint(path, map_location=map_location)


class RemoveStaleTemporaries(pl.Callback):
    """At setup, delete the temporaries a killed writer left in ``folder`` (``.<name>.ckpt.*.tmp``).

    Only the first process does it, before any checkpoint of this run is written: one run writes a folder.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            remove_stale_temporaries(self.folder)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete ``folder``'s checkpoint temporaries (``.<name>.ckpt.<random>.tmp``); return what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.ckpt.*.tmp"):
        if path.is_file() and not path.is_symlink():
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint as a dict (``weights_only=True``); raises ``TcdmlInputError`` for a missing/bad file.

    Every member's zip CRC is checked first (``tcdml.io.torch_file``): a damaged checkpoint is refused,
    never loaded as silently different weights or optimiser state.
    """
    path = Path(path)
    checkpoint = load_torch_file(path, "tcdml checkpoint", map_location=map_location)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise TcdmlInputError(f"{path}: not a tcdml checkpoint (no 'state_dict')")
    return checkpoint


@dataclass(frozen=True)
class StoredModel:
    """What a checkpoint's stored config says about its model: the ``model`` section (what builds it) and the
    ``data`` section (its input contract: image size, resize, the dataset layout ``tcdml embed`` defaults to).

    Nothing else of the training config is read back: a checkpoint trained with a loss added by
    ``register_loss`` or a dataset added to the registry loads in a process that never registered them.
    """

    model: ModelConfig
    data: DataConfig


def stored_model(values: Any, source: str) -> StoredModel:
    """The ``model`` and ``data`` sections of a stored ``tcdml_config``, checked by their own classes only
    (no registry lookup: the names of the loss and dataset are not needed to rebuild the model)."""
    if not isinstance(values, dict) or not isinstance(values.get("model"), dict):
        raise TcdmlInputError(
            f"{source}: the checkpoint's 'tcdml_config' is not a config mapping with 'model'"
        )
    model = {**values["model"], "pretrained": None, "pretrained_from_hub": False}
    sections = {"model": model, "data": values.get("data") or {}}
    config = TrainConfig.from_dict(sections, source=f"{source} (tcdml_config)", check_names=False)
    return StoredModel(model=config.model, data=config.data)


def model_from_checkpoint(path: str | os.PathLike) -> tuple[EmbeddingModel, StoredModel]:
    """The trained ``EmbeddingModel`` (eval mode, CPU) and its checkpoint's ``StoredModel``.

    The backbone is built without pretrained weights (the checkpoint holds every weight), so the file of
    ``model.pretrained`` need not exist where the checkpoint is used.
    """
    checkpoint = read_checkpoint(path)
    if "tcdml_config" not in checkpoint:
        raise TcdmlInputError(f"{path}: checkpoint has no 'tcdml_config' (not written by tcdml train)")
    config = stored_model(checkpoint["tcdml_config"], str(path))
    model = build_model(config.model)
    prefix = "model."
    state = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        names = ", ".join(
            [*(f"missing {k!r}" for k in missing[:2]), *(f"unexpected {k!r}" for k in unexpected[:2])]
        )
        raise TcdmlInputError(
            f"{path}: the checkpoint's weights do not fit the model its config builds ({names}; "
            f"{len(missing)} missing, {len(unexpected)} unexpected: written by another tcdml version?)"
        )
    return model.eval(), config


def rng_states() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's (CPU and CUDA) global generators, as tensors/plain data."""
    states: dict[str, Any] = {
        "python": list(random.getstate()[1]),
        "numpy": [
            part.tolist() if isinstance(part, np.ndarray) else part
            for part in np.random.get_state()[1:]  # noqa: NPY002 (the global state users' code draws from)
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    random.setstate((3, (*states["python"],), None))
    keys, *rest = states["numpy"]
    np.random.set_state(("MT19937", np.asarray(keys, dtype=np.uint32), *rest))  # noqa: NPY002
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class EpochSeed(pl.Callback):
    """At every epoch start, seed the global RNGs from (seed, epoch, rank).

    So what the model draws in an epoch (dropout, stochastic depth) depends on the epoch alone, and a run
    resumed at an epoch boundary replays exactly what the uninterrupted run did (data augmentation is seeded
    per sample, see ``training/data.py``). The RNG states at checkpoint time are saved and restored too, for
    anything that draws numbers before the first epoch starts.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        entropy = np.random.SeedSequence([self.seed, trainer.current_epoch, trainer.global_rank])
        seed = int(entropy.generate_state(1)[0])
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 (the global generator, for code that uses it)
        torch.manual_seed(seed)  # also seeds every CUDA device

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        set_rng_states(state_dict["rng"])
