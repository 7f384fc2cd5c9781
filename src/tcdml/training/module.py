"""The LightningModule: embedding model + loss (gathered across processes) + periodic evaluation.

Training: ``loss_r = DistributedLoss(loss)(model(inputs), labels)`` (inputs: an image batch, or a list of
``str`` for text backbones; only trainable parameters are optimised, see ``ModelConfig.trainable_blocks``);
under DDP every process ranks its own batch against the embeddings of all processes, scaled so that N
processes x B train exactly like one process with N x B (``tcdml.losses.distributed``). ``train/loss_step``
(per step) and ``train/loss_epoch`` (the epoch's sample-weighted mean) are logged averaged over processes,
i.e. the global loss. The epoch mean is logged in the module's ``on_train_epoch_end``, before the epoch's
checkpoint is taken, so a run resumed from that checkpoint has it in its log.

Evaluation: every process embeds its contiguous shard of the evaluation set (``rank_share``), and
``tcdml.metrics.distributed.evaluate_distributed`` gathers the shards in rank order (the dataset's order),
each process computing its share of the query rows: the work is split, not repeated. The result (R@k, MAP@R,
OPIS and eps-OPIS, logged as ``val/recall@1``, ``val/map@r``, ``val/opis``, ``val/eps_opis``) equals
``tcdml.metrics.evaluate`` on the whole set, which is what a single process runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from tcdml.distributed import rank_and_world
from tcdml.errors import TcdmlInputError
from tcdml.losses import DistributedLoss, build_loss_from_config
from tcdml.losses.tcm import tracked_margins
from tcdml.models import build_model
from tcdml.training.config import TrainConfig
from tcdml.training.optim import build_optimizer, lr_factor, param_groups

#: Keys of ``EvaluationResult.to_dict()`` logged under ``val/``.
LOGGED_METRICS = ("map@r", "opis", "eps_opis")


class EmbeddingModule(pl.LightningModule):
    """Trains ``build_model(config.model)`` with the loss of ``config.loss`` (see the module docstring).

    ``self.model`` is the ``EmbeddingModel``; ``self.loss_fn`` is the ``DistributedLoss`` around the
    registry loss (its parameters, e.g. proxies, are trained at ``optim.loss_lr``).
    """

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config
        self.model = build_model(config.model, feature_cache=config.data.feature_cache)
        try:
            loss = build_loss_from_config(config.loss.registry_config())
        except ValueError as exc:  # the registry's messages name the loss and the parameter
            raise TcdmlInputError(f"loss: {exc}") from None
        self.loss_fn = DistributedLoss(loss)
        self._eval_embeddings: list[Tensor] = []
        self._eval_labels: list[Tensor] = []
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

    def on_validation_epoch_start(self) -> None:
        self._eval_embeddings.clear()
        self._eval_labels.clear()

    def validation_step(self, batch: tuple[Tensor | Sequence[str], Tensor], batch_idx: int) -> None:
        inputs, labels = batch
        self._eval_embeddings.append(self.model(inputs).float())
        self._eval_labels.append(labels)

    def on_validation_epoch_end(self) -> None:
        """Evaluate the union of every process's shard and log the metrics (identical on every process)."""
        from tcdml.metrics import evaluate
        from tcdml.metrics.distributed import evaluate_distributed

        embeddings = torch.cat(self._eval_embeddings)
        labels = torch.cat(self._eval_labels).to(self.device)
        settings = self.config.eval
        run = evaluate_distributed if rank_and_world()[1] > 1 else evaluate
        result = run(
            embeddings,
            labels,
            ks=settings.ks,
            far_range=settings.far_range,
            beta=settings.beta,
            eps=settings.eps,
        ).to_dict()
        names = [f"recall@{k}" for k in settings.ks] + list(LOGGED_METRICS)
        # OPIS is None where it is undefined (e.g. a collapsed calibration range early on): logged as NaN.
        values = {name: float("nan") if result[name] is None else float(result[name]) for name in names}
        self.log_dict({f"val/{name}": value for name, value in values.items()}, prog_bar=False)
        self._eval_embeddings.clear()
        self._eval_labels.clear()

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW/SGD over backbone, head and loss groups, with the per-step schedule of ``config.optim``."""
        config = self.config.optim
        optimizer = build_optimizer(param_groups(self.model, self.loss_fn, config), config)
        max_epochs = self.config.trainer.max_epochs
        # Not trainer.estimated_stepping_batches: it starts iterating the train loader before a resumed run's
        # epoch is restored, so workers would prefetch batches of epoch 0.
        steps_per_epoch = max(1, len(self.trainer.datamodule.train_dataloader()))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(config, steps_per_epoch, max_epochs)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the run's config, so a checkpoint alone rebuilds its model (``tcdml embed``)."""
        checkpoint["tcdml_config"] = self.config.to_dict()
