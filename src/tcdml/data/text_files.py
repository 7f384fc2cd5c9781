"""The user's own labelled texts: a CSV file ``text,label[,split][,id]`` or a JSON-lines file.

- ``text_csv``: UTF-8 (a BOM is allowed), a header row naming the columns ``text`` and ``label`` and
  optionally ``split`` and ``id``, in any order (other columns are ignored). The delimiter (``,``, ``;``, tab
  or ``|``) is sniffed by ``csv.Sniffer``; a text holding the delimiter is quoted (``"Horses, live"``).
- ``text_jsonl``: UTF-8, one JSON object per non-blank line, ``{"text": str, "label": str | int}`` and
  optionally ``"split"`` and ``"id"``; other keys are ignored.

Labels that are all integers sort as integers, otherwise as strings; each split numbers its classes
``0 .. C-1`` in that order and keeps them as ``class_names`` (as text). Sample ids (``paths``) are the ``id``
values, else ``<file name>:<line number>``.

Split: with a ``split`` column (key), every row says ``train`` or ``test`` (no other value: tcdml has no
separate validation split, training evaluates on the test split). Without it, the open-world protocol holds
out whole classes: the C sorted classes are permuted with ``seed`` and the last
``n_test = min(C - 1, max(1, floor(C x test_ratio)))`` are the test classes, the rest train, so train and
test classes are disjoint (``test_ratio`` 0.5 and ``seed`` 0 by default; the same file, ratio and seed give
the same split). Every bad row is one ``TcdmlInputError`` naming the file and line (and column or key).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.data.base import check_split, label_keys, require_file
from tcdml.data.text import TextListDataset
from tcdml.errors import TcdmlInputError
from tcdml.io.embedding_inputs import DELIMITERS, count_lines, sniff_delimiter
from tcdml.io.embeddings_file import check_memory
from tcdml.io.json_file import loads_json

TEXT_CSV = "text_csv"
TEXT_JSONL = "text_jsonl"
REQUIRED = ("text", "label")
SAMPLE_SPLITS = ("train", "test")
DEFAULT_TEST_RATIO = 0.5
DEFAULT_SEED = 0


@dataclass(frozen=True)
class TextRow:
    """One sample as read: its line number, text, label (as text), split ("" when none) and id (or None)."""

    line: int
    text: str
    label: str
    split: str
    id: str | None


def load_text_csv(
    path: str | os.PathLike,
    split: str = "train",
    transform: Callable[[str], Any] | None = None,
    *,
    test_ratio: float | None = None,
    seed: int | None = None,
) -> TextListDataset:
    """The ``split`` (train, test or all) of a CSV of labelled texts (see the module doc for the layout and
    the split rule; ``test_ratio`` and ``seed`` apply only without a ``split`` column)."""
    check_split(TEXT_CSV, split)
    path = require_file(TEXT_CSV, Path(path).expanduser())
    text = _read_utf8(TEXT_CSV, path)
    lines = text.splitlines(keepends=True)
    delimiter = _delimiter("".join(lines[:50]), lines[0] if lines else "")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise TcdmlInputError(
            f"{TEXT_CSV}: {path}: expected a header row with columns 'text,label[,split][,id]', "
            f"missing {', '.join(repr(m) for m in missing)} (found: {', '.join(columns) or 'nothing'})"
        )
    reader.fieldnames = columns
    rows = []
    start = 2  # the line the next row starts on
    try:
        for row in reader:
            first, start = start, reader.line_num + 1
            if reader.line_num > first and any("\n" in (value or "") for value in row.values()):
                raise TcdmlInputError(
                    f"{TEXT_CSV}: {path}, line {first}: a quoted field runs on to line {reader.line_num} "
                    '(an unclosed quote "?); a text may not span lines'
                )
            if not any((value or "").strip() for key, value in row.items() if key is not None):
                continue
            if None in row:
                raise TcdmlInputError(
                    f"{TEXT_CSV}: {path}, line {reader.line_num}: more fields than the header's "
                    f"{len(columns)} (quote a text that holds the delimiter {delimiter!r})"
                )
            values = {key: (row.get(key) or "").strip() for key in (*REQUIRED, "split", "id")}
            values["id"] = values["id"] or None if "id" in columns else None
            rows.append(TextRow(reader.line_num, **values))
    except csv.Error as exc:
        raise TcdmlInputError(f"{TEXT_CSV}: {path}, line {reader.line_num}: {exc}") from None
    return _dataset(TEXT_CSV, path, rows, "split" in columns, split, transform, test_ratio, seed)


def load_text_jsonl(
    path: str | os.PathLike,
    split: str = "train",
    transform: Callable[[str], Any] | None = None,
    *,
    test_ratio: float | None = None,
    seed: int | None = None,
) -> TextListDataset:
    """The ``split`` (train, test or all) of a JSON-lines file of labelled texts (see the module doc; a
    ``"split"`` key on one line must be on every line)."""
    check_split(TEXT_JSONL, split)
    path = require_file(TEXT_JSONL, Path(path).expanduser())
    rows, with_split = [], []
    for number, line in enumerate(_read_utf8(TEXT_JSONL, path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{TEXT_JSONL}: {path}, line {number}"
        record = loads_json(line, where)
        if not isinstance(record, dict):
            raise TcdmlInputError(f'{where}: expected a JSON object {{"text": ..., "label": ...}}')
        for key in REQUIRED:
            if key not in record:
                raise TcdmlInputError(f"{where}: missing key {key!r}")
        values = {key: _json_text(where, key, record.get(key)) for key in (*REQUIRED, "split", "id")}
        values["id"] = values["id"] or None
        with_split.append("split" in record)
        rows.append(TextRow(number, **values))
    if any(with_split) and not all(with_split):
        number = rows[with_split.index(False)].line
        raise TcdmlInputError(
            f"{TEXT_JSONL}: {path}, line {number}: missing key 'split' (other lines have it)"
        )
    return _dataset(TEXT_JSONL, path, rows, any(with_split), split, transform, test_ratio, seed)


def held_out_text_classes(keys: list[Any], test_ratio: float, seed: int) -> dict[Any, str]:
    """``{class key: "train" | "test"}``: the sorted keys permuted with ``seed``, the last ``n_test`` test.

    ``n_test = min(C - 1, max(1, floor(C x test_ratio)))``, so both sides keep at least one class.
    """
    ordered = sorted(set(keys))
    permuted = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    num_test = min(len(ordered) - 1, max(1, math.floor(len(ordered) * test_ratio + 1e-9)))
    num_train = len(ordered) - num_test
    return {key: "train" if i < num_train else "test" for i, key in enumerate(permuted)}


def _dataset(
    name: str,
    path: Path,
    rows: list[TextRow],
    has_split: bool,
    split: str,
    transform: Callable[[str], Any] | None,
    test_ratio: float | None,
    seed: int | None,
) -> TextListDataset:
    """Check the rows, split them (module doc) and keep ``split``'s samples, classes numbered in key order."""
    if not rows:
        raise TcdmlInputError(f"{name}: {path}: no rows")
    for row in rows:
        for key in REQUIRED:
            if not getattr(row, key):
                raise TcdmlInputError(f"{name}: {path}, line {row.line}: empty {key!r}")
        if has_split and row.split not in SAMPLE_SPLITS:
            raise TcdmlInputError(
                f"{name}: {path}, line {row.line}: split {row.split!r}, expected 'train' or 'test' "
                "(tcdml has no validation split: training evaluates on the test split)"
            )
    labels = [row.label for row in rows]
    keys = label_keys(labels)
    if has_split:
        if test_ratio is not None or seed is not None:
            raise TcdmlInputError(
                f"{name}: {path}: options test_ratio and seed apply only without a 'split' column; "
                "this file has one"
            )
        sample_splits = [row.split for row in rows]
    else:
        ratio = DEFAULT_TEST_RATIO if test_ratio is None else test_ratio
        if not 0.0 < ratio < 1.0:
            raise TcdmlInputError(f"{name}: option test_ratio={ratio!r}, expected a number in (0, 1)")
        if seed is not None and seed < 0:
            raise TcdmlInputError(f"{name}: option seed={seed!r}, expected an integer >= 0")
        if len(set(keys)) < 2:
            raise TcdmlInputError(f"{name}: {path}: one class only; held-out classes need at least 2")
        rule = held_out_text_classes(keys, ratio, DEFAULT_SEED if seed is None else seed)
        sample_splits = [rule[key] for key in keys]
    keep = [i for i, part in enumerate(sample_splits) if split == "all" or part == split]
    if not keep:
        raise TcdmlInputError(f"{name}: {path}: no texts in split {split!r}")
    kept_keys = sorted({keys[i] for i in keep})
    label_of = {key: label for label, key in enumerate(kept_keys)}
    return TextListDataset(
        [rows[i].text for i in keep],
        [label_of[keys[i]] for i in keep],
        ids=[rows[i].id or f"{path.name}:{rows[i].line}" for i in keep],
        class_names=[str(key) for key in kept_keys],
        name=name,
        split=split,
        transform=transform,
    )


