"""The runners of exported model files: onnxruntime for ONNX, torch for TorchScript
(``tcdml.deploy.formats`` declares which format each serves and its file name).

A runner is built from a file's verified bytes and the input kind (``tcdml.deploy.kinds``), checks the model's
graph against the input contract and the embedding size where the format declares one, and maps named numpy
inputs (the kind's input names) to the (N, D) float32 embeddings. Inputs are prepared by kind: image batches
as float32 (N, 3, S, S) arrays (already resized, cropped and normalised as ``input`` in the manifest says),
texts tokenised with the ``tokenizers`` package from the folder's ``tokenizer.json``, embeddings (adapter
heads) as float32 (N, input_size) arrays. onnxruntime, torch and tokenizers are imported only when a runner or
tokenizer is built.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tcdml.deploy.kinds import OUTPUT_NAME, InputKind
from tcdml.errors import TcdmlInputError, first_line


class Runner(Protocol):
    """A model file's bytes in its runtime: named inputs -> (N, D) float32 embeddings.

    Built as ``Runner(path, model, kind, providers)``: ``path`` names the file in messages, ``model`` is its
    verified bytes, ``kind`` the input kind, ``providers`` onnxruntime's execution providers (a runtime
    without providers ignores them)."""

    def check_graph(self, contract: dict[str, Any], embedding_size: int) -> None:
        """Refuse a model whose declared inputs or output disagree with the contract and embedding size."""
        ...

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...


def _external_data(model: bytes) -> list[str]:
    """The external-data files ``model`` (ONNX bytes) refers to; [] when the ``onnx`` package is missing
    (onnxruntime then refuses external data of a model loaded from bytes by itself)."""
    try:
        import onnx
    except ImportError:
        return []
    try:
        proto = onnx.load_model_from_string(model)
    except Exception:  # a damaged file: onnxruntime names the problem
        return []
    found: list[str] = []

    def tensors(graph) -> None:
        for tensor in [*graph.initializer, *(s.values for s in graph.sparse_initializer)]:
            check(tensor)
        for node in graph.node:
            for attribute in node.attribute:
                for tensor in [attribute.t, *attribute.tensors]:
                    check(tensor)
                for sub in [attribute.g, *attribute.graphs]:
                    tensors(sub)

    def check(tensor) -> None:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            found.append(entries.get("location", "?"))

    tensors(proto.graph)
    return sorted(set(found))


class OnnxRunner:
    """ONNX bytes (checked against the manifest) in an onnxruntime session (CPU unless ``providers`` says
    otherwise): what was hashed is what runs."""

    def __init__(
        self, path: Path, model: bytes, kind: InputKind, providers: Sequence[str] | None = None
    ) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise TcdmlInputError(
                f"{path}: running an ONNX export needs onnxruntime: pip install 'tcdml[deploy]'"
            ) from None
        external = _external_data(model)
        if external:
            raise TcdmlInputError(
                f"{path}: refers to external data {', '.join(map(repr, external))}, which tcdml export never "
                "writes and the manifest does not pin (refused)"
            )
        chosen = list(providers or ["CPUExecutionProvider"])
        available = onnxruntime.get_available_providers()
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise TcdmlInputError(
                f"providers={unknown}: not available in this onnxruntime (available: {', '.join(available)})"
            )
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # fatal only: a load failure is reported below, in one line
        try:
            self.session = onnxruntime.InferenceSession(model, options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own types for a bad file or provider
            raise TcdmlInputError(f"{path}: onnxruntime cannot load it ({first_line(exc)})") from None
        self.path = path
        self.kind = kind

    def check_graph(self, contract: dict[str, Any], embedding_size: int) -> None:
        """Refuse a graph whose input names, kinds and widths or output width differ from the manifest's
        input contract and ``embedding_size``."""
        kind = self.kind
        names = kind.inputs
        inputs = self.session.get_inputs()
        if tuple(item.name for item in inputs) != names:
            found = [item.name for item in inputs]
            raise TcdmlInputError(
                f"{self.path}: graph inputs {found}, but the manifest's input.kind {kind.name!r} "
                f"expects {list(names)}"
            )
        wanted, says = kind.graph_shape(contract)
        expected_type = kind.onnx_type
        for item in inputs:
            if item.type != expected_type:
                raise TcdmlInputError(
                    f"{self.path}: graph input {item.name!r} is {item.type}, expected {expected_type}"
                )
            _check_shape(self.path, f"graph input {item.name!r}", list(item.shape), wanted, says)
        outputs = self.session.get_outputs()
        if [item.name for item in outputs] != [OUTPUT_NAME]:
            raise TcdmlInputError(
                f"{self.path}: graph outputs {[item.name for item in outputs]}, expected [{OUTPUT_NAME!r}]"
            )
        _check_shape(
            self.path,
            "graph output",
            list(outputs[0].shape),
            [None, embedding_size],
            f"embedding_size={embedding_size}",
        )

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        try:
            return self.session.run([OUTPUT_NAME], feeds)[0]
        except Exception as exc:  # onnxruntime's own types
            raise TcdmlInputError(f"{self.path}: onnxruntime failed ({first_line(exc)})") from None


def _check_shape(path: Path, what: str, shape: list[Any], wanted: list[int | None], says: str) -> None:
    """Refuse a graph ``shape`` (ints or symbolic names) that cannot be ``wanted`` (``says``: the manifest
    keys behind it)."""
    pairs = zip(shape, wanted, strict=False)
    fits = len(shape) == len(wanted) and all(
        want is None or not isinstance(have, int) or have == want for have, want in pairs
    )
    if not fits:
        raise TcdmlInputError(f"{path}: {what} has shape {shape}, but the manifest says {says}")


class TorchScriptRunner:
    """TorchScript bytes (checked against the manifest) loaded from a buffer, run with torch on the CPU,
    without gradients (``providers`` are onnxruntime's: unused)."""

    def __init__(
        self, path: Path, model: bytes, kind: InputKind, providers: Sequence[str] | None = None
    ) -> None:
        try:
            import torch
        except ImportError:
            raise TcdmlInputError(
                f"{path}: running a TorchScript export needs torch: pip install torch"
            ) from None
        try:
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice: TorchScript is what ran
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(io.BytesIO(model), map_location="cpu").eval()
        except Exception as exc:  # torch raises several types for a damaged or foreign file
            raise TcdmlInputError(
                f"{path}: torch cannot load it as TorchScript ({first_line(exc)})"
            ) from None
        self.path = path
        self.names = kind.inputs
        self.torch = torch

    def check_graph(self, contract: dict[str, Any], embedding_size: int) -> None:
        """Nothing to compare: a traced module declares no input or output shapes (the probe input that
        ``tcdml.deploy.formats.open_model`` runs checks the output width)."""

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        try:
            with self.torch.inference_mode():
                out = self.module(*(self.torch.from_numpy(feeds[name]) for name in self.names))
            return out.float().numpy()
        except Exception as exc:  # TorchScript raises its own types
            raise TcdmlInputError(f"{self.path}: TorchScript failed ({first_line(exc)})") from None


class TextTokenizer:
    """The folder's ``tokenizer.json`` (``tokenizers`` package), from its verified bytes: texts -> padded
    int64 ids and mask.

    Truncated to ``max_length`` tokens, padded to the longest text of the batch (masked attention and
    pooling make a text's embedding independent of its padding).
    """

    def __init__(
        self, path: Path, content: bytes, max_length: int, pad_id: int = 0, pad_token: str = "[PAD]"
    ) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise TcdmlInputError(
                f"{path}: text exports need the tokenizers package: pip install tokenizers"
            ) from None
        try:
            self.tokenizer = Tokenizer.from_str(content.decode("utf-8"))
        except Exception as exc:  # tokenizers raises its own exception type; UnicodeDecodeError
            raise TcdmlInputError(f"{path}: cannot read as a tokenizer ({first_line(exc)})") from None
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encoded = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        }
