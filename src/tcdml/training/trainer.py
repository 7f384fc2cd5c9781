"""Build the Lightning ``Trainer`` from a config, fit, resume.

``fit(config)`` writes to ``config.output_dir``:

- ``checkpoints/last.ckpt``: the full state after every epoch (overwritten atomically);
- ``checkpoints/best.ckpt``: the state at the best ``eval.monitor`` so far;
- ``logs/version_N/metrics.csv`` (and TensorBoard event files when ``tensorboard`` is installed).

``fit(config, resume="…/last.ckpt")`` continues from a checkpoint: the next epoch starts exactly where the
uninterrupted run would have started it (weights, optimiser, schedule, AMP scaler, sampler epoch, RNG).
Multi-GPU / multi-node runs use Lightning's strategies (``trainer.strategy=ddp``, ``trainer.devices``,
``trainer.num_nodes``) under ``torchrun`` or SLURM; see docs/training.md.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from tcdml.training.checkpoint import AtomicCheckpointIO, EpochSeed
from tcdml.training.config import TrainConfig
from tcdml.training.data import MetricDataModule
from tcdml.training.module import EmbeddingModule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """Where a run wrote its checkpoints and what it measured last."""

    output_dir: str
    last_checkpoint: str
    best_checkpoint: str | None
    best_score: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    global_rank: int = 0  # under DDP every process returns a result; rank 0 reports it

    def to_dict(self) -> dict:
        """JSON-ready summary (what ``tcdml train`` prints)."""
        return {
            "output_dir": self.output_dir,
            "last_checkpoint": self.last_checkpoint,
            "best_checkpoint": self.best_checkpoint,
            "best_score": self.best_score,
            "metrics": self.metrics,
        }


def build_loggers(output_dir: Path) -> list:
    """CSV logger, plus TensorBoard when the ``tensorboard`` package is installed (else a note in the log)."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    loggers: list = [CSVLogger(output_dir, name="logs")]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(TensorBoardLogger(output_dir, name="tensorboard"))
    else:
        log.warning("tensorboard is not installed: logging to CSV only (pip install tensorboard)")
    return loggers


def build_trainer(config: TrainConfig, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """The Lightning ``Trainer`` of ``config`` with tcdml's checkpointing, seeding and loggers.

    ``callbacks`` are added after tcdml's own (e.g. a user's early stopping).
    """
    settings = config.trainer
    output_dir = Path(config.output_dir)
    every = config.eval.every_n_epochs
    checkpoints = output_dir / "checkpoints"
    last = ModelCheckpoint(
        checkpoints, filename="last", save_on_train_epoch_end=True, enable_version_counter=False
    )
    best = ModelCheckpoint(
        checkpoints,
        filename="best",
        monitor=f"val/{config.eval.monitor}",
        mode=config.eval.mode,
        every_n_epochs=every,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    return pl.Trainer(
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=settings.precision,
        max_epochs=settings.max_epochs,
        gradient_clip_val=settings.gradient_clip_val,
        log_every_n_steps=settings.log_every_n_steps,
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=False,
        deterministic=settings.deterministic,
        check_val_every_n_epoch=every,
        num_sanity_val_steps=0,  # evaluation needs the whole evaluation set
        use_distributed_sampler=False,  # the m-per-class sampler shards batches itself
        default_root_dir=output_dir,
        logger=build_loggers(output_dir),
        callbacks=[EpochSeed(config.seed), last, best, *callbacks],
        plugins=[AtomicCheckpointIO()],
    )


def fit(
    config: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    callbacks: Sequence[pl.Callback] = (),
) -> FitResult:
    """Train ``config`` (from scratch, or continuing the checkpoint ``resume``); say where it wrote what."""
    pl.seed_everything(config.seed, workers=True, verbose=False)
    module = EmbeddingModule(config)
    data = MetricDataModule(config.data, seed=config.seed, mean=module.model.mean, std=module.model.std)
    trainer = build_trainer(config, callbacks)
    trainer.fit(module, datamodule=data, ckpt_path=None if resume is None else str(resume), weights_only=True)
    last, best = (cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint))
    score = best.best_model_score
    return FitResult(
        output_dir=str(config.output_dir),
        last_checkpoint=last.best_model_path,
        best_checkpoint=best.best_model_path or None,
        best_score=None if score is None else float(score),
        metrics={key: float(value) for key, value in trainer.callback_metrics.items()},
        global_rank=trainer.global_rank,
    )
