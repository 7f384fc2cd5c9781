"""The calibration JSON ``tcdml calibrate -o`` writes, read and checked for export.

Required: ``threshold`` (a number in [-1, 1]), ``target`` (``"far"`` or ``"frr"``) and ``target_rate`` (in
(0, 1)). Recorded when present: the achieved ``far`` / ``frr`` (null where undefined), the per-class spreads
``class_far`` / ``class_frr``, ``num_classes``, ``mode``, and ``embedding_size``, which must then equal the
exported model's (``tcdml calibrate -o`` writes it; a file written before it did is accepted unchecked).
A bad value is one ``ParameterError`` line naming the file and the key
(``tcdml.deploy.manifest.naming_file``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcdml.checks import check_choice, check_real, is_int, is_real, require
from tcdml.deploy.manifest import naming_file
from tcdml.errors import TcdmlInputError
from tcdml.io.file_bytes import read_user_file
from tcdml.io.json_file import parse_json_object

#: Largest calibration file read (``tcdml calibrate -o`` writes a few kB).
CALIBRATION_LIMIT = 4 << 20


@dataclass(frozen=True)
class CalibrationRecord:
    """A checked calibration file: the threshold, its target and what it achieved on the calibration data."""

    path: Path
    threshold: float
    target: str
    target_rate: float
    summary: dict[str, Any]
    embedding_size: int | None
    sha256: str

    def check_embedding_size(self, size: int, model: str) -> None:
        """Refuse a model whose embeddings are not as wide as the calibration file records (if it does)."""
        if self.embedding_size is not None and self.embedding_size != size:
            raise TcdmlInputError(
                f"{self.path}: embedding_size={self.embedding_size}, but {model} embeds into {size} "
                "dimensions (calibrated on another model's embeddings?)"
            )

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``calibration``: target, achieved rates and spreads, the file's name and hash."""
        return {
            "target": self.target,
            f"target_{self.target}": self.target_rate,
            **self.summary,
            "embedding_size": self.embedding_size,
            "file": self.path.name,
            "sha256": self.sha256,
        }


def read_calibration(path: str | os.PathLike) -> CalibrationRecord:
    """Read and check a calibration JSON; a problem is one ``TcdmlInputError`` line naming file and key.

    The file is read once (a pipe works): the recorded sha256 is that of the bytes parsed.
    """
    path = Path(path)
    missing = "no such calibration file (expected the JSON tcdml calibrate -o writes)"
    content = read_user_file(path, CALIBRATION_LIMIT, "calibration file", missing)
    data = parse_json_object(content, path)
    if "threshold" not in data:
        raise TcdmlInputError(f"{path}: no 'threshold' key (expected the JSON tcdml calibrate -o writes)")
    with naming_file(path):
        threshold = check_real("threshold", data["threshold"], low=-1.0, high=1.0)
        target = check_choice("target", data.get("target"), ("far", "frr"))
        rate = check_real(
            "target_rate", data.get("target_rate"), low=0.0, high=1.0, open_low=True, open_high=True
        )
        size = data.get("embedding_size")
        require(size is None or (is_int(size) and size >= 1), "embedding_size", size, "a positive integer")
        for key in ("far", "frr"):
            value = data.get(key)
            ok = value is None or (is_real(value) and 0.0 <= value <= 1.0)
            require(ok, key, value, "a rate in [0, 1] or null")
    kept = ("far", "frr", "class_far", "class_frr", "num_classes", "mode")
    summary = {key: data.get(key) for key in kept}
    return CalibrationRecord(
        path, threshold, target, rate, summary, size, hashlib.sha256(content).hexdigest()
    )
