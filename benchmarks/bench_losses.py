"""Loss benchmarks, run by hand: ``python benchmarks/bench_losses.py [--quick] [--json OUT]``.

Every case runs in a fresh subprocess so its peak resident memory (``ru_maxrss``) is its own. Printed ratios
are against a baseline measured in the same run:

1. TCM forward+backward vs the bare similarity matrix (``normalize(x) @ normalize(x).T``,
``sum().backward()``)
   at B in {256, 1024, 4096, 8192}, D = 512, and vs pytorch-metric-learning's TCM up to B = 1024 (it
   materialises every pair's vectors and runs out of memory beyond). Goal: <= 1.3x bare; B = 8192 < 4 GB peak.
2. TCM's share of a full training step of a small CNN (goal: < 3 %).
3. Smooth-AP and the Recall@k surrogate at the papers' batch sizes (224 and 4000, 4 samples per class).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

DIM = 512
TCM_BATCHES = (256, 1024, 4096, 8192)
PML_MAX_BATCH = 1024


def clustered(
    batch: int, dim: int = DIM, per_class: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-ish embeddings around per-class centres, so both hard positives and hard negatives exist."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch) // per_class
    centres = F.normalize(torch.randn(int(labels.max()) + 1, dim, generator=g), dim=1)
    x = centres[labels] + 0.9 * torch.randn(batch, dim, generator=g) / dim**0.5
    return x, labels


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def timed(step: Callable[[], None], repeats: int) -> dict[str, float]:
    """Run ``step`` once to warm up, then ``repeats`` times; median / min wall time and peak memory."""
    base_mb = _rss_mb()
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "median_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times),
        "peak_mb": peak_mb,
        "peak_above_inputs_mb": peak_mb - base_mb,
    }


def case_similarity(kind: str, batch: int, repeats: int) -> dict[str, float]:
    """``bare`` | ``tcm`` | ``pml_tcm`` forward+backward on a B x 512 batch."""
    x, labels = clustered(batch)
    x.requires_grad_()
    if kind == "bare":

        def loss() -> torch.Tensor:
            xn = F.normalize(x, dim=1)
            return (xn @ xn.T).sum()

    elif kind == "tcm":
        from tcdml.losses import TCMLoss

        tcm = TCMLoss()

        def loss() -> torch.Tensor:
            return tcm(x, labels)

    else:
        from pytorch_metric_learning.losses import ThresholdConsistentMarginLoss

        pml = ThresholdConsistentMarginLoss()

        def loss() -> torch.Tensor:
            return pml(x, labels)

    def step() -> None:
        x.grad = None
        loss().backward()

    return timed(step, repeats)


class SmallCNN(torch.nn.Module):
    """A small convnet (about 1.2 M parameters) with a 512-d embedding head, 64 x 64 RGB input."""

    def __init__(self) -> None:
        super().__init__()
        channels = [3, 32, 64, 128, 256]
        layers: list[torch.nn.Module] = []
        for c_in, c_out in itertools.pairwise(channels):
            layers += [
                torch.nn.Conv2d(c_in, c_out, 3, padding=1),
                torch.nn.BatchNorm2d(c_out),
                torch.nn.ReLU(),
            ]
            layers.append(torch.nn.MaxPool2d(2))
        self.features = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(channels[-1], DIM)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def case_train_step(kind: str, batch: int, repeats: int) -> dict[str, float]:
    """One SGD step of ``SmallCNN`` with MultiSimilarity (``base``) or with it + TCM (``with_tcm``)."""
    from pytorch_metric_learning.losses import MultiSimilarityLoss

    from tcdml.losses import with_tcm

    torch.manual_seed(0)
    model = SmallCNN()
    loss_fn = MultiSimilarityLoss() if kind == "base" else with_tcm(MultiSimilarityLoss())
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    images = torch.randn(batch, 3, 64, 64)
    labels = torch.arange(batch) // 4

    def step() -> None:
        optimiser.zero_grad()
        loss_fn(model(images), labels).backward()
        optimiser.step()

    return timed(step, repeats)


def case_ranking(kind: str, batch: int, repeats: int) -> dict[str, float]:
    """``smooth_ap`` | ``pml_smooth_ap`` | ``recall_at_k`` | ``recall_at_k_mixup`` forward+backward."""
    from pytorch_metric_learning.losses import SmoothAPLoss as PMLSmoothAP

    from tcdml.losses import RecallAtKSurrogateLoss, SmoothAPLoss

    x, labels = clustered(batch)
    x.requires_grad_()
    loss_fn = {
        "smooth_ap": SmoothAPLoss,
        "pml_smooth_ap": PMLSmoothAP,
        "recall_at_k": RecallAtKSurrogateLoss,
        "recall_at_k_mixup": lambda: RecallAtKSurrogateLoss(mixup=True),
    }[kind]()

    def step() -> None:
        x.grad = None
        loss_fn(x, labels).backward()

    return timed(step, repeats)


CASES = {"similarity": case_similarity, "train_step": case_train_step, "ranking": case_ranking}


def run_case(group: str, kind: str, batch: int, repeats: int) -> dict[str, float]:
    """Run one case in a fresh interpreter; its JSON result, or ``{"error": ...}``."""
    command = [sys.executable, __file__, "--case", group, kind, str(batch), str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(result: dict[str, float]) -> str:
    if "error" in result:
        return f"error: {result['error']}"
    return f"{result['median_ms']:9.1f} ms  peak {result['peak_mb'] / 1024:5.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", nargs=4, metavar=("GROUP", "KIND", "BATCH", "REPEATS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--quick", action="store_true", help="small batches only (a smoke run)")
    parser.add_argument("--json", help="also write all results to this file")
    args = parser.parse_args()
    if args.case:
        group, kind, batch, repeats = args.case
        print(json.dumps(CASES[group](kind, int(batch), int(repeats))))
        return

    results: dict[str, dict[str, float]] = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, D = {DIM}")
    print("\n1. TCM forward+backward vs the bare similarity matrix (median of repeats)")
    for batch in TCM_BATCHES[:2] if args.quick else TCM_BATCHES:
        repeats = 10 if batch <= 1024 else 5
        bare = results[f"bare@{batch}"] = run_case("similarity", "bare", batch, repeats)
        tcm = results[f"tcm@{batch}"] = run_case("similarity", "tcm", batch, repeats)
        ratio = tcm["median_ms"] / bare["median_ms"]
        line = f"B={batch:5d}  bare {_fmt(bare)} | TCM {_fmt(tcm)}  ratio {ratio:.2f}x"
        if batch <= PML_MAX_BATCH:
            pml = results[f"pml_tcm@{batch}"] = run_case("similarity", "pml_tcm", batch, 2)
            if "error" not in pml:
                line += f" | PML TCM {_fmt(pml)} = {pml['median_ms'] / tcm['median_ms']:.0f}x ours"
        print(line, flush=True)

    print("\n2. Share of TCM in a training step (SmallCNN, 64x64 images, MultiSimilarity base)")
    batch = 64 if args.quick else 256
    base = results["step_base"] = run_case("train_step", "base", batch, 5)
    with_tcm = results["step_with_tcm"] = run_case("train_step", "with_tcm", batch, 5)
    tcm_alone = run_case("similarity", "tcm", batch, 20)
    share = tcm_alone["median_ms"] / with_tcm["median_ms"]
    print(
        f"B={batch}  step {_fmt(base)} | step + TCM {_fmt(with_tcm)} | "
        f"TCM alone {tcm_alone['median_ms']:.1f} ms"
    )
    print(
        f"TCM share of the step: {100 * share:.2f} % (standalone TCM / step), step difference "
        f"{100 * (with_tcm['median_ms'] - base['median_ms']) / with_tcm['median_ms']:+.2f} %"
    )

    print("\n3. Ranking losses at the papers' batch sizes (4 samples per class)")
    ranking = [("smooth_ap", 224), ("pml_smooth_ap", 224), ("smooth_ap", 384), ("recall_at_k", 4000)]
    ranking += [("recall_at_k_mixup", 1000 if args.quick else 4000)]
    for kind, batch in ranking[:2] if args.quick else ranking:
        result = results[f"{kind}@{batch}"] = run_case("ranking", kind, batch, 3)
        print(f"{kind:18s} B={batch:5d}  {_fmt(result)}", flush=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
