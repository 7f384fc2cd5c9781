"""Every registered loader returns a ``LabelledDataset`` that keeps the contract; modality is a type; loaders
whose data ship with a package take no root."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tcdml.data import DATASETS, build_dataset
from tcdml.data.base import ImageListDataset, LabelledDataset, Modality
from tcdml.errors import TcdmlInputError
from tests.data.layouts import write_image
from tests.data.test_fashion_mnist import write_fashion

ROOTLESS = {"mnist", "hscodes", "glyphs"}
TEXTS = [("Horses; live", "horse"), ("Asses; live", "horse"), ("Fish; frozen", "fish"), ("Cod", "fish")]


def _folder(tmp_path: Path) -> Path:
    for c, name in enumerate(["ant", "bee", "cat"]):
        for k in range(2):
            write_image(tmp_path / name / f"{k}.png", seed=10 * c + k)
    return tmp_path


def _csv(tmp_path: Path) -> Path:
    rows = [f"{write_image(tmp_path / f'{k}.png', seed=k).name},{k % 2},train" for k in range(4)]
    (tmp_path / "list.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    return tmp_path / "list.csv"


def _text_csv(tmp_path: Path) -> Path:
    path = tmp_path / "texts.csv"
    path.write_text("text,label\n" + "".join(f'"{text}",{label}\n' for text, label in TEXTS))
    return path


def _text_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in TEXTS))
    return path


def _fashion(tmp_path: Path) -> Path:
    write_fashion(tmp_path / "fashion", gz=False)
    return tmp_path / "fashion"


#: How to get a small instance of each dataset: its root (None: rootless) and options.
SOURCES: dict[str, tuple[Callable[[pytest.FixtureRequest, Path], Path | None], dict[str, Any]]] = {
    "cub200": (lambda request, _: request.getfixturevalue("cub_root"), {}),
    "cars196": (lambda request, _: request.getfixturevalue("cars_root"), {}),
    "sop": (lambda request, _: request.getfixturevalue("sop_root"), {}),
    "inaturalist2018": (lambda request, _: request.getfixturevalue("inat_root"), {}),
    "folder": (lambda _, tmp: _folder(tmp), {}),
    "csv": (lambda _, tmp: _csv(tmp), {}),
    "mnist": (lambda _, __: None, {}),
    "hscodes": (lambda _, __: None, {"max_classes": 4}),
    "glyphs": (lambda _, __: None, {"max_classes": 4}),
    "fashion_mnist": (lambda _, tmp: _fashion(tmp), {}),
    "text_csv": (lambda _, tmp: _text_csv(tmp), {}),
    "text_jsonl": (lambda _, tmp: _text_jsonl(tmp), {}),
}


def test_every_registered_loader_is_covered() -> None:
    assert set(SOURCES) == set(DATASETS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_dataset_keeps_the_contract(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    make_root, options = SOURCES[name]
    data = build_dataset(name, make_root(request, tmp_path), "all", options=options)
    assert isinstance(data, LabelledDataset) and isinstance(data.modality, Modality)
    assert data.labels.dtype == np.int64 and len(data.labels) == len(data) == len(data.paths) > 0
    assert sorted(set(data.labels.tolist())) == list(range(data.num_classes))
    assert len(data.class_names) == data.num_classes and all(isinstance(c, str) for c in data.class_names)
    sample, label = data[0]
    assert isinstance(label, int) and label == data.labels[0]
    expected = {Modality.IMAGE: Image.Image, Modality.TEXT: str}[data.modality]
    assert isinstance(sample, expected)
    data.transform = lambda raw: ("seen", raw)
    assert data[0][0][0] == "seen"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_only_rootless_loaders_take_no_root(name: str) -> None:
    first = next(iter(inspect.signature(DATASETS[name]).parameters))
    assert (first == "split") == (name in ROOTLESS)


def test_a_root_is_ignored_by_rootless_loaders_and_required_by_the_others() -> None:
    assert len(build_dataset("mnist", "no/such/folder", "test")) == len(build_dataset("mnist", split="test"))
    with pytest.raises(TcdmlInputError, match="dataset 'cub200': needs a root"):
        build_dataset("cub200", None, "train")


def test_modality_is_a_type_and_required() -> None:
    assert Modality("text") is Modality.TEXT and Modality.IMAGE == "image"  # reads and writes as a string
    assert ImageListDataset.modality is Modality.IMAGE

    class NoModality(LabelledDataset):
        def load_sample(self, index: int) -> Any:
            return index

    with pytest.raises(TypeError, match="abstract"):
        NoModality([], [], class_names=[], name="x", split="all")
