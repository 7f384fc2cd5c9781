"""The shipped threshold on held-out classes, cosine against AS-norm, through the served path, run by hand:
``HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 .venv/bin/python benchmarks/asnorm_deploy.py [--data runs/adapt_hscodes]
[--target-far 0.01] [--top-k 25] [--seed 0]``.

Reads ``train.npz`` / ``test.npz`` of raw embeddings (``benchmarks/adapt_hscodes.py`` makes hscodes' raw
MiniLM ones there when missing; ``benchmarks/image_features.py`` the glyphs' raw ImageNet features). The
situation is "no training": the model is the raw encoder, exported as an identity adapter (``tcdml adapt train
--epochs 0``: the raw embeddings, L2-normalised). The training classes are split by class (``--seed``, half /
half): the AS-norm cohort and the calibration set (the cohort never holds the pairs it calibrates). Then, as a
user would:

1. ``tcdml calibrate calib.npz --target-far F`` and ``tcdml export`` (the cosine threshold);
2. ``tcdml calibrate calib.npz --target-far F --asnorm cohort.npz --top-k K`` and ``tcdml export --asnorm``;
3. each folder served with ``load_matcher``: ``search(test, test, embedded=True)`` gives every accepted pair
   of the held-out classes; per class c, FAR_c = accepted pairs with exactly one end in c / such pairs, FRR_c
   = rejected positive pairs of c / its positive pairs.

Printed per arm: overall FAR (against the target) and FRR on the held-out classes, and the spread of per-class
FAR: standard deviation, coefficient of variation (std / mean: the spread at the rate actually reached), 90th
percentile, max, share of classes above 2x the target. The AS-norm minus cosine differences come with 95 %
intervals from 1,000 class bootstrap resamples (paired: the same classes for both arms; each class's rates are
those of the full held-out set)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.adapt_hscodes import OUT, embed_split


def tcdml(*args: object) -> None:
    """Run this Python's tcdml CLI; stop with its error line on failure."""
    command = [sys.executable, "-m", "tcdml.cli.main", *map(str, args)]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {run.stderr.strip()}")


def class_rates(found, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, FAR_c, FRR_c) from a ``SearchResult`` of the set against itself (unordered pairs i < j)."""
    rows = np.repeat(np.arange(len(found)), np.diff(found.offsets))
    cols = found.indices
    keep = rows < cols
    rows, cols = rows[keep], cols[keep]
    classes, counts = np.unique(labels, return_counts=True)
    index = {c: k for k, c in enumerate(classes)}
    a = np.array([index[c] for c in labels[rows]], dtype=np.int64)
    b = np.array([index[c] for c in labels[cols]], dtype=np.int64)
    same = a == b
    false_accepts = np.bincount(a[~same], minlength=len(classes)) + np.bincount(
        b[~same], minlength=len(classes)
    )
    true_accepts = np.bincount(a[same], minlength=len(classes))
    negatives = counts * (len(labels) - counts)
    positives = counts * (counts - 1) / 2
    far = false_accepts / negatives
    frr = np.where(positives > 0, 1.0 - true_accepts / np.maximum(positives, 1), np.nan)
    return classes, far, frr


def summary(far: np.ndarray, frr: np.ndarray, counts: np.ndarray, n: int, target: float) -> dict[str, float]:
    """Overall FAR / FRR (pair-weighted) and the spread of per-class FAR."""
    negatives = counts * (n - counts)
    positives = counts * (counts - 1) / 2
    has = positives > 0
    return {
        "far": float((far * negatives).sum() / negatives.sum()),
        "frr": float((np.nan_to_num(frr) * positives)[has].sum() / positives[has].sum()),
        "class_far_std": float(far.std()),
        "class_far_cv": float(far.std() / far.mean()),
        "class_far_p90": float(np.quantile(far, 0.9)),
        "class_far_max": float(far.max()),
        "above_2x": float((far > 2 * target).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=OUT)
    parser.add_argument("--target-far", type=float, default=0.01)
    parser.add_argument("--top-k", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tcdml.deploy import load_matcher
    from tcdml.io import load_embeddings_file, save_embeddings_file

    data = args.data
    for split in ("train", "test"):
        if not (data / f"{split}.npz").exists() and data == OUT:
            data.mkdir(parents=True, exist_ok=True)
            embed_split(split, data / f"{split}.npz")
    work = data / f"asnorm_deploy-seed{args.seed}"
    work.mkdir(exist_ok=True)
    train = load_embeddings_file(data / "train.npz")
    classes = np.unique(train.labels)
    cohort_classes = np.random.default_rng(args.seed).permutation(classes)[: len(classes) // 2]
    in_cohort = np.isin(train.labels, cohort_classes)
    save_embeddings_file(work / "cohort_raw.npz", train.embeddings[in_cohort], train.labels[in_cohort])
    save_embeddings_file(work / "calib_raw.npz", train.embeddings[~in_cohort], train.labels[~in_cohort])
    adapter = work / "identity"
    if not adapter.exists():
        tcdml("adapt", "train", data / "train.npz", "-o", adapter, "--epochs", "0", "--no-progress")
    for name in ("cohort", "calib", "test"):
        source = data / "test.npz" if name == "test" else work / f"{name}_raw.npz"
        (work / f"{name}.npz").unlink(missing_ok=True)
        tcdml("adapt", "apply", adapter, source, "-o", work / f"{name}.npz")
    far = ["--target-far", args.target_far]
    tcdml("calibrate", work / "calib.npz", *far, "-o", work / "cosine.json")
    asnorm = ["--asnorm", work / "cohort.npz"]
    tcdml("calibrate", work / "calib.npz", *far, *asnorm, "--top-k", args.top_k, "-o", work / "asnorm.json")
    tcdml("export", adapter, "--calibration", work / "cosine.json", "-o", work / "served-cosine", "--force")
    tcdml(
        "export",
        adapter,
        "--calibration",
        work / "asnorm.json",
        *asnorm,
        "-o",
        work / "served-asnorm",
        "--force",
    )
    test = load_embeddings_file(data / "test.npz")
    rates = {}
    for arm in ("cosine", "asnorm"):
        matcher = load_matcher(work / f"served-{arm}")
        embedded = matcher.embed(test.embeddings)
        rates[arm] = class_rates(matcher.search(embedded, embedded, embedded=True), test.labels)
    labels, counts = np.unique(test.labels, return_counts=True)
    rng = np.random.default_rng(0)
    picks = [rng.integers(0, len(labels), len(labels)) for _ in range(1000)]
    point = {arm: summary(r[1], r[2], counts, len(test.labels), args.target_far) for arm, r in rates.items()}
    print(f"{data}: {len(labels)} held-out classes, {len(test.labels)} samples; target FAR {args.target_far}")
    report = {"arms": point, "delta": {}}
    for key in point["cosine"]:
        deltas = [
            summary(
                rates["asnorm"][1][p], rates["asnorm"][2][p], counts[p], len(test.labels), args.target_far
            )[key]
            - summary(
                rates["cosine"][1][p], rates["cosine"][2][p], counts[p], len(test.labels), args.target_far
            )[key]
            for p in picks
        ]
        low, high = np.quantile(deltas, [0.025, 0.975])
        delta = point["asnorm"][key] - point["cosine"][key]
        report["delta"][key] = [delta, float(low), float(high)]
        print(
            f"{key:>14}: cosine {point['cosine'][key]:.4f}  asnorm {point['asnorm'][key]:.4f}  "
            f"delta {delta:+.4f} [{low:+.4f}, {high:+.4f}]"
        )
    (work / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
