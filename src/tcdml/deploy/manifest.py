"""The export folder's manifest ``tcdml-export.json``: written by ``tcdml export``, read by ``load_matcher``.

Fields (docs/deploy.md has an example):

- ``format`` (``"tcdml-export"``) and ``format_version`` (``1``);
- ``threshold``: the calibrated threshold, a number in [-1, 1] (a cosine) or, with ``scores``, any finite
  number (a normalised score); a pair is accepted when its similarity (score) is at or above it;
- ``scores`` (optional; absent or null: the cosine itself): the score model the threshold is on, by ``kind``:
  ``"asnorm"`` (``tcdml.deploy.asnorm``: ``top_k``, ``cohort`` the cohort file, ``cohort_size`` its rows,
  ``cohort_sha256`` the embedding file it was made from);
- ``calibration``: the target it was calibrated for (``target`` ``"far"`` or ``"frr"`` and ``target_far`` or
  ``target_frr``), the achieved overall ``far`` / ``frr``, the per-class spreads ``class_far`` /
  ``class_frr`` (min, median, p90, max), ``num_classes``, ``mode`` and the calibration file's name and
  sha256;
- ``embedding_size``: D of the L2-normalised float32 embeddings the model produces;
- ``input``: the input contract, by ``kind``: ``"image"`` (``image_size``, ``resize_size``, ``mean``,
  ``std``, ``channels`` ``"RGB"``, ``layout`` ``"NCHW"``), ``"text"`` (``tokenizer`` file, ``max_length``)
  or ``"embedding"`` (``input_size``: an adapter head's input width);
- ``model``: the model file of each format (``tcdml.deploy.formats``: ``onnx``: ``"model.onnx"`` or null,
  ``torchscript``: ``"model.pt"`` or null; at least one), the model's input and output names, ``opset``
  (ONNX), the export check (``max_abs_diff``: exported vs original on ``check_samples`` inputs) and
  ``not_exported`` (what the files leave out, in words; empty when nothing);
- ``source``: what was exported (``kind`` checkpoint or adapter, file name, sha256, backbone);
- ``versions``: tcdml, torch, onnx (and onnxruntime) that wrote the folder;
- ``files``: every other file of the folder, ``{name: {"sha256": ..., "bytes": ...}}``; ``read_manifest``
  checks them all.

Every malformed value is a one-line ``ParameterError`` naming the file and the key (``naming_file``).
This module needs only the standard library and numpy (``tcdml.deploy`` runs without torch).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcdml.checks import check_int, check_real, is_int, require
from tcdml.deploy.asnorm import KIND as ASNORM_KIND
from tcdml.deploy.formats import FORMATS
from tcdml.deploy.kinds import KINDS, MAX_WIDTH
from tcdml.errors import ParameterError, TcdmlInputError, show
from tcdml.io.file_bytes import open_folder, open_member, read_descriptor
from tcdml.io.json_file import parse_json_object
from tcdml.io.output_folder import aside_note

MANIFEST_NAME = "tcdml-export.json"
FORMAT = "tcdml-export"
FORMAT_VERSION = 1
#: Largest manifest read (one is a few kB).
MANIFEST_LIMIT = 1 << 20


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A checked ``tcdml-export.json`` (fields: module docstring); ``folder`` is where it lies."""

    folder: Path
    threshold: float
    embedding_size: int
    input: dict[str, Any]
    model: dict[str, Any]
    calibration: dict[str, Any]
    files: dict[str, dict[str, Any]]
    raw: dict[str, Any]
    scores: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        """The input kind: ``"image"``, ``"text"`` or ``"embedding"``."""
        return str(self.input["kind"])

    def to_dict(self) -> dict[str, Any]:
        """The manifest as read (a copy of the JSON object)."""
        return json.loads(json.dumps(self.raw))


@contextlib.contextmanager
def naming_file(path: Path, what: str = "") -> Iterator[None]:
    """Re-raise a ``ParameterError`` of the block as the one line ``{path}: {what}{name}={value}, expected
    {expected}`` (same name, value and expected): how a reader of a JSON file names the file and the key."""
    try:
        yield
    except ParameterError as exc:
        message = f"{path}: {what}{exc.name}={show(exc.value)}, expected {exc.expected}"
        raise ParameterError(message, exc.name, exc.value, exc.expected) from None


