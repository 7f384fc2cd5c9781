"""``export_module``: one module, its input contract and a calibration -> an export folder (docs/deploy.md).

The folder holds the model file of one or more formats (``tcdml.deploy.formats``: ``model.onnx``, ONNX with
a dynamic batch axis; ``model.pt``, TorchScript), any extra files (a text model's ``tokenizer.json``) and
``tcdml-export.json`` (``tcdml.deploy.manifest``: threshold, calibration, embedding size, input contract,
versions, the sha256 of every file). ``format``:

- ``"auto"`` (default): the first format, in ``FORMATS`` order, the exporter can write: ONNX, or TorchScript
  where the ONNX exporter fails (the manifest says why);
- a format's name (``"onnx"``, ``"torchscript"``): that file only (an export failure is an error);
- ``"both"``: every format.

Every file is checked against the module before the folder appears: the exported model is run on
``check_input`` (another batch size than the traced example, so the dynamic batch axis is exercised) and
must give the module's embeddings within ``convert.TOLERANCE``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tcdml.calibration.threshold import warn_low_threshold
from tcdml.deploy.asnorm import COHORT_FILE
from tcdml.deploy.formats import AUTO, FORMATS, check_export_format, formats_to_write
from tcdml.deploy.kinds import KINDS, OUTPUT_NAME
from tcdml.deploy.manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME, parse_manifest, sha256_file
from tcdml.errors import ParameterError, TcdmlInputError
from tcdml.export.calibration import CalibrationRecord, read_calibration
from tcdml.export.convert import OPSET, WRITERS, check_files
from tcdml.io.json_file import write_json
from tcdml.io.output_folder import check_new_folder, staged_folder

#: The hint a writer's error ends with (``(try --format torchscript)``): dropped where ``auto`` moves on.
_HINT = re.compile(r" \(try --format \w+\)$")
#: What no export file contains, by input kind (the manifest's ``model.not_exported``).
NOT_EXPORTED = {
    "image": [
        "image decoding, the resize of the short side to input.resize_size and the centre crop to "
        "input.image_size, scaling to [0, 1] and the mean/std normalisation: done before embed()",
    ],
    "text": ["tokenisation: done at serve time by the tokenizers package from input.tokenizer"],
    "embedding": ["the model that makes the adapter's input embeddings (input.input_size wide)"],
}


#: The manifest's ``similarity``, in words (and with ``scores``, what is compared with the threshold).
COSINE = "dot product of the L2-normalised float32 embeddings"
SIMILARITY = f"{COSINE}; accept s >= threshold"
ASNORM = (
    f"s = {COSINE}; AS-norm: s' = (s - mu_a) / (2 sigma_a) + (s - mu_b) / (2 sigma_b), mu and sigma of each "
    "side's top_k cosines to the cohort (sigma >= 1e-3); accept s' >= threshold"
)


def _write_cohort(cohort: np.ndarray, path: Path) -> None:
    """The AS-norm cohort (unit rows) as float32, ``np.save`` format (``tcdml.deploy.asnorm.read_cohort``)."""
    np.save(path, cohort.astype(np.float32), allow_pickle=False)


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
            **{name: model.get(name) for name in FORMATS},
            "max_abs_diff": model["check"]["max_abs_diff"],
            "files": dict(self.files),
            "manifest_sha256": self.manifest_sha256,
        }


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
) -> tuple[dict[str, Path], list[str]]:
    """Write the model file(s) of ``format`` into ``folder``: ({format name: path}, what ``auto`` skipped and
    why, in words)."""
    chosen = formats_to_write(format)
    written: dict[str, Path] = {}
    failed: list[tuple[str, str]] = []
    for model_format in chosen:
        path = folder / model_format.file_name
        try:
            WRITERS[model_format.name](module, example, KINDS[kind], path)
        except TcdmlInputError as exc:
            if format != AUTO or model_format is chosen[-1]:
                raise
            failed.append((model_format.title, _HINT.sub("", str(exc))))
            path.unlink(missing_ok=True)
            continue
        written[model_format.name] = path
        if format == AUTO:
            break
    title = FORMATS[next(iter(written))].title
    notes = [f"{name}: {why}; the model is exported as {title} only" for name, why in failed]
    return written, notes


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
    check_export_format(format)
    kind = input_contract.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        expected = f"one of {', '.join(KINDS)}"
        raise ParameterError(f"input contract: kind={kind!r}, expected {expected}", "kind", kind, expected)
    record = calibration if isinstance(calibration, CalibrationRecord) else read_calibration(calibration)
    cohort = [record.cohort.path] if record.cohort is not None else []
    out_dir = check_export_folder(out_dir, force, [*inputs, record.path, *cohort])
    module = module.eval()
    example = _as_tuple(example_input)
    checks = _as_tuple(check_input) if check_input is not None else example
    input_kind = KINDS[kind]
    with torch.no_grad():
        size = int(module(*example).shape[1])
    record.check_embedding_size(size, "the exported model")
    scores = record.manifest_scores(COHORT_FILE)
    if scores is None:
        warn_low_threshold(record.threshold)  # shipped as it is, but never silently
    with staged_folder(out_dir) as folder:
        written, skipped = _write_models(module, example, kind, folder, format)
        difference = check_files(module, checks, input_kind, dict(input_contract), written, out_dir)
        for name, path in (extra_files or {}).items():
            shutil.copyfile(path, folder / name)
        if record.cohort is not None:
            _write_cohort(record.cohort.model.cohort, folder / COHORT_FILE)
        files = {
            path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for path in sorted(folder.iterdir())
        }
        not_exported = [*NOT_EXPORTED[kind], *skipped]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "threshold": record.threshold,
            "calibration": record.to_dict(),
            "embedding_size": size,
            "similarity": SIMILARITY if scores is None else ASNORM,
            **({"scores": scores} if scores is not None else {}),
            "input": dict(input_contract),
            "model": {
                **{name: written[name].name if name in written else None for name in FORMATS},
                "inputs": list(input_kind.inputs),
                "output": OUTPUT_NAME,
                "opset": OPSET if "onnx" in written else None,
                "dynamic_axes": {"batch": 0, **({"tokens": 1} if input_kind.token_axis else {})},
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
