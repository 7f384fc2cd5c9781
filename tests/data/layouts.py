"""Helpers and class lists of the tiny benchmark trees (imported by conftest.py and the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (12, 9)) -> Path:
    """A small random RGB image; the format follows the suffix (JPEG or PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# CUB: class ids on both sides of the 100/101 boundary; images listed out of id order.
CUB_CLASSES = {1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross", 100: "100.Brown_Pelican",
               101: "101.White_Pelican", 200: "200.Common_Yellowthroat"}  # fmt: skip
CARS_CLASSES = (1, 2, 98, 99, 196)
SOP_TRAIN = {1: "bicycle_final", 2: "bicycle_final", 3: "chair_final"}
SOP_TEST = {11319: "sofa_final", 11320: "mug_final"}
INAT_TRAIN = ("Plantae/7477", "Aves/3000", "Plantae/12")
INAT_TEST = ("Insecta/999", "Fungi/8000")
