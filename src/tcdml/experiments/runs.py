"""One trained run, measured: fit a ``TrainConfig``, embed its evaluation split, evaluate and calibrate.

Shared by the MNIST demo (``mnist_demo``) and the study grid (``study``), so both measure runs the same way:

- ``fit_module(config, callbacks)``: ``tcdml.training.fit`` plus the trained ``EmbeddingModule`` itself;
- ``measure(model, config, target_far)``: embeddings of ``data.eval_split``, ``tcdml.metrics.evaluate`` with
  the config's eval settings (``ks`` always including 1) and one global threshold at ``target_far``;
- ``headline_metrics``: the numbers a table shows (R@1, MAP@R, OPIS, eps-OPIS, per-class FAR/FRR spreads);
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Measurement:
    """A trained model's evaluation-split embeddings, their evaluation and the calibrated threshold."""

    embeddings: np.ndarray
    labels: np.ndarray
    evaluation: Any
    calibration: Any

    def metrics(self) -> dict[str, float]:
        """``headline_metrics`` of this measurement."""
        return headline_metrics(self.evaluation, self.calibration)


def fit_module(
    config: Any, callbacks: Any = (), *, resume: str | os.PathLike | None = None
) -> tuple[Any, float]:
    """Fit ``config`` with ``tcdml.training.fit``; return the trained ``EmbeddingModule`` and the seconds.

    The module is caught at ``setup`` (it is trained in place), so a resumed run whose checkpoint is already
    at ``max_epochs`` (no training step left) still hands back its restored weights.
    """
    import pytorch_lightning as pl

    from tcdml.training.trainer import fit

    class KeepModule(pl.Callback):
        module: Any = None

        def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
            self.module = pl_module

    keep = KeepModule()
    start = time.perf_counter()
    fit(config, callbacks=[*callbacks, keep], resume=resume)
    return keep.module, time.perf_counter() - start


def measure(model: Any, config: Any, *, target_far: float, device: str | None = None) -> Measurement:
    """Embed ``config.data``'s evaluation split with ``model``, evaluate it and calibrate at ``target_far``.

    ``evaluate`` gets the config's ``eval`` settings (``ks`` plus 1, ``far_range``, ``beta``, ``eps``);
    ``calibrate_counts`` picks the smallest threshold with global FAR <= ``target_far``. ``device`` defaults
    to CUDA when available and the config's accelerator allows it, else the CPU.
    """
    from tcdml.calibration import calibrate_counts
    from tcdml.metrics import evaluate
    from tcdml.training.embed import embed_split

    embeddings, labels = embed_split(model, config.data, device=device or _device(config))
    settings = config.eval
    evaluation = evaluate(
        embeddings,
        labels,
        ks=tuple(sorted({1, *settings.ks})),
        far_range=settings.far_range,
        beta=settings.beta,
        eps=settings.eps,
    )
    calibration = calibrate_counts(evaluation.counts, target_far=target_far)
    return Measurement(embeddings, labels, evaluation, calibration)


def _device(config: Any) -> str:
    import torch

    wants_gpu = config.trainer.accelerator in ("auto", "gpu", "cuda")
    return "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"


def headline_metrics(evaluation: Any, calibration: Any) -> dict[str, float]:
    """R@k (every k evaluated), MAP@R, OPIS, eps-OPIS, the threshold, its FAR/FRR and per-class spreads.

    ``far_spread`` / ``frr_spread`` = max - min over classes of the per-class FAR / FRR at the calibrated
    threshold (the threshold-consistency the paper's TCM targets, read at one operating point).
    """
    evaluation.require_opis("a run's headline metrics")
    out = {f"recall@{k}": float(value) for k, value in sorted(evaluation.recall_at_k.items())}
    out.update(
        {
            "map@r": float(evaluation.map_at_r),
            "opis": float(evaluation.opis),
            "eps_opis": float(evaluation.eps_opis),
            "threshold": float(calibration.threshold),
            "far": float(calibration.far),
            "frr": float(calibration.frr),
            "far_spread": calibration.far_spread.max - calibration.far_spread.min,
            "frr_spread": calibration.frr_spread.max - calibration.frr_spread.min,
        }
    )
    return out
