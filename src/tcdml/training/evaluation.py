"""Evaluation during training, in a callback: the validation classes select the kept model (``best.ckpt``).

``SelectOnValidation(settings, monitor, checkpoint)`` is the Lightning callback (open-metric-learning's
``MetricValCallback`` shape: the module's ``validation_step`` returns the batch's embeddings and labels, the
callback gathers them and measures). It evaluates the validation classes (``data.val_classes``):

- at the start, before any training step (``kept_epoch`` 0: the model as built, e.g. the pretrained encoder
  under an identity head), logged as ``start/<metric>``;
- after every ``eval.every_n_epochs``-th epoch e (``kept_epoch`` e = Lightning's epoch index + 1), logged as
  ``val/<metric>``.

Every process embeds its shard of the validation set and ``evaluate_distributed`` measures the union
(``evaluate`` in one process): R@k, MAP@R, OPIS and eps-OPIS at the ``MetricSettings`` given (no bootstrap).
The selection objective ``J`` of ``monitor``: ``recall@1-opis`` (the default) is ``R@1 - OPIS``, a metric to
maximise is itself, ``opis`` / ``eps_opis`` are negated; an evaluation whose OPIS is undefined scores
``-inf`` when ``J`` needs OPIS. The kept model is ``argmax J`` over the start and the evaluated epochs, the
earliest on ties: an epoch replaces the kept one only when strictly better, so the kept model is never
worse than the start on the validation classes by ``J``. Each new kept model is written to ``checkpoint``
(atomically, like every checkpoint); the selection state is saved in checkpoints and restored on resume.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from tcdml.distributed import rank_and_world
from tcdml.metrics.catalogue import headline_metrics, metric
from tcdml.metrics.settings import MetricSettings


def measure(embeddings: Tensor, labels: Tensor, settings: MetricSettings) -> dict[str, float]:
    """R@k, MAP@R, OPIS, eps-OPIS and ``recall@1-opis`` of the union of every process's shard (NaN where
    OPIS is undefined); identical on every process."""
    from tcdml.metrics import evaluate
    from tcdml.metrics.distributed import evaluate_distributed

    run = evaluate_distributed if rank_and_world()[1] > 1 else evaluate
    ks = tuple(sorted({1, *settings.ks}))
    result = run(
        embeddings, labels, ks=ks, far_range=settings.far_range, beta=settings.beta, eps=settings.eps
    ).to_dict()
    names = headline_metrics(ks)  # recall@k and the headline metrics of the catalogue
    values = {name: math.nan if result[name] is None else float(result[name]) for name in names}
    values["recall@1-opis"] = values["recall@1"] - values["opis"]
    return values


def objective(monitor: str, values: dict[str, float]) -> float:
    """The selection objective ``J`` of ``monitor`` (module docstring); ``-inf`` where it is undefined."""
    value = values[monitor]
    if math.isnan(value):
        return -math.inf
    return value if metric(monitor).higher_is_better else -value


class SelectOnValidation(pl.Callback):
    """Measure the validation classes at the start and after validation epochs; keep the best (module doc).

    ``kept_epoch`` (0: the start), ``best_score`` (its ``J``) and ``history`` (``[kept_epoch, J]`` pairs)
    say what was kept; ``checkpoint`` is where the kept model is written.
    """

    def __init__(self, settings: MetricSettings, monitor: str, checkpoint: str | Path) -> None:
        self.settings = settings
        self.monitor = monitor
        self.checkpoint = Path(checkpoint)
        self.kept_epoch: int | None = None
        self.best_score: float | None = None
        self.history: list[list[float]] = []
        self._embeddings: list[Tensor] = []
        self._labels: list[Tensor] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Measure and keep the start (a fresh run only: a resumed run restored its selection)."""
        if self.history:
            return
        was_training = pl_module.training
        pl_module.eval()
        self._embeddings.clear()
        self._labels.clear()
        loader = trainer.datamodule.val_dataloader()
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for batch in loader:
                inputs, labels = trainer.strategy.batch_to_device(batch, pl_module.device)
                self._collect(pl_module(inputs), labels)
        pl_module.train(was_training)
        values = self._measure(pl_module)
        for logger in trainer.loggers:
            logger.log_metrics({f"start/{name}": value for name, value in values.items()}, step=0)
        self._select(trainer, 0, values)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._embeddings.clear()
        self._labels.clear()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._collect(outputs["embeddings"], outputs["labels"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._labels:
            return
        values = self._measure(pl_module)
        pl_module.log_dict({f"val/{name}": value for name, value in values.items()}, prog_bar=False)
        self._select(trainer, trainer.current_epoch + 1, values)

    def _collect(self, embeddings: Tensor, labels: Tensor) -> None:
        self._embeddings.append(embeddings.detach().float())
        self._labels.append(labels.detach())

    def _measure(self, pl_module: pl.LightningModule) -> dict[str, float]:
        embeddings = torch.cat(self._embeddings)
        labels = torch.cat(self._labels).to(embeddings.device)
        self._embeddings.clear()
        self._labels.clear()
        return measure(embeddings, labels, self.settings)

    def _select(self, trainer: pl.Trainer, epoch: int, values: dict[str, float]) -> None:
        score = objective(self.monitor, values)
        self.history.append([epoch, score])
        if self.best_score is None or score > self.best_score:
            self.kept_epoch, self.best_score = epoch, score
            trainer.save_checkpoint(self.checkpoint)

    def state_dict(self) -> dict[str, Any]:
        return {"kept_epoch": self.kept_epoch, "best_score": self.best_score, "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.kept_epoch = state_dict["kept_epoch"]
        self.best_score = state_dict["best_score"]
        self.history = [list(pair) for pair in state_dict["history"]]
