"""The user's own data: a folder-per-class tree, or a CSV file ``path,label[,split]``.

Folder tree, either split by folder or not::

    root/train/<class>/<image>      root/<class>/<image>
    root/test/<class>/<image>

Without ``train/``/``test/`` folders the held-out-class rule applies: classes sorted by name, the first
``ceil(C/2)`` train, the rest test. Images may sit in nested folders under their class folder; files are
recognised by extension (``IMAGE_EXTENSIONS``), hidden files and folders are skipped.

CSV: a header row naming the columns ``path`` and ``label`` and optionally ``split`` (``train`` or ``test``
on every row), in any order; other columns are ignored. Relative paths are relative to the CSV's folder
(or to ``image_root``). Labels that are all integers sort as integers, otherwise as strings. Without a
``split`` column the held-out-class rule above applies.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tcdml.data.base import (
    ImageListDataset,
    check_images_present,
    check_split,
    held_out_classes,
    label_keys,
    make_dataset,
    require_dir,
    require_file,
)
from tcdml.errors import TcdmlInputError

FOLDER = "image folder"
CSV = "CSV"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLIT_FOLDERS = ("train", "test")


def load_image_folder(
    root: str | os.PathLike, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> ImageListDataset:
    """A folder-per-class tree (see the module doc for the two layouts); ``split``: train, test or all.

    Class folders without any image are ignored. Raises ``TcdmlInputError`` when ``root`` is missing or no
    class folder holds an image.
    """
    check_split(FOLDER, split)
    root = require_dir(FOLDER, Path(root).expanduser())
    split_dirs = [part for part in SPLIT_FOLDERS if (root / part).is_dir()]
    paths: list[Path] = []
    keys: list[str] = []
    splits: list[str] = []
    if split_dirs:
        for part in [split] if split != "all" else split_dirs:
            for key, images in _class_images(require_dir(FOLDER, root / part)):
                paths += images
                keys += [key] * len(images)
                splits += [part] * len(images)
    else:
        found = _class_images(root)
        rule = held_out_classes(key for key, _ in found)
        for key, images in found:
            paths += images
            keys += [key] * len(images)
            splits += [rule[key]] * len(images)
    return make_dataset(FOLDER, paths, keys, splits, split, transform=transform)


def _class_images(folder: Path) -> list[tuple[str, list[Path]]]:
    """(class name, sorted image paths) for each non-hidden subfolder of ``folder`` that holds images."""
    found = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(
            path
            for path in class_dir.rglob("*")
            if path.suffix.lower() in IMAGE_EXTENSIONS
            and path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(class_dir).parts)
        )
        if images:
            found.append((class_dir.name, images))
    if not found:
        raise TcdmlInputError(f"{FOLDER}: expected class folders with images at {folder}/<class>/<image>")
    return found


def load_csv(
    path: str | os.PathLike,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    image_root: str | os.PathLike | None = None,
) -> ImageListDataset:
    """Images listed in a CSV file ``path,label[,split]`` (see the module doc); ``split``: train, test or all.

    Raises ``TcdmlInputError`` naming the file, line and value of a bad row.
    """
    check_split(CSV, split)
    path = require_file(CSV, Path(path).expanduser())
    base = Path(image_root).expanduser() if image_root is not None else path.parent
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheet exports start with a BOM
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in ("path", "label") if name not in columns]
        if missing:
            raise TcdmlInputError(
                f"{CSV}: {path}: expected a header row with columns 'path,label[,split]', "
                f"missing {', '.join(repr(m) for m in missing)}"
            )
        reader.fieldnames = columns
        rows = [(reader.line_num, row) for row in reader if any((v or "").strip() for v in row.values())]
    if not rows:
        raise TcdmlInputError(f"{CSV}: {path}: no rows after the header")
    paths, labels, splits = [], [], []
    for number, row in rows:
        values = {key: (row.get(key) or "").strip() for key in ("path", "label", "split")}
        if not values["path"] or not values["label"]:
            raise TcdmlInputError(f"{CSV}: {path}, line {number}: empty 'path' or 'label'")
        if "split" in columns and values["split"] not in SPLIT_FOLDERS:
            raise TcdmlInputError(
                f"{CSV}: {path}, line {number}: split {values['split']!r}, expected 'train' or 'test'"
            )
        paths.append(base / values["path"])
        labels.append(values["label"])
        splits.append(values["split"])
    keys = label_keys(labels)
    if "split" not in columns:
        rule = held_out_classes(keys)
        splits = [rule[key] for key in keys]
    check_images_present(CSV, paths)
    return make_dataset(CSV, paths, keys, splits, split, transform=transform)