#: Peak memory of reading a text file: this many times its size plus ``TEXT_ROW_BYTES`` a line (measured on
#: 50,000-400,000 lines of 60-560 bytes: CSV 7.1 x + 790 bytes, JSONL 2.0 x + 650 bytes a line).
TEXT_SIZE_FACTOR = 8
TEXT_ROW_BYTES = 1000


def _read_utf8(name: str, path: Path) -> str:
    """The file's text (UTF-8, an optional BOM dropped); a byte that is not UTF-8 names its line. Refused
    before it is read when reading it would need more memory than is available (``TEXT_SIZE_FACTOR``)."""
    needed = TEXT_SIZE_FACTOR * path.stat().st_size + TEXT_ROW_BYTES * count_lines(path)
    check_memory(f"{name}: {path}", {"texts": needed})
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TcdmlInputError(
            f"{name}: {path}, line {line}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def _delimiter(sample: str, header: str) -> str:
    """The sniffed delimiter, unless it leaves the header without ``text`` and ``label``: then the first of
    ``DELIMITERS`` that splits the header into both."""
    sniffed = sniff_delimiter(sample)
    for candidate in (sniffed, *DELIMITERS):
        names = {name.strip() for name in next(csv.reader([header], delimiter=candidate), [])}
        if set(REQUIRED) <= names:
            return candidate
    return sniffed


def _json_text(where: str, key: str, value: Any) -> str:
    """A JSON value as text: strings as they are (stripped), integers as digits; absent is ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool) and key in ("label", "id"):
        return str(value)
    expected = "a string or an integer" if key in ("label", "id") else "a string"
    raise TcdmlInputError(f"{where}: key {key!r} is {json.dumps(value)[:40]}, expected {expected}")
