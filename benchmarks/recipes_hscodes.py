"""Full fine-tuning of all-MiniLM-L6-v2 on the hscodes training headings, each arm against the raw encoder,
run by hand: ``HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 .venv/bin/python benchmarks/recipes_hscodes.py
[--arms ntxent,ntxent+tcm-auto] [--seeds 0,1,2] [--epochs 2]``.

The recipe (issue 17, the lead's held-out text study): every encoder layer trains (the token embeddings
too), masked mean pooling, no head (the 384-d pooled features are the embeddings); m-per-class batches
(``MPerClassBatchSampler``: 16 headings x 4 texts = 64); the registry loss ``ntxent``
(pytorch-metric-learning's NT-Xent, in-batch, τ 0.05) ± TCM (``auto``: m- at FAR 0.1, m+ at FRR 0.5 read
off the batches, λ 3 = the shipped ``configs/loss/tcm.yaml``; ``fixed``: docs/spec.md's m+ 0.9, m- 0.5, λ 1);
AdamW lr 2e-5, no schedule.

Selection never reads the test headings: 20 % of the **training** headings
(``tcdml.adapt.train.split_classes``, ``--val-seed 0``, the same for every arm and seed) are held out; after
each epoch (and at epoch 0, the raw encoder) the model embeds them and the kept epoch is
``argmax_e R@1 - OPIS`` (``tcdml adapt``'s default objective; the earliest on ties, so the raw encoder is
kept unless an epoch beats it). Every epoch's embeddings of the 478 held-out test headings are written
(``runs/recipes_hscodes/<arm>/seed<k>/test-epoch<e>.npz``), and the kept epoch is compared with the raw
encoder (``tcdml.metrics.compare.compare``: 95 % paired bootstrap over classes). Writes
``runs/recipes_hscodes/results.json`` (one row per arm and seed; rows of earlier runs kept).
``--save-train`` also writes each epoch's embeddings of all training headings (``train-epoch<e>.npz``): the
calibration set of a post-hoc model on top (``benchmarks/posthoc_hscodes.py --data``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

OUT = Path("runs/recipes_hscodes")
#: Arm -> the loss config (``tcdml.losses.build_loss_from_config``).
TCM_AUTO = {"margins": "auto", "target_far": 0.1, "target_frr": 0.5, "lambda_pos": 3.0, "lambda_neg": 3.0}
TCM_FIXED = {"margins": "fixed", "margin_pos": 0.9, "margin_neg": 0.5, "lambda_pos": 1.0, "lambda_neg": 1.0}
ARMS = {
    "ntxent": {"name": "ntxent", "params": {"temperature": 0.05}},
    "ntxent+tcm-auto": {"name": "ntxent", "params": {"temperature": 0.05}, "tcm": TCM_AUTO},
    "ntxent+tcm-fixed": {"name": "ntxent", "params": {"temperature": 0.05}, "tcm": TCM_FIXED},
}
CLASSES_PER_BATCH, SAMPLES_PER_CLASS, LR = 16, 4, 2e-5


def embed(encoder, texts: list[str]) -> np.ndarray:
    """(N, 384) mean-pooled features of ``texts`` (no gradient)."""
    import torch

    encoder.eval()
    with torch.inference_mode():
        return encoder.encode(texts).numpy()


def score(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Validation R@1, OPIS and the objective ``R@1 - OPIS`` (tcdml's defaults, no intervals)."""
    from tcdml.metrics import evaluate

    result = evaluate(embeddings, labels, ks=(1,))
    return {
        "recall@1": result.recall_at_k[1],
        "opis": result.opis,
        "objective": result.recall_at_k[1] - result.opis,
    }


