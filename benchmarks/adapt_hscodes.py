"""Raw all-MiniLM-L6-v2 embeddings of the HS product codes, before and after ``tcdml adapt``, run by hand:
``HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 .venv/bin/python benchmarks/adapt_hscodes.py [--seeds 0,1,2]``.

1. Embed the descriptions of the train headings and of the held-out test headings (``tcdml.data.hscodes``:
   479 / 478 headings, no heading in both) with the pretrained encoder as it is (``SentenceEncoder``: masked
   mean pooling, no training, nothing downloads): ``runs/adapt_hscodes/{train,test}.npz`` (kept and reused).
2. For each variant (``tcm``: the defaults, Smooth-AP + TCM with auto margins; ``no-tcm``: Smooth-AP alone)
   and each seed: ``tcdml adapt train train.npz`` (validation: 20 % of the train headings, held out by
   ``--val-seed 0``, the same for every seed), ``tcdml adapt apply`` on test.npz, then
   ``tcdml compare test.npz test-adapted.npz --format json``: R@1 and OPIS before / after on the held-out
   headings with paired bootstrap intervals over classes (``delta_*_ci95``).

Prints one row per variant and seed and writes ``runs/adapt_hscodes/results.json``. ``--tag NAME`` keeps a
run with other options apart (``runs/adapt_hscodes/NAME/``), e.g.
``--tag ntxent -- --loss ntxent --loss-param temperature=0.05``; ``--data DIR`` reads another model's
``train.npz`` / ``test.npz`` (e.g. ``benchmarks/image_features.py``'s). ``--variants a,b`` picks from
``VARIANTS`` (default: ``tcm,no-tcm``); each run's row is kept in ``row-VARIANT-seedS.json`` and reused on the
next call (delete it to rerun). A variant other than ``no-tcm`` is also compared with ``no-tcm`` of the same
seed (its base, ``vs_base``) when that ran. The CLI runs through ``benchmarks/research_losses.py``, so the
research losses registered there (the ``rate-var-*`` and ``ramp`` variants) are available.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path("runs/adapt_hscodes")
#: ``adapt train`` options: m = 2 (half the headings have <= 4 subheadings), 64 headings per batch.
TRAIN_OPTIONS = ["--epochs", "20", "--batch-size", "128", "--m-per-class", "2", "--no-progress"]
TCM_LAMBDA = ["--tcm", "--lambda-pos", "{0}", "--lambda-neg", "{0}"]
#: docs/study.md, "Consistency"; the variants after ``no-tcm``: its section "Candidates not tried before".
VARIANTS = {
    "tcm": ["--tcm"],
    "no-tcm": ["--no-tcm"],
    "tcm-l10": [a.format(10) for a in TCM_LAMBDA],
    "tcm-l30": [a.format(30) for a in TCM_LAMBDA],
    # auto margins with m- at the ends of the evaluation's FAR range (1e-2 .. 1e-1); m+ at the median positive
    "tcm-far0.01": ["--tcm", "--target-far", "0.01", "--target-frr", "0.5"],
    "tcm-far0.05": ["--tcm", "--target-far", "0.05", "--target-frr", "0.5"],
    **{
        f"rate-var-l{weight}": [
            "--no-tcm",
            "--loss",
            "smooth_ap_rate_variance",
            "--loss-param",
            f"lambda_var={weight}",
        ]
        for weight in (3, 10)
    },
    # TCM auto, lambda 0 -> 3 over the first half of the 20 epochs
    "ramp": ["--no-tcm", "--loss", "smooth_ap_tcm_ramp", "--loss-param", "lambda_max=3"],
}
RESEARCH_CLI = Path(__file__).parent / "research_losses.py"


def embed_split(split: str, path: Path) -> None:
    """The raw (unnormalised, mean-pooled) MiniLM features of one split, as an embedding file."""
    import torch

    from tcdml.data.hscodes import load_hscodes
    from tcdml.io.embeddings_file import save_embeddings_file
    from tcdml.models.text_encoder import SentenceEncoder

    data = load_hscodes(split=split)
    encoder = SentenceEncoder().eval()
    with torch.inference_mode():
        features = encoder.encode(data.texts).numpy()
    ids = np.array([str(p) for p in data.paths])
    save_embeddings_file(path, features, np.asarray(data.labels), ids=ids)


def tcdml(*args: str) -> dict:
    """Run the tcdml CLI (this Python's) and return its JSON output."""
    command = [sys.executable, str(RESEARCH_CLI), *args, "--format", "json"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {run.stderr.strip()}")
    return json.loads(run.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tag", default="", help="subfolder for this run's adapters and results")
    parser.add_argument("--data", type=Path, default=OUT, help="folder of train.npz, test.npz")
    parser.add_argument("--variants", default="tcm,no-tcm", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("extra", nargs="*", help="more adapt train options (after --)")
    args = parser.parse_args()
    data = args.data
    run_folder = data / args.tag
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        if not (data / f"{split}.npz").exists() and data == OUT:
            start = time.perf_counter()
            embed_split(split, data / f"{split}.npz")
            print(f"embedded {split} in {time.perf_counter() - start:.0f} s")
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; expected some of {list(VARIANTS)}")
    for variant in variants:
        for seed in [int(s) for s in args.seeds.split(",")]:
            run_seed(data, run_folder, variant, seed, [*TRAIN_OPTIONS, *VARIANTS[variant], *args.extra])
    rows = [json.loads(path.read_text()) for path in sorted(run_folder.glob("row-*.json"))]
    summary = {"options": TRAIN_OPTIONS + args.extra, "variants": VARIANTS, "runs": rows}
    (run_folder / "results.json").write_text(json.dumps(summary, indent=2))


def run_seed(data: Path, run_folder: Path, variant: str, seed: int, options: list[str]) -> dict:
    """Train on ``data``/train.npz, apply to ``data``/test.npz and compare one adapter (in ``run_folder``);
    print and return its row."""
    run_folder.mkdir(parents=True, exist_ok=True)
    folder = run_folder / f"adapter-{variant}-seed{seed}"
    adapted = run_folder / f"test-{variant}-seed{seed}.npz"
    row_file = run_folder / f"row-{variant}-seed{seed}.json"
    if row_file.exists():
        return json.loads(row_file.read_text())
    start = time.perf_counter()
    trained = tcdml(
        "adapt", "train", str(data / "train.npz"), "-o", str(folder), "--force", "--seed", str(seed), *options
    )
    seconds = time.perf_counter() - start
    tcdml("adapt", "apply", str(folder), str(data / "test.npz"), "-o", str(adapted))
    change = tcdml("compare", str(data / "test.npz"), str(adapted))
    r = {
        "variant": variant,
        "seed": seed,
        "chosen_epoch": trained["chosen_epoch"],
        "train_seconds": seconds,
        "val_input": trained["validation_input"],
        "val_chosen": trained["validation_chosen"],
        "test_before": change["a"],
        "test_after": change["b"],
        **_deltas(change),
    }
    base = run_folder / f"test-no-tcm-seed{seed}.npz"
    if variant != "no-tcm" and base.exists():
        r["vs_base"] = _deltas(tcdml("compare", str(base), str(adapted)))
    print(
        f"{variant} seed {seed}: epoch {r['chosen_epoch']} ({seconds:.0f} s); validation R@1 "
        f"{r['val_input']['recall@1']:.4f} -> {r['val_chosen']['recall@1']:.4f}, OPIS "
        f"{r['val_input']['opis']:.5f} -> {r['val_chosen']['opis']:.5f}; held-out test R@1 "
        f"{r['test_before']['recall@1']:.4f} -> {r['test_after']['recall@1']:.4f} "
        f"({r['delta_recall@1']:+.4f} {_ci(r['delta_recall@1_ci95'])}), OPIS "
        f"{r['test_before']['opis']:.5f} -> {r['test_after']['opis']:.5f} "
        f"({r['delta_opis']:+.5f} {_ci(r['delta_opis_ci95'])}), OPIS excess "
        f"{r['test_before']['opis_excess']:.5f} -> {r['test_after']['opis_excess']:.5f}",
        flush=True,
    )
    if "vs_base" in r:
        vs = r["vs_base"]
        print(
            f"  vs no-tcm seed {seed}: R@1 {vs['delta_recall@1']:+.4f} {_ci(vs['delta_recall@1_ci95'])}, "
            f"OPIS {vs['delta_opis']:+.5f} {_ci(vs['delta_opis_ci95'])}",
            flush=True,
        )
    row_file.write_text(json.dumps(r, indent=2))
    return r


def _deltas(change: dict) -> dict:
    """The changes and verdicts of a ``tcdml compare`` output."""
    return {key: change[key] for key in change if key.startswith(("delta_", "verdict_"))}


def _ci(interval: list[float]) -> str:
    return f"[{interval[0]:+.5f}, {interval[1]:+.5f}]"


if __name__ == "__main__":
    main()
