"""The embedding file of SPEC: ``.npz`` with ``embeddings`` (N x D float) and ``labels`` (N int).

Optional arrays: ``ids`` (N), ``is_query`` and ``is_gallery`` (N bool). Files are read with
``allow_pickle=False``: an object array in a user's file is refused, never unpickled.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tcdml.errors import TcdmlInputError
from tcdml.io.atomic import atomic_write

REQUIRED_KEYS = ("embeddings", "labels")
OPTIONAL_KEYS = ("ids", "is_query", "is_gallery")


@dataclass(frozen=True)
class EmbeddingsFile:
    """The arrays of one embedding file, as stored (validation of values happens in ``tcdml.metrics``)."""

    embeddings: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    is_query: np.ndarray | None = None
    is_gallery: np.ndarray | None = None


def load_embeddings_file(path: str | os.PathLike) -> EmbeddingsFile:
    """Read an embedding ``.npz`` file; raise ``TcdmlInputError`` naming the file and the missing/bad key."""
    path = Path(path)
    if not path.is_file():
        raise TcdmlInputError(f"{path}: no such file (expected an .npz with 'embeddings' and 'labels')")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TcdmlInputError(f"{path}: cannot read as .npz ({reason})") from None
    for key in REQUIRED_KEYS:
        if key not in arrays:
            found = ", ".join(sorted(arrays)) or "nothing"
            raise TcdmlInputError(f"{path}: missing array '{key}' (found: {found})")
    n = len(arrays["labels"]) if arrays["labels"].ndim else -1
    for key in OPTIONAL_KEYS:
        if key in arrays and (arrays[key].ndim != 1 or len(arrays[key]) != n):
            raise TcdmlInputError(
                f"{path}: array '{key}' has shape {arrays[key].shape}, expected ({n},) like 'labels'"
            )
    for key in ("is_query", "is_gallery"):
        if key in arrays and arrays[key].dtype != np.bool_:
            raise TcdmlInputError(f"{path}: array '{key}' has dtype {arrays[key].dtype}, expected bool")
    return EmbeddingsFile(**{key: arrays.get(key) for key in REQUIRED_KEYS + OPTIONAL_KEYS})


def save_embeddings_file(
    path: str | os.PathLike,
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    ids: np.ndarray | None = None,
    is_query: np.ndarray | None = None,
    is_gallery: np.ndarray | None = None,
) -> Path:
    """Write an embedding file atomically (SPEC layout) and return its path."""
    arrays = {"embeddings": np.asarray(embeddings), "labels": np.asarray(labels)}
    for key, value in (("ids", ids), ("is_query", is_query), ("is_gallery", is_gallery)):
        if value is not None:
            arrays[key] = np.asarray(value)
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path
