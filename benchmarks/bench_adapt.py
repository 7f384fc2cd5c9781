"""``tcdml adapt`` training speed against a bare PyTorch loop, run by hand:
``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_adapt.py [--n 100000] [--dim 384] [--classes 1000]``.

Data: N embeddings (D = 384, like all-MiniLM-L6-v2) around C random unit class centres, N / C per class.
``train_adapter`` runs with its defaults (residual head, hidden 512, Smooth-AP + TCM with auto margins, 64
classes x 4 per batch, AdamW) for one epoch; 20 % of the classes are held out for validation, as without
``--val``. The bare loop trains the same head (same init) with the same loss module and optimiser on the
same batches of the same 80 % of the samples (the sampler's epoch, drawn before its clock starts; no
validation, no bookkeeping). The two run interleaved ``--repeat`` times; the fastest of each counts (other
load on the machine only adds time). Reported: seconds of one training epoch for both and their ratio
(goal <= 1.1), and tcdml's validation seconds and whole call (epoch 0 and epoch 1 validations included).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def make_data(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clusters: ``centre_c + 0.9 * noise / sqrt(D)`` (overlapping classes, like a real model's)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(size=(classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[labels] + 0.9 * rng.normal(size=(n, dim)) / np.sqrt(dim)
    return x.astype(np.float32), labels.astype(np.int64)


def run_tcdml(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from tcdml.adapt import AdaptSettings, train_adapter

    start = time.perf_counter()
    result = train_adapter(x, y, AdaptSettings(epochs=1), progress=False)
    return {
        "call": time.perf_counter() - start,
        "epoch": result.seconds["train"][0],
        "validation": result.seconds["validation"][0],
        "train_samples": result.data["num_train_samples"],
        "val_samples": result.data["num_val_samples"],
        "recall@1": result.epochs[-1].recall_at_1,
    }


def run_bare(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The same head, loss, optimiser and batches (the epoch's m-per-class batches, drawn before the clock
    starts) in a plain loop: no validation, no bookkeeping."""
    from tcdml.adapt import AdaptSettings, split_classes
    from tcdml.adapt.head import build_head
    from tcdml.data.sampler import MPerClassBatchSampler
    from tcdml.losses import build_loss

    settings = AdaptSettings()
    train, _ = split_classes(y, settings.val_ratio, settings.val_seed)
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    sampler = MPerClassBatchSampler(y[train], settings.classes_per_batch, settings.m_per_class)
    batches = [torch.from_numpy(batch) for batch in sampler.epoch_batches(0)]
    torch.manual_seed(settings.seed)
    head = build_head("residual", x.shape[1], x.shape[1], settings.hidden)
    loss_fn = build_loss(settings.loss, tcm=settings.tcm_params())
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    start = time.perf_counter()
    for index in batches:
        loss = loss_fn(head(xt[index]), yt[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"epoch": time.perf_counter() - start, "steps": len(batches)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs of each; the fastest counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = make_data(args.n, args.dim, args.classes)
    print(
        f"N = {args.n:,}, D = {args.dim}, {args.classes} classes, {args.threads} threads, "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    from tcdml.adapt import AdaptSettings

    settings = AdaptSettings()
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):
        for name, run in (("tcdml", lambda: run_tcdml(x, y)), ("bare", lambda: run_bare(x, y))):
            row = run()
            if name not in best or row["epoch"] < best[name]["epoch"]:
                best[name] = row
    tcdml, bare = best["tcdml"], best["bare"]
    print(
        f"train samples {tcdml['train_samples']:,}, validation samples {tcdml['val_samples']:,}, "
        f"{bare['steps']} steps of {settings.batch_size}"
    )
    print(f"bare loop epoch          {bare['epoch']:7.2f} s")
    print(
        f"tcdml training epoch     {tcdml['epoch']:7.2f} s   ratio {tcdml['epoch'] / bare['epoch']:.3f} "
        "(goal <= 1.1)"
    )
    print(f"tcdml validation (1 of 2){tcdml['validation']:7.2f} s")
    print(f"tcdml whole call         {tcdml['call']:7.2f} s   (split, epoch 0 + epoch 1 validation, 1 epoch)")
    print(
        f"validation R@1 after one epoch {tcdml['recall@1']:.4f}; load average after {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
