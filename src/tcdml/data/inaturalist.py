"""iNaturalist-2018 with the class split released with Smooth-AP (Brown et al., ECCV 2020).

Layout (``root`` holds the unpacked competition images and the two split lists)::

    train_val2018/<supercategory>/<category_id>/<image>.jpg     (from train_val2018.tar.gz)
    Inat_dataset_splits/Inaturalist_train_set1.txt              (or directly under root)
    Inat_dataset_splits/Inaturalist_test_set1.txt

Each split list has one image path per line, relative to ``root``, e.g.
``train_val2018/Plantae/7477/3b60c9486db1d2ee875f11a669fbde4a.jpg``. The class of an image is its
``<supercategory>/<category_id>`` (the two folders above the file), as in Smooth-AP's own loader. The released
lists hold 325,846 images of 5,690 classes (train) and 136,093 images of 2,452 classes (test).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from tcdml.data.base import (
    ImageListDataset,
    check_images_present,
    check_split,
    find_root,
    make_dataset,
    read_rows,
)
from tcdml.errors import TcdmlInputError

NAME = "iNaturalist-2018"
SPLIT_DIR = "Inat_dataset_splits"
SPLIT_FILES = {"train": "Inaturalist_train_set1.txt", "test": "Inaturalist_test_set1.txt"}


def load_inaturalist2018(
    root: str | os.PathLike, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> ImageListDataset:
    """iNaturalist-2018 images listed by the Smooth-AP split files; ``split``: train, test or all.

    The split lists are looked up in ``root/Inat_dataset_splits/`` and then in ``root``. Raises
    ``TcdmlInputError`` naming the expected file when the layout is wrong.
    """
    check_split(NAME, split)
    wanted = ["train", "test"] if split == "all" else [split]
    root = Path(root).expanduser()
    lists_dir = find_root(NAME, root, SPLIT_FILES[wanted[0]], SPLIT_DIR)
    paths: list[Path] = []
    keys: list[str] = []
    splits: list[str] = []
    for part in wanted:
        list_file = lists_dir / SPLIT_FILES[part]
        for number, (relative,) in read_rows(NAME, list_file, 1):
            parts = PurePosixPath(relative).parts
            if len(parts) < 3:
                raise TcdmlInputError(
                    f"{NAME}: {list_file}, line {number}: expected '.../<supercategory>/<id>/<image>', "
                    f"got {relative!r}"
                )
            paths.append(root / relative)
            keys.append(f"{parts[-3]}/{parts[-2]}")
            splits.append(part)
    check_images_present(NAME, paths)
    return make_dataset(NAME, paths, keys, splits, split, transform=transform)
