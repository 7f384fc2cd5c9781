"""Stanford Online Products (Song et al., CVPR 2016) as published (``Stanford_Online_Products.zip``).

Layout (``root`` is ``Stanford_Online_Products/`` or the folder holding it)::

    Ebay_train.txt    header "image_id class_id super_class_id path", then one image per line
    Ebay_test.txt     same format
    bicycle_final/111085122871_0.JPG ...   (paths relative to root)

Split: the given one, 59,551 images of 11,318 classes train and 60,502 images of 11,316 classes test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tcdml.data.base import (
    ImageListDataset,
    check_images_present,
    check_split,
    find_root,
    make_dataset,
    parse_int,
    read_rows,
)

NAME = "Stanford Online Products"
INDEX_FILES = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}


def load_sop(
    root: str | os.PathLike, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> ImageListDataset:
    """Stanford Online Products from ``Ebay_train.txt`` / ``Ebay_test.txt``; ``split``: train, test or all.

    Only the index files of the requested split are read. Raises ``TcdmlInputError`` naming the expected file
    when the layout is wrong.
    """
    check_split(NAME, split)
    wanted = ["train", "test"] if split == "all" else [split]
    root = find_root(NAME, root, INDEX_FILES[wanted[0]], "Stanford_Online_Products")
    paths: list[Path] = []
    keys: list[int] = []
    splits: list[str] = []
    for part in wanted:
        index_file = root / INDEX_FILES[part]
        for number, (_, class_id, _, relative) in read_rows(NAME, index_file, 4, skip=1):
            paths.append(root / relative)
            keys.append(parse_int(NAME, index_file, number, class_id))
            splits.append(part)
    check_images_present(NAME, paths)
    return make_dataset(NAME, paths, keys, splits, split, transform=transform)
