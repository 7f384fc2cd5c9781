"""Training overhead of tcdml's Lightning pipeline against a bare PyTorch loop, and data-pipeline throughput.

Run by hand: ``.venv/bin/python benchmarks/bench_training.py [--epochs 4] [--threads 2]``. Both loops
train the same model (timm resnet18 at 64 px, 128-d head, same init), with the same loss (Smooth-AP +
TCM), optimiser (AdamW, backbone/head groups, per-step cosine schedule), batches (m-per-class sampler,
8 classes x 4) and data (a generated folder of PNGs, train transform, loaded in the main process).
Reported: the median seconds between consecutive steps (data loading included, epoch-end checkpoints
not) over epochs 2.., and their ratio. Then images/s of the data pipeline alone (decode + random resized
crop 224 + flip + normalise) with 2 workers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader

from tcdml.data import MPerClassBatchSampler, TransformConfig, build_transform, load_image_folder
from tcdml.training.build import build_run
from tcdml.training.config import TrainConfig
from tcdml.training.optim import build_optimizer, lr_factor, param_groups
from tcdml.training.trainer import fit


def make_images(root: Path, classes: int = 32, per_class: int = 16, size: int = 96) -> Path:
    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = root / f"class_{label:03d}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def config_for(root: Path, output: Path, epochs: int, image_size: int = 64) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": {
                "dataset": "folder",
                "root": str(root),
                "image_size": image_size,
                "classes_per_batch": 8,
                "samples_per_class": 4,
                "num_workers": 0,
                "val_classes": 0,  # the same training classes as the bare loop below
            },
            "model": {"backbone": "resnet18", "embedding_size": 128},
            "loss": {"name": "smooth_ap", "tcm": True},
            "optim": {"lr": 1e-4, "head_lr": 1e-3, "warmup_epochs": 0.5},
            "trainer": {"max_epochs": epochs, "accelerator": "cpu", "devices": 1, "progress_bar": False},
            "eval": {"every_n_epochs": epochs + 1},  # training time only
            "output_dir": str(output),
        }
    )


class StepTimer(pl.Callback):
    """Seconds between consecutive batch ends within an epoch: data loading + step, no epoch-end work."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.last: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.last = None

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        now = time.perf_counter()
        if self.last is not None and trainer.current_epoch > 0:  # epoch 0 warms up
            self.seconds.append(now - self.last)
        self.last = now


def lightning_step_seconds(config: TrainConfig) -> float:
    timer = StepTimer()
    fit(config, callbacks=[timer])
    return statistics.median(timer.seconds)


def bare_step_seconds(config: TrainConfig) -> float:
    """The same training in a plain loop: no Lightning, no logging, no checkpoints."""
    torch.manual_seed(config.seed)
    run = build_run(config)  # the same model + loss, built the same way
    model, loss_fn = run.model, run.loss
    transform = build_transform(
        TransformConfig(image_size=config.data.image_size, mean=model.mean, std=model.std), train=True
    )
    data = load_image_folder(config.data.root, "train", transform=transform)
    sampler = MPerClassBatchSampler(data.labels, config.data.classes_per_batch, config.data.samples_per_class)
    loader = DataLoader(data, batch_sampler=sampler, num_workers=0)
    optimizer = build_optimizer(param_groups(model, loss_fn, config.optim), config.optim)
    epochs = config.trainer.max_epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config.optim, len(loader), epochs))
    model.train()
    per_step = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        last = None
        for images, labels in loader:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            now = time.perf_counter()
            if last is not None and epoch > 0:
                per_step.append(now - last)
            last = now
    return statistics.median(per_step)


def data_images_per_second(root: Path, workers: int = 2, epochs: int = 2) -> float:
    transform = build_transform(TransformConfig(image_size=224), train=True)
    data = load_image_folder(root, "train", transform=transform)
    sampler = MPerClassBatchSampler(data.labels, 8, 4)
    loader = DataLoader(data, batch_sampler=sampler, num_workers=workers, persistent_workers=True)
    count, start = 0, None
    for epoch in range(epochs + 1):
        sampler.set_epoch(epoch)
        for images, _ in loader:
            count += len(images) if start is not None else 0
        start = start or time.perf_counter()  # epoch 0 warms the workers up
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_images(Path(tmp) / "images")
        config = config_for(root, Path(tmp) / "run", args.epochs)
        bare = bare_step_seconds(config)
        lightning = lightning_step_seconds(config)
        print(f"training step, resnet18 64px batch 32, CPU x{args.threads} threads:")
        print(f"  bare PyTorch loop   {bare * 1e3:8.1f} ms/step")
        ratio = f"ratio {lightning / bare:.3f}x (goal <= 1.05x)"
        print(f"  tcdml (Lightning)   {lightning * 1e3:8.1f} ms/step   {ratio}")
        big = make_images(Path(tmp) / "big", classes=16, per_class=16, size=320)
        rate = data_images_per_second(big)
        print(f"data pipeline, 320px PNG -> 224 train transform, 2 workers: {rate:.0f} images/s")


if __name__ == "__main__":
    main()