def parse_manifest(data: Any, path: Path) -> Manifest:
    """Check the structure of a manifest object (no file is read); ``path`` names it in errors."""
    with naming_file(path, "malformed manifest: "):
        return _parse_manifest(data, path)


def _parse_manifest(data: Any, path: Path) -> Manifest:
    require(isinstance(data, dict), "(top level)", type(data).__name__, "a JSON object")
    require(data.get("format") == FORMAT, "format", data.get("format"), repr(FORMAT))
    version = data.get("format_version")
    require(is_int(version) and version == FORMAT_VERSION, "format_version", version, f"{FORMAT_VERSION}")
    scores = data.get("scores")
    cosine = scores is None  # else the threshold is on normalised scores: any finite number
    threshold = check_real(
        "threshold", data.get("threshold"), low=-1.0 if cosine else None, high=1.0 if cosine else None
    )
    size = check_int("embedding_size", data.get("embedding_size"), low=1, high=MAX_WIDTH)
    contract = data.get("input")
    require(isinstance(contract, dict), "input", contract, "an object")
    kind = contract.get("kind")
    require(isinstance(kind, str) and kind in KINDS, "input.kind", kind, " or ".join(map(repr, KINDS)))
    try:
        KINDS[kind].check_contract(contract)
    except ParameterError as exc:  # the kind names the contract's key: the manifest names input.<key>
        raise exc.renamed(f"input.{exc.name}") from None
    model = data.get("model")
    require(isinstance(model, dict), "model", model, "an object")
    for name in FORMATS:
        require(
            isinstance(model.get(name), str | None), f"model.{name}", model.get(name), "a file name or null"
        )
    held = [model[name] for name in FORMATS if model.get(name)]
    written = {name: model.get(name) for name in FORMATS}
    keys = " or ".join(f"model.{name}" for name in FORMATS)
    require(bool(held), "model", written, f"a model file name in {keys}")
    files = data.get("files")
    require(isinstance(files, dict) and bool(files), "files", files, "an object of file hashes")
    for name, entry in files.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
        require(ok, f"files.{name}", entry, 'an object with a "sha256" hex digest')
        count = entry.get("bytes")
        require(
            count is None or (is_int(count) and count >= 0), f"files.{name}.bytes", count, "a byte count >= 0"
        )
        require(_safe_name(name), "files", name, "a plain file name inside the folder")
    tokenizer = contract.get("tokenizer")
    cohort = _check_scores(scores) if scores is not None else None
    for name in (*held, tokenizer, cohort):
        ok = name is None or (isinstance(name, str) and name in files)
        require(ok, "files", sorted(files), f"an entry for {name!r}")
    calibration = data.get("calibration")
    require(isinstance(calibration, dict), "calibration", calibration, "an object")
    return Manifest(
        folder=path.parent,
        threshold=threshold,
        embedding_size=size,
        input=dict(contract),
        model=dict(model),
        calibration=dict(calibration),
        files={name: dict(entry) for name, entry in files.items()},
        raw=data,
        scores=None if scores is None else dict(scores),
    )


def _check_scores(scores: Any) -> str:
    """Check the ``scores`` section; the name of the file it needs."""
    require(isinstance(scores, dict), "scores", scores, "an object or null")
    require(scores.get("kind") == ASNORM_KIND, "scores.kind", scores.get("kind"), repr(ASNORM_KIND))
    size = check_int("scores.cohort_size", scores.get("cohort_size"), low=2)
    check_int("scores.top_k", scores.get("top_k"), low=2, high=size)
    name = scores.get("cohort")
    require(isinstance(name, str) and _safe_name(name), "scores.cohort", name, "a file name")
    return name


def _safe_name(name: str) -> bool:
    return (
        bool(name) and name not in {".", ".."} and "/" not in name and "\\" not in name and "\0" not in name
    )


def check_pin(manifest_sha256: str) -> str:
    """The pin as 64 lowercase hex digits (any case, surrounding whitespace ignored), else
    ``TcdmlInputError``."""
    pin = manifest_sha256.strip().lower() if isinstance(manifest_sha256, str) else None
    if pin is None or len(pin) != 64 or any(char not in "0123456789abcdef" for char in pin):
        shown = repr(manifest_sha256)[:80]
        raise TcdmlInputError(f"manifest_sha256={shown}: expected the 64 hex digits tcdml export printed")
    return pin


