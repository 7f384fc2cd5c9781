"""Raw ImageNet features of the glyphs benchmark (EfficientNet-lite0, no training) as embedding files, run
by hand: ``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/glyphs_features.py`` →
``runs/glyphs_raw/{train,test}.npz``.

The image cell of docs/study.md, "Consistency": the split of
``configs/benchmarks/glyphs-efficientnet_lite0.yaml`` (200 characters rendered at 64 px, 100 train / 100
disjoint test), the test transform (no augmentation), the packaged ImageNet weights, the 1,280-d pooled
features. The files feed ``benchmarks/adapt_hscodes.py --data`` and ``benchmarks/posthoc_hscodes.py --data``
like the raw MiniLM features of hscodes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path("runs/glyphs_raw")


def main() -> None:
    import torch

    from tcdml.data.glyphs import load_glyphs
    from tcdml.data.transforms import TransformConfig, build_transform
    from tcdml.io.embeddings_file import save_embeddings_file
    from tcdml.models.efficientnet_lite import EfficientNetLite0

    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    net = EfficientNetLite0(pretrained=True).eval()
    transform = build_transform(
        TransformConfig(image_size=64, resize_size=64, mean=net.mean, std=net.std), train=False
    )
    for split in ("train", "test"):
        data = load_glyphs(split, transform, image_size=64, max_classes=200)
        loader = torch.utils.data.DataLoader(data, batch_size=250)
        features, labels = [], []
        with torch.inference_mode():
            for images, batch_labels in loader:
                features.append(net(images).numpy())
                labels.append(np.asarray(batch_labels))
        save_embeddings_file(OUT / f"{split}.npz", np.concatenate(features), np.concatenate(labels))
        all_labels = np.concatenate(labels)
        print(f"{split}: {len(all_labels)} images, {len(np.unique(all_labels))} classes")


if __name__ == "__main__":
    main()