def run_arm(arm: str, seed: int, epochs: int, data: dict, raw: dict) -> dict:
    """Fine-tune one arm for one seed; returns its row (validation per epoch, the kept epoch, test deltas)."""
    import torch

    from tcdml.data import MPerClassBatchSampler
    from tcdml.io.embeddings_file import save_embeddings_file
    from tcdml.losses import build_loss_from_config
    from tcdml.models.text_encoder import SentenceEncoder

    folder = OUT / arm / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    encoder = SentenceEncoder()
    loss_fn = build_loss_from_config(ARMS[arm])
    params = [p for p in [*encoder.parameters(), *loss_fn.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR)
    texts, labels = data["fit_texts"], data["fit_labels"]
    sampler = MPerClassBatchSampler(labels, CLASSES_PER_BATCH, SAMPLES_PER_CLASS, seed=seed)
    val = [dict(epoch=0, **raw["val_score"])]
    save_embeddings_file(folder / "test-epoch0.npz", raw["test"], data["test_labels"])
    seconds = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        encoder.train()
        sampler.set_epoch(epoch - 1)
        for batch in sampler:
            features = encoder([texts[i] for i in batch])
            loss = loss_fn(features, torch.as_tensor(labels[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        val.append(dict(epoch=epoch, **score(embed(encoder, data["val_texts"]), data["val_labels"])))
        test = embed(encoder, data["test_texts"])
        save_embeddings_file(folder / f"test-epoch{epoch}.npz", test, data["test_labels"])
        if data["train_texts"] is not None:  # the cohort / calibration set of a post-hoc model on top
            train = embed(encoder, data["train_texts"])
            save_embeddings_file(folder / f"train-epoch{epoch}.npz", train, data["train_labels"])
        print(f"{arm} seed {seed} epoch {epoch}: {seconds[-1]:.0f} s, validation {val[-1]}", flush=True)
    chosen = max(val, key=lambda v: (v["objective"], -v["epoch"]))["epoch"]
    return {
        "arm": arm,
        "seed": seed,
        "loss": ARMS[arm],
        "epochs": epochs,
        "epoch_seconds": seconds,
        "validation": val,
        "chosen_epoch": chosen,
    }


def test_deltas(row: dict, data: dict, raw_test: np.ndarray, base_rows: dict) -> None:
    """Add the kept epoch's change against the raw encoder (and a TCM arm's against its base, same seed)."""
    from tcdml.io.embeddings_file import load_embeddings_file
    from tcdml.metrics.compare import compare

    def kept(r: dict) -> np.ndarray:
        return load_embeddings_file(
            OUT / r["arm"] / f"seed{r['seed']}" / f"test-epoch{r['chosen_epoch']}.npz"
        ).embeddings

    labels = data["test_labels"]
    row["vs_start"] = compare(raw_test, kept(row), labels).to_dict()
    base = base_rows.get(row["seed"])
    if row["arm"] != "ntxent" and base is not None:
        row["vs_base"] = compare(kept(base), kept(row), labels).to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="ntxent,ntxent+tcm-auto")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--val-seed", type=int, default=0)
    parser.add_argument("--save-train", action="store_true", help="embed the training headings too")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from tcdml.adapt.train import split_classes
    from tcdml.data.hscodes import load_hscodes
    from tcdml.models.text_encoder import SentenceEncoder

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    OUT.mkdir(parents=True, exist_ok=True)
    train, test = load_hscodes(split="train"), load_hscodes(split="test")
    train_labels = np.asarray(train.labels)
    fit, val = split_classes(train_labels, 0.2, args.val_seed)
    data = {
        "fit_texts": [t for t, keep in zip(train.texts, fit, strict=True) if keep],
        "fit_labels": train_labels[fit],
        "val_texts": [t for t, keep in zip(train.texts, val, strict=True) if keep],
        "val_labels": train_labels[val],
        "test_texts": list(test.texts),
        "test_labels": np.asarray(test.labels),
        "train_texts": list(train.texts) if args.save_train else None,
        "train_labels": train_labels,
    }
    cache = OUT / "raw.npz"
    if not cache.exists():
        encoder = SentenceEncoder()
        np.savez(cache, val=embed(encoder, data["val_texts"]), test=embed(encoder, data["test_texts"]))
    with np.load(cache) as stored:
        raw = {"val": stored["val"], "test": stored["test"]}
    raw["val_score"] = score(raw["val"], data["val_labels"])
    results_path = OUT / "results.json"
    rows = json.loads(results_path.read_text()) if results_path.exists() else []
    for arm in args.arms.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            row = run_arm(arm, seed, args.epochs, data, raw)
            rows = [r for r in rows if (r["arm"], r["seed"]) != (arm, seed)] + [row]
            base_rows = {r["seed"]: r for r in rows if r["arm"] == "ntxent"}
            test_deltas(row, data, raw["test"], base_rows)
            a, b = row["vs_start"]["a"], row["vs_start"]["b"]
            print(
                f"{arm} seed {seed}: kept epoch {row['chosen_epoch']}; test R@1 {a['recall@1']:.4f} -> "
                f"{b['recall@1']:.4f} {row['vs_start']['delta_recall@1_ci95']}, OPIS {a['opis']:.5f} -> "
                f"{b['opis']:.5f} {row['vs_start']['delta_opis_ci95']}",
                flush=True,
            )
            results_path.write_text(json.dumps(rows, indent=2, default=float))


if __name__ == "__main__":
    main()
