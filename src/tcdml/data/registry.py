"""Datasets by name, for configs: ``build_dataset("cub200", root, split="train")``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tcdml.data.base import ImageListDataset
from tcdml.data.cars import load_cars196
from tcdml.data.cub import load_cub200
from tcdml.data.folder import load_csv, load_image_folder
from tcdml.data.inaturalist import load_inaturalist2018
from tcdml.data.mnist import load_mnist
from tcdml.data.sop import load_sop
from tcdml.errors import TcdmlInputError

DATASETS: dict[str, Callable[..., ImageListDataset]] = {
    "cub200": load_cub200,
    "cars196": load_cars196,
    "sop": load_sop,
    "inaturalist2018": load_inaturalist2018,
    "folder": load_image_folder,
    "csv": load_csv,
    "mnist": load_mnist,
}


def build_dataset(
    name: str,
    root: str | os.PathLike,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
) -> ImageListDataset:
    """The dataset ``name`` (a key of ``DATASETS``) read from ``root`` (for ``"csv"``: the CSV file).

    Raises ``TcdmlInputError`` for an unknown name, split or a wrong layout.
    """
    if name not in DATASETS:
        raise TcdmlInputError(f"unknown dataset {name!r} (expected one of {', '.join(DATASETS)})")
    return DATASETS[name](root, split=split, transform=transform)
