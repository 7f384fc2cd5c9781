"""The calibration JSON ``tcdml calibrate -o`` writes, read and checked for export.

Required: ``threshold`` (a number in [-1, 1]), ``target`` (``"far"`` or ``"frr"``) and ``target_rate`` (in
(0, 1)). Recorded when present: the achieved ``far`` / ``frr`` (null where undefined), the per-class spreads
``class_far`` / ``class_frr``, ``num_classes``, ``mode``, and ``embedding_size``, which must then equal the
exported model's (``tcdml calibrate -o`` writes it; a file written before it did is accepted unchecked).
A bad value is one ``ParameterError`` line naming the file and the key
(``tcdml.deploy.manifest.naming_file``).

A file written by ``tcdml calibrate --asnorm COHORT`` holds a threshold on AS-norm scores (any finite number)
and ``scores`` (``tcdml.posthoc.calibrate``: kind, ``top_k``, the cohort file's name, rows and sha256). It is
read only together with that cohort (``asnorm=``): the same sha256, as wide as ``embedding_size``; a
threshold on cosines is refused with a cohort, and one on scores without it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcdml.checks import check_choice, check_int, check_real, is_int, is_real, require
from tcdml.deploy.asnorm import KIND
from tcdml.deploy.manifest import naming_file
from tcdml.errors import TcdmlInputError
from tcdml.io.file_bytes import read_user_file
from tcdml.io.json_file import parse_json_object
from tcdml.posthoc.calibrate import Cohort, read_cohort_file

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
    scores: dict[str, Any] | None = None
    cohort: Cohort | None = None

    def check_embedding_size(self, size: int, model: str) -> None:
        """Refuse a model whose embeddings are not as wide as the calibration file records (if it does), or
        as its AS-norm cohort."""
        if self.embedding_size is not None and self.embedding_size != size:
            raise TcdmlInputError(
                f"{self.path}: embedding_size={self.embedding_size}, but {model} embeds into {size} "
                "dimensions (calibrated on another model's embeddings?)"
            )
        width = None if self.cohort is None else self.cohort.model.embedding_size
        if width is not None and width != size:
            raise TcdmlInputError(
                f"{self.cohort.path}: {width}-d embeddings, but {model} embeds into {size} dimensions "
                "(a cohort of another model?)"
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

    def manifest_scores(self, cohort_name: str) -> dict[str, Any] | None:
        """The manifest's ``scores`` section (None for a threshold on cosines)."""
        if self.scores is None or self.cohort is None:
            return None
        return {
            "kind": self.scores["kind"],
            "top_k": self.scores["top_k"],
            "cohort": cohort_name,
            "cohort_size": len(self.cohort.model.cohort),
            "cohort_sha256": self.cohort.sha256,
        }


def read_calibration(path: str | os.PathLike, asnorm: str | os.PathLike | None = None) -> CalibrationRecord:
    """Read and check a calibration JSON; a problem is one ``TcdmlInputError`` line naming file and key.

    The file is read once (a pipe works): the recorded sha256 is that of the bytes parsed. ``asnorm``: the
    cohort embedding file a ``tcdml calibrate --asnorm`` threshold was calibrated with (module docstring).
    """
    path = Path(path)
    missing = "no such calibration file (expected the JSON tcdml calibrate -o writes)"
    content = read_user_file(path, CALIBRATION_LIMIT, "calibration file", missing)
    data = parse_json_object(content, path)
    if "threshold" not in data:
        raise TcdmlInputError(f"{path}: no 'threshold' key (expected the JSON tcdml calibrate -o writes)")
    scores = data.get("scores")
    cosine = scores is None  # else a threshold on normalised scores: any finite number
    with naming_file(path):
        require(scores is None or isinstance(scores, dict), "scores", scores, "an object or null")
        low, high = (-1.0, 1.0) if cosine else (None, None)
        threshold = check_real("threshold", data["threshold"], low=low, high=high)
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
    cohort = _matching_cohort(path, scores, size, asnorm)
    digest = hashlib.sha256(content).hexdigest()
    return CalibrationRecord(path, threshold, target, rate, summary, size, digest, scores, cohort)


def _matching_cohort(
    path: Path, scores: dict[str, Any] | None, size: int | None, asnorm: str | os.PathLike | None
) -> Cohort | None:
    """The cohort file ``asnorm`` when the calibration file's ``scores`` name it (same sha256, width)."""
    if scores is None:
        if asnorm is not None:
            raise TcdmlInputError(
                f"{path}: a threshold on cosine similarities, but an AS-norm cohort ({asnorm}) was given: "
                "calibrate with tcdml calibrate --asnorm COHORT first"
            )
        return None
    with naming_file(path):
        check_choice("scores.kind", scores.get("kind"), (KIND,))
        check_int("scores.top_k", scores.get("top_k"), low=2)
        digest = scores.get("cohort_sha256")
        ok = isinstance(digest, str) and len(digest) == 64
        require(ok, "scores.cohort_sha256", digest, "the cohort file's sha256 (64 hex digits)")
    named = scores.get("cohort_file")
    if asnorm is None:
        raise TcdmlInputError(
            f"{path}: a threshold on AS-norm scores (cohort {named!r}): give that cohort file (--asnorm)"
        )
    cohort = read_cohort_file(asnorm, scores["top_k"])  # top_k within the cohort
    if cohort.sha256 != digest:
        raise TcdmlInputError(
            f"{cohort.path}: sha256 {cohort.sha256[:12]}... differs from the cohort {path} was calibrated "
            f"with ({named!r}, {digest[:12]}...)"
        )
    width = cohort.model.embedding_size
    if size is not None and width != size:
        raise TcdmlInputError(
            f"{cohort.path}: {width}-d embeddings, but {path} records embedding_size={size}"
        )
    return cohort
