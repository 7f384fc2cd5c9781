"""The embedding file of docs/spec.md: ``.npz`` with ``embeddings`` (N x D float) and ``labels`` (N int).

Optional arrays: ``ids`` (N), ``is_query`` and ``is_gallery`` (N bool). Files are read member by member
with ``allow_pickle=False``: an object array in a user's file is refused, never unpickled. Each array's
``.npy`` header is checked before its data is read: the bytes its shape claims must be in the file and fit
in the available memory (a forged header cannot make numpy allocate terabytes). Arrays other than these
five are not read.
"""

from __future__ import annotations

import io
import math
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tcdml.errors import TcdmlInputError, first_line
from tcdml.io.atomic import atomic_write

REQUIRED_KEYS = ("embeddings", "labels")
OPTIONAL_KEYS = ("ids", "is_query", "is_gallery")
#: numpy's ``.npy`` magic prefix: a lone array saved with ``np.save`` (not an ``.npz`` archive).
NPY_MAGIC = b"\x93NUMPY"
#: dtype kinds accepted per array (numpy's ``dtype.kind``).
_KINDS = {"embeddings": ("fiu", "numbers"), "labels": ("iu", "integer class labels")}


@dataclass(frozen=True)
class EmbeddingsFile:
    """The arrays of one embedding file, as stored (validation of values happens in ``tcdml.metrics``)."""

    embeddings: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    is_query: np.ndarray | None = None
    is_gallery: np.ndarray | None = None


def check_input_file(path: Path, what: str) -> None:
    """Refuse (one line naming ``path``) a missing path, a folder, a special file or an unreadable file."""
    if path.is_dir():
        raise TcdmlInputError(f"{path}: is a directory, expected {what}")
    if not path.exists():
        raise TcdmlInputError(f"{path}: no such file (expected {what})")
    if not path.is_file():
        raise TcdmlInputError(f"{path}: not a regular file (expected {what})")
    if not os.access(path, os.R_OK):
        raise TcdmlInputError(f"{path}: permission denied (cannot read {what})")


def load_embeddings_file(path: str | os.PathLike) -> EmbeddingsFile:
    """Read an embedding ``.npz`` file; raise ``TcdmlInputError`` naming the file and the missing/bad key."""
    path = Path(path)
    check_input_file(path, "an .npz with 'embeddings' and 'labels'")
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as handle:
                start = handle.read(len(NPY_MAGIC))
            if start == NPY_MAGIC:
                raise TcdmlInputError(
                    f"{path}: a single .npy array, not an .npz archive (write 'embeddings' and 'labels' "
                    "with numpy.savez or tcdml.io.save_embeddings_file)"
                )
            raise TcdmlInputError(f"{path}: cannot read as .npz (not a zip archive of .npy arrays)")
        with zipfile.ZipFile(path) as archive:
            members = {
                info.filename.removesuffix(".npy"): info
                for info in archive.infolist()
                if info.filename.endswith(".npy")
            }
            for key in REQUIRED_KEYS:
                if key not in members:
                    found = ", ".join(sorted(members)) or "nothing"
                    raise TcdmlInputError(f"{path}: missing array '{key}' (found: {found})")
            keys = [key for key in REQUIRED_KEYS + OPTIONAL_KEYS if key in members]
            headers = {key: _read_header(path, key, archive, members[key]) for key in keys}
            check_memory(path, {key: nbytes for key, (_, _, nbytes) in headers.items()})
            arrays = {key: _read_array(archive, members[key]) for key in keys}
    except TcdmlInputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        reason = first_line(exc)
        raise TcdmlInputError(f"{path}: cannot read as .npz ({reason})") from None
    check_arrays(path, arrays)
    return EmbeddingsFile(**{key: arrays.get(key) for key in REQUIRED_KEYS + OPTIONAL_KEYS})


