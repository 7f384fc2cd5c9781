"""``export_module``: one module, its input contract and a calibration -> an export folder (docs/deploy.md).

The folder holds ``model.onnx`` (ONNX, dynamic batch axis) and/or ``model.pt`` (TorchScript), any extra
files (a text model's ``tokenizer.json``) and ``tcdml-export.json`` (``tcdml.deploy.manifest``: threshold,
calibration, embedding size, input contract, versions, the sha256 of every file). ``format``:

- ``"auto"`` (default): ONNX, or TorchScript where the ONNX exporter fails (the manifest says which);
- ``"onnx"``, ``"torchscript"``: that file only (an export failure is an error);
- ``"both"``: both files.

Every file is checked against the module before the folder appears: the exported model is run on
``check_input`` (another batch size than the traced example, so the dynamic batch axis is exercised) and
must give the module's embeddings within ``convert.TOLERANCE``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tcdml.calibration.threshold import warn_low_threshold
from tcdml.deploy.kinds import KINDS
from tcdml.deploy.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    ONNX_NAME,
    OUTPUT_NAME,
    TORCHSCRIPT_NAME,
    parse_manifest,
    sha256_file,
)
from tcdml.errors import TcdmlInputError
from tcdml.export.calibration import CalibrationRecord, read_calibration
from tcdml.export.convert import OPSET, check_files, to_onnx, to_torchscript
from tcdml.io.json_file import write_json
from tcdml.io.output_folder import check_new_folder, staged_folder

FORMATS = ("auto", "onnx", "torchscript", "both")
#: What no export file contains, by input kind (the manifest's ``model.not_exported``).
NOT_EXPORTED = {
    "image": [
        "image decoding, the resize of the short side to input.resize_size and the centre crop to "
        "input.image_size, scaling to [0, 1] and the mean/std normalisation: done before embed()",
    ],
    "text": ["tokenisation: done at serve time by the tokenizers package from input.tokenizer"],
    "embedding": ["the model that makes the adapter's input embeddings (input.input_size wide)"],
}


def check_export_folder(out_dir: str | os.PathLike, force: bool, inputs: Sequence[str | os.PathLike]) -> Path:
    """Refuse an export folder before any work (``tcdml.io.output_folder``; ``--force`` replaces only a
    previous export, a folder holding ``tcdml-export.json``, or an empty folder)."""
    return check_new_folder(out_dir, force=force, inputs=inputs, marker=MANIFEST_NAME, what="an export")


@dataclass(frozen=True)
class ExportResult:
    """What ``export_module`` wrote: the folder, its files (name -> bytes) and the manifest."""

    folder: Path
    files: dict[str, int]
    manifest: dict[str, Any] = field(repr=False)
    manifest_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the CLI prints it)."""
        model = self.manifest["model"]
        return {
            "output": str(self.folder),
            "threshold": self.manifest["threshold"],
            "embedding_size": self.manifest["embedding_size"],
            "input": self.manifest["input"]["kind"],
            "onnx": model["onnx"],
            "torchscript": model["torchscript"],
            "max_abs_diff": model["check"]["max_abs_diff"],
            "files": dict(self.files),
            "manifest_sha256": self.manifest_sha256,
        }


def check_format(format: str) -> str:
    """``format`` if it is one of ``FORMATS``, else ``TcdmlInputError``."""
    if format not in FORMATS:
        raise TcdmlInputError(f"--format={format!r}: expected one of {', '.join(FORMATS)}")
    return format


