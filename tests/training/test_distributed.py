"""Two gloo processes: the training loss path (model + cross-process gathered loss) equals one process on the
same global batch, in value and gradient; and a 2-process Lightning DDP run of ``tcdml train`` completes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from tcdml.models import build_model
from tcdml.training.build import build_loss
from tcdml.training.config import TrainConfig
from tcdml.training.module import EmbeddingModule
from tests.helpers import tiny_config

WORLD = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(12, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return images, torch.tensor([0, 0, 1, 1, 2, 2, 0, 0, 1, 3, 3, 2])


def make_module(root: Path) -> EmbeddingModule:
    values = tiny_config(root, root / "unused", model={"freeze_bn": True})  # BN statistics are per process
    config = TrainConfig.from_dict(values)
    torch.manual_seed(0)
    return EmbeddingModule(
        build_model(config.model), build_loss(config), config.optim, config.trainer.max_epochs
    )


def loss_and_grads(module: EmbeddingModule, images: torch.Tensor, labels: torch.Tensor):
    loss = module.loss_fn(module(images), labels)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]


def worker(rank: int, root: Path, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        images, labels = global_batch()
        rows = slice(rank * 6, (rank + 1) * 6)
        loss, grads = loss_and_grads(make_module(root), images[rows], labels[rows])
        for tensor in (loss, *grads):  # what DDP does: average over processes
            dist.all_reduce(tensor)
            tensor /= WORLD
        if rank == 0:
            torch.save({"loss": loss, "grads": grads}, root / "ddp.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_on_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(worker, args=(tmp_path, free_port()), nprocs=WORLD, join=True)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    loss, grads = loss_and_grads(make_module(tmp_path), *global_batch())
    torch.testing.assert_close(ddp["loss"], loss, rtol=1e-5, atol=1e-6)
    assert len(ddp["grads"]) == len(grads)
    for got, want in zip(ddp["grads"], grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(sys.platform != "linux", reason="Lightning's CPU DDP launcher, tested on Linux")
def test_lightning_ddp_run_of_tcdml_train_completes(image_tree: Path, tmp_path: Path) -> None:
    config = tiny_config(
        image_tree, tmp_path / "run", trainer={"max_epochs": 1, "devices": 2, "strategy": "ddp"}
    )
    config["data"]["classes_per_batch"] = 2  # 3 train classes x 6 images: 4 batches of 2 x 2, 2 per process
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    tcdml = Path(sys.executable).parent / "tcdml"
    env = {**os.environ, "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [str(tcdml), "train", str(path)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout[run.stdout.index("{") :])
    assert Path(summary["last_checkpoint"]).is_file()
    assert 0 <= summary["metrics"]["val/recall@1"] <= 1
    checkpoint = torch.load(summary["last_checkpoint"], weights_only=True)
    assert checkpoint["global_step"] == 2  # 2 batches per process, in step on both
