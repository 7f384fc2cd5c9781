"""Loss benchmarks, run by hand: ``python benchmarks/bench_losses.py [--quick] [--json OUT]``.

Ratios are against a baseline measured in the same run: the two are timed in the same process with their
repetitions interleaved, and the ratio of the best (minimum) times is the headline figure, as other load on
the machine only ever adds time (medians are printed too). Peak memory (``ru_maxrss``) comes from a fresh
subprocess per case.

1. TCM forward+backward vs the bare similarity matrix (``normalize(x) @ normalize(x).T``, then
   ``sum().backward()``) at B in {256, 1024, 4096, 8192}, D = 512, and vs pytorch-metric-learning's TCM up to
   B = 1024 (it materialises every pair's vectors and runs out of memory beyond). Goal: <= 1.3x bare;
   B = 8192 under 4 GB peak.
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
Step = Callable[[], None]


def clustered(
    batch: int, dim: int = DIM, per_class: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings around per-class centres, so both hard positives and hard negatives exist."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch) // per_class
    centres = F.normalize(torch.randn(int(labels.max()) + 1, dim, generator=g), dim=1)
    x = centres[labels] + 0.9 * torch.randn(batch, dim, generator=g) / dim**0.5
    return x, labels


def interleaved(steps: dict[str, Step], repeats: int) -> dict[str, dict[str, float]]:
    """Warm each step up, then run them in turn ``repeats`` times; median and min milliseconds of each."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(1000 * (time.perf_counter() - start))
    return {name: {"median_ms": statistics.median(t), "min_ms": min(t)} for name, t in times.items()}


def similarity_step(kind: str, x: torch.Tensor, labels: torch.Tensor) -> Step:
    """One forward+backward: ``bare`` similarity matrix, tcdml ``tcm`` or PML's TCM (``pml_tcm``)."""
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

    return step


def case_time_tcm(batch: int, repeats: int, with_pml: bool) -> dict:
    """Interleaved timing of bare / tcm (/ pml_tcm) at one batch size."""
    x, labels = clustered(batch)
    x.requires_grad_()
    kinds = ["bare", "tcm", "pml_tcm"] if with_pml else ["bare", "tcm"]
    return interleaved({k: similarity_step(k, x, labels) for k in kinds}, repeats)


def case_memory(kind: str, batch: int) -> dict:
    """Peak resident memory of this process around one warm-up and one measured step of ``kind``."""
    if kind.startswith("rank:"):
        step = ranking_step(kind[5:], batch)
    else:
        x, labels = clustered(batch)
        step = similarity_step(kind, x.requires_grad_(), labels)
    start = time.perf_counter()
    step()
    step()
    return {
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "two_steps_ms": 1000 * (time.perf_counter() - start),
    }


class SmallCNN(torch.nn.Module):
    """A small convnet (about 0.4 M parameters) with a 512-d embedding head, 64 x 64 RGB input."""

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


def case_train_step(batch: int, repeats: int) -> dict:
    """Interleaved SGD steps of ``SmallCNN`` with MultiSimilarity, with it + TCM, and TCM alone."""
    from pytorch_metric_learning.losses import MultiSimilarityLoss

    from tcdml.losses import TCMLoss, with_tcm

    torch.manual_seed(0)
    model = SmallCNN()
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, 64, 64)
    labels = torch.arange(batch) // 4
    embeddings = model(images).detach().requires_grad_()

    def train_step(loss_fn: torch.nn.Module) -> Step:
        def step() -> None:
            optimiser.zero_grad()
            loss_fn(model(images), labels).backward()
            optimiser.step()

        return step

    def tcm_alone() -> None:
        embeddings.grad = None
        TCMLoss()(embeddings, labels).backward()

    steps = {
        "step_base": train_step(MultiSimilarityLoss()),
        "step_with_tcm": train_step(with_tcm(MultiSimilarityLoss())),
        "tcm_alone": tcm_alone,
    }
    return interleaved(steps, repeats)


def ranking_step(kind: str, batch: int) -> Step:
    """Forward+backward of ``smooth_ap`` | ``pml_smooth_ap`` | ``recall_at_k`` | ``recall_at_k_mixup``."""
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

    return step


def case_time_ranking(kinds: str, batch: int, repeats: int) -> dict:
    """Interleaved timing of the comma-separated ranking losses at one batch size."""
    return interleaved({k: ranking_step(k, batch) for k in kinds.split(",")}, repeats)


