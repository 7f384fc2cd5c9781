"""Run an exported model file: onnxruntime for ``model.onnx``, torch for ``model.pt`` (TorchScript).

Each runner maps named numpy inputs (``INPUT_NAMES`` of the input kind) to the (N, D) float32 embeddings.
Inputs are prepared by kind: image batches as float32 (N, 3, S, S) arrays (already resized, cropped and
normalised as ``input`` in the manifest says), texts tokenised with the ``tokenizers`` package from the
folder's ``tokenizer.json``, embeddings (adapter heads) as float32 (N, input_size) arrays.
onnxruntime, torch and tokenizers are imported only when a runner or tokenizer is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tcdml.deploy.manifest import INPUT_NAMES, OUTPUT_NAME, Manifest
from tcdml.errors import TcdmlInputError, first_line


class Runner(Protocol):
    """Named inputs -> (N, D) float32 embeddings."""

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...


class OnnxRunner:
    """``model.onnx`` in an onnxruntime session (CPU unless ``providers`` says otherwise)."""

    def __init__(
        self, path: Path, providers: Sequence[str] | None = None, threads: int | None = None
    ) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise TcdmlInputError(
                f"{path}: running an ONNX export needs onnxruntime: pip install 'tcdml[deploy]'"
            ) from None
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file or provider
            raise TcdmlInputError(f"{path}: onnxruntime cannot load it ({first_line(exc)})") from None

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], feeds)[0]


class TorchScriptRunner:
    """``model.pt`` (TorchScript) run with torch on the CPU, without gradients."""

    def __init__(self, path: Path, names: Sequence[str]) -> None:
        try:
            import torch
        except ImportError:
            raise TcdmlInputError(
                f"{path}: running a TorchScript export needs torch: pip install torch"
            ) from None
        try:
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice: TorchScript is what ran
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # torch raises several types for a damaged or foreign file
            raise TcdmlInputError(
                f"{path}: torch cannot load it as TorchScript ({first_line(exc)})"
            ) from None
        self.names = tuple(names)
        self.torch = torch

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.module(*(self.torch.from_numpy(feeds[name]) for name in self.names))
        return out.float().numpy()


def build_runner(
    manifest: Manifest, *, backend: str | None = None, providers: Sequence[str] | None = None
) -> tuple[str, Runner]:
    """The runner of the folder's model: ``backend`` ``"onnx"`` / ``"torchscript"``, or None: ONNX if
    exported, else TorchScript. Returns (backend, runner)."""
    files = {"onnx": manifest.model.get("onnx"), "torchscript": manifest.model.get("torchscript")}
    if backend is None:
        backend = "onnx" if files["onnx"] else "torchscript"
    if backend not in files:
        raise TcdmlInputError(f"load_matcher: backend={backend!r}, expected 'onnx', 'torchscript' or None")
    name = files[backend]
    if not name:
        raise TcdmlInputError(f"{manifest.folder}: has no {backend} model (model.{backend} is null)")
    path = manifest.folder / name
    if backend == "onnx":
        return backend, OnnxRunner(path, providers)
    return backend, TorchScriptRunner(path, INPUT_NAMES[manifest.kind])


class TextTokenizer:
    """The folder's ``tokenizer.json`` (``tokenizers`` package): texts -> padded int64 ids and mask.

    Truncated to ``max_length`` tokens, padded to the longest text of the batch (masked attention and
    pooling make a text's embedding independent of its padding).
    """

    def __init__(self, path: Path, max_length: int, pad_id: int = 0, pad_token: str = "[PAD]") -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise TcdmlInputError(
                f"{path}: text exports need the tokenizers package: pip install tokenizers"
            ) from None
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own exception type
            raise TcdmlInputError(f"{path}: cannot read as a tokenizer ({first_line(exc)})") from None
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encoded = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        }


def check_images(values: Any, contract: dict[str, Any]) -> np.ndarray:
    """An image batch as a C-contiguous float32 (N, 3, S, S) array, else ``TcdmlInputError``."""
    size = contract["image_size"]
    try:
        array = np.ascontiguousarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise TcdmlInputError(f"embed: expected a float32 (N, 3, {size}, {size}) image array") from None
    if array.ndim != 4 or array.shape[1:] != (3, size, size):
        raise TcdmlInputError(
            f"embed: image batch of shape {array.shape}, expected (N, 3, {size}, {size}) "
            "(RGB, resized, centre-cropped and normalised as the manifest's input says)"
        )
    return array


def check_texts(values: Any) -> list[str]:
    """A batch of texts as a list of ``str``, else ``TcdmlInputError``."""
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise TcdmlInputError("embed: expected a list of str (one text per item)")
    texts = list(values)
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise TcdmlInputError(f"embed: item {bad} is {type(texts[bad]).__name__}, expected str")
    return texts


def check_vectors(values: Any, contract: dict[str, Any]) -> np.ndarray:
    """An adapter's input batch as a C-contiguous float32 (N, input_size) array, else ``TcdmlInputError``."""
    width = contract["input_size"]
    try:
        array = np.ascontiguousarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise TcdmlInputError(f"embed: expected a float32 (N, {width}) array of input embeddings") from None
    if array.ndim != 2 or array.shape[1] != width:
        raise TcdmlInputError(f"embed: input of shape {array.shape}, expected (N, {width}) embeddings")
    return array
