"""Load a torch file (checkpoint, weights) safely: integrity first, then tensors and plain data only.

``torch.load(weights_only=True)`` runs no code from the file but does not check the zip's CRCs, so a damaged
file can load as silently different weights. ``load_torch_file`` reads every member of the zip and checks its
CRC first, then loads with ``weights_only=True``; every failure is one ``TcdmlInputError`` line naming the
file, and never passes on torch's advice to load with ``weights_only=False``.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError, first_line

_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def check_torch_zip(path: Path, what: str = "checkpoint") -> None:
    """Refuse ``path`` unless it is a zip (torch's format) whose every member matches its CRC."""
    try:
        if not zipfile.is_zipfile(path):
            raise TcdmlInputError(f"{path}: cannot read as {_a(what)} (not a torch zip file)")
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except TcdmlInputError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, ValueError, NotImplementedError) as exc:
        reason = first_line(exc)
        raise TcdmlInputError(f"{path}: damaged {what} ({reason})") from None
    if damaged is not None:
        raise TcdmlInputError(f"{path}: damaged {what} (member '{damaged}' fails its CRC check)")


def load_torch_file(
    path: str | os.PathLike, what: str = "checkpoint", *, map_location: Any = "cpu", require_zip: bool = True
) -> Any:
    """``torch.load(path, weights_only=True)`` after ``check_torch_zip``; one-line errors naming the file.

    ``require_zip=False`` also accepts torch's legacy (non-zip) format, which has no CRCs to check.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise TcdmlInputError(f"{path}: is a directory, expected {_a(_file(what))}")
    if not path.is_file():
        raise TcdmlInputError(f"{path}: no such {_file(what)}")
    if require_zip or zipfile.is_zipfile(path):
        check_torch_zip(path, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        raise TcdmlInputError(f"{path}: cannot read as {_a(what)} ({_reason(exc)})") from None


def _file(what: str) -> str:
    """``what`` ending in "file" once: "checkpoint file", "weights file" (not "weights file file")."""
    return what if what.endswith("file") else f"{what} file"


def _a(what: str) -> str:
    """``what`` with its article: "a checkpoint", "an adapter weights"."""
    return f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"


def _reason(exc: BaseException) -> str:
    """What went wrong, in one line, without torch's advice to load with ``weights_only=False``."""
    text = str(exc)
    found = _UNSUPPORTED_GLOBAL.search(text)
    if found:
        return (
            f"it holds the Python object {found.group(1)}; only tensors and plain containers are loaded, "
            "no code from the file is run"
        )
    if "weights_only" in text or "Weights only load failed" in text:
        return "it holds Python objects other than tensors and plain containers, which tcdml does not load"
    return first_line(exc)
