"""Strict JSON out of tcdml's results: NaN / inf become null (``json`` would write the invalid ``NaN``); JSON
objects read back with one-line errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.io.atomic import atomic_write


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


def read_json_object(path: str | os.PathLike, missing: str) -> dict[str, Any]:
    """The JSON object stored in ``path``; ``TcdmlInputError`` naming the file when it is a folder, missing
    (``missing`` says what was expected there), unreadable, not UTF-8, not JSON or not an object."""
    path = Path(path)
    if path.is_dir():
        raise TcdmlInputError(f"{path}: is a folder, expected a JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TcdmlInputError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TcdmlInputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TcdmlInputError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise TcdmlInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
