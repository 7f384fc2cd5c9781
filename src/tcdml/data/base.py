"""The labelled-dataset contract every loader returns, and the file checks the loaders share.

``LabelledDataset`` is the contract: labels ``0 .. C-1``, class names, sample ids, a split name, a
``Modality`` and ``dataset[i] == (sample, label)``. A loader is a function ``loader([root,] split="train",
transform=None, *, <options>) -> LabelledDataset``: ``root`` (first) only when it reads files, its options
keyword-only and annotated (``build_dataset`` checks them against the annotations); see docs/extend.md.

A benchmark loader reads its own index files into three parallel lists (image path, class key, split of the
sample) and hands them to ``make_dataset``, which keeps the requested split and numbers its classes
``0 .. C-1`` in the sorted order of their keys. So every dataset has the same shape, and only the parsing of
the published files differs from one benchmark to the next.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from tcdml.errors import TcdmlInputError

SPLITS = ("train", "test", "all")


class Modality(StrEnum):
    """What a dataset's samples are: it decides whether image transforms apply (a ``str``: ``"image"``)."""

    IMAGE = "image"
    TEXT = "text"


class LabelledDataset(Dataset, ABC):
    """Samples with labels, ids, a split name and an optional transform: what every tcdml dataset shares.

    ``labels`` are ``0 .. num_classes-1`` (int64); ``class_names[label]`` is the class as the benchmark names
    it (e.g. ``"001.Black_footed_Albatross"`` or a SOP class id). ``paths`` are the samples' files, or
    pseudo-paths used as sample ids for data held in memory. ``dataset[i]`` is ``(sample, label)``: the
    subclass's ``load_sample(i)`` passed through ``transform`` when one is set. A concrete subclass sets the
    class attribute ``modality`` (a ``Modality``: ``IMAGE`` samples are PIL images that get the image
    transforms, ``TEXT`` samples ``str`` that text backbones take as they are) and implements
    ``load_sample``.
    """

    @property
    @abstractmethod
    def modality(self) -> Modality:
        """What the samples are; a subclass sets it as a class attribute (``modality = Modality.IMAGE``)."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int] | np.ndarray,
        *,
        class_names: Sequence[str],
        name: str,
        split: str,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        self.paths = [Path(path) for path in paths]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = tuple(class_names)
        self.name = name
        self.split = split
        self.transform = transform
        if len(self.paths) != len(self.labels):
            raise TcdmlInputError(f"{name}: {len(self.paths)} paths but {len(self.labels)} labels")

    @property
    def num_classes(self) -> int:
        """Number of classes in this split."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.paths)

    @abstractmethod
    def load_sample(self, index: int) -> Any:
        """The raw sample ``index`` (before ``transform``)."""

    def __getitem__(self, index: int) -> tuple[Any, int]:
        sample = self.load_sample(index)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample, int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, "
            f"samples={len(self)}, classes={self.num_classes})"
        )


class ImageListDataset(LabelledDataset):
    """A list of (image path, label): ``dataset[i]`` is ``(image, label)``, the image an RGB ``PIL.Image``
    passed through ``transform`` when one is set (see ``LabelledDataset``)."""

    modality = Modality.IMAGE

    def load_image(self, index: int) -> Any:
        """The sample's image as an RGB ``PIL.Image``; an unreadable file raises ``TcdmlInputError``."""
        from PIL import Image

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError as exc:  # missing file, truncated or not an image (PIL's errors are OSErrors)
            raise TcdmlInputError(
                f"{self.name}: cannot read image {path} ({exc.__class__.__name__})"
            ) from None

    def load_sample(self, index: int) -> Any:
        """The image (``load_image``, which in-memory datasets override)."""
        return self.load_image(index)


