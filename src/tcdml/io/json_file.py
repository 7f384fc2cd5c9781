"""Strict JSON out of tcdml's results: NaN / inf become null (``json`` would write the invalid ``NaN``)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.io.atomic import atomic_write


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively through dicts/lists."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    if isinstance(value, float | np.floating):  # np.float32 is no Python float, and json cannot write it
        return float(value) if math.isfinite(value) else None
    return value


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented strict JSON to ``path``, atomically (a reader never sees half a file)."""
    path = Path(path)
    with atomic_write(path) as handle:
        json.dump(finite(data), handle, indent=2)
    return path
