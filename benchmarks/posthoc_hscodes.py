"""Post-hoc score calibration of raw all-MiniLM-L6-v2 hscodes embeddings against the raw cosine, run by hand:
``HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 .venv/bin/python benchmarks/posthoc_hscodes.py [--seeds 0,1,2]``.

1. The raw embeddings of ``benchmarks/adapt_hscodes.py`` (``runs/adapt_hscodes/{train,test}.npz``, made if
   missing): 479 training headings, 478 held-out test headings.
2. Settings chosen on the **training** headings only: 20 % of them held out (``split_classes``, seed 0, as
   ``tcdml adapt``), the model fitted on the rest, each setting scored on the held-out part by
   ``R@1 - OPIS`` of the calibrated scores (``tcdml adapt``'s objective); AS-norm's ``top_k`` and FairCal's
   number of clusters (FairCal at seed 0).
3. The chosen setting fitted on all training headings (FairCal: one fit per seed, the k-means seed) and
   applied to the test headings; ``tcdml.posthoc.evaluate.compare_scores(raw cosines, calibrated)``: R@1 and
   OPIS with 95 % paired bootstrap intervals over classes.

Writes ``runs/posthoc_hscodes/results.json``; ``--data DIR`` reads another model's ``train.npz`` /
``test.npz`` instead (e.g. ``benchmarks/image_features.py``'s, or an adapter's / a fine-tune's outputs) and
writes ``DIR/posthoc/results.json``; ``--start FILE`` (the untrained model's test.npz, same samples) also
compares each calibrated model with the start's cosine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

OUT = Path("runs/posthoc_hscodes")
TOP_K = (10, 25, 50, 100, 200)
CLUSTERS = (5, 10, 20, 40)


def fitters(seed: int) -> dict:
    from tcdml.posthoc import fit_asnorm, fit_faircal

    return {
        "asnorm": (TOP_K, lambda x, y, k: fit_asnorm(x, top_k=k)),
        "faircal": (CLUSTERS, lambda x, y, k: fit_faircal(x, y, num_clusters=k, seed=seed)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data", type=Path, default=None, help="folder of train.npz, test.npz")
    parser.add_argument("--methods", default="asnorm,faircal")
    parser.add_argument("--start", type=Path, default=None, help="the start's test.npz, also compared with")
    args = parser.parse_args()
    import torch
    from adapt_hscodes import OUT as EMBEDDINGS
    from adapt_hscodes import embed_split

    from tcdml.adapt.train import split_classes
    from tcdml.io.embeddings_file import load_embeddings_file
    from tcdml.posthoc.evaluate import compare_scores, cosine_matrix, evaluate_scores

    torch.set_num_threads(2)
    data = args.data or EMBEDDINGS
    out = OUT if args.data is None else data / "posthoc"
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        if not (data / f"{split}.npz").exists() and args.data is None:
            embed_split(split, data / f"{split}.npz")
    train, test = (load_embeddings_file(data / f"{s}.npz") for s in ("train", "test"))
    x, y = train.embeddings, np.asarray(train.labels)
    fit, val = split_classes(y, 0.2, 0)
    raw_val = evaluate_scores(cosine_matrix(x[val]), y[val], ks=(1,))
    rows: dict = {"validation_raw": _summary(raw_val), "selection": {}, "test": []}
    for method in args.methods.split(","):
        grid, build = fitters(0)[method]
        scored = {}
        for setting in grid:
            model = build(x[fit], y[fit], setting)
            result = evaluate_scores(model.score_matrix(x[val]), y[val], ks=(1,))
            scored[setting] = _summary(result)
            print(f"{method} {setting}: validation {scored[setting]}", flush=True)
        chosen = max(grid, key=lambda s: scored[s]["objective"])
        rows["selection"][method] = {"grid": scored, "chosen": chosen}
        seeds = [int(s) for s in args.seeds.split(",")] if method == "faircal" else [0]
        for seed in seeds:
            model = fitters(seed)[method][1](x, y, chosen)
            change = compare_scores(
                cosine_matrix(test.embeddings), model.score_matrix(test.embeddings), test.labels
            ).to_dict()
            row = {"method": method, "setting": chosen, "seed": seed, **change}
            if args.start is not None:  # a model trained from the start, calibrated: against the start
                start = load_embeddings_file(args.start)
                versus = compare_scores(
                    cosine_matrix(start.embeddings), model.score_matrix(test.embeddings), test.labels
                ).to_dict()
                row["vs_start"] = versus
                print(
                    f"  vs the start: R@1 {versus['delta_recall@1']:+.4f} "
                    f"{_ci(versus['delta_recall@1_ci95'])}, "
                    f"OPIS {versus['a']['opis']:.5f} -> {versus['b']['opis']:.5f} "
                    f"{_ci(versus['delta_opis_ci95'])}",
                    flush=True,
                )
            rows["test"].append(row)
            print(
                f"{method} ({chosen}) seed {seed}: test R@1 {change['a']['recall@1']:.4f} -> "
                f"{change['b']['recall@1']:.4f} {_ci(change['delta_recall@1_ci95'])}, OPIS "
                f"{change['a']['opis']:.5f} -> {change['b']['opis']:.5f} {_ci(change['delta_opis_ci95'])}",
                flush=True,
            )
            (out / "results.json").write_text(json.dumps(rows, indent=2, default=float))


def _summary(result) -> dict:
    recall = result.recall_at_k[1]
    return {"recall@1": recall, "opis": result.opis, "objective": recall - result.opis}


def _ci(interval: list[float]) -> str:
    return f"[{interval[0]:+.5f}, {interval[1]:+.5f}]"


if __name__ == "__main__":
    main()
