"""The glyph benchmark: characters rendered from matplotlib's fonts, open-world split, no homoglyphs."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tcdml.data import build_dataset, load_glyphs
from tcdml.data.glyphs import REFERENCE_FONTS, default_font_dir, drop_homoglyphs, text_fonts
from tcdml.errors import TcdmlInputError


def codes(dataset) -> set[int]:
    return {int(name.removeprefix("U+"), 16) for name in dataset.class_names}


def test_fonts_are_the_text_fonts() -> None:
    names = {path.stem for path, _ in text_fonts(default_font_dir().resolve())}
    assert set(REFERENCE_FONTS) <= names
    assert not any(name.startswith(("LastResort", "STIXSiz", "cm", "STIXNonUni")) for name in names)
    assert not any(name.endswith("Display") for name in names)


def test_open_world_split_sizes_and_determinism() -> None:
    train, test, everything = (load_glyphs(split=split) for split in ("train", "test", "all"))
    assert not codes(train) & codes(test)
    assert codes(train) | codes(test) == codes(everything)
    assert abs(train.num_classes - test.num_classes) <= 1 and 300 <= train.num_classes <= 1500
    assert len(train) + len(test) == len(everything)
    assert np.bincount(everything.labels).min() >= 14  # DEFAULT_MIN_FONTS
    again = load_glyphs(split="train")
    assert again.class_names == train.class_names and again.paths == train.paths
    np.testing.assert_array_equal(again.images, train.images)
    image, label = train[0]
    assert image.mode == "RGB" and image.size == (32, 32) and label == 0
    assert np.array_equal(np.sort(np.unique(train.labels)), np.arange(train.num_classes))


def test_renderings_are_non_empty_and_antialiased() -> None:
    images = load_glyphs(split="all").images
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32)
    assert (images.reshape(len(images), -1).max(axis=1) > 0).all()
    assert len(np.unique(images)) > 2  # grey levels, not a 1-bit mask


def test_homoglyphs_are_dropped() -> None:
    kept = codes(load_glyphs(split="all"))
    assert ord("A") in kept and ord("O") in kept and ord("0") in kept
    assert not {0x0391, 0x0410, 0x039F, 0x041E} & kept  # Greek/Cyrillic A and O
    # No two kept classes render byte-identically in at least half of the reference fonts they share.
    everything = load_glyphs(split="all")
    fonts = [str(path).split("/")[-1] for path in everything.paths]
    by_rendering: dict[tuple[str, bytes], list[int]] = defaultdict(list)
    has: dict[int, set[str]] = defaultdict(set)
    for image, label, font in zip(everything.images, everything.labels, fonts, strict=True):
        if font in REFERENCE_FONTS:
            by_rendering[font, image.tobytes()].append(int(label))
            has[int(label)].add(font)
    same: dict[tuple[int, int], int] = defaultdict(int)
    for labels in by_rendering.values():
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                same[a, b] += 1
    for (a, b), count in same.items():
        assert 2 * count < len(has[a] & has[b]), (everything.class_names[a], everything.class_names[b])


def test_drop_homoglyphs_rule() -> None:
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(2))
    rendered = {1: {0: x, 1: x}, 2: {0: x, 1: y}, 3: {0: x, 1: x}, 4: {1: y}}
    # 2 matches 1 in one of two shared fonts (half): dropped; 3 is 1's twin; 4 matches 2, which was dropped.
    assert drop_homoglyphs([1, 2, 3, 4], rendered, [0, 1]) == [1, 4]


def test_min_fonts_max_classes_and_image_size() -> None:
    full = load_glyphs(split="train")
    small = load_glyphs(split="train", max_classes=40)
    assert small.num_classes == 20 and codes(small) <= codes(full)
    assert codes(load_glyphs(split="test", max_classes=40)) <= codes(load_glyphs(split="test"))
    fewer = load_glyphs(split="all", min_fonts=16, max_classes=10)
    assert np.bincount(fewer.labels).min() >= 16
    tiny = build_dataset("glyphs", "unused", "test", options={"image_size": 16, "max_classes": 6})
    assert tiny.images.shape[1:] == (16, 16) and tiny.num_classes == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"split": "val"}, {"min_fonts": 0}, {"max_classes": 1}, {"image_size": 4}, {"font_dir": "/nonexistent"}],
)
def test_bad_input(kwargs: dict) -> None:
    with pytest.raises(TcdmlInputError, match="glyphs"):
        load_glyphs(**kwargs)


def test_folder_without_fonts(tmp_path: Path) -> None:
    with pytest.raises(TcdmlInputError, match="no text font"):
        load_glyphs(font_dir=tmp_path)


def test_unknown_loader_option() -> None:
    with pytest.raises(TcdmlInputError, match="unknown option 'max_per_class'"):
        build_dataset("glyphs", "unused", options={"max_per_class": 3})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("glyphs", {"max_classes": "10"}, "option max_classes='10', expected int | None"),
        ("glyphs", {"image_size": 32.5}, "option image_size=32.5, expected int"),
        ("hscodes", {"max_classes": True}, "option max_classes=True, expected int | None"),
    ],
)
def test_loader_option_of_the_wrong_type(name: str, options: dict, message: str) -> None:
    """A YAML typo in data.options is one line naming the option, before any loading."""
    with pytest.raises(TcdmlInputError, match=message.replace("|", r"\|")):
        build_dataset(name, "unused", options=options)
