"""The export folder's manifest ``tcdml-export.json``: written by ``tcdml export``, read by ``load_matcher``.

Fields (docs/deploy.md has an example):

- ``format`` (``"tcdml-export"``) and ``format_version`` (``1``);
- ``threshold``: the calibrated similarity threshold, a number in [-1, 1]; a pair is accepted when its
  similarity is at or above it;
- ``calibration``: the target it was calibrated for (``target`` ``"far"`` or ``"frr"`` and ``target_far`` or
  ``target_frr``), the achieved overall ``far`` / ``frr``, the per-class spreads ``class_far`` /
  ``class_frr`` (min, median, p90, max), ``num_classes``, ``mode`` and the calibration file's name and
  sha256;
- ``embedding_size``: D of the L2-normalised float32 embeddings the model produces;
- ``input``: the input contract, by ``kind``: ``"image"`` (``image_size``, ``resize_size``, ``mean``,
  ``std``, ``channels`` ``"RGB"``, ``layout`` ``"NCHW"``), ``"text"`` (``tokenizer`` file, ``max_length``)
  or ``"embedding"`` (``input_size``: an adapter head's input width);
- ``model``: the model files (``onnx``: ``"model.onnx"`` or null, ``torchscript``: ``"model.pt"`` or null),
  the ONNX input and output names, ``opset``, the export check (``max_abs_diff``: exported vs original on
  ``check_samples`` inputs) and ``not_exported`` (what the files leave out, in words; empty when nothing);
- ``source``: what was exported (``kind`` checkpoint or adapter, file name, sha256, backbone);
- ``versions``: tcdml, torch, onnx (and onnxruntime) that wrote the folder;
- ``files``: every other file of the folder, ``{name: {"sha256": ..., "bytes": ...}}``; ``read_manifest``
  checks them all.

This module needs only the standard library and numpy (``tcdml.deploy`` runs without torch).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcdml.errors import TcdmlInputError
from tcdml.io.json_file import read_json_object

MANIFEST_NAME = "tcdml-export.json"
FORMAT = "tcdml-export"
FORMAT_VERSION = 1
ONNX_NAME = "model.onnx"
TORCHSCRIPT_NAME = "model.pt"
OUTPUT_NAME = "embeddings"
#: Model input names by input kind (ONNX graph inputs, in order).
INPUT_NAMES: dict[str, tuple[str, ...]] = {
    "image": ("images",),
    "text": ("input_ids", "attention_mask"),
    "embedding": ("inputs",),
}


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

    @property
    def kind(self) -> str:
        """The input kind: ``"image"``, ``"text"`` or ``"embedding"``."""
        return str(self.input["kind"])

    def to_dict(self) -> dict[str, Any]:
        """The manifest as read (a copy of the JSON object)."""
        return json.loads(json.dumps(self.raw))


def _require(ok: bool, path: Path, key: str, value: Any, expected: str) -> None:
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise TcdmlInputError(f"{path}: malformed manifest: {key}={shown}, expected {expected}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def parse_manifest(data: Any, path: Path) -> Manifest:
    """Check the structure of a manifest object (no file is read); ``path`` names it in errors."""
    _require(isinstance(data, dict), path, "(top level)", type(data).__name__, "a JSON object")
    _require(data.get("format") == FORMAT, path, "format", data.get("format"), repr(FORMAT))
    version = data.get("format_version")
    _require(version == FORMAT_VERSION, path, "format_version", version, f"{FORMAT_VERSION}")
    threshold = data.get("threshold")
    ok = _number(threshold) and -1.0 <= threshold <= 1.0
    _require(ok, path, "threshold", threshold, "a number in [-1, 1]")
    size = data.get("embedding_size")
    _require(_positive_int(size), path, "embedding_size", size, "a positive integer")
    contract = data.get("input")
    _require(isinstance(contract, dict), path, "input", contract, "an object")
    kind = contract.get("kind")
    _require(kind in INPUT_NAMES, path, "input.kind", kind, " or ".join(map(repr, INPUT_NAMES)))
    if kind == "image":
        image_size = contract.get("image_size")
        _require(_positive_int(image_size), path, "input.image_size", image_size, "a positive integer")
        for key in ("mean", "std"):
            values = contract.get(key)
            ok = isinstance(values, list) and len(values) == 3 and all(map(_number, values))
            _require(ok, path, f"input.{key}", values, "3 numbers")
        _require(all(v > 0 for v in contract["std"]), path, "input.std", contract["std"], "positive numbers")
    elif kind == "text":
        tokenizer, length = contract.get("tokenizer"), contract.get("max_length")
        _require(isinstance(tokenizer, str), path, "input.tokenizer", tokenizer, "a file name")
        _require(_positive_int(length), path, "input.max_length", length, "a positive integer")
        pad_id, pad_token = contract.get("pad_id", 0), contract.get("pad_token", "[PAD]")
        ok = isinstance(pad_id, int) and not isinstance(pad_id, bool) and pad_id >= 0
        _require(ok, path, "input.pad_id", pad_id, "a token id >= 0")
        _require(isinstance(pad_token, str), path, "input.pad_token", pad_token, "a token")
    else:
        width = contract.get("input_size")
        _require(_positive_int(width), path, "input.input_size", width, "a positive integer")
    model = data.get("model")
    _require(isinstance(model, dict), path, "model", model, "an object")
    onnx_name, script_name = model.get("onnx"), model.get("torchscript")
    ok = isinstance(onnx_name, str | None) and isinstance(script_name, str | None)
    _require(ok and (onnx_name or script_name), path, "model.onnx", onnx_name, "a model file name")
    files = data.get("files")
    _require(isinstance(files, dict) and bool(files), path, "files", files, "an object of file hashes")
    for name, entry in files.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
        _require(ok, path, f"files.{name}", entry, 'an object with a "sha256" hex digest')
        _require(_safe_name(name), path, "files", name, "a plain file name inside the folder")
    for name in (onnx_name, script_name, contract.get("tokenizer")):
        _require(name is None or name in files, path, "files", sorted(files), f"an entry for {name!r}")
    calibration = data.get("calibration")
    _require(isinstance(calibration, dict), path, "calibration", calibration, "an object")
    return Manifest(
        folder=path.parent,
        threshold=float(threshold),
        embedding_size=size,
        input=dict(contract),
        model=dict(model),
        calibration=dict(calibration),
        files={name: dict(entry) for name, entry in files.items()},
        raw=data,
    )


def _safe_name(name: str) -> bool:
    return (
        bool(name) and name not in {".", ".."} and "/" not in name and "\\" not in name and "\0" not in name
    )


def read_manifest(
    folder: str | os.PathLike, *, verify: bool = True, manifest_sha256: str | None = None
) -> Manifest:
    """Read and check ``folder/tcdml-export.json``; with ``verify`` every listed file's sha256 too.

    The manifest cannot list its own hash: ``manifest_sha256`` (what ``tcdml export`` printed) pins it, so
    a changed threshold or contract is refused too.

    Every problem (no folder, no manifest, bad JSON, a missing key, a missing or changed file) is one
    ``TcdmlInputError`` line naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "no such folder"
        raise TcdmlInputError(f"{folder}: {what}, expected a folder written by tcdml export")
    path = folder / MANIFEST_NAME
    if manifest_sha256 is not None and path.is_file():
        verify_file(path, manifest_sha256, pinned="the pinned manifest_sha256")
    data = read_json_object(path, "missing (not a folder written by tcdml export)")
    manifest = parse_manifest(data, path)
    if verify:
        for name, entry in manifest.files.items():
            verify_file(folder / name, entry["sha256"])
    return manifest


def verify_file(path: Path, expected: str, pinned: str = MANIFEST_NAME) -> None:
    """Refuse ``path`` when it is missing or its sha256 is not ``expected`` (one line naming it; ``pinned``
    says where ``expected`` comes from)."""
    if not path.is_file():
        raise TcdmlInputError(f"{path}: missing (listed in {MANIFEST_NAME})")
    actual = sha256_file(path)
    if actual != expected:
        raise TcdmlInputError(
            f"{path}: sha256 {actual[:12]}... differs from {str(expected)[:12]}... in {pinned} "
            "(changed or damaged after export)"
        )
