"""Cars-196 (Krause et al., 3dRR 2013) in the Stanford release: ``car_ims.tgz`` + ``cars_annos.mat``.

Layout (``root`` holds both)::

    cars_annos.mat    MATLAB struct: annotations (relative_im_path, bbox_x1, bbox_y1, bbox_x2, bbox_y2,
                      class, test) and class_names (196 names)
    car_ims/000001.jpg ... car_ims/016185.jpg

Split: classes 1-98 train (8,054 images), 99-196 test (8,131 images); the per-image ``test`` flag of the
file is the classification split and is not used. Images are used whole (no bounding-box crop), as in the
DML literature.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.data.base import (
    ImageListDataset,
    check_images_present,
    find_root,
    make_dataset,
    split_by_class_number,
)
from tcdml.errors import TcdmlInputError, first_line

NAME = "Cars-196"
ANNOTATIONS_FILE = "cars_annos.mat"
NUM_TRAIN_CLASSES = 98


def load_cars196(
    root: str | os.PathLike, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> ImageListDataset:
    """Cars-196 from ``cars_annos.mat``; ``split`` is ``"train"`` (classes 1-98), ``"test"`` or ``"all"``.

    Raises ``TcdmlInputError`` naming the expected file or field when the layout is wrong.
    """
    root = find_root(NAME, root, ANNOTATIONS_FILE)
    relative, classes, names = _read_annotations(root / ANNOTATIONS_FILE)
    paths = [root / path for path in relative]
    check_images_present(NAME, paths)
    return make_dataset(
        NAME,
        paths,
        classes,
        split_by_class_number(classes, NUM_TRAIN_CLASSES),
        split,
        transform=transform,
        class_names={i + 1: str(name) for i, name in enumerate(names)},
    )


def _read_annotations(path: Path) -> tuple[list[str], list[int], list[str]]:
    """(relative image paths, 1-based class ids, class names) from ``cars_annos.mat``."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path, squeeze_me=True)
    except Exception as exc:  # scipy fails on a damaged file with many types (MatReadError, IndexError, ...)
        reason = first_line(exc)
        raise TcdmlInputError(f"{NAME}: cannot read {path} as a MATLAB file ({reason})") from None
    for key in ("annotations", "class_names"):
        if key not in mat:
            raise TcdmlInputError(f"{NAME}: {path} has no variable '{key}'")
    annotations = np.atleast_1d(mat["annotations"])
    for field in ("relative_im_path", "class"):
        if field not in (annotations.dtype.names or ()):
            raise TcdmlInputError(f"{NAME}: {path}: 'annotations' has no field '{field}'")
    relative = [str(p) for p in annotations["relative_im_path"]]
    classes = [int(c) for c in annotations["class"]]
    names = [str(n) for n in np.atleast_1d(mat["class_names"])]
    bad = [c for c in classes if not 1 <= c <= len(names)]
    if bad:
        raise TcdmlInputError(
            f"{NAME}: {path}: class {bad[0]} outside 1..{len(names)} (the class_names count)"
        )
    return relative, classes, names
