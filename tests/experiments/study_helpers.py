"""Shared by the study tests: a tiny MNIST study config and 2-batch training epochs (no benchmark files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: The demo's ArcFace + TCM config: a benchmark whose own loss section (with TCM) cells must replace.
MNIST_CONFIG = ROOT / "src" / "tcdml" / "experiments" / "configs" / "mnist-arcface-tcm.yaml"
TRAIN_BATCHES = 2


#: A loss that loads (configs are checked whole at load) and fails once the cell's split is read: ArcFace with
#: 3 class weights for MNIST's 10 digits (a num_classes that disagrees with the training classes).
BROKEN = {"name": "arcface", "params": {"num_classes": 3}}


def write_study(folder: Path, **changes: Any) -> Path:
    """``folder/study.yaml``: MNIST, smooth_ap + arcface (num_classes filled), one seed, one short epoch."""
    study = {
        "output_dir": str(folder / "out"),
        "seeds": [0],
        "benchmarks": {"mnist": {"config": str(MNIST_CONFIG), "overrides": ["model.embedding_size=8"]}},
        "losses": {
            "smooth_ap": {"name": "smooth_ap"},
            "arcface": {"name": "arcface", "params": {"scale": 16, "margin": 10}},
        },
        "tcm": {"lambda_pos": 1.0, "lambda_neg": 1.0, "margin_pos": 0.9, "margin_neg": 0.5},
        "overrides": ["trainer.max_epochs=1", "eval.every_n_epochs=1", "trainer.log_every_n_steps=1"],
    }
    study.update(changes)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
    return path


def short_epochs(monkeypatch: Any) -> list[Any]:
    """Make every study cell train ``TRAIN_BATCHES`` batches per epoch; returns the list of fitted configs."""
    import pytorch_lightning as pl

    from tcdml.experiments import runs

    class LimitBatches(pl.Callback):
        def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
            trainer.limit_train_batches = TRAIN_BATCHES

    fitted: list[Any] = []
    real = runs.fit_module

    def fit_module(config: Any, callbacks: Any = (), **kwargs: Any) -> Any:
        fitted.append(config)
        return real(config, [*callbacks, LimitBatches()], **kwargs)

    monkeypatch.setattr(runs, "fit_module", fit_module)
    return fitted


def record(
    benchmark: str, loss: str, variant: str, tcm: bool | str, seed: int, **metrics: float
) -> dict[str, Any]:
    """A hand-made ``result.json`` record; ``tcm``: True / False, or an arm name (``base`` or a TCM arm)."""
    cell = {"benchmark": benchmark, "loss": loss, "variant": variant, "tcm": bool(tcm), "seed": seed}
    if isinstance(tcm, str):
        cell.update({"tcm": tcm != "base", "arm": tcm})
    return {"cell": cell, "metrics": metrics, "seconds": 1.0}


def write_records(folder: Path, records: list[dict[str, Any]], embeddings: dict | None = None) -> Path:
    """Each record as ``folder/<benchmark>/<loss>/<variant>/<arm>/seed<k>/result.json``; ``embeddings``:
    (arm, seed) -> (x, y) written as that cell's ``embeddings.npz``."""
    from tcdml.io import save_embeddings_file

    for item in records:
        cell = item["cell"]
        arm = cell.get("arm") or ("tcm" if cell["tcm"] else "base")
        path = folder / cell["benchmark"] / cell["loss"] / cell["variant"] / arm / f"seed{cell['seed']}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "result.json").write_text(json.dumps(item), encoding="utf-8")
        key = (cell["loss"], arm, cell["seed"])
        if embeddings and key in embeddings:
            save_embeddings_file(path / "embeddings.npz", *embeddings[key])
    return folder


def embedded_study(folder: Path) -> Path:
    """Two losses x (base, tcm) x seeds 0, 1 with embeddings: smooth_ap's TCM has equally spread classes (OPIS
    far lower); arcface's TCM is its base plus a nudge (no detectable change)."""
    import numpy as np

    from tests.helpers import clustered_embeddings

    unequal = clustered_embeddings([6] * 40, dim=24, spread=list(np.linspace(0.3, 1.3, 40)), seed=0)
    equal = clustered_embeddings([6] * 40, dim=24, spread=0.8, seed=0)
    nudged = (unequal[0] + np.random.default_rng(1).normal(size=unequal[0].shape).astype(np.float32) * 1e-3,)
    embeddings = {}
    for seed in (0, 1):
        embeddings[("smooth_ap", "base", seed)] = unequal
        embeddings[("smooth_ap", "tcm", seed)] = equal
        embeddings[("arcface", "base", seed)] = unequal
        embeddings[("arcface", "tcm", seed)] = (nudged[0], unequal[1])
    items = [
        record("b", loss, "default", arm, seed, **{"recall@1": 0.8, "opis": 0.01})
        for loss in ("smooth_ap", "arcface")
        for arm in ("base", "tcm")
        for seed in (0, 1)
    ]
    return write_records(folder, items, embeddings)
