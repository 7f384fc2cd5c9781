"""The HS product-code benchmark: sizes, the open-world split, determinism, subsets and bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tcdml.data import DATASETS, TextListDataset, build_dataset, load_hscodes
from tcdml.errors import TcdmlInputError


def test_sizes_and_classes() -> None:
    full = load_hscodes(split="all")
    assert isinstance(full, TextListDataset) and full.modality == "text"
    assert (full.num_classes, len(full)) == (957, 5341)
    assert min(Counter(full.labels.tolist()).values()) >= 2
    assert full.labels.dtype == np.int64 and set(full.labels.tolist()) == set(range(957))
    assert list(full.class_names) == sorted(full.class_names) and all(len(c) == 4 for c in full.class_names)
    text, label = full[0]
    assert isinstance(text, str) and text and isinstance(label, int)
    # The class of a description is the heading its six-digit code starts with.
    assert all(p.parts[0] == "hscodes" and len(p.name) == 6 for p in full.paths)
    assert all(p.name.startswith(full.class_names[y]) for p, y in zip(full.paths, full.labels, strict=True))


def test_open_world_split_is_disjoint_and_fixed() -> None:
    train, test = load_hscodes(split="train"), load_hscodes(split="test")
    assert (train.num_classes, test.num_classes) == (479, 478)
    assert len(train) + len(test) == 5341
    assert not set(train.class_names) & set(test.class_names)
    again = load_hscodes(split="train")
    assert again.texts == train.texts and np.array_equal(again.labels, train.labels)
    assert again.paths == train.paths


def test_max_classes_is_a_nested_disjoint_subset() -> None:
    train, test = load_hscodes(split="train"), load_hscodes(split="test")
    small_train = load_hscodes(split="train", max_classes=7)
    small_test = load_hscodes(split="test", max_classes=7)
    assert (small_train.num_classes, small_test.num_classes) == (4, 3)
    assert set(small_train.class_names) <= set(train.class_names)
    assert set(small_test.class_names) <= set(test.class_names)
    both = load_hscodes(split="all", max_classes=7)
    assert sorted(both.class_names) == sorted(small_train.class_names + small_test.class_names)


def test_registry_and_transform() -> None:
    assert DATASETS["hscodes"] is load_hscodes
    data = build_dataset("hscodes", "unused", split="test", transform=str.upper)
    assert data[0][0] == data.texts[0].upper() and data.paths[0] == Path("hscodes") / data.paths[0].name


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"split": "val"}, "unknown split"), ({"max_classes": 1}, "max_classes")]
)
def test_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(TcdmlInputError, match=match):
        load_hscodes(**kwargs)
