"""The LightningModule: a built embedding model trained with a built loss (gathered across processes).

``EmbeddingModule(model, loss, optim, max_epochs)`` receives what ``tcdml.training.build.build_run`` built
(open-metric-learning's ``ExtractorModule`` shape); it builds nothing from a config. Training:
``loss_r = loss(model(inputs), labels)`` with ``loss`` a ``DistributedLoss`` (inputs: an image batch, or a
list of ``str`` for text backbones; only trainable parameters are optimised, see
``ModelConfig.trainable_blocks``): under DDP every process ranks its own batch against the embeddings of all
processes, scaled so that N processes x B train exactly like one process with N x B
(``tcdml.losses.distributed``). ``train/loss_step`` (per step) and ``train/loss_epoch`` (the epoch's
sample-weighted mean) are logged averaged over processes, i.e. the global loss. The epoch mean is logged in
the module's ``on_train_epoch_end``, before the epoch's checkpoint is taken, so a run resumed from that
checkpoint has it in its log.

Evaluation: ``validation_step`` returns the batch's embeddings and labels; the callback
``tcdml.training.evaluation.SelectOnValidation`` (which holds the metric settings) gathers and measures them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from tcdml.losses.tcm import tracked_margins
from tcdml.training.config import OptimConfig
from tcdml.training.optim import build_optimizer, lr_factor, param_groups


class EmbeddingModule(pl.LightningModule):
    """Trains ``model`` (an ``EmbeddingModel``) with ``loss`` (a ``DistributedLoss``; its own parameters, e.g.
    proxies, train at ``optim.loss_lr``) under the optimiser and per-step schedule of ``optim`` over
    ``max_epochs`` epochs (see the module docstring). ``self.loss_fn`` is ``loss``."""

    def __init__(self, model: nn.Module, loss: nn.Module, optim: OptimConfig, max_epochs: int) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss
        self.optim = optim
        self.max_epochs = max_epochs
        self._epoch_loss: list[Tensor] = []  # per step: (loss x batch size, batch size)

    def forward(self, inputs: Tensor | Sequence[str]) -> Tensor:
        """(B, D) unit-norm embeddings of an image batch or of B texts."""
        return self.model(inputs)

    def training_step(self, batch: tuple[Tensor | Sequence[str], Tensor], batch_idx: int) -> Tensor:
        """This process's share of the global loss on one batch."""
        inputs, labels = batch
        loss = self.loss_fn(self.model(inputs), labels)
        # batch_size explicit: not left to how Lightning reads the sizes of a (list of texts, labels) batch.
        self.log(
            "train/loss_step",
            loss,
            on_step=True,
            on_epoch=False,
            prog_bar=True,
            sync_dist=True,
            batch_size=len(labels),
        )
        self._epoch_loss.append(
            torch.stack([loss.detach().float() * len(labels), loss.new_tensor(len(labels))])
        )
        return loss

    def on_train_epoch_start(self) -> None:
        self._epoch_loss.clear()

    def on_train_epoch_end(self) -> None:
        """Log ``train/loss_epoch`` (and auto TCM margins, ``tcm/margin_pos`` / ``tcm/margin_neg``) now:
        Lightning's own epoch-end logging comes after the checkpoint."""
        if not self._epoch_loss:
            return
        total, count = torch.stack(self._epoch_loss).sum(dim=0)
        value = self.trainer.strategy.reduce(total / count, reduce_op="mean")
        self._epoch_loss.clear()
        value = float(value)
        logged = {"train/loss_epoch": value, "epoch": self.current_epoch}
        margins = tracked_margins(self.loss_fn)  # auto TCM margins: the ones this epoch ended with
        if margins is not None:
            logged.update({f"tcm/{name}": margin for name, margin in margins.items()})
        for logger in self.loggers:
            logger.log_metrics(logged, step=max(0, self.global_step - 1))
        self.trainer.callback_metrics["train/loss_epoch"] = torch.tensor(value)

    def validation_step(
        self, batch: tuple[Tensor | Sequence[str], Tensor], batch_idx: int
    ) -> dict[str, Tensor]:
        """The batch's embeddings and labels, for the evaluation callback."""
        inputs, labels = batch
        return {"embeddings": self.model(inputs).float(), "labels": labels}

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW/SGD over backbone, head and loss groups, with the per-step schedule of ``optim``."""
        config = self.optim
        optimizer = build_optimizer(param_groups(self.model, self.loss_fn, config), config)
        max_epochs = self.max_epochs
        # Not trainer.estimated_stepping_batches: it starts iterating the train loader before a resumed run's
        # epoch is restored, so workers would prefetch batches of epoch 0.
        steps_per_epoch = max(1, len(self.trainer.datamodule.train_dataloader()))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(config, steps_per_epoch, max_epochs)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
