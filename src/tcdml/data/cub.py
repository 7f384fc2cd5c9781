"""CUB-200-2011 as published by Caltech (``CUB_200_2011.tgz``), with the DML split by class.

Layout (``root`` is ``CUB_200_2011/`` or the folder holding it)::

    images.txt               "<image_id> <relative path>"   e.g. "1 001.Black_footed_Albatross/..._46_18.jpg"
    image_class_labels.txt   "<image_id> <class_id>"        class ids 1..200
    classes.txt              "<class_id> <class name>"      (optional: class names)
    images/<relative path>

Split: classes 1-100 train, 101-200 test (the official ``train_test_split.txt`` is a per-image split for
classification and is not used).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tcdml.data.base import (
    ImageListDataset,
    check_images_present,
    find_root,
    make_dataset,
    parse_int,
    read_rows,
    require_dir,
    split_by_class_number,
)
from tcdml.errors import TcdmlInputError

NAME = "CUB-200-2011"
NUM_TRAIN_CLASSES = 100


def load_cub200(
    root: str | os.PathLike, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> ImageListDataset:
    """CUB-200-2011 from its published files; ``split``: ``"train"`` (classes 1-100), ``"test"`` or ``"all"``.

    Raises ``TcdmlInputError`` naming the expected file when the layout is wrong.
    """
    root = find_root(NAME, root, "images.txt", "CUB_200_2011")
    images_file = root / "images.txt"
    labels_file = root / "image_class_labels.txt"
    image_dir = require_dir(NAME, root / "images")
    relative = {
        parse_int(NAME, images_file, n, image_id): path
        for n, (image_id, path) in read_rows(NAME, images_file, 2)
    }
    class_of = {
        parse_int(NAME, labels_file, n, image_id): parse_int(NAME, labels_file, n, label)
        for n, (image_id, label) in read_rows(NAME, labels_file, 2)
    }
    missing = sorted(set(relative) - set(class_of))
    if missing:
        raise TcdmlInputError(f"{NAME}: image id {missing[0]} of {images_file} has no class in {labels_file}")
    ids = sorted(relative)
    paths = [image_dir / relative[i] for i in ids]
    keys = [class_of[i] for i in ids]
    check_images_present(NAME, paths)
    return make_dataset(
        NAME,
        paths,
        keys,
        split_by_class_number(keys, NUM_TRAIN_CLASSES),
        split,
        transform=transform,
        class_names=_class_names(root / "classes.txt"),
    )


def _class_names(path: Path) -> dict[int, str]:
    """``classes.txt`` as {class id: name}; empty when the optional file is absent."""
    if not path.is_file():
        return {}
    return {parse_int(NAME, path, n, key): name for n, (key, name) in read_rows(NAME, path, 2)}
