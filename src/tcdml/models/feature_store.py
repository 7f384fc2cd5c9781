"""A frozen encoder's features on disk: computed once per data set, not once per process.

``FeatureStore(folder)`` keeps the rows ``CachedFeatures`` computes, so the next process that runs the same
frozen encoder on the same texts (a second ``tcdml train`` of a config, the runs of a study, ``tcdml embed``)
reads them instead of encoding.

**Key.** A row is stored under an encoder key and its text's sha256 (of the UTF-8 bytes). The encoder key
(``encoder_key``) is the sha256 of: every tensor of the encoder's state dict (names, dtypes, shapes and
bytes; hashed once per process and set of weights), the encoder's ``feature_settings()`` when it has one
(``SentenceEncoder``: ``max_length`` and a hash of its tokenizer files), its class, the device type and
autocast dtype the features are computed under, and the file format version.

**Files.** Each write is one new file ``features-<key[:16]>-<digest[:16]>.npz``, written atomically
(``tcdml.io.atomic_write``), holding ``key`` (the encoder key), ``text_sha256`` (N x 32 uint8),
``features`` (N x F float32) and ``digest`` (the sha256 of the other three and the shape). A key with more
than ``MERGE_FILES`` files has them merged into one when the folder is first read.

**Checks on read.** Files are read with ``numpy.load(allow_pickle=False)`` (no code from a file runs) and a
row is used only from a file whose zip CRCs, members, dtypes (uint8, float32), shapes (N x 32, N x F with F
the encoder's width), key (the one its name claims) and digest all check out. A file that fails is ignored
and removed, one ``tcdml: note:`` line on stderr names it and why, and its texts are encoded again.

**Size.** The folder's feature files are kept under ``max_bytes`` (``MAX_BYTES``, 2 GiB, by default, about
1.4 million MiniLM rows): after a write the least recently used files (reading rows from a file renews its
modification time) are removed until the rest fit. Only files named like the store's are ever removed.

**Folder.** ``data.feature_cache`` / ``--feature-cache DIR``; by default ``default_folder()``:
``$TCDML_CACHE/features``, else ``$XDG_CACHE_HOME/tcdml/features``, else ``~/.cache/tcdml/features``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tcdml.errors import TcdmlInputError, first_line
from tcdml.io.atomic import atomic_write

FORMAT = 1
#: The default bound on the folder's feature files, in bytes.
MAX_BYTES = 2 * 1024**3
#: A key with more files than this has them merged into one when the folder is first read.
MERGE_FILES = 16
MEMBERS = ("key", "text_sha256", "features", "digest")
NAME = re.compile(r"features-([0-9a-f]{16})-([0-9a-f]{16})\.npz")
#: A temporary a killed writer left (``atomic_write``'s ``.<name>.<random>.tmp``), removed after an hour.
TEMPORARY = re.compile(r"\.features-[0-9a-f]{16}-[0-9a-f]{16}\.npz\..+\.tmp")

#: Weight hashes by encoder: (the weights' storage and versions, sha256).
_WEIGHT_HASHES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, str]] = weakref.WeakKeyDictionary()


class DamagedFile(Exception):
    """A cache file that must not be used (the message says why)."""


def default_folder() -> Path:
    """``$TCDML_CACHE/features``, else ``$XDG_CACHE_HOME/tcdml/features``, else
    ``~/.cache/tcdml/features``."""
    root = os.environ.get("TCDML_CACHE")
    if root:
        return Path(root).expanduser() / "features"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tcdml" / "features"


def check_folder(folder: str | os.PathLike, what: str = "feature cache") -> Path:
    """``folder`` as a ``Path``; ``TcdmlInputError`` naming ``what`` when it (or the closest existing folder
    above it, where it would be made) is a file or is not writable."""
    folder = Path(folder).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise TcdmlInputError(f"{what}: {existing} is a file, expected a folder for the feature cache")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TcdmlInputError(f"{what}: {existing} is not writable (expected a writable folder)")
    return folder


def open_store(
    setting: bool | str | os.PathLike | None, what: str = "data.feature_cache", *, strict: bool = True
) -> FeatureStore | None:
    """The store a ``data.feature_cache`` value names: ``False`` / ``None``: none; ``True``: the default
    folder; a path: that folder. A folder that is a file or not writable is a ``TcdmlInputError`` naming
    ``what`` when the user chose it (``strict``, a path); else (the default folder, or a folder a checkpoint
    recorded on another machine) one note, and no store."""
    if setting is None or setting is False:
        return None
    try:
        return FeatureStore(default_folder() if setting is True else setting, what=what)
    except TcdmlInputError as exc:
        if strict and setting is not True:
            raise
        note(f"{exc}; features are not kept on disk (set {what} to a writable folder, or false)")
        return None


def note(text: str) -> None:
    """One ``tcdml: note:`` line on stderr."""
    print(f"tcdml: note: {text}", file=sys.stderr, flush=True)


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """(N, 32) uint8: the sha256 of each text's UTF-8 bytes."""
    digests = b"".join(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest() for text in texts)
    return np.frombuffer(digests, dtype=np.uint8).reshape(len(texts), 32)


