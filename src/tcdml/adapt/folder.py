"""The adapter folder: ``adapter.json`` + ``adapter.pt``, written all at once and read by ``load_adapter``.

``adapter.json`` holds ``format`` (``"tcdml-adapter"``), ``format_version`` (1), the head (``kind``:
``residual`` | ``linear``, ``input_size``, ``hidden`` (null for linear), ``embedding_size``, ``activation``,
``normalize_input``), ``tcdml_version`` and ``training`` (the summary of ``tcdml adapt train``: chosen
epoch, validation metrics of the input and of every epoch, loss and TCM settings, seed, validation rule).
``adapter.pt`` is the head's ``state_dict`` (``torch.save``), loaded back with ``weights_only``.

Writing: the folder is staged as a hidden temporary sibling and renamed onto its name when complete, so a
reader (or a crash) never sees half an adapter. An existing folder is replaced only with ``force`` and only
when it is an adapter folder (it holds ``adapter.json``) or empty: ``--force`` never deletes other data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcdml.errors import TcdmlInputError
from tcdml.io.json_file import read_json_object

if TYPE_CHECKING:
    from torch import nn

ADAPTER_JSON = "adapter.json"
ADAPTER_PT = "adapter.pt"
FORMAT = "tcdml-adapter"
FORMAT_VERSION = 1
#: Keys every ``adapter.json`` has (``hidden`` is null for a linear head).
REQUIRED_KEYS = ("format", "format_version", "kind", "input_size", "hidden", "embedding_size")


def check_output_dir(path: str | os.PathLike, force: bool, option: str = "--output") -> Path:
    """Refuse, before any work, an output folder that cannot be written: an existing one without ``force``,
    a file, a link, a non-adapter folder with files, a missing or read-only parent."""
    from tcdml.io.outputs import check_writable_folder

    path = Path(path)
    if not os.fspath(path) or os.fspath(path).strip() in ("", "."):
        raise TcdmlInputError(f"{option} {os.fspath(path)!r}: expected a new folder name")
    if path.is_symlink():
        raise TcdmlInputError(f"{option} {path}: is a symbolic link; give the folder itself")
    if path.exists():
        if not path.is_dir():
            raise TcdmlInputError(f"{option} {path}: is a file, expected a folder for the adapter")
        if not force:
            raise TcdmlInputError(f"{option} {path}: exists (pass --force to replace it)")
        if any(path.iterdir()) and not (path / ADAPTER_JSON).is_file():
            raise TcdmlInputError(
                f"{option} {path}: exists and is not an adapter folder (no {ADAPTER_JSON}); --force only "
                "replaces adapter folders"
            )
    check_writable_folder(option, path, Path(os.path.realpath(path)).parent)
    return path


def write_adapter_dir(path: str | os.PathLike, head: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``adapter.json`` (``meta`` plus the format keys) and ``adapter.pt`` into the folder ``path`` at
    once (checked by ``check_output_dir`` first): stage a temporary sibling, then rename it onto ``path``."""
    import torch

    from tcdml import __version__
    from tcdml.io.atomic import fsync_folder
    from tcdml.io.json_file import write_json
    from tcdml.io.outputs import signals_held

    path = Path(path)
    parent = Path(os.path.realpath(path)).parent
    staged = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    old: Path | None = None
    try:
        write_json(
            staged / ADAPTER_JSON,
            {"format": FORMAT, "format_version": FORMAT_VERSION, "tcdml_version": __version__, **meta},
        )
        state = {key: value.detach().cpu().clone() for key, value in head.state_dict().items()}
        with open(staged / ADAPTER_PT, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staged, 0o777 & ~umask)
        with signals_held():  # Ctrl-C lands after the swap, never between its two renames
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
                os.rename(path, old / "previous")
            try:
                os.rename(staged, path)
            except BaseException:
                if old is not None:
                    os.rename(old / "previous", path)
                raise
            fsync_folder(parent)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    finally:
        if old is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(old)
    return path


def read_adapter_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """``adapter.json`` of an adapter folder, its keys and sizes checked (one line naming the file)."""
    from tcdml.adapt.head import KINDS

    path = Path(folder) / ADAPTER_JSON
    if not Path(folder).is_dir():
        raise TcdmlInputError(f"{folder}: no such adapter folder (expected {ADAPTER_JSON} and {ADAPTER_PT})")
    meta = read_json_object(path, "no such file (not a folder written by tcdml adapt train)")
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise TcdmlInputError(f"{path}: missing key '{key}'")
    if meta["format"] != FORMAT or meta["format_version"] != FORMAT_VERSION:
        raise TcdmlInputError(
            f"{path}: format {meta['format']!r} version {meta['format_version']!r}, expected {FORMAT!r} "
            f"version {FORMAT_VERSION}"
        )
    if meta["kind"] not in KINDS:
        raise TcdmlInputError(f"{path}: kind={meta['kind']!r}, expected one of {', '.join(KINDS)}")
    for key in ["input_size", "embedding_size"] + (["hidden"] if meta["kind"] == "residual" else []):
        value = meta[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TcdmlInputError(f"{path}: {key}={value!r}, expected a positive integer")
    return meta


def load_adapter(folder: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The adapter of a folder written by ``tcdml adapt train``: ``(module, adapter.json's content)``.

    The module is in eval mode on the CPU and maps (N, ``input_size``) float32 embeddings to
    (N, ``embedding_size``) L2-normalised rows. Every problem (missing file, bad key, weights of another
    shape, a damaged ``adapter.pt``) is one ``TcdmlInputError`` line naming the file.
    """
    from tcdml.adapt.head import build_head
    from tcdml.io.torch_file import load_torch_file

    meta = read_adapter_meta(folder)
    weights = Path(folder) / ADAPTER_PT
    try:
        head = build_head(meta["kind"], meta["input_size"], meta["embedding_size"], meta["hidden"])
    except TcdmlInputError as exc:
        raise TcdmlInputError(f"{Path(folder) / ADAPTER_JSON}: {exc}") from None
    state = load_torch_file(weights, "adapter weights file")
    if not isinstance(state, dict):
        raise TcdmlInputError(f"{weights}: expected a state_dict, got {type(state).__name__}")
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:300]
        raise TcdmlInputError(f"{weights}: weights do not fit {ADAPTER_JSON} ({reason})") from None
    return head.eval(), meta
