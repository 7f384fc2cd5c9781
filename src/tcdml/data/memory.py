"""Datasets whose images are held in memory as one uint8 array (MNIST, Fashion-MNIST, rendered glyphs).

``InMemoryImageDataset`` is an ``ImageListDataset`` whose ``load_image`` reads a row of that array instead of
a file, so samplers, transforms and the training pipeline treat it like any other benchmark. ``paths`` are
pseudo-paths (e.g. ``fashion_mnist/train/00012``) used only as sample ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.data.base import ImageListDataset
from tcdml.errors import TcdmlInputError


class InMemoryImageDataset(ImageListDataset):
    """``images[i]`` (grey ``(N, H, W)`` or RGB ``(N, H, W, 3)`` uint8) with label ``labels[i]``.

    ``dataset[i]`` is ``(image, label)``: the row as an RGB ``PIL.Image`` (grey repeated on three channels),
    through ``transform`` when one is set. ``ids[i]`` names the sample (kept as ``paths[i]``).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[int] | np.ndarray,
        *,
        ids: Sequence[str],
        class_names: Sequence[str],
        name: str,
        split: str,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(
            [Path(sample_id) for sample_id in ids],
            labels,
            class_names=class_names,
            name=name,
            split=split,
            transform=transform,
        )
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != len(self.labels):
            raise TcdmlInputError(
                f"{name}: expected {len(self.labels)} uint8 images (N, H, W[, 3]), "
                f"got {images.dtype} {images.shape}"
            )
        self.images = images

    def load_image(self, index: int) -> Any:
        """The image as an RGB ``PIL.Image`` (its stored size)."""
        from PIL import Image

        return Image.fromarray(self.images[index]).convert("RGB")


def per_class_subsample(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted row indices of at most ``count`` samples of every label, drawn by a fixed permutation.

    Deterministic given ``seed`` (never the training seed), and nested: the rows kept for ``count`` include
    those kept for any smaller count, so a smaller CPU budget is a subset of a larger one.
    """
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == label))[:count] for label in np.unique(labels)]
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