def _as_tuple(value: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return (value,) if isinstance(value, torch.Tensor) else tuple(value)


def _versions() -> dict[str, str | None]:
    import tcdml

    found: dict[str, str | None] = {"tcdml": tcdml.__version__, "torch": torch.__version__}
    for name in ("onnx", "onnxruntime"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = None
    return found


def _write_models(
    module: nn.Module, example: tuple[torch.Tensor, ...], kind: str, folder: Path, format: str
) -> tuple[Path | None, Path | None, str | None]:
    """Write the model file(s) of ``format`` into ``folder``: (onnx path, torchscript path, why no ONNX)."""
    onnx = script = None
    onnx_error = None
    if format in ("auto", "onnx", "both"):
        try:
            to_onnx(module, example, KINDS[kind], folder / ONNX_NAME)
            onnx = folder / ONNX_NAME
        except TcdmlInputError as exc:
            if format != "auto":
                raise
            onnx_error = str(exc).removesuffix(" (try --format torchscript)")
            (folder / ONNX_NAME).unlink(missing_ok=True)
    if format in ("torchscript", "both") or onnx is None:
        to_torchscript(module, example, folder / TORCHSCRIPT_NAME)
        script = folder / TORCHSCRIPT_NAME
    return onnx, script, onnx_error


def export_module(
    module: nn.Module,
    example_input: torch.Tensor | Sequence[torch.Tensor],
    input_contract: Mapping[str, Any],
    calibration: CalibrationRecord | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    format: str = "auto",
    check_input: torch.Tensor | Sequence[torch.Tensor] | None = None,
    extra_files: Mapping[str, str | os.PathLike] | None = None,
    source: Mapping[str, Any] | None = None,
    inputs: Sequence[str | os.PathLike] = (),
) -> ExportResult:
    """Export ``module`` (put in eval mode; maps the inputs of ``input_contract["kind"]`` to (N, D)
    L2-normalised float32 embeddings) with ``calibration``'s threshold into the folder ``out_dir``.

    ``example_input`` is traced (batch >= 2); ``check_input`` (default: the example) is what the written
    files are checked on. ``extra_files`` (name -> path) are copied in and hashed; ``source`` describes what
    was exported; ``inputs`` are files ``out_dir`` may not hold. The folder appears whole or not at all.
    """
    check_format(format)
    kind = input_contract.get("kind")
    if kind not in KINDS:
        raise TcdmlInputError(f"input contract: kind={kind!r}, expected one of {', '.join(KINDS)}")
    record = calibration if isinstance(calibration, CalibrationRecord) else read_calibration(calibration)
    out_dir = check_export_folder(out_dir, force, [*inputs, record.path])
    module = module.eval()
    example = _as_tuple(example_input)
    checks = _as_tuple(check_input) if check_input is not None else example
    names = KINDS[kind].inputs
    with torch.no_grad():
        size = int(module(*example).shape[1])
    record.check_embedding_size(size, "the exported model")
    warn_low_threshold(record.threshold)  # shipped as it is, but never silently
    with staged_folder(out_dir) as folder:
        onnx, script, onnx_error = _write_models(module, example, kind, folder, format)
        difference = check_files(module, checks, names, onnx, script)
        for name, path in (extra_files or {}).items():
            shutil.copyfile(path, folder / name)
        files = {
            path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for path in sorted(folder.iterdir())
        }
        not_exported = list(NOT_EXPORTED[kind])
        if onnx_error is not None:
            not_exported.append(f"ONNX: {onnx_error}; the model is exported as TorchScript only")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "threshold": record.threshold,
            "calibration": record.to_dict(),
            "embedding_size": size,
            "similarity": "dot product of the L2-normalised float32 embeddings; accept s >= threshold",
            "input": dict(input_contract),
            "model": {
                "onnx": onnx.name if onnx else None,
                "torchscript": script.name if script else None,
                "inputs": list(names),
                "output": OUTPUT_NAME,
                "opset": OPSET if onnx else None,
                "dynamic_axes": {"batch": 0, **({"tokens": 1} if kind == "text" else {})},
                "check": {"max_abs_diff": difference, "check_samples": int(checks[0].shape[0])},
                "not_exported": not_exported,
            },
            "source": dict(source or {}),
            "versions": _versions(),
            "files": files,
        }
        parse_manifest(manifest, folder / MANIFEST_NAME)  # what load_matcher will read: checked now
        write_json(folder / MANIFEST_NAME, manifest)
        manifest_sha256 = sha256_file(folder / MANIFEST_NAME)  # to pin: load_matcher(..., manifest_sha256=)
    sizes = {name: entry["bytes"] for name, entry in files.items()}
    return ExportResult(out_dir, sizes, manifest, manifest_sha256)
