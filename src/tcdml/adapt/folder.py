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

import io
import math
import os
from collections.abc import Sequence
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
#: Largest ``adapter.json`` read (one is a few kB).
ADAPTER_JSON_LIMIT = 1 << 20


def check_output_dir(
    path: str | os.PathLike, force: bool, inputs: Sequence[str | os.PathLike] = (), option: str = "--output"
) -> Path:
    """Refuse, before any work, an output folder that cannot be written (``tcdml.io.output_folder``): an
    existing one without ``force``, a file or link, a folder of other files, one holding an input (``inputs``:
    the embedding and labels files), a missing or read-only parent."""
    from tcdml.io.output_folder import check_new_folder

    return check_new_folder(
        path, force=force, inputs=inputs, marker=ADAPTER_JSON, what="an adapter folder", option=option
    )


def write_adapter_dir(path: str | os.PathLike, head: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``adapter.json`` (``meta`` plus the format keys) and ``adapter.pt`` into the folder ``path`` at
    once (checked by ``check_output_dir`` first): staged in a temporary sibling, renamed onto ``path``."""
    import torch

    from tcdml import __version__
    from tcdml.io.file_bytes import write_new_file
    from tcdml.io.json_file import write_json
    from tcdml.io.output_folder import staged_folder

    with staged_folder(path) as staged:
        write_json(
            staged / ADAPTER_JSON,
            {"format": FORMAT, "format_version": FORMAT_VERSION, "tcdml_version": __version__, **meta},
        )
        state = {key: value.detach().cpu().clone() for key, value in head.state_dict().items()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_new_file(staged / ADAPTER_PT, buffer.getvalue())  # a full disk: an OSError naming the file
    return Path(path)


def read_adapter_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """``adapter.json`` of an adapter folder, its keys and sizes checked (one line naming the file)."""
    from tcdml.adapt.settings import KINDS, MAX_HIDDEN, MAX_WIDTH

    path = Path(folder) / ADAPTER_JSON
    if not Path(folder).is_dir():
        raise TcdmlInputError(f"{folder}: no such adapter folder (expected {ADAPTER_JSON} and {ADAPTER_PT})")
    meta = read_json_object(
        path, "no such file (not a folder written by tcdml adapt train)", ADAPTER_JSON_LIMIT
    )
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
        value, high = meta[key], MAX_HIDDEN if key == "hidden" else MAX_WIDTH
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
            raise TcdmlInputError(f"{path}: {key}={value!r}, expected an integer in [1, {high}]")
    if meta["kind"] == "residual" and meta["embedding_size"] != meta["input_size"]:
        raise TcdmlInputError(
            f"{path}: embedding_size={meta['embedding_size']}, but a residual adapter keeps its "
            f"input_size={meta['input_size']}"
        )
    return meta


def weight_shapes(meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The head's ``state_dict`` shapes that ``adapter.json`` declares (``tcdml.adapt.head``)."""
    width, size, hidden = meta["input_size"], meta["embedding_size"], meta["hidden"]
    if meta["kind"] == "residual":
        return {"up.weight": (hidden, width), "up.bias": (hidden,), "down.weight": (width, hidden),
                "down.bias": (width,)}  # fmt: skip
    return {"proj.weight": (size, width), "proj.bias": (size,)}


#: Bytes of a weights file's entries other than tensor data (pickle, version, ids): a few hundred.
_OVERHEAD_LIMIT = 1 << 20


def check_weights_entries(folder: Path, meta: dict[str, Any]) -> None:
    """Refuse ``adapter.pt`` unless its zip entries declare the float32 tensors ``adapter.json`` does.

    Read from the zip's directory only (nothing is inflated): one data entry per tensor, their declared
    sizes adding up to 4 x the declared parameters, the other entries small. So a tampered width or a zip
    bomb is refused before any head is built or any entry read.
    """
    import zipfile

    weights = folder / ADAPTER_PT
    shapes = weight_shapes(meta)
    expected = 4 * sum(math.prod(shape) for shape in shapes.values())
    try:
        with zipfile.ZipFile(weights) as archive:
            entries = archive.infolist()
    except FileNotFoundError:
        raise TcdmlInputError(f"{weights}: no such adapter weights file") from None
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TcdmlInputError(
            f"{weights}: cannot read as adapter weights (not a torch zip: {reason})"
        ) from None
    data = [item for item in entries if "/data/" in item.filename and "/.data/" not in item.filename]
    held = sum(entry.file_size for entry in data)
    if len(data) != len(shapes) or held != expected:
        raise TcdmlInputError(
            f"{weights}: weights do not fit {folder / ADAPTER_JSON} (it declares a {meta['kind']} head of "
            f"{len(shapes)} float32 tensors, {expected:,} bytes; the file holds {len(data)}, {held:,} bytes)"
        )
    for entry in entries:
        if entry not in data and entry.file_size > _OVERHEAD_LIMIT:
            raise TcdmlInputError(
                f"{weights}: entry {entry.filename!r} declares {entry.file_size:,} bytes, more than an "
                "adapter weights file holds besides its tensors"
            )


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
    check_weights_entries(Path(folder), meta)  # sizes from the zip's directory, before anything is built
    state = load_torch_file(weights, "adapter weights")
    head = build_head(meta["kind"], meta["input_size"], meta["embedding_size"], meta["hidden"])
    if not isinstance(state, dict):
        raise TcdmlInputError(f"{weights}: expected a state_dict, got {type(state).__name__}")
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:300]
        raise TcdmlInputError(f"{weights}: weights do not fit {ADAPTER_JSON} ({reason})") from None
    return head.eval(), meta