def run_case(*args: object) -> dict:
    """Run one case in a fresh interpreter; its JSON result, or ``{"error": ...}``."""
    done = subprocess.run(
        [sys.executable, __file__, "--case", *map(str, args)], capture_output=True, text=True
    )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _case(args: list[str]) -> dict:
    name, *rest = args
    if name == "time_tcm":
        return case_time_tcm(int(rest[0]), int(rest[1]), rest[2] == "True")
    if name == "memory":
        return case_memory(rest[0], int(rest[1]))
    if name == "train_step":
        return case_train_step(int(rest[0]), int(rest[1]))
    return case_time_ranking(rest[0], int(rest[1]), int(rest[2]))


def section_tcm(batches: tuple[int, ...], results: dict) -> None:
    print(
        "\n1. TCM forward+backward vs the bare similarity matrix (interleaved; best of N, median in brackets)"
    )
    for batch in batches:
        repeats = 30 if batch <= 1024 else 6
        times = results[f"time@{batch}"] = run_case("time_tcm", batch, repeats, batch <= PML_MAX_BATCH)
        if "error" in times:
            print(f"B={batch}: {times['error']}")
            continue
        bare, tcm = times["bare"], times["tcm"]
        peaks = {k: run_case("memory", k, batch).get("peak_mb", float("nan")) for k in ("bare", "tcm")}
        results[f"peak@{batch}"] = peaks
        line = (
            f"B={batch:5d}  bare {bare['min_ms']:8.1f} ms ({bare['median_ms']:.1f})  "
            f"TCM {tcm['min_ms']:8.1f} ms ({tcm['median_ms']:.1f})  "
            f"ratio {tcm['min_ms'] / bare['min_ms']:.2f}x ({tcm['median_ms'] / bare['median_ms']:.2f}x)  "
            f"peak bare {peaks['bare'] / 1024:.2f} GB, TCM {peaks['tcm'] / 1024:.2f} GB"
        )
        if "pml_tcm" in times:
            pml = times["pml_tcm"]
            pml_peak = run_case("memory", "pml_tcm", batch).get("peak_mb", float("nan"))
            line += f"  | PML TCM {pml['min_ms']:.0f} ms = {pml['min_ms'] / tcm['min_ms']:.0f}x ours"
            line += f", peak {pml_peak / 1024:.2f} GB"
        print(line, flush=True)


def section_train_step(batch: int, results: dict) -> None:
    print(f"\n2. Share of TCM in a training step (SmallCNN, B={batch} 64x64 images, MultiSimilarity base)")
    times = results["train_step"] = run_case("train_step", batch, 8)
    if "error" in times:
        print(times["error"])
        return
    base, with_tcm, alone = (times[k]["min_ms"] for k in ("step_base", "step_with_tcm", "tcm_alone"))
    print(f"step {base:.0f} ms, step with TCM {with_tcm:.0f} ms, TCM fwd+bwd alone {alone:.2f} ms")
    print(
        f"TCM share of the step: {100 * alone / with_tcm:.2f} % (TCM alone / step); "
        f"step difference {100 * (with_tcm - base) / with_tcm:+.2f} % (noisy)"
    )


def section_ranking(quick: bool, results: dict) -> None:
    print("\n3. Ranking losses at the papers' batch sizes (4 samples per class), fwd+bwd best of 3")
    plan = [
        ("smooth_ap,pml_smooth_ap", 224),
        ("smooth_ap", 384),
        ("recall_at_k", 4000),
        ("recall_at_k_mixup", 4000),
    ]
    for kinds, batch in plan[:1] if quick else plan:
        times = results[f"ranking@{batch}:{kinds}"] = run_case("time_ranking", kinds, batch, 3)
        for kind in kinds.split(","):
            if "error" in times:
                print(f"{kind:18s} B={batch:5d}  {times['error']}")
                continue
            peak = run_case("memory", f"rank:{kind}", batch).get("peak_mb", float("nan"))
            print(f"{kind:18s} B={batch:5d}  {times[kind]['min_ms']:9.1f} ms  peak {peak / 1024:.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small batches only (a smoke run)")
    parser.add_argument("--json", help="also write all results to this file")
    parser.add_argument("--sections", default="1,2,3", help="which sections to run, e.g. 1,2 (default: all)")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_case(args.case)))
        return
    results: dict = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, D = {DIM}")
    sections = set(args.sections.split(","))
    if "1" in sections:
        section_tcm(TCM_BATCHES[:2] if args.quick else TCM_BATCHES, results)
    if "2" in sections:
        section_train_step(64 if args.quick else 256, results)
    if "3" in sections:
        section_ranking(args.quick, results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