def _refuse_changed(path: Path, actual: str, expected: str, pinned: str) -> None:
    if actual != expected:
        raise TcdmlInputError(
            f"{path}: sha256 {actual[:12]}... differs from {expected[:12]}... in {pinned} "
            "(changed or damaged after export)"
        )


def load_folder(
    folder: str | os.PathLike,
    *,
    verify: bool = True,
    manifest_sha256: str | None = None,
    keep: Callable[[Manifest], Iterable[str]] | None = None,
) -> tuple[Manifest, dict[str, bytes]]:
    """Read and check an export folder once: ``(manifest, {name: bytes})`` for the names ``keep(manifest)``.

    The manifest is parsed from the very bytes that were hashed against ``manifest_sha256``; each listed
    file is opened once inside the folder (a regular file, no link, FIFO or device: ``tcdml.io.file_bytes``),
    its size compared with ``files.bytes`` before it is hashed, and the bytes of the kept files are those that
    were hashed: a file swapped after the check is never the one used. ``verify=False`` skips the listed
    files (the manifest is still checked, and pinned when ``manifest_sha256`` is given).
    """
    folder = Path(folder)
    pin = check_pin(manifest_sha256) if manifest_sha256 is not None else None
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "no such folder"
        raise TcdmlInputError(
            f"{folder}: {what}, expected a folder written by tcdml export{aside_note(folder)}"
        )
    folder_fd = open_folder(folder)
    try:
        path = folder / MANIFEST_NAME
        fd, info = open_member(
            folder_fd, MANIFEST_NAME, path, "missing (not a folder written by tcdml export)"
        )
        data = read_descriptor(fd, path, MANIFEST_LIMIT, "manifest", info.st_size)
        if pin is not None:
            _refuse_changed(path, hashlib.sha256(data).hexdigest(), pin, "the pinned manifest_sha256")
        manifest = parse_manifest(parse_json_object(data, path), path)
        wanted = set(keep(manifest)) if keep is not None else set()
        kept: dict[str, bytes] = {}
        for name, entry in manifest.files.items():
            if verify or name in wanted:
                content = _read_listed(folder_fd, folder / name, entry, keep=name in wanted)
                if content is not None:
                    kept[name] = content
    finally:
        os.close(folder_fd)
    return manifest, kept


def _read_listed(folder_fd: int, path: Path, entry: dict[str, Any], keep: bool) -> bytes | None:
    """Check one listed file (size, then sha256) from one open descriptor; its bytes when ``keep``."""
    fd, info = open_member(folder_fd, path.name, path, f"missing (listed in {MANIFEST_NAME})")
    size = entry.get("bytes")
    if size is not None and size != info.st_size:
        os.close(fd)
        raise TcdmlInputError(
            f"{path}: {info.st_size} bytes, but {MANIFEST_NAME} lists {size} "
            "(changed or damaged after export)"
        )
    if keep:
        content = read_descriptor(fd, path, info.st_size, "listed file", info.st_size)
        _refuse_changed(path, hashlib.sha256(content).hexdigest(), entry["sha256"], MANIFEST_NAME)
        return content
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    _refuse_changed(path, digest.hexdigest(), entry["sha256"], MANIFEST_NAME)
    return None


def read_manifest(
    folder: str | os.PathLike, *, verify: bool = True, manifest_sha256: str | None = None
) -> Manifest:
    """Read and check ``folder/tcdml-export.json``; with ``verify`` every listed file's size and sha256 too.

    The manifest cannot list its own hash: ``manifest_sha256`` (what ``tcdml export`` printed; any case,
    surrounding whitespace ignored) pins it, so a changed threshold or contract is refused too.

    Every problem (no folder, no manifest, bad JSON, a missing key, a missing, changed or non-regular file)
    is one ``TcdmlInputError`` line naming the file. ``load_folder`` also returns the verified bytes.
    """
    return load_folder(folder, verify=verify, manifest_sha256=manifest_sha256)[0]
