"""The MNIST demo (the seed article's toy study): one small CNN trained with ArcFace, with and without TCM.

``run_demo(output, seeds=(0, 1, 2, 3, 4))`` trains both runs from the packaged configs
(``tcdml/experiments/configs/``) through ``tcdml.training.fit`` for every seed (both runs of a seed share the
seed, data order, schedule and start), embeds the test digits, measures them with ``tcdml.metrics.evaluate``,
calibrates one global threshold with ``tcdml.calibration.calibrate_counts`` and compares the two runs with the
paired bootstrap of ``tcdml.metrics.compare``. Torch runs on ``threads`` intra-op threads (default 1) so that
a seed gives the same numbers on a busy or an idle machine. It writes into ``output``:

- ``seed<S>/``: per seed, ``metrics.json`` (both runs, the relative change, the paired deltas),
  ``mnist_clusters.png/.svg`` (ArcFace's class weights over the test embeddings, per-digit spread in the
  panel titles), ``mnist_utility_curves.png/.svg`` and ``runs/<run>/`` (checkpoints and logs);
- ``metrics.json``: every seed and the summary over seeds; ``report.md``: the tables and the first seed's
  figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.experiments.demo_report import TABLE_ROWS, TARGET_FAR
from tcdml.experiments.demo_stats import SeedStatistics, class_spreads, seed_statistics
from tcdml.experiments.runs import fit_module, headline_metrics, measure
from tcdml.io.json_file import write_json

#: The two runs: (name, config file under the demo config folder, title used in figures and tables).
RUNS = (
    ("arcface", "mnist-arcface.yaml", "ArcFace"),
    ("arcface_tcm", "mnist-arcface-tcm.yaml", "ArcFace + TCM"),
)
#: Embedding sizes the demo can draw.
EMBEDDING_SIZES = (2, 3)
#: Seeds of ``tcdml demo`` without ``--seeds``.
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def default_config_dir() -> Path:
    """The demo's configs, shipped inside the package (``tcdml/experiments/configs``)."""
    return Path(__file__).resolve().parent / "configs"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: comma-separated distinct integers (negatives are refused later, by the
    config's own ``seed`` check)."""
    if not text.strip():
        raise TcdmlInputError("--seeds: empty; give at least one, e.g. --seeds 0,1,2,3,4")
    parts = [part.strip() for part in text.split(",")]
    try:
        seeds = [int(part) for part in parts]
    except ValueError:
        message = f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2,3,4"
        raise TcdmlInputError(message) from None
    return check_seeds(seeds)


def check_seeds(seeds: Iterable[int]) -> list[int]:
    """``seeds`` as a list: at least one, integers, no repeats."""
    seeds = list(seeds)
    if not seeds:
        raise TcdmlInputError("seeds: empty; give at least one, e.g. --seeds 0,1,2,3,4")
    if any(isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) for seed in seeds):
        raise TcdmlInputError(f"seeds={seeds}: expected integers")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise TcdmlInputError(f"seeds={seeds}: seed {repeated[0]} is repeated; each seed must appear once")
    return [int(seed) for seed in seeds]


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

    @property
    def spreads(self) -> np.ndarray:
        """Each digit's angular spread in degrees (``demo_stats.class_spreads``)."""
        return np.degrees(class_spreads(self.embeddings, self.labels)[1])

    def metrics(self) -> dict[str, float]:
        """R@1, MAP@R, OPIS, eps-OPIS, threshold, per-class FAR/FRR spreads and the mean per-digit spread."""
        out = headline_metrics(self.evaluation, self.calibration)
        out["class_spread"] = float(self.spreads.mean())
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: headline metrics, the full evaluation and calibration, where the run wrote to."""
        return {
            "title": self.title,
            "metrics": self.metrics(),
            "class_spreads_degrees": self.spreads.tolist(),
            "evaluation": self.evaluation.to_dict(),
            "calibration": self.calibration.to_dict(),
            "output_dir": self.output_dir,
            "train_seconds": self.seconds,
        }


@dataclass
class SeedResult:
    """Both runs of one seed, their paired bootstrap deltas (``tcdml.metrics.compare.paired_deltas``)."""

    seed: int
    runs: list[RunResult]
    deltas: dict[str, Any]
    output: Path
    files: list[Path] = field(default_factory=list)

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
        """What ``seed<S>/metrics.json`` holds."""
        return {
            "seed": self.seed,
            "runs": {run.name: run.to_dict() for run in self.runs},
            "relative_change": self.relative_change(),
            "paired_deltas": {
                name: {"value": d.value, "ci95": list(d.ci), "verdict": d.verdict}
                for name, d in self.deltas.items()
            },
        }


@dataclass
class DemoResult:
    """Every seed's two runs, the summary over seeds and the files written."""

    output: Path
    seeds: list[SeedResult]
    settings: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, SeedStatistics]:
        """Per ``TABLE_ROWS`` metric: both arms' mean ± sd over seeds, the paired change, its t-interval."""
        out = {}
        for key, _, higher in TABLE_ROWS:
            base = [seed.runs[0].metrics()[key] for seed in self.seeds]
            tcm = [seed.runs[1].metrics()[key] for seed in self.seeds]
            out[key] = seed_statistics(base, tcm, higher)
        return out

    def target_met(self) -> bool:
        """The issue's target: OPIS and eps-OPIS lower with TCM on >= 80 % of the seeds, the mean per-digit
        spread lower, and the mean R@1 change not below 0 beyond its t-interval (the upper end >= 0)."""
        stats = self.summary()
        enough = 0.8 * len(self.seeds)
        r1_high = stats["recall@1"].change_ci[1]
        return bool(
            stats["opis"].better >= enough
            and stats["eps_opis"].better >= enough
            and stats["class_spread"].change_mean < 0
            and (np.isnan(r1_high) or r1_high >= 0 or stats["recall@1"].change_mean >= 0)
        )

    def to_dict(self) -> dict[str, Any]:
        """What ``metrics.json`` holds."""
        return {
            "settings": self.settings,
            "seeds": {str(seed.seed): seed.to_dict() for seed in self.seeds},
            "summary": {key: stats.to_dict() for key, stats in self.summary().items()},
            "target_met": self.target_met(),
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
    """The ``TrainConfig`` of both runs of one seed (run folders under ``output``), options applied."""
    from tcdml.training.config_files import load_config

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
    seeds: Sequence[int] = DEFAULT_SEEDS,
    threads: int | None = 1,
    config_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> DemoResult:
    """Train both runs for every seed, then write the per-seed and summary files into ``output``.

    ``epochs`` defaults to the config's; ``embedding_size`` is 2 or 3; ``threads``: torch intra-op threads
    while the demo runs (``None`` leaves torch's setting); ``config_dir`` defaults to the packaged
    configs (``default_config_dir()``). Every config is loaded and checked before the first run trains.
    """
    import torch

    from tcdml.experiments.demo_report import write_report

    start = time.perf_counter()
    seeds = check_seeds(seeds)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise TcdmlInputError(f"threads={threads!r}: expected an integer >= 1")
    output = Path(output)
    options = {"epochs": epochs, "embedding_size": embedding_size, "config_dir": config_dir}
    configs = {
        seed: demo_configs(seed=seed, output=output / f"seed{seed}", progress=progress, **options)
        for seed in seeds
    }
    first = configs[seeds[0]]
    settings = {
        "epochs": first[0].trainer.max_epochs,
        "embedding_size": embedding_size,
        "seeds": seeds,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "target_far": TARGET_FAR,
        "loss": {run[0]: config.loss.registry_config() for run, config in zip(RUNS, first, strict=True)},
    }
    output.mkdir(parents=True, exist_ok=True)
    previous = torch.get_num_threads()
    results = []
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        for seed in seeds:
            results.append(run_seed(seed, configs[seed], output / f"seed{seed}"))
    finally:
        torch.set_num_threads(previous)
    result = DemoResult(output=output, seeds=results, settings=settings)
    result.seconds = time.perf_counter() - start
    result.files = [write_json(output / "metrics.json", result.to_dict()), write_report(result)]
    return result


def run_seed(seed: int, configs: Sequence[Any], output: Path) -> SeedResult:
    """Train and measure both runs of one seed; write its figures and ``metrics.json`` into ``output``."""
    from tcdml.experiments.mnist_figures import plot_class_clusters, plot_utility_comparison
    from tcdml.metrics.compare import paired_deltas
    from tcdml.metrics.uncertainty import UncertaintySettings

    output.mkdir(parents=True, exist_ok=True)
    runs = [train_run(config, run[0], run[2]) for config, run in zip(configs, RUNS, strict=True)]
    deltas = paired_deltas(runs[0].evaluation, runs[1].evaluation, UncertaintySettings(seed=seed))
    result = SeedResult(seed=seed, runs=runs, deltas=deltas, output=output)
    files = plot_class_clusters(runs, output) + plot_utility_comparison(runs, output)
    result.files = [*files, write_json(output / "metrics.json", result.to_dict())]
    return result
