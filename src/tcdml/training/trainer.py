"""Build the Lightning ``Trainer`` from a config, fit, resume.

``fit(config)`` builds the run once (``tcdml.training.build.build_run``: data, filled config, model, loss),
trains it and writes to ``config.output_dir``:

- ``checkpoints/last.ckpt``: the full state after every epoch (overwritten atomically);
- ``checkpoints/best.ckpt``: the kept model: the best by ``eval.monitor`` on the validation classes among
  the start (before any step) and the evaluated epochs, never worse than the start
  (``tcdml.training.evaluation``); without validation classes (``data.val_classes: 0``) the last epoch;
- ``test_report.json``: the kept model's metrics on ``data.eval_split``, measured once after training (a
  report: the test split never selects anything; no sample of it is read before);
- ``logs/metrics.csv``: one log per run, written up to date at every checkpoint and continued on resume
  (rows at or after the checkpoint's step are dropped first: no duplicated steps); TensorBoard event files
  in ``tensorboard/`` when ``tensorboard`` is installed.

``fit(config, resume="…/last.ckpt")`` continues from a checkpoint: the next epoch starts exactly where the
uninterrupted run would have started it (weights, optimiser, schedule, AMP scaler, sampler epoch, RNG).
Before the ``Trainer`` is built (and anything is written) the checkpoint is checked against the config
(``check_resume``) and the config against this machine (``check_runtime``): one-line ``TcdmlInputError``s.
An interrupt (``KeyboardInterrupt``) is re-raised after Lightning's graceful shutdown.
Multi-GPU / multi-node runs use Lightning's strategies (``trainer.strategy=ddp``, ``trainer.devices``,
``trainer.num_nodes``) under ``torchrun`` or SLURM; see docs/training.md.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from tcdml.training.build import build_run
from tcdml.training.checkpoint import AtomicCheckpointIO, EpochSeed, RemoveStaleTemporaries
from tcdml.training.config import TrainConfig
from tcdml.training.evaluation import SelectOnValidation
from tcdml.training.module import EmbeddingModule
from tcdml.training.quiet import quiet_lightning
from tcdml.training.runtime import check_resume, check_runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """Where a run wrote its checkpoints, what it kept and measured.

    ``kept_epoch``: 0 the start, e after e epochs (None without validation classes: the last epoch is
    kept); ``best_score``: its selection objective on the validation classes; ``selection``: every
    evaluated ``[kept_epoch, objective]``; ``test``: the kept model's metrics on ``data.eval_split``
    (``test_report.json``; None on processes other than the first).
    """

    output_dir: str
    last_checkpoint: str
    best_checkpoint: str | None
    best_score: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    global_rank: int = 0  # under DDP every process returns a result; rank 0 reports it
    kept_epoch: int | None = None
    selection: list = field(default_factory=list)
    test: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        """JSON-ready summary (what ``tcdml train`` prints)."""
        return {
            "output_dir": self.output_dir,
            "last_checkpoint": self.last_checkpoint,
            "best_checkpoint": self.best_checkpoint,
            "best_score": self.best_score,
            "kept_epoch": self.kept_epoch,
            "selection": self.selection,
            "metrics": self.metrics,
            "test": self.test,
        }


class RunLogWriter(ExperimentWriter):
    """Lightning's CSV writer on one file per run: ``resume_step`` keeps the rows before that step.

    A fresh run (``resume_step=None``) starts the file anew; a resumed one keeps the rows logged before
    the checkpoint's step (rows at or after it, e.g. of an interrupted epoch, are logged again) and appends.
    A last line cut off by a crash is dropped.
    """

    def __init__(self, log_dir: str, resume_step: int | None) -> None:
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self.resume_step is None:
            path.unlink()
            return
        from tcdml.io.atomic import atomic_write

        text = path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # cut off mid-row
        rows = list(csv.DictReader(lines))
        header = next(csv.reader(lines[:1]), [])
        kept = [row for row in rows if _step(row) is not None and _step(row) < self.resume_step]
        with atomic_write(path, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        self.metrics_keys = list(header)


def _step(row: dict) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` writing ``<output_dir>/logs/metrics.csv`` (no versions), continued on resume."""

    def __init__(self, output_dir: str | os.PathLike, resume_step: int | None = None) -> None:
        super().__init__(output_dir, name="logs", version="")
        self.resume_step = resume_step

    @property
    def log_dir(self) -> str:
        return os.path.join(self.save_dir, "logs")

    @property
    @rank_zero_experiment
    def experiment(self) -> RunLogWriter:  # type: ignore[override]
        if self._experiment is None:
            self._experiment = RunLogWriter(self.log_dir, self.resume_step)
        return self._experiment


class SaveLogWithCheckpoint(pl.Callback):
    """Write the loggers' pending rows whenever a checkpoint is taken, so the log is as far as the state."""

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        for logger in trainer.loggers:
            logger.save()


class StoreConfig(pl.Callback):
    """Store the run's (filled) config in every checkpoint as ``tcdml_config``, so a checkpoint alone
    rebuilds its model (``tcdml embed`` / ``export`` read its model and data sections)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint["tcdml_config"] = self.config.to_dict()


class RecordInterrupt(pl.Callback):
    """Remember the exception Lightning reports through ``on_exception`` (it swallows KeyboardInterrupt)."""

    exception: BaseException | None = None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.exception = exception


def build_loggers(output_dir: Path, resume_step: int | None = None) -> list:
    """The run's CSV log, plus TensorBoard when the ``tensorboard`` package is installed (else a note)."""
    loggers: list = [RunCSVLogger(output_dir, resume_step)]
    if importlib.util.find_spec("tensorboard") is not None:
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(output_dir, name="tensorboard", version=""))
    else:
        log.info("tensorboard is not installed: logging to CSV only (pip install tensorboard)")
    return loggers


