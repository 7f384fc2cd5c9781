"""Glyphs: an open-world benchmark of characters rendered from the fonts matplotlib installs (offline).

A class is one Unicode code point; its samples are the fonts that have a glyph for it, each rendered to a
small grey image (white on black, ``image_size`` pixels square). Rendering is deterministic: the glyph is
drawn by FreeType at ``0.75 * image_size`` pixels per em, cropped to its ink and centred, and shrunk (aspect
kept) only when it would not fit inside a 2-pixel margin. Size is thus kept for most glyphs ("o" is smaller
than "O", "-" shorter than "—"); position relative to the baseline is not.

Fonts (decided from the data in ``matplotlib.get_data_path()/fonts/ttf``):

- ``LastResort`` is left out: it maps every code point to a placeholder naming the Unicode block;
- fonts with fewer than ``MIN_FONT_CHARACTERS`` (500) character code points are left out. In matplotlib's
  set these are the STIXSize* fonts (17-110 size variants of delimiters and operators), the DejaVu
  *Display* subsets (20-47 glyphs), STIXNonUni* (alternates in the private use area) and the Computer
  Modern cm*10 fonts, whose 130 cmap entries all claim the same code points in TeX's own encodings (in
  cmsy10, "A" is a calligraphic A and other letters are maths symbols): kept, they would be label noise.

That leaves the 12 DejaVu Sans/Serif/Sans Mono styles and the 4 STIXGeneral styles. Code points that are
whitespace, control, format, private-use, unassigned or combining marks (Unicode categories Z*, C*, M*) are
not classes, and a glyph whose rendering has no ink is not a sample. A code point is kept when at least
``min_fonts`` fonts give it a non-empty rendering.

Homoglyphs: Latin "A", Greek "Α" and Cyrillic "А" are drawn from the same outline, so as separate classes
they would be label noise. The rule: code points are visited in increasing order and one is dropped when,
for some code point already kept, the renderings in the *reference fonts* (``REFERENCE_FONTS``: the four
upright regular designs DejaVu Sans, DejaVu Serif, DejaVu Sans Mono, STIXGeneral) are near-identical (RMS
pixel difference at most ``HOMOGLYPH_RMS`` = 0.03 of full scale) in at least half of the reference fonts
both have. The lower code point wins, so ASCII and Latin letters stay and their Greek/Cyrillic twins go;
"-" vs "—" (identical only in the monospaced font) or "K" vs "К" (different in three designs) both stay.

Open-world split: the kept classes are permuted with a fixed seed (``SPLIT_SEED``, not the training seed);
even positions train, odd positions test (half/half, disjoint characters). ``max_classes`` keeps the first
``max_classes`` classes of that permutation, so a smaller benchmark's train and test classes are subsets of
the full benchmark's at the same ``image_size``. Across sizes they are not: the kept classes (empty renders,
homoglyphs) depend on the size (874 at 32 px, 877 at 64 px), which shifts the permutation, so never train at
one size and evaluate at another. Renderings are cached in memory per (font folder, image size, min_fonts).
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.data.base import check_split
from tcdml.data.memory import InMemoryImageDataset
from tcdml.errors import TcdmlInputError

#: Fonts with fewer character code points than this are not text fonts (see the module docstring).
MIN_FONT_CHARACTERS = 500
EXCLUDED_FONT_PREFIXES = ("LastResort",)
REFERENCE_FONTS = ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "STIXGeneral")
HOMOGLYPH_RMS = 0.03
#: 14 of the 16 fonts: DejaVu's 12 styles and at least two STIX ones; about 950 classes of 14-16 samples.
DEFAULT_MIN_FONTS = 14
DEFAULT_IMAGE_SIZE = 32
SPLIT_SEED = 0
MARGIN = 2
EM_FRACTION = 0.75


def default_font_dir() -> Path:
    """matplotlib's bundled TrueType fonts (``<data path>/fonts/ttf``)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def is_character(code: int) -> bool:
    """Whether a code point can be a class: not whitespace, control, format, private use or a mark."""
    return unicodedata.category(chr(code))[0] not in "ZCM"


