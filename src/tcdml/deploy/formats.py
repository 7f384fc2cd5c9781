"""The model formats of an export folder, declared once: ``FORMATS[name]`` for ``"onnx"`` and
``"torchscript"``.

Each ``ModelFormat`` knows its name (the manifest's ``model.<name>`` key, ``load_matcher``'s ``backend`` and a
``tcdml export --format`` choice), its file name in the folder, its title in messages and its runner class
(``tcdml.deploy.runtime``): how the verified bytes of its file run. ``tcdml export`` writes a format with the
writer of the same name (``tcdml.export.convert.WRITERS``) and checks the file it wrote with ``open_model``,
as ``load_matcher`` opens it. The order is the preference: ``--format auto`` writes the first format the
exporter can write, ``load_matcher`` runs the first the folder holds. Adding a format is one entry here (with
its runner) and its writer in ``tcdml.export.convert``: docs/extend.md shows one.

``tcdml export --format`` takes ``auto``, a format's name or ``both`` (every format); its choices and help are
built here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tcdml.deploy.kinds import InputKind
from tcdml.deploy.runtime import OnnxRunner, Runner, TorchScriptRunner
from tcdml.errors import ParameterError, TcdmlInputError

#: ``--format`` choices besides the formats: the first that exports, and every format.
AUTO = "auto"
EVERY = "both"


@dataclass(frozen=True)
class ModelFormat:
    """One model format (module docstring): ``runner(path, model_bytes, kind, providers)`` runs its file."""

    name: str
    file_name: str
    title: str
    runner: Callable[[Path, bytes, InputKind, Sequence[str] | None], Runner]


FORMATS: dict[str, ModelFormat] = {
    "onnx": ModelFormat("onnx", "model.onnx", "ONNX", OnnxRunner),
    "torchscript": ModelFormat("torchscript", "model.pt", "TorchScript", TorchScriptRunner),
}


def _titles() -> str:
    titles = [f.title for f in FORMATS.values()]
    return titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} and {titles[-1]}"


def export_choices() -> tuple[str, ...]:
    """What ``tcdml export --format`` accepts: ``auto``, each format's name, ``both``."""
    return (AUTO, *FORMATS, EVERY)


def export_help() -> str:
    """The ``--format`` help, from the declaration: what each choice writes."""
    fallback = ", else ".join(f.title for f in FORMATS.values())
    return f"{AUTO}: {fallback}; {'; '.join(FORMATS)}; {EVERY} (every format: {_titles()})."


def check_export_format(format: Any) -> str:
    """``format`` if ``tcdml export`` takes it, else a one-line ``ParameterError`` naming the choices."""
    choices = export_choices()
    if not isinstance(format, str) or format not in choices:
        raise ParameterError.of("format", format, f"one of {', '.join(choices)}")
    return format


def formats_to_write(format: str) -> list[ModelFormat]:
    """The formats an export ``format`` writes, in preference order (``auto``: tried in this order until one
    exports)."""
    check_export_format(format)
    return list(FORMATS.values()) if format in (AUTO, EVERY) else [FORMATS[format]]


def pick_format(model: Mapping[str, Any], folder: Path, backend: str | None) -> tuple[ModelFormat, str]:
    """(format, file name) of a manifest's ``model`` section to run: ``backend`` names the format, None the
    first the folder holds."""
    if backend is None:
        backend = next((name for name in FORMATS if model.get(name)), next(iter(FORMATS)))
    if not isinstance(backend, str) or backend not in FORMATS:
        expected = f"{', '.join(map(repr, FORMATS))} or None"
        raise ParameterError(
            f"load_matcher: backend={backend!r}, expected {expected}", "backend", backend, expected
        )
    name = model.get(backend)
    if not name:
        raise TcdmlInputError(f"{folder}: has no {backend} model (model.{backend} is null)")
    return FORMATS[backend], name


def open_model(
    format: ModelFormat,
    path: Path,
    model: bytes,
    kind: InputKind,
    contract: dict[str, Any],
    embedding_size: int,
    providers: Sequence[str] | None = None,
) -> Runner:
    """The runner of ``model`` (a file's verified bytes; ``path`` names it), checked against the input
    contract: the graph's inputs and output (names, kinds, widths) where the format declares them, then one
    probe input of the contract, whose output must be (1, ``embedding_size``)."""
    runner = format.runner(path, model, kind, providers)
    runner.check_graph(contract, embedding_size)
    output = np.asarray(runner(kind.probe(contract)))
    if output.shape != (1, embedding_size):
        raise TcdmlInputError(
            f"{path}: the model gives {output.shape[1:] if output.ndim == 2 else output.shape}-wide outputs, "
            f"but the manifest says embedding_size={embedding_size}"
        )
    return runner