def check_split(dataset: str, split: str) -> str:
    """Return ``split`` if it is one of ``SPLITS``, else raise ``TcdmlInputError``."""
    if split not in SPLITS:
        raise TcdmlInputError(f"{dataset}: unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    return split


def split_by_class_number(class_numbers: Sequence[int], num_train_classes: int) -> list[str]:
    """The DML held-out-class rule: classes ``1..num_train_classes`` train, the rest test (per sample)."""
    return ["train" if number <= num_train_classes else "test" for number in class_numbers]


def make_dataset(
    dataset: str,
    paths: Sequence[Path],
    class_keys: Sequence[Hashable],
    sample_splits: Sequence[str],
    split: str,
    *,
    transform: Callable[[Any], Any] | None = None,
    class_names: dict[Hashable, str] | None = None,
) -> ImageListDataset:
    """Keep the samples whose split is ``split`` (every sample for ``"all"``) and number their classes.

    Labels follow the sorted order of the class keys (keys of one dataset are all ints or all strings), so a
    class keeps its label whatever order the index file lists it in. ``class_names`` maps a key to a display
    name (default ``str(key)``). Raises ``TcdmlInputError`` when the split is empty.
    """
    check_split(dataset, split)
    keep = [i for i, s in enumerate(sample_splits) if split == "all" or s == split]
    if not keep:
        raise TcdmlInputError(f"{dataset}: no images in split {split!r}")
    keys = sorted({class_keys[i] for i in keep})
    label_of = {key: label for label, key in enumerate(keys)}
    names = class_names or {}
    return ImageListDataset(
        [paths[i] for i in keep],
        [label_of[class_keys[i]] for i in keep],
        class_names=[names.get(key, str(key)) for key in keys],
        name=dataset,
        split=split,
        transform=transform,
    )


def label_keys(labels: Sequence[str]) -> list[Hashable]:
    """Class keys of label texts read from a file: integers when every label is an integer written
    canonically (``"7"``, ``"-3"``: they then sort as numbers), else the texts themselves, so ``"01"`` and
    ``"1"`` stay two classes and a name keeps its leading zeros."""
    canonical = all(text.lstrip("-").isdigit() and str(int(text)) == text for text in labels)
    return [int(text) for text in labels] if canonical else list(labels)


def held_out_classes(class_keys: Iterable[Hashable]) -> dict[Hashable, str]:
    """The DML held-out-class rule: the first ``ceil(C/2)`` classes in sorted order train, the rest test."""
    keys = sorted(set(class_keys))
    num_train = math.ceil(len(keys) / 2)
    return {key: "train" if i < num_train else "test" for i, key in enumerate(keys)}


def find_root(dataset: str, root: str | os.PathLike, marker: str, subdir: str | None = None) -> Path:
    """The folder holding ``marker``: ``root`` itself or ``root/subdir`` (the folder an archive unpacks to).

    Raises ``TcdmlInputError`` naming where ``marker`` was expected when neither has it.
    """
    root = Path(root).expanduser()
    candidates = [root] if subdir is None else [root, root / subdir]
    for candidate in candidates:
        if (candidate / marker).is_file():
            return candidate
    if not root.is_dir():
        raise TcdmlInputError(f"{dataset}: expected a directory at {root}")
    also = "" if subdir is None else f" (or {root / subdir / marker})"
    raise TcdmlInputError(f"{dataset}: expected file '{marker}' at {root / marker}{also}")


def require_file(dataset: str, path: Path) -> Path:
    """Return ``path`` if it is a file, else raise ``TcdmlInputError`` naming where it was expected."""
    if not path.is_file():
        raise TcdmlInputError(f"{dataset}: expected file '{path.name}' at {path}")
    return path


def require_dir(dataset: str, path: Path) -> Path:
    """Return ``path`` if it is a directory, else raise ``TcdmlInputError`` naming where it was expected."""
    if not path.is_dir():
        raise TcdmlInputError(f"{dataset}: expected directory '{path.name}/' at {path}")
    return path


def read_rows(dataset: str, path: Path, num_fields: int, *, skip: int = 0) -> list[tuple[int, list[str]]]:
    """The whitespace-separated rows of an index file as ``(line number, fields)``, blank lines skipped.

    Every row must have exactly ``num_fields`` fields; ``skip`` header lines are ignored.
    """
    rows = []
    with require_file(dataset, path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if number <= skip or not fields:
                continue
            if len(fields) != num_fields:
                raise TcdmlInputError(
                    f"{dataset}: {path}, line {number}: expected {num_fields} fields, got {len(fields)}"
                )
            rows.append((number, fields))
    return rows


def parse_int(dataset: str, path: Path, number: int, value: str) -> int:
    """``int(value)``, or a ``TcdmlInputError`` naming the file, line and value."""
    try:
        return int(value)
    except ValueError:
        raise TcdmlInputError(
            f"{dataset}: {path}, line {number}: expected an integer, got {value!r}"
        ) from None


def check_images_present(dataset: str, paths: Sequence[Path]) -> None:
    """Fail early on a wrong layout: the first listed image must exist.

    Only one file is checked, so that listing half a million images stays fast; a later missing image is
    reported by name when it is loaded.
    """
    if paths and not paths[0].is_file():
        raise TcdmlInputError(f"{dataset}: expected image '{paths[0].name}' at {paths[0]}")