def build_trainer(
    config: TrainConfig, callbacks: Sequence[pl.Callback] = (), *, resume_step: int | None = None
) -> pl.Trainer:
    """The Lightning ``Trainer`` of a filled ``config`` with tcdml's checkpointing, seeding, selection on the
    validation classes (``SelectOnValidation``, absent with ``data.val_classes: 0``) and loggers.

    ``callbacks`` are added after tcdml's own (e.g. a user's early stopping); ``resume_step``: the global
    step of the checkpoint a run continues (its log is kept up to there).
    """
    settings = config.trainer
    output_dir = Path(config.output_dir)
    every = config.eval.every_n_epochs
    checkpoints = output_dir / "checkpoints"
    last = ModelCheckpoint(
        checkpoints, filename="last", save_on_train_epoch_end=True, enable_version_counter=False
    )
    validates = bool(config.data.val_classes)
    select = [
        SelectOnValidation(config.eval.metric_settings(), config.eval.monitor, checkpoints / "best.ckpt")
    ]
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
        limit_val_batches=None if validates else 0,
        num_sanity_val_steps=0,  # evaluation needs the whole validation set
        use_distributed_sampler=False,  # the m-per-class sampler shards batches itself
        default_root_dir=output_dir,
        logger=build_loggers(output_dir, resume_step),
        callbacks=[
            RemoveStaleTemporaries(checkpoints),
            EpochSeed(config.seed),
            StoreConfig(config),
            SaveLogWithCheckpoint(),
            last,
            *(select if validates else []),
            *callbacks,
        ],
        plugins=[AtomicCheckpointIO()],
    )


def fit(
    config: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    callbacks: Sequence[pl.Callback] = (),
) -> FitResult:
    """Train ``config`` (from scratch, or continuing the checkpoint ``resume``); say where it wrote what.

    Bad settings and a checkpoint that does not fit ``config`` raise ``TcdmlInputError`` before anything
    is written (``build_run`` reads the splits and fills the loss's runtime parameters first). An interrupt
    re-raises its ``KeyboardInterrupt`` once Lightning has shut down. After training the kept model's
    weights are in the module (``callbacks`` that caught it see them) and its test report is written.
    """
    check_runtime(config)
    resume_step = None if resume is None else check_resume(config, resume)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    run = build_run(config)  # a bad dataset or loss fails here, before the run's folder is made
    config = run.config
    module = EmbeddingModule(run.model, run.loss, config.optim, config.trainer.max_epochs)
    interrupt = RecordInterrupt()
    handler = signal.getsignal(signal.SIGINT)
    try:
        with quiet_lightning():  # tcdml prints its own summary; an interrupt ends with one line
            trainer = build_trainer(config, [*callbacks, interrupt], resume_step=resume_step)
            trainer.fit(
                module,
                datamodule=run.data,
                ckpt_path=None if resume is None else str(resume),
                weights_only=True,
            )
    except SystemExit:  # Lightning's answer to KeyboardInterrupt: hand the interrupt on instead
        if isinstance(interrupt.exception, KeyboardInterrupt):
            raise interrupt.exception from None
        raise
    finally:
        if handler is not None and signal.getsignal(signal.SIGINT) is not handler:
            try:
                signal.signal(signal.SIGINT, handler)  # Lightning leaves Ctrl-C ignored after an interrupt
            except ValueError:  # not the main thread
                pass
    last = next(cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint))
    select = next((cb for cb in trainer.callbacks if isinstance(cb, SelectOnValidation)), None)
    best = None
    if select is not None and select.checkpoint.is_file():
        best = str(select.checkpoint)
        keep_weights(module.model, best)
    test = None
    if trainer.is_global_zero:
        test = report_test_split(module.model, run, Path(config.output_dir) / "test_report.json", select)
    return FitResult(
        output_dir=str(config.output_dir),
        last_checkpoint=last.best_model_path,
        best_checkpoint=best,
        best_score=None if select is None else select.best_score,
        metrics={key: float(value) for key, value in trainer.callback_metrics.items()},
        global_rank=trainer.global_rank,
        kept_epoch=None if select is None else select.kept_epoch,
        selection=[] if select is None else select.history,
        test=test,
    )


def keep_weights(model: Any, path: str | os.PathLike) -> None:
    """Load the model weights of the checkpoint ``path`` (the kept model) into ``model``."""
    from tcdml.training.checkpoint import read_checkpoint

    state = read_checkpoint(path)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})


def report_test_split(model: Any, run: Any, path: Path, select: SelectOnValidation | None) -> dict[str, Any]:
    """The kept ``model``'s metrics on ``data.eval_split`` (``tcdml.metrics.evaluate`` at the config's eval
    settings, with OPIS's interval), written to ``path`` (JSON) and returned; measured once, after
    training."""
    from tcdml.io.json_file import write_json
    from tcdml.metrics import evaluate
    from tcdml.training.embed import embed_samples

    config = run.config
    device = str(next(model.parameters()).device)
    embeddings = embed_samples(
        model, run.data.eval_set, batch_size=config.data.eval_batch_size, device=device
    )
    metric = config.eval.metric_settings()
    ks = tuple(sorted({1, *metric.ks}))
    result = evaluate(
        embeddings,
        run.data.eval_set.labels,
        ks=ks,
        far_range=metric.far_range,
        beta=metric.beta,
        eps=metric.eps,
    ).to_dict()
    report = {
        "split": config.data.eval_split,
        "kept_epoch": None if select is None else select.kept_epoch,
        "num_samples": len(run.data.eval_set),
        "num_classes": run.data.eval_set.num_classes,
        **result,
    }
    write_json(path, report)
    return report
