"""Write a module in each model format (``tcdml.deploy.formats``): ONNX (torch's TorchScript-based exporter,
dynamic batch axis) or TorchScript, and check the written files against the module.

``WRITERS[name](module, example, kind, path)`` writes the format ``name`` (the converter is told the input
kind: its input names and dynamic axes); ``check_files`` runs each written file with the format's runner, as
``load_matcher`` will.

``torch.onnx.export(..., dynamo=False)``: torch's default (dynamo) exporter needs ``onnxscript``, which
tcdml does not install; the legacy exporter's deprecation warnings and tracer warnings (image sizes fixed at
export: the input contract fixes them too) are silenced here. An operator the exporter cannot convert is
one ``TcdmlInputError`` line naming the operator and the layer that calls it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tcdml.deploy.formats import FORMATS, open_model
from tcdml.deploy.kinds import OUTPUT_NAME, InputKind
from tcdml.errors import TcdmlInputError
from tcdml.io.file_bytes import write_new_file

OPSET = 17
#: Largest |exported - original| accepted on the check inputs (embeddings are unit rows).
TOLERANCE = 1e-4
_OPERATOR = re.compile(r"operator '([\w:.]+)'")


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)  # symbolic notes; the written file is checked instead
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        yield


@contextlib.contextmanager
def _quiet_descriptors() -> Iterator[None]:
    """Send what is written to file descriptors 1 and 2 to a discarded file while the block runs.

    The legacy exporter's C++ side logs the whole graph to stderr when a conversion fails (its log switch is
    left on): the CLI's error must stay one line.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no descriptors to redirect (closed): nothing would be shown either
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def to_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], kind: InputKind, path: Path) -> None:
    """Write ``module`` (eval mode) as ONNX at ``path``; ``TcdmlInputError`` naming the operator it cannot
    export (and the layer calling it, when found)."""
    buffer = io.BytesIO()
    try:
        with _quiet_export(), _quiet_descriptors(), torch.no_grad():
            torch.onnx.export(
                module,
                example,
                buffer,
                dynamo=False,
                input_names=list(kind.inputs),
                output_names=[OUTPUT_NAME],
                dynamic_axes=kind.dynamic_axes(OUTPUT_NAME),
                opset_version=OPSET,
                do_constant_folding=True,
            )
    except (
        Exception
    ) as exc:  # the exporter raises many types (UnsupportedOperatorError, SymbolicValueError ...)
        text = " ".join(str(exc).split()) or type(exc).__name__
        found = _OPERATOR.search(text)
        if found:
            operator = found.group(1)
            layer = _layer_calling(module, example, operator)
            where = f" in layer '{layer}'" if layer else ""
            reason = f"operator {operator}{where} has no ONNX opset {OPSET} conversion"
        else:
            reason = text.split(". ")[0][:200]
        raise TcdmlInputError(
            f"cannot export the model as ONNX: {reason} (try --format torchscript)"
        ) from None
    write_new_file(path, buffer.getvalue())  # a full disk: an OSError naming the file, not "cannot convert"


def _layer_calling(module: nn.Module, example: tuple[torch.Tensor, ...], operator: str) -> str | None:
    """The dotted name of the innermost submodule whose forward calls ``operator`` (``aten::x``), if any.

    Found by running the module once under a ``TorchFunctionMode`` that watches for the function ``x``.
    """
    from torch.overrides import TorchFunctionMode

    short = operator.split("::")[-1]
    stack: list[str] = []
    found: list[str] = []

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if not found and stack and getattr(func, "__name__", "") == short:
                found.append(stack[-1])
            return func(*args, **(kwargs or {}))

    handles = []
    for name, child in module.named_modules():
        if name:
            handles.append(child.register_forward_pre_hook(lambda m, i, n=name: stack.append(n)))
            handles.append(child.register_forward_hook(lambda m, i, o: stack.pop() and None))  # keeps o
    try:
        with torch.no_grad(), Spy():
            module(*example)
    except Exception:
        return None
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def to_torchscript(module: nn.Module, example: tuple[torch.Tensor, ...], kind: InputKind, path: Path) -> None:
    """Write ``module`` (eval mode) traced as TorchScript at ``path``; ``TcdmlInputError`` on failure. The
    traced module takes the kind's inputs by position: it records no names or axes of its own."""
    buffer = io.BytesIO()
    try:
        with _quiet_export(), torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=False)
            torch.jit.save(traced, buffer)
    except Exception as exc:  # tracing raises many types
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise TcdmlInputError(f"cannot export the model as TorchScript: {text[:200]}") from None
    write_new_file(path, buffer.getvalue())  # Python's writer: ENOSPC is an OSError, not torch's abort


#: How each format of ``tcdml.deploy.formats.FORMATS`` is written: ``(module, example, kind, path) -> None``.
Writer = Callable[[nn.Module, tuple[torch.Tensor, ...], InputKind, Path], None]
WRITERS: dict[str, Writer] = {"onnx": to_onnx, "torchscript": to_torchscript}


def check_files(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    kind: InputKind,
    contract: dict[str, Any],
    written: Mapping[str, Path],
    shown: Path,
) -> float:
    """The largest |exported - original| embedding entry over the ``written`` files (format name -> path) on
    ``inputs``; each file is opened as ``load_matcher`` opens it (``tcdml.deploy.formats.open_model``: graph
    and probe checked against ``contract``; ``shown`` is the folder that names it in errors). A difference
    above ``TOLERANCE`` is a ``TcdmlInputError`` (the export would not reproduce the model)."""
    with torch.no_grad():
        expected = module(*inputs).float().numpy()
    feeds = {name: tensor.numpy() for name, tensor in zip(kind.inputs, inputs, strict=True)}
    worst = 0.0
    for name, path in written.items():
        format = FORMATS[name]
        runner = open_model(format, shown / path.name, path.read_bytes(), kind, contract, expected.shape[1])
        output = runner(feeds)
        difference = (
            float(np.abs(output - expected).max()) if output.shape == expected.shape else float("inf")
        )
        if not difference <= TOLERANCE:
            raise TcdmlInputError(
                f"the {format.title} export differs from the model by {difference:.3g} (> {TOLERANCE:g}) on "
                "the check inputs: a layer behaves differently when exported"
            )
        worst = max(worst, difference)
    return worst