@functools.cache
def text_fonts(font_dir: Path) -> tuple[tuple[Path, frozenset[int]], ...]:
    """(font file, character code points of its cmap) of every text font in ``font_dir``, by file name.

    Raises ``TcdmlInputError`` when the folder holds no usable font.
    """
    from fontTools.ttLib import TTFont

    # fontTools warns about the DejaVu files' zero timestamps; harmless, and noisy at every first load.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    fonts = []
    for path in sorted(font_dir.glob("*.[ot]tf")):
        if path.name.startswith(EXCLUDED_FONT_PREFIXES):
            continue
        with TTFont(path, lazy=True) as font:
            codes = frozenset(code for code in (font.getBestCmap() or {}) if is_character(code))
        if len(codes) >= MIN_FONT_CHARACTERS:
            fonts.append((path, codes))
    if not fonts:
        raise TcdmlInputError(
            f"glyphs: no text font (.ttf/.otf with >= {MIN_FONT_CHARACTERS} characters) in {font_dir}"
        )
    return tuple(fonts)


def render_glyph(font: Any, char: str, image_size: int) -> np.ndarray | None:
    """``char`` in the PIL FreeType ``font`` as an (image_size, image_size) uint8 image; None when no ink.

    The ink is cropped, shrunk (aspect kept) only if larger than the box inside the margin, and centred.
    """
    from PIL import Image

    mask = font.getmask(char, mode="L")
    width, height = mask.size
    if width == 0 or height == 0:
        return None
    ink = np.array(mask, dtype=np.uint8).reshape(height, width)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    glyph = Image.fromarray(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    box = image_size - 2 * MARGIN
    if max(glyph.size) > box:
        scale = box / max(glyph.size)
        size = (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale)))
        glyph = glyph.resize(size, Image.Resampling.BOX)
    canvas = Image.new("L", (image_size, image_size))
    canvas.paste(glyph, ((image_size - glyph.width) // 2, (image_size - glyph.height) // 2))
    return np.asarray(canvas)


@dataclass(frozen=True)
class GlyphTable:
    """Every kept rendering: ``images[i]`` is code point ``codes[i]`` in font ``font_names[fonts[i]]``."""

    images: np.ndarray
    codes: np.ndarray
    fonts: np.ndarray
    font_names: tuple[str, ...]
    classes: np.ndarray  # the kept code points, increasing


@functools.cache
def glyph_table(font_dir: Path, image_size: int, min_fonts: int) -> GlyphTable:
    """Render every candidate code point in every text font of ``font_dir``, then drop homoglyphs (cached)."""
    from PIL import ImageFont

    fonts = text_fonts(font_dir)
    counts: dict[int, int] = {}
    for _, codes in fonts:
        for code in codes:
            counts[code] = counts.get(code, 0) + 1
    candidates = sorted(code for code, count in counts.items() if count >= min_fonts)
    size = max(1, round(image_size * EM_FRACTION))
    rendered: dict[int, dict[int, np.ndarray]] = {code: {} for code in candidates}
    for index, (path, codes) in enumerate(fonts):
        font = ImageFont.truetype(str(path), size)
        for code in candidates:
            if code in codes and (image := render_glyph(font, chr(code), image_size)) is not None:
                rendered[code][index] = image
    # Empty renderings may bring a code point under min_fonts.
    candidates = [code for code in candidates if len(rendered[code]) >= min_fonts]
    names = tuple(path.stem for path, _ in fonts)
    kept = drop_homoglyphs(
        candidates, rendered, [i for i, name in enumerate(names) if name in REFERENCE_FONTS]
    )
    pairs = [(code, index) for code in kept for index in sorted(rendered[code])]
    empty = np.zeros((0, image_size, image_size), np.uint8)
    images = np.stack([rendered[code][index] for code, index in pairs]) if pairs else empty
    images.flags.writeable = False
    return GlyphTable(
        images=images,
        codes=np.array([code for code, _ in pairs], dtype=np.int64),
        fonts=np.array([index for _, index in pairs], dtype=np.int64),
        font_names=names,
        classes=np.array(kept, dtype=np.int64),
    )


def drop_homoglyphs(
    codes: list[int], rendered: dict[int, dict[int, np.ndarray]], reference: list[int]
) -> list[int]:
    """The code points of ``codes`` (increasing) left after the homoglyph rule of the module docstring.

    ``rendered[code][font]`` is a rendering; ``reference`` are the indices of the reference fonts (all the
    fonts when none of ``REFERENCE_FONTS`` is present).
    """
    if not codes:
        return []
    reference = reference or sorted({font for code in codes for font in rendered[code]})
    n = len(codes)
    shared = np.zeros((n, n), dtype=np.int32)
    near = np.zeros((n, n), dtype=np.int32)
    for font in reference:
        has = np.array([font in rendered[code] for code in codes])
        pixels = np.stack(
            [rendered[code].get(font, np.zeros_like(next(iter(rendered[code].values())))) for code in codes]
        )
        x = pixels.reshape(n, -1).astype(np.float32) / 255.0
        squares = (x * x).sum(axis=1)
        # Squared distances via one matrix product (n x n x pixels differences would not fit in memory).
        distances = squares[:, None] + squares[None, :] - 2.0 * (x @ x.T)
        both = has[:, None] & has[None, :]
        shared += both
        near += both & (distances <= HOMOGLYPH_RMS**2 * x.shape[1])
    twin = (shared > 0) & (2 * near >= shared)
    keep = np.zeros(n, dtype=bool)
    for i in range(n):
        keep[i] = not (twin[i, :i] & keep[:i]).any()
    return [code for code, kept in zip(codes, keep, strict=True) if kept]


def load_glyphs(
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    min_fonts: int = DEFAULT_MIN_FONTS,
    max_classes: int | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    font_dir: str | os.PathLike | None = None,
) -> InMemoryImageDataset:
    """The ``split`` (``train``, ``test`` or ``all``) of the glyph benchmark (no ``root``: the fonts are
    installed with matplotlib).

    The fonts are matplotlib's bundled ones (the benchmark as documented) unless ``font_dir`` names another
    folder of ``.ttf``/``.otf`` files, which gives the same construction over those fonts. Classes are code
    points (``class_names`` like ``"U+0041"``), labelled ``0 .. C-1`` in increasing code point order within
    the split; train and test classes are disjoint. Raises ``TcdmlInputError`` for an unknown split,
    ``min_fonts`` < 1, ``max_classes`` < 2, ``image_size`` < 8, a folder without fonts or an empty split.
    """
    check_split("glyphs", split)
    if min_fonts < 1 or image_size < 8 or (max_classes is not None and max_classes < 2):
        raise TcdmlInputError(
            f"glyphs: min_fonts={min_fonts}, max_classes={max_classes}, image_size={image_size}; "
            "expected >= 1, >= 2 (or None) and >= 8"
        )
    font_dir = default_font_dir() if font_dir is None else Path(font_dir).expanduser()
    if not font_dir.is_dir():
        raise TcdmlInputError(f"glyphs: expected a directory of fonts at {font_dir}")
    table = glyph_table(font_dir.resolve(), image_size, min_fonts)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(table.classes))
    if max_classes is not None:
        order = order[:max_classes]
    parity = {"train": (0,), "test": (1,), "all": (0, 1)}[split]
    picked = [index for position, index in enumerate(order) if position % 2 in parity]
    classes = np.sort(table.classes[picked])
    if classes.size == 0:
        raise TcdmlInputError(f"glyphs: no classes in split {split!r} (min_fonts={min_fonts} is too high?)")
    rows = np.flatnonzero(np.isin(table.codes, classes))
    codes = table.codes[rows]
    return InMemoryImageDataset(
        table.images[rows],
        np.searchsorted(classes, codes),
        ids=[
            f"glyphs/U+{code:04X}/{table.font_names[font]}"
            for code, font in zip(codes, table.fonts[rows], strict=True)
        ],
        class_names=[f"U+{code:04X}" for code in classes],
        name="glyphs",
        split=split,
        transform=transform,
    )
