"""Fashion-MNIST (Zalando's 70,000 28 x 28 grey clothing images, 10 classes) as Debian installs it.

``apt-get install dataset-fashion-mnist`` puts the four IDX files of the original release under
``/usr/share/datasets/fashion-mnist`` (gzipped; the unpacked files are read as well). The benchmark is
closed-set: ``train`` is the 60,000 training images and ``test`` the 10,000 ``t10k`` images, the same ten
named classes in both (``all``: both files). ``max_per_class`` keeps a fixed, seed-independent subsample of
every class (for CPU budgets). Nothing is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.data.base import check_split
from tcdml.data.memory import InMemoryImageDataset, per_class_subsample
from tcdml.errors import TcdmlInputError

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: (images file, labels file) of each published split.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: IDX magic numbers: 0x0000, type 0x08 (unsigned byte), then the number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
#: Seed of the ``max_per_class`` subsample (not the training seed: the subsample never changes).
SUBSAMPLE_SEED = 0
INSTALL_HINT = "apt-get install dataset-fashion-mnist"


def idx_file(root: Path, name: str) -> Path:
    """``root/name.gz`` or ``root/name``; a ``TcdmlInputError`` naming both places when neither exists."""
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    raise TcdmlInputError(
        f"fashion_mnist: expected file '{name}.gz' (or '{name}') at {root / name}.gz ({INSTALL_HINT})"
    )


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of an IDX file (gzipped or not) whose header must start with ``magic``.

    Raises ``TcdmlInputError`` naming the file for a wrong magic number, a truncated header or a data size
    that does not match the dimensions the header declares.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:  # gzip raises BadGzipFile (an OSError) or EOFError when truncated
        raise TcdmlInputError(f"fashion_mnist: cannot read {path} ({exc.__class__.__name__})") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise TcdmlInputError(f"fashion_mnist: {path} has {len(raw)} bytes, expected an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise TcdmlInputError(f"fashion_mnist: {path} has magic number {found:#010x}, expected {magic:#010x}")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise TcdmlInputError(
            f"fashion_mnist: {path} holds {len(raw) - header} data bytes, "
            f"expected {expected} for shape {shape}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


@functools.cache
def _read_split(root: Path, split: str, stamp: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W), labels (N,)) of one published split; ``stamp`` re-reads files that changed."""
    images_name, labels_name = FILES[split]
    images_path, labels_path = idx_file(root, images_name), idx_file(root, labels_name)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise TcdmlInputError(
            f"fashion_mnist: {images_path} has {len(images)} images, "
            f"but {labels_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise TcdmlInputError(
            f"fashion_mnist: {labels_path} has label {labels.max()}, expected 0..{len(CLASS_NAMES) - 1}"
        )
    return images, labels


def _split_arrays(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``_read_split`` keyed by the files' modification times and sizes (a rewritten file is read again)."""
    stats = [idx_file(root, name).stat() for name in FILES[split]]
    return _read_split(root, split, tuple(v for st in stats for v in (st.st_mtime_ns, st.st_size)))


def load_fashion_mnist(
    root: str | os.PathLike | None = DEFAULT_ROOT,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    max_per_class: int | None = None,
) -> InMemoryImageDataset:
    """The ``split`` (``train``, ``test`` or ``all``) of Fashion-MNIST read from the IDX files under ``root``.

    ``root`` None means Debian's ``/usr/share/datasets/fashion-mnist``. Labels are the published ones
    (``class_names`` in their order). ``max_per_class`` keeps at most that many images of every class
    (a fixed subsample, nested across counts). Raises ``TcdmlInputError`` for an unknown split, a
    ``max_per_class`` below 1, a missing file (naming it and ``apt-get install dataset-fashion-mnist``) or a
    malformed IDX file.
    """
    check_split("fashion_mnist", split)
    if max_per_class is not None and max_per_class < 1:
        raise TcdmlInputError(f"fashion_mnist: max_per_class={max_per_class}, expected >= 1 or None")
    root = Path(DEFAULT_ROOT if root is None else root).expanduser()
    if not root.is_dir():
        raise TcdmlInputError(f"fashion_mnist: expected a directory at {root} ({INSTALL_HINT})")
    parts = ("train", "test") if split == "all" else (split,)
    arrays = [_split_arrays(root, part) for part in parts]
    if len({images.shape[1:] for images, _ in arrays}) > 1:
        raise TcdmlInputError(f"fashion_mnist: train and t10k images under {root} differ in size")
    ids = [
        f"fashion_mnist/{part}/{row:05d}"
        for part, (_, labels) in zip(parts, arrays, strict=True)
        for row in range(len(labels))
    ]
    images = np.concatenate([images for images, _ in arrays])
    labels = np.concatenate([labels for _, labels in arrays])
    if max_per_class is not None:
        rows = per_class_subsample(labels, max_per_class, SUBSAMPLE_SEED)
        images, labels, ids = images[rows], labels[rows], [ids[row] for row in rows]
    return InMemoryImageDataset(
        images,
        labels,
        ids=ids,
        class_names=CLASS_NAMES,
        name="fashion_mnist",
        split=split,
        transform=transform,
    )
