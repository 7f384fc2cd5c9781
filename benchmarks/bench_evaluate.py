"""Benchmark of the one-pass evaluation (run by hand: ``.venv/bin/python benchmarks/bench_evaluate.py``).

For N in {10k, 60k}, D = 512, 300 classes of unequal size, each contender runs in its own subprocess (so peak
RSS is its own) on the same seeded embeddings:

* ``idle``: imports + data only (the RSS floor);
* ``matmul``: baseline (a), the bare chunked all-pairs matrix product, same block size as tcdml;
* ``matmul-best``: the same product at ITS fastest block size (512 ... 16,384 rows and tcdml's, each timed on
  the first 8,192 rows, then the whole product at the fastest);
* ``tcdml-nostats``: ``tcdml.metrics.evaluate`` without the intervals and noise floor (``uncertainty=None``),
  i.e. the pass before they were added;
* ``tcdml``: ``tcdml.metrics.evaluate`` (R@1/2/4/8, MAP@R, OPIS, eps-OPIS, per-class table, OPIS and eps-OPIS
  bootstrap intervals over classes with 1,000 resamples, the noise floor, the debiased OPIS and its per-sample
  counts, the verification metrics AUC / EER / FNMR@FMR with their intervals);
* ``tcdml-before``: the same call on the tcdml at ``--before-src`` (a checkout of the commit before the
  verification metrics and the debiased OPIS, e.g. ``git worktree add /tmp/before 91b7720``): the pass before,
  measured in the same run, for the cost ratio tcdml / tcdml-before (goal <= 1.05);
* ``pml``: baseline (b), pytorch-metric-learning's AccuracyCalculator for precision@1 + MAP@R (faiss kNN);
* ``exact``: baseline (c), brute-force OPIS (``mode="exact"``) where it fits (N = 10k).

Each contender runs ``--repeat`` times, interleaved with the others, and its best time is kept (the machine's
other load then hits every contender alike); the load average before and after is printed. ``--contenders``
picks some (e.g. ``tcdml-before,tcdml`` on a busy machine). Prints wall time, peak RSS and the ratios against
the matrix product (else the first contender) measured in the same run, and the ratios the goals are set
on: tcdml / matmul-best (goal 1.3x), tcdml / tcdml-nostats (the cost of the uncertainty statistics, goal
1.1x) and tcdml / tcdml-before (goal 1.05x).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DIM, CLASSES = 512, 300
CONTENDERS = ("idle", "matmul", "matmul-best", "tcdml-nostats", "tcdml-before", "tcdml", "pml", "exact")


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of unequal size (Dirichlet proportions) and unequal spread around random unit centres."""
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n - 2 * CLASSES, rng.dirichlet(np.full(CLASSES, 2.0))) + 2
    centres = rng.normal(size=(CLASSES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(CLASSES), sizes)
    spread = rng.uniform(2.0, 4.0, CLASSES).astype(np.float32)
    noise = rng.standard_normal((n, DIM), dtype=np.float32) / np.sqrt(DIM)
    return centres[labels] + spread[labels, None] * noise, labels


def run_contender(name: str, n: int) -> dict:
    import torch

    x, y = make_data(n)
    start = time.perf_counter()
    extra: dict = {}
    if name == "matmul":
        from tcdml.metrics.similarity_pass import block_rows

        xt = torch.nn.functional.normalize(torch.as_tensor(x), dim=1)
        step = block_rows(n, torch.device("cpu"))
        checksum = 0.0
        for i in range(0, n, step):
            checksum += float((xt[i : i + step] @ xt.T)[:, 0].sum())
        extra["block_rows"] = step
    elif name == "matmul-best":
        from tcdml.metrics.similarity_pass import block_rows

        xt = torch.nn.functional.normalize(torch.as_tensor(x), dim=1)
        sizes = sorted({512, 1024, 2048, 4096, 8192, 16384, block_rows(n, torch.device("cpu"))})
        timings = {}
        for step in sizes:
            begin, rows = time.perf_counter(), 0
            for i in range(0, min(n, 8192), step):
                block = xt[i : i + step]
                float((block @ xt.T)[:, 0].sum())
                rows += len(block)
            timings[step] = (time.perf_counter() - begin) / rows  # seconds per row actually processed
        step = min(timings, key=timings.get)
        start = time.perf_counter()
        checksum = 0.0
        for i in range(0, n, step):
            checksum += float((xt[i : i + step] @ xt.T)[:, 0].sum())
        extra["block_rows"] = step
    elif name in ("tcdml", "tcdml-nostats", "tcdml-before"):
        from tcdml.metrics import evaluate

        uncertainty = {"uncertainty": None} if name == "tcdml-nostats" else {}
        result = evaluate(x, y, progress=False, **uncertainty)
        keys = ("recall@1", "map@r", "opis", "eps_opis", "opis_debiased", "auc", "eer")
        summary = result.to_dict()
        extra = {key: summary[key] for key in keys if key in summary}
    elif name == "exact":
        from tcdml.metrics import evaluate

        result = evaluate(x, y, mode="exact", progress=False)
        extra = {key: result.to_dict()[key] for key in ("opis", "eps_opis")}
    elif name == "pml":
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

        calculator = AccuracyCalculator(
            include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count"
        )
        xt = torch.nn.functional.normalize(torch.as_tensor(x), dim=1)
        accuracy = calculator.get_accuracy(xt, torch.as_tensor(y), ref_includes_query=True)
        extra = {"recall@1": accuracy["precision_at_1"], "map@r": accuracy["mean_average_precision_at_r"]}
    seconds = time.perf_counter() - start if name != "idle" else 0.0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"name": name, "n": n, "seconds": seconds, "peak_rss_mb": peak_mb, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,60000", help="comma-separated N")
    parser.add_argument("--repeat", type=int, default=2, help="runs per contender; the fastest counts")
    parser.add_argument("--before-src", help="src folder of the tcdml before this change (tcdml-before)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_contender(args.run, args.n)))
        return
    chosen = [name for name in args.contenders.split(",") if name]
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    for n in (int(s) for s in args.sizes.split(",")):
        rows: dict[str, dict] = {}
        for _ in range(args.repeat):  # interleaved: load on the machine hits every contender alike
            for name in chosen:
                if (name == "exact" and n > 20_000) or (name == "tcdml-before" and not args.before_src):
                    continue
                env = dict(os.environ)
                if name == "tcdml-before":
                    env["PYTHONPATH"] = args.before_src
                out = subprocess.run(
                    [sys.executable, __file__, "--run", name, "--n", str(n)],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if out.returncode != 0:
                    rows[name] = {"name": name, "error": out.stderr.strip().splitlines()[-1]}
                    continue
                row = json.loads(out.stdout.strip().splitlines()[-1])
                if name not in rows or row["seconds"] < rows[name].get("seconds", float("inf")):
                    rows[name] = row
        base = rows.get("matmul", rows.get("tcdml-before", rows.get("tcdml", {}))).get("seconds", 1.0)
        print(f"\nN = {n:,}, D = {DIM}, {CLASSES} classes")
        print(f"{'contender':<13} {'seconds':>9} {'x first':>9} {'peak RSS MB':>12}  metrics")
        for name, row in rows.items():
            if "error" in row:
                print(f"{name:<13} failed: {row['error']}")
                continue
            metrics = {
                k: round(v, 5) for k, v in row.items() if k not in ("name", "n", "seconds", "peak_rss_mb")
            }
            ratio = row["seconds"] / base if name != "idle" else 0.0
            print(f"{name:<13} {row['seconds']:9.2f} {ratio:9.2f} {row['peak_rss_mb']:12.0f}  {metrics}")
        if all("seconds" in rows.get(name, {}) for name in ("tcdml", "matmul-best", "tcdml-nostats")):
            tcdml = rows["tcdml"]["seconds"]
            print(f"tcdml / matmul-best = {tcdml / rows['matmul-best']['seconds']:.2f} (goal <= 1.3)")
            print(f"tcdml / tcdml-nostats = {tcdml / rows['tcdml-nostats']['seconds']:.2f} (goal <= 1.1)")
        if all("seconds" in rows.get(name, {}) for name in ("tcdml", "tcdml-before")):
            ratio = rows["tcdml"]["seconds"] / rows["tcdml-before"]["seconds"]
            print(f"tcdml / tcdml-before = {ratio:.3f} (goal <= 1.05)")
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
