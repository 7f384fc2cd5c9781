"""Strict JSON out of tcdml's results: NaN / inf become null (``json`` would write the invalid ``NaN``); JSON
objects read back with one-line errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError, first_line
from tcdml.io.atomic import atomic_write
from tcdml.io.file_bytes import read_user_file


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively through dicts/lists."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float | np.floating):  # np.float32 is no Python float, and json cannot write it
        return float(value) if math.isfinite(value) else None
    return value


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented strict JSON to ``path``, atomically (a reader never sees half a file)."""
    path = Path(path)
    with atomic_write(path) as handle:
        json.dump(json_safe(data), handle, indent=2)
    return path


#: Largest JSON file tcdml reads (a manifest, a calibration, an adapter.json are a few kB).
JSON_LIMIT = 16 << 20


def loads_json(text: str, where: str) -> Any:
    """``json.loads(text)``, or one ``TcdmlInputError`` line starting with ``where`` for each way it fails:
    not JSON (the parser's message and position), nested too deeply for the parser, or an integer longer
    than Python's digit limit."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno}, column {exc.colno}" if "\n" in text.rstrip("\n") else f"column {exc.colno}"
        raise TcdmlInputError(f"{where}: not JSON ({exc.msg}, {at})") from None
    except RecursionError:
        raise TcdmlInputError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as exc:  # an integer longer than Python's int digit limit
        raise TcdmlInputError(f"{where}: not readable JSON ({first_line(exc, 120)})") from None


def parse_json_object(data: bytes, path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in ``data`` (the bytes of ``path``, which names it in errors).

    Not UTF-8, not JSON, nested too deep for the parser, an integer of thousands of digits or not an object:
    one ``TcdmlInputError`` line each.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TcdmlInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    value = loads_json(text, str(path))
    if not isinstance(value, dict):
        raise TcdmlInputError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_json_object(path: str | os.PathLike, missing: str, limit: int = JSON_LIMIT) -> dict[str, Any]:
    """The JSON object stored in ``path``, read once and at most ``limit`` bytes (``tcdml.io.file_bytes``);
    ``TcdmlInputError`` naming the file when it is a folder, missing (``missing`` says what was expected
    there), too large, unreadable, not UTF-8, not JSON or not an object (``parse_json_object``)."""
    return parse_json_object(read_user_file(path, limit, "JSON file", missing), path)