def weights_sha256(encoder: nn.Module) -> str:
    """sha256 of every tensor of ``encoder.state_dict()`` (name, dtype, shape, bytes), computed once per
    set of weights (the parameters' and buffers' storage and version counters)."""
    tensors = encoder.state_dict()
    state = tuple((name, t.data_ptr(), t._version) for name, t in tensors.items())
    known = _WEIGHT_HASHES.get(encoder)
    if known is not None and known[0] == state:
        return known[1]
    digest = hashlib.sha256()
    for name, tensor in tensors.items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    _WEIGHT_HASHES[encoder] = (state, digest.hexdigest())
    return digest.hexdigest()


def encoder_key(encoder: nn.Module, device_type: str, autocast: torch.dtype | None) -> str:
    """The encoder key of the module docstring (64 hex digits)."""
    settings = getattr(encoder, "feature_settings", None)
    parts = {
        "format": FORMAT,
        "class": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
        "weights": weights_sha256(encoder),
        "settings": settings() if callable(settings) else None,
        "device": device_type,
        "autocast": None if autocast is None else str(autocast),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def file_digest(key: str, hashes: np.ndarray, features: np.ndarray) -> str:
    """sha256 over the key, the shape and the bytes of ``text_sha256`` and ``features``."""
    digest = hashlib.sha256(f"{key}|{features.shape[0]}x{features.shape[1]}\n".encode())
    digest.update(memoryview(np.ascontiguousarray(hashes)))
    digest.update(memoryview(np.ascontiguousarray(features)))
    return digest.hexdigest()


class FeatureStore:
    """Rows of frozen encoders' features in ``folder`` (module docstring): ``lookup`` and ``save``.

    The folder is checked when the store is made (``check_folder``) and created at the first write. A write
    that fails (disk full) prints one note and turns the store off for the rest of the process.
    """

    def __init__(self, folder: str | os.PathLike, *, max_bytes: int = MAX_BYTES, what: str = "feature cache"):
        self.folder = check_folder(folder, what)
        self.max_bytes = max_bytes
        self.enabled = True
        #: Per encoder key: {text sha256: (file, row)}, built from the folder at the key's first lookup.
        self._index: dict[str, dict[bytes, tuple[Path, int]]] = {}
        #: The contents of files read and checked in this process (each file is read once).
        self._checked: dict[Path, tuple[np.ndarray, torch.Tensor]] = {}

    def lookup(self, key: str, texts: Sequence[str], width: int | None = None) -> dict[str, torch.Tensor]:
        """``{text: (F,) float32 row}`` of the ``texts`` stored under ``key``, from checked files only
        (``width``: F, when known); the rest are missing from the result."""
        if not self.enabled or not texts:
            return {}
        problems: list[str] = []
        index = self._index_for(key, width, problems)
        wanted: dict[Path, list[tuple[str, int]]] = {}
        for text, digest in zip(texts, text_hashes(texts), strict=True):
            entry = index.get(digest.tobytes())
            if entry is not None:
                wanted.setdefault(entry[0], []).append((text, entry[1]))
        found: dict[str, torch.Tensor] = {}
        for path, items in wanted.items():
            try:
                if path not in self._checked:
                    hashes, features = read_file(path, key, width)
                    self._checked[path] = (hashes, torch.from_numpy(features))
                hashes, features = self._checked[path]
                rows = [row for _, row in items]
                if not np.array_equal(hashes[rows], text_hashes([text for text, _ in items])):
                    raise DamagedFile("its rows changed since it was indexed")
            except FileNotFoundError:  # removed by another process (merged or evicted): encode again
                self._forget(key, path)
                continue
            except DamagedFile as exc:
                problems.append(f"{path.name}: {exc}")
                self._remove(key, path)
                continue
            found.update((text, features[row]) for text, row in items)  # views of the file's rows
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used
        self._report(problems)
        return found

    def save(self, key: str, texts: Sequence[str], features: torch.Tensor) -> Path | None:
        """Write the rows of ``texts`` under ``key`` as one new file; its path (None when off or nothing to
        write: empty, or not float32)."""
        if not self.enabled or not texts or features.dtype != torch.float32:
            return None
        hashes = text_hashes(texts)
        rows = features.detach().cpu().contiguous().numpy()
        digest = file_digest(key, hashes, rows)
        path = self.folder / f"features-{key[:16]}-{digest[:16]}.npz"
        try:
            self._write(path, key, hashes, rows, digest)
        except OSError as exc:
            self.enabled = False
            note(f"feature cache: cannot write {path} ({first_line(exc)}); features are not kept on disk")
            return None
        index = self._index.setdefault(key, {})
        for row, text_digest in enumerate(hashes):
            index[text_digest.tobytes()] = (path, row)
        self.evict()
        return path

    def evict(self) -> list[Path]:
        """Remove the least recently used feature files until the rest fit ``max_bytes`` (and temporaries
        older than an hour); the removed files."""
        files, removed = [], []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.folder) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    info = entry.stat(follow_symlinks=False)
                    if NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                        files.append((info.st_mtime, info.st_size, Path(entry.path)))
                    elif TEMPORARY.fullmatch(entry.name) and info.st_mtime < time.time() - 3600:
                        os.unlink(entry.path)
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed.append(path)
            total -= size
            for key in self._index:
                self._forget(key, path)
        return removed

    def _index_for(self, key: str, width: int | None, problems: list[str]) -> dict[bytes, tuple[Path, int]]:
        """``{text sha256: (file, row)}`` of ``key``'s files (their hashes only; rows are checked when
        read)."""
        if key in self._index:
            return self._index[key]
        index: dict[bytes, tuple[Path, int]] = {}
        paths = sorted(self.folder.glob(f"features-{key[:16]}-*.npz")) if self.folder.is_dir() else []
        paths = [path for path in paths if NAME.fullmatch(path.name)]
        if len(paths) > MERGE_FILES:
            paths = self._merge(key, paths, width, problems)
        for path, hashes in self._readable(key, paths, problems, lambda path: read_hashes(path, key)):
            for row, digest in enumerate(hashes):
                index[digest.tobytes()] = (path, row)
        self._index[key] = index
        return index

    def _readable(
        self, key: str, paths: list[Path], problems: list[str], read: Callable[[Path], Any]
    ) -> Iterator[tuple[Path, Any]]:
        """``(path, read(path))`` of each of ``key``'s files still there; a damaged one is removed and
        named in ``problems`` (never trusted)."""
        for path in paths:
            try:
                yield path, read(path)
            except FileNotFoundError:
                continue
            except DamagedFile as exc:
                problems.append(f"{path.name}: {exc}")
                self._remove(key, path)

    def _merge(self, key: str, paths: list[Path], width: int | None, problems: list[str]) -> list[Path]:
        """Merge ``paths`` (all of ``key``) into one file; the files left to index."""
        hashes, features, merged = [], [], []
        for path, part in self._readable(key, paths, problems, lambda path: read_file(path, key, width)):
            hashes.append(part[0])
            features.append(part[1])
            merged.append(path)
        if not merged:
            return []
        all_hashes, first = np.unique(np.concatenate(hashes), axis=0, return_index=True)
        all_features = np.concatenate(features)[first]
        digest = file_digest(key, all_hashes, all_features)
        target = self.folder / f"features-{key[:16]}-{digest[:16]}.npz"
        try:
            self._write(target, key, all_hashes, all_features, digest)
        except OSError:
            return merged  # read-only now: index the parts as they are
        self._checked[target] = (all_hashes, torch.from_numpy(all_features))
        for path in merged:
            if path != target:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return [target]

    def _write(self, path: Path, key: str, hashes: np.ndarray, features: np.ndarray, digest: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as handle:
            np.savez(
                handle, key=np.array(key), text_sha256=hashes, features=features, digest=np.array(digest)
            )

    def _remove(self, key: str, path: Path) -> None:
        """Forget a damaged file and delete it (it is named like the store's own files)."""
        self._forget(key, path)
        with contextlib.suppress(OSError):
            path.unlink()

    def _forget(self, key: str, path: Path) -> None:
        self._checked.pop(path, None)
        index = self._index.get(key)
        if index:
            for digest in [digest for digest, (where, _) in index.items() if where == path]:
                del index[digest]

    def _report(self, problems: list[str]) -> None:
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            note(
                f"feature cache {self.folder}: ignored and removed {len(problems)} damaged file(s): "
                f"{problems[0]}{more}; their texts are encoded again"
            )


def _members(path: Path, key: str) -> np.lib.npyio.NpzFile:
    """The open npz of ``path`` after checking its members and its key (``DamagedFile`` otherwise)."""
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # not a zip, truncated, ...
        raise DamagedFile(f"unreadable ({first_line(exc)})") from None
    if sorted(data.files) != sorted(MEMBERS):
        data.close()
        raise DamagedFile(f"members {sorted(data.files)}, expected {sorted(MEMBERS)}")
    try:
        stored = data["key"]
    except Exception as exc:
        data.close()
        raise DamagedFile(f"unreadable key ({first_line(exc)})") from None
    if stored.shape != () or stored.dtype.kind != "U" or str(stored) != key:
        data.close()
        raise DamagedFile("written for another encoder key")
    return data


def read_hashes(path: Path, key: str) -> np.ndarray:
    """The (N, 32) uint8 ``text_sha256`` of a file of ``key`` (``DamagedFile`` when it does not check out)."""
    with _members(path, key) as data:
        try:
            hashes = data["text_sha256"]
        except Exception as exc:  # a CRC error, a pickled (object) array
            raise DamagedFile(f"unreadable text_sha256 ({first_line(exc)})") from None
    if hashes.dtype != np.uint8 or hashes.ndim != 2 or hashes.shape[1] != 32:
        raise DamagedFile(f"text_sha256 is {hashes.dtype} {hashes.shape}, expected uint8 (N, 32)")
    return hashes


def read_file(path: Path, key: str, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(text_sha256, features)`` of a file of ``key``, every check of the module docstring passed."""
    hashes = read_hashes(path, key)
    with _members(path, key) as data:
        try:
            features, digest = data["features"], data["digest"]
        except Exception as exc:
            raise DamagedFile(f"unreadable features ({first_line(exc)})") from None
    expected = f"float32 ({len(hashes)}, {width if width is not None else 'F'})"
    if features.dtype != np.float32 or features.ndim != 2 or features.shape[0] != len(hashes):
        raise DamagedFile(f"features are {features.dtype} {features.shape}, expected {expected}")
    if width is not None and features.shape[1] != width:
        raise DamagedFile(f"features are {features.dtype} {features.shape}, expected {expected}")
    if digest.shape != () or digest.dtype.kind != "U" or str(digest) != file_digest(key, hashes, features):
        raise DamagedFile("its digest does not match its rows")
    if not path.name.endswith(f"-{str(digest)[:16]}.npz"):
        raise DamagedFile("its name does not match its digest")
    return hashes, features
