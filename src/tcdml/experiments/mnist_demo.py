"""The MNIST demo (the seed article's toy study): one small CNN trained with ArcFace, with and without TCM.

``run_demo(output)`` trains both runs from ``configs/demo/`` through ``tcdml.training.fit`` (same seed, same
schedule), embeds the test digits, measures them with ``tcdml.metrics.evaluate`` and calibrates one global
threshold with ``tcdml.calibration.calibrate_counts``. It writes into ``output``:

- ``mnist_clusters.png/.svg``: ArcFace's class weights over the test embeddings' per-class density, per run;
- ``mnist_utility_curves.png/.svg``: per-class utility vs threshold, per run;
- ``metrics.json``: every metric of both runs and the relative change; ``report.md`` embedding the figures;
- ``runs/<run>/``: each run's checkpoints and logs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.experiments.runs import fit_module, headline_metrics, measure, quiet_lightning
from tcdml.io.json_file import write_json

#: The two runs: (name, config file under the demo config folder, title used in figures and tables).
RUNS = (
    ("arcface", "mnist-arcface.yaml", "ArcFace"),
    ("arcface_tcm", "mnist-arcface-tcm.yaml", "ArcFace + TCM"),
)
#: The calibrated threshold meets this global FAR on the test pairs.
TARGET_FAR = 0.01
#: Embedding sizes the demo can draw.
EMBEDDING_SIZES = (2, 3)
#: The table rows: (metric key in ``RunResult.metrics()``, label, whether higher is better).
TABLE_ROWS = (
    ("recall@1", "R@1", True),
    ("map@r", "MAP@R", True),
    ("opis", "OPIS", False),
    ("eps_opis", "eps-OPIS (10%)", False),
    ("far_spread", f"class FAR spread @ FAR {TARGET_FAR:g} (max-min)", False),
    ("frr_spread", f"class FRR spread @ FAR {TARGET_FAR:g} (max-min)", False),
)


def default_config_dir() -> Path:
    """``configs/demo`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[3] / "configs" / "demo"


@dataclass
class RunResult:
    """One trained run: its test embeddings, ArcFace class weights, evaluation and calibration."""

    name: str
    title: str
    embeddings: np.ndarray
    labels: np.ndarray
    class_weights: np.ndarray
    evaluation: Any
    calibration: Any
    output_dir: str
    seconds: float

    def metrics(self) -> dict[str, float]:
        """The headline numbers: R@1, MAP@R, OPIS, eps-OPIS, threshold and per-class FAR/FRR spreads."""
        return headline_metrics(self.evaluation, self.calibration)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: headline metrics, the full evaluation and calibration, where the run wrote to."""
        return {
            "title": self.title,
            "metrics": self.metrics(),
            "evaluation": self.evaluation.to_dict(),
            "calibration": self.calibration.to_dict(),
            "output_dir": self.output_dir,
            "train_seconds": self.seconds,
        }


@dataclass
class DemoResult:
    """Both runs, the relative change of every metric and the files written."""

    output: Path
    runs: list[RunResult]
    settings: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def relative_change(self) -> dict[str, float | None]:
        """``(with TCM - without) / |without|`` per metric (None where the baseline is 0)."""
        base, tcm = (run.metrics() for run in self.runs)
        return {key: (tcm[key] - base[key]) / abs(base[key]) if base[key] else None for key in base}

    def table(self) -> list[tuple[str, float, float, float | None, bool]]:
        """Rows ``(label, ArcFace, ArcFace + TCM, relative change, higher is better)``."""
        base, tcm = (run.metrics() for run in self.runs)
        change = self.relative_change()
        return [(label, base[key], tcm[key], change[key], higher) for key, label, higher in TABLE_ROWS]

    def to_dict(self) -> dict[str, Any]:
        """What ``metrics.json`` holds."""
        return {
            "settings": self.settings,
            "runs": {run.name: run.to_dict() for run in self.runs},
            "relative_change": self.relative_change(),
            "seconds": self.seconds,
        }


def demo_configs(
    *,
    epochs: int | None = None,
    embedding_size: int = 2,
    seed: int = 0,
    output: str | os.PathLike = "demo-output",
    config_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Any]:
    """The ``TrainConfig`` of both runs, from the demo YAML files with the options applied."""
    from tcdml.training.config import load_config

    if embedding_size not in EMBEDDING_SIZES:
        raise TcdmlInputError(f"embedding_size={embedding_size}: the demo draws 2-D or 3-D embeddings")
    if epochs is not None and epochs < 1:
        raise TcdmlInputError(f"epochs={epochs}: expected >= 1")
    folder = Path(config_dir) if config_dir is not None else default_config_dir()
    overrides = [
        f"seed={seed}",
        f"model.embedding_size={embedding_size}",
        f"loss.params.embedding_size={embedding_size}",
        f"trainer.progress_bar={str(progress).lower()}",
    ]
    if epochs is not None:
        overrides += [f"trainer.max_epochs={epochs}", f"eval.every_n_epochs={epochs}"]
    configs = []
    for name, file, _ in RUNS:
        run_dir = Path(output) / "runs" / name
        configs.append(load_config(folder / file, [*overrides, f"output_dir={run_dir.as_posix()}"]))
    return configs


def train_run(config: Any, name: str, title: str) -> RunResult:
    """Fit ``config`` with ``tcdml.training.fit``, embed its test split, evaluate and calibrate."""
    import pytorch_lightning as pl

    class SpreadWeights(pl.Callback):
        """Spreads ArcFace's class weights at the start of training."""

        def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            spread_class_weights(pl_module.loss_fn)

    module, seconds = fit_module(config, [SpreadWeights()])
    measured = measure(module.model, config, target_far=TARGET_FAR, device="cpu")
    return RunResult(
        name=name,
        title=title,
        embeddings=measured.embeddings,
        labels=measured.labels,
        class_weights=arcface_weights(module.loss_fn),
        evaluation=measured.evaluation,
        calibration=measured.calibration,
        output_dir=str(config.output_dir),
        seconds=seconds,
    )


def arcface_module(loss: Any) -> Any:
    """The pytorch-metric-learning ``ArcFaceLoss`` inside the (possibly wrapped) loss module."""
    from pytorch_metric_learning.losses import ArcFaceLoss

    for module in loss.modules():
        if isinstance(module, ArcFaceLoss):
            return module
    raise TcdmlInputError("the demo's loss has no ArcFace class weights")


def arcface_weights(loss: Any) -> np.ndarray:
    """ArcFace's class weight vectors as unit rows (C x D)."""
    weights = arcface_module(loss).W.detach().cpu().numpy().T
    return weights / np.linalg.norm(weights, axis=1, keepdims=True)


def spread_class_weights(loss: Any) -> None:
    """Start ArcFace's class weights evenly spread: around the circle (2-D) or on a Fibonacci sphere (3-D).

    From a random start, 2-D training tends to stay stuck with the classes bunched on one arc (classes
    cannot pass each other on a circle); the weights stay trainable.
    """
    import torch

    weight = arcface_module(loss).W  # (D, C)
    size, count = weight.shape
    index = np.arange(count) + 0.5
    if size == 2:
        angle = 2 * np.pi * index / count
        points = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    else:
        z = 1 - 2 * index / count
        angle = np.pi * (3 - np.sqrt(5)) * index
        radius = np.sqrt(1 - z**2)
        points = np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=1)
    with torch.no_grad():
        weight.copy_(torch.as_tensor(points.T, dtype=weight.dtype))


def run_demo(
    output: str | os.PathLike = "demo-output",
    *,
    epochs: int | None = None,
    embedding_size: int = 2,
    seed: int = 0,
    config_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> DemoResult:
    """Train both runs, then write the figures, ``metrics.json`` and ``report.md`` into ``output``.

    ``epochs`` defaults to the config's (30); ``embedding_size`` is 2 or 3; ``config_dir`` defaults to the
    checkout's ``configs/demo``. Returns the ``DemoResult`` (its ``table()`` is what the CLI prints).
    """
    from tcdml.experiments.demo_report import write_report
    from tcdml.experiments.mnist_figures import plot_class_clusters, plot_utility_comparison

    start = time.perf_counter()
    output = Path(output)
    configs = demo_configs(
        epochs=epochs,
        embedding_size=embedding_size,
        seed=seed,
        output=output,
        config_dir=config_dir,
        progress=progress,
    )
    output.mkdir(parents=True, exist_ok=True)
    runs = []
    with quiet_lightning():
        for config, (name, _, title) in zip(configs, RUNS, strict=True):
            runs.append(train_run(config, name, title))
    settings = {
        "epochs": configs[0].trainer.max_epochs,
        "embedding_size": embedding_size,
        "seed": seed,
        "target_far": TARGET_FAR,
        "loss": {run.name: config.loss.registry_config() for run, config in zip(runs, configs, strict=True)},
    }
    result = DemoResult(output=output, runs=runs, settings=settings)
    files = plot_class_clusters(runs, output) + plot_utility_comparison(runs, output)
    result.seconds = time.perf_counter() - start
    result.files = [*files, write_metrics(result), write_report(result)]
    return result


def write_metrics(result: DemoResult) -> Path:
    """``metrics.json`` in the output folder (NaN written as null)."""
    return write_json(result.output / "metrics.json", result.to_dict())