def _read_header(
    path: Path, key: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo
) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data bytes) from a member's ``.npy`` header, checked against the member's size."""
    with archive.open(info) as stream:
        return read_npy_header(path, key, stream, info.file_size)


def read_npy_header(
    path: Path, key: str, stream: BinaryIO, size: int
) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data bytes) from the ``.npy`` header at the start of ``stream`` (``size`` bytes in all).

    Refuses (one line naming ``path`` and ``key``) an unknown format version, an object dtype (never
    unpickled) and a shape whose bytes (prod(shape) x itemsize) exceed what follows the header.
    """
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise TcdmlInputError(f"{path}: array '{key}' has unknown .npy format version {version}")
    header_bytes = stream.tell()
    if dtype.hasobject:
        raise TcdmlInputError(
            f"{path}: array '{key}' holds Python objects (dtype {dtype}); refused, tcdml never unpickles"
        )
    nbytes = math.prod(int(n) for n in shape) * dtype.itemsize
    stored = size - header_bytes
    if nbytes > stored:
        raise TcdmlInputError(
            f"{path}: array '{key}' claims shape {tuple(shape)} of {dtype} ({nbytes:,} bytes) but the file "
            f"holds {max(stored, 0):,} bytes of it (damaged or forged header)"
        )
    return tuple(shape), dtype, nbytes


def check_memory(path: str | os.PathLike, nbytes: dict[str, int]) -> None:
    """Refuse arrays that together need more than the memory available now."""
    import psutil

    total = sum(nbytes.values())
    available = psutil.virtual_memory().available
    if total > available:
        largest = max(nbytes, key=nbytes.__getitem__)
        raise TcdmlInputError(
            f"{path}: its arrays need {total:,} bytes ('{largest}': {nbytes[largest]:,}) but only "
            f"{available:,} bytes of memory are available"
        )


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """A member's array (no pickles); the rest of the member is read too, so zipfile checks its CRC."""
    with archive.open(info) as stream:
        array = np.lib.format.read_array(stream, allow_pickle=False)
        while stream.read(1 << 20):
            pass
    return array


def check_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Dtypes and shapes of the arrays (values are checked in ``tcdml.metrics``)."""
    for key, (kinds, expected) in _KINDS.items():
        dtype = arrays[key].dtype
        if dtype.kind not in kinds or dtype.fields is not None:
            raise TcdmlInputError(f"{path}: array '{key}' has dtype {dtype}, expected {expected}")
    if arrays["embeddings"].ndim != 2:
        raise TcdmlInputError(
            f"{path}: array 'embeddings' has shape {arrays['embeddings'].shape}, expected 2-D (N x D)"
        )
    if arrays["labels"].ndim != 1:
        raise TcdmlInputError(f"{path}: array 'labels' has shape {arrays['labels'].shape}, expected 1-D (N,)")
    n = len(arrays["embeddings"])
    for key in ("labels", *OPTIONAL_KEYS):
        if key in arrays and (arrays[key].ndim != 1 or len(arrays[key]) != n):
            raise TcdmlInputError(
                f"{path}: array '{key}' has shape {arrays[key].shape}, expected ({n},) like 'embeddings'"
            )
    for key in ("is_query", "is_gallery"):
        if key in arrays and arrays[key].dtype != np.bool_:
            raise TcdmlInputError(f"{path}: array '{key}' has dtype {arrays[key].dtype}, expected bool")


def save_embeddings_file(
    path: str | os.PathLike,
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    ids: np.ndarray | None = None,
    is_query: np.ndarray | None = None,
    is_gallery: np.ndarray | None = None,
) -> Path:
    """Write an embedding file atomically (docs/spec.md's layout) and return its path.

    A device or pipe (``-o /dev/null``, ``-o >(...)``) does not seek as a zip writer needs: the file is
    then built in memory and written through in one piece."""
    arrays = {"embeddings": np.asarray(embeddings), "labels": np.asarray(labels)}
    for key, value in (("ids", ids), ("is_query", is_query), ("is_gallery", is_gallery)):
        if value is not None:
            arrays[key] = np.asarray(value)
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        if stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            np.savez(handle, **arrays)
        else:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            handle.write(buffer.getvalue())
    return path
