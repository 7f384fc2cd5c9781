"""Raw ImageNet features of an image set (EfficientNet-lite0, no training) as embedding files, run by hand:
``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/image_features.py [--dataset glyphs|fashion_mnist]`` →
``runs/glyphs_raw/{train,test}.npz`` or ``runs/fashion_mnist_raw/{train,test}.npz``.

- ``glyphs`` (the image cell of docs/study.md, "Consistency"): the split of
  ``configs/benchmarks/glyphs-efficientnet_lite0.yaml`` (200 characters rendered at 64 px, 100 train / 100
  disjoint test);
- ``fashion_mnist``: an open-world split of Fashion-MNIST's 10 classes (classes 0-4 of the published train
  split train, classes 5-9 of the published test split are held out), at most ``--per-class`` images per
  class (a fixed subsample), the 28 px images resized to 64 px.

The test transform (no augmentation), the packaged ImageNet weights, the 1,280-d pooled features. The files
feed ``benchmarks/adapt_hscodes.py --data``, ``benchmarks/posthoc_hscodes.py --data`` and
``benchmarks/asnorm_deploy.py --data`` like the raw MiniLM features of hscodes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = {"glyphs": Path("runs/glyphs_raw"), "fashion_mnist": Path("runs/fashion_mnist_raw")}


def splits(dataset: str, transform, per_class: int) -> dict:
    """{split name: (dataset, the classes it keeps)} of the open-world split of ``dataset``."""
    if dataset == "glyphs":
        from tcdml.data.glyphs import load_glyphs

        return {
            split: (load_glyphs(split, transform, image_size=64, max_classes=200), None)
            for split in ("train", "test")
        }
    from tcdml.data.fashion_mnist import load_fashion_mnist

    return {
        "train": (
            load_fashion_mnist(split="train", transform=transform, max_per_class=per_class),
            range(0, 5),
        ),
        "test": (
            load_fashion_mnist(split="test", transform=transform, max_per_class=per_class),
            range(5, 10),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(OUT), default="glyphs")
    parser.add_argument("--per-class", type=int, default=600, help="fashion_mnist: images per class")
    args = parser.parse_args()
    import torch

    from tcdml.data.transforms import TransformConfig, build_transform
    from tcdml.io.embeddings_file import save_embeddings_file
    from tcdml.models.efficientnet_lite import EfficientNetLite0

    torch.set_num_threads(2)
    out = OUT[args.dataset]
    out.mkdir(parents=True, exist_ok=True)
    net = EfficientNetLite0(pretrained=True).eval()
    transform = build_transform(
        TransformConfig(image_size=64, resize_size=64, mean=net.mean, std=net.std), train=False
    )
    for split, (data, classes) in splits(args.dataset, transform, args.per_class).items():
        rows = (
            np.arange(len(data)) if classes is None else np.flatnonzero(np.isin(data.labels, list(classes)))
        )
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(data, rows.tolist()), batch_size=250)
        features, labels = [], []
        with torch.inference_mode():
            for images, batch_labels in loader:
                features.append(net(images).numpy())
                labels.append(np.asarray(batch_labels))
        save_embeddings_file(out / f"{split}.npz", np.concatenate(features), np.concatenate(labels))
        all_labels = np.concatenate(labels)
        print(f"{split}: {len(all_labels)} images, {len(np.unique(all_labels))} classes")


if __name__ == "__main__":
    main()
