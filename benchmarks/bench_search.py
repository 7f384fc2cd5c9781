"""The served search on AS-norm scores against the plain cosine search, run by hand:
``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_search.py [--queries 2000] [--gallery 50000] [--dim 128]
[--cohort 5000] [--top-k 25] [--repeat 3]``.

Data: unit embeddings around random class centres (``bench_adapt.make_data``), a cohort drawn the same way.
The threshold of each arm keeps about 20 hits per query (the 20th largest score of a sample of queries), so
both return comparable result sizes. Timed: ``tcdml.deploy.similarity.search_embeddings`` with the numpy
backend (cosine), with faiss when installed (cosine), and with a ``ScoreNorm`` (AS-norm: the cohort top-k of
every query and gallery row, each pair's own cosine bound, then the exact scores), once on a gallery it has
not seen and once on a gallery searched before with other queries (its cohort statistics remembered). Each
repeat draws new queries; interleaved ``--repeat`` times, the fastest of each counts. Printed: seconds and the
ratio of each arm to the plain numpy search.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.bench_adapt import make_data


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--gallery", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--cohort", type=int, default=5000)
    parser.add_argument("--top-k", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from tcdml.deploy.asnorm import ScoreNorm, normalised
    from tcdml.deploy.similarity import _has_faiss, search_embeddings

    total = args.repeat * args.queries + args.gallery + args.cohort
    x = _unit(make_data(total, args.dim, max(10, args.gallery // 20))[0])
    gallery, cohort = x[: args.gallery], x[args.gallery : args.gallery + args.cohort]
    draws = x[args.gallery + args.cohort :].reshape(args.repeat, args.queries, args.dim)
    norm = ScoreNorm(cohort, args.top_k)  # float32, as read_cohort gives it
    sample = draws[0, :200]
    cosine = sample.astype(np.float64) @ gallery.T.astype(np.float64)
    stats = norm.stats(sample), norm.stats(gallery)
    scores = normalised(cosine, *(s[:, None] for s in stats[0]), *(s[None, :] for s in stats[1]))
    thresholds = {
        "cosine": float(np.median(np.sort(cosine, axis=1)[:, -20])),
        "asnorm": float(np.median(np.sort(scores, axis=1)[:, -20])),
    }
    arms = ["numpy", "asnorm, new gallery", "asnorm, gallery seen"] + (["faiss"] if _has_faiss() else [])
    best = {name: float("inf") for name in arms}
    hits = {}
    for queries in draws:
        for name in arms:
            model = ScoreNorm(cohort, args.top_k) if name == "asnorm, new gallery" else norm
            kind, backend = ("asnorm", "numpy") if name.startswith("asnorm") else ("cosine", name)
            start = time.perf_counter()
            found = search_embeddings(
                queries, gallery, thresholds[kind], backend=backend, norm=model if kind == "asnorm" else None
            )
            best[name] = min(best[name], time.perf_counter() - start)
            hits[name] = len(found.indices) / len(queries)
    print(
        f"Q={args.queries:,} G={args.gallery:,} D={args.dim} cohort={args.cohort:,} top_k={args.top_k}, "
        f"best of {args.repeat} (new queries each)"
    )
    for name in arms:
        ratio = best[name] / best["numpy"]
        print(
            f"{name:>20}: {best[name]:7.2f} s  {ratio:5.2f}x numpy cosine  ({hits[name]:.1f} hits per query)"
        )


if __name__ == "__main__":
    main()
