"""The input kinds of an exported model, declared once: ``KINDS[name]`` for ``"image"``, ``"text"`` and
``"embedding"``.

Each ``InputKind`` knows its model input names (the ONNX graph's, in order) and dtype, its dynamic axes
(batch; tokens for text), the checks of its contract (the manifest's ``input``: a ``ParameterError`` naming
the contract's key, through ``tcdml.checks``), of a batch handed to ``Matcher.embed``, of a model graph's
input shapes, and a probe input that ``load_matcher`` runs once. The manifest, the runners, the matcher and
the exporter read them from here: adding a kind is one entry here (and its ``tcdml export`` source). Every
kind's model has one output, ``OUTPUT_NAME``.

The image contract's ``mean`` / ``std`` are those the model was trained with; ``IMAGENET_MEAN`` /
``IMAGENET_STD`` are the usual ones (ImageNet-pretrained weights): the one definition that the data
transforms' defaults and the timm backbones' fallback read.

Batch checks (as the library checks embeddings): NaN / Inf rows are one ``TcdmlInputError`` naming them;
an adapter's input rows must not be all zero, and a row whose largest magnitude lies outside
2^±``SAFE_EXPONENT`` is first multiplied by the power of two that puts it in [0.5, 1) (exact; the direction,
all the model sees after its normalisation, is kept), so rows of 1e-20 or 1e20 give the embeddings of the
same rows at unit scale (the numpy counterpart of ``tcdml.metrics.validation.rescale_rows``, which serving
cannot import: it needs torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcdml.checks import check_int, is_real, require
from tcdml.errors import TcdmlInputError

#: The per-channel normalisation of ImageNet-pretrained weights (pixels scaled to [0, 1] first).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The name of every exported model's output: the (N, D) embeddings.
OUTPUT_NAME = "embeddings"
#: Largest width, image side and token count a manifest may declare (checked before anything is allocated).
MAX_WIDTH = 1 << 20
MAX_IMAGE_SIZE = 1 << 14
MAX_TOKENS = 1 << 16
SAFE_EXPONENT = 40


def _rows(mask: np.ndarray) -> str:
    """The rows ``mask`` marks, in words: ``"2 rows (3, 7)"``, at most 5 listed."""
    found = np.flatnonzero(mask)
    shown = ", ".join(map(str, found[:5].tolist())) + (", ..." if len(found) > 5 else "")
    return f"{len(found)} row{'s' if len(found) != 1 else ''} ({shown})"


def _numeric(values: Any, expected: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        raise TcdmlInputError(f"embed: expected {expected}") from None
    if array.dtype.kind not in "fiu":
        raise TcdmlInputError(f"embed: values of dtype {array.dtype}, expected {expected}")
    return array


def _refuse_non_finite(array: np.ndarray) -> None:
    if not array.size:
        return
    flat = array.reshape(len(array), -1)
    finite = np.isfinite(flat).all(axis=1) if array.dtype.kind == "f" else np.ones(len(array), bool)
    if not finite.all():
        raise TcdmlInputError(f"embed: {_rows(~finite)} contain NaN or Inf")


def check_images(values: Any, contract: dict[str, Any]) -> np.ndarray:
    """An image batch as a C-contiguous float32 (N, 3, S, S) array of finite values."""
    size = contract["image_size"]
    array = _numeric(values, f"a float32 (N, 3, {size}, {size}) image array")
    if array.ndim != 4 or array.shape[1:] != (3, size, size):
        raise TcdmlInputError(
            f"embed: image batch of shape {array.shape}, expected (N, 3, {size}, {size}) "
            "(RGB, resized, centre-cropped and normalised as the manifest's input says)"
        )
    _refuse_non_finite(array)
    with np.errstate(over="ignore"):
        array = np.ascontiguousarray(array, dtype=np.float32)
    _refuse_non_finite(array)  # float64 values beyond float32's range
    return array


def check_texts(values: Any, contract: dict[str, Any] | None = None) -> list[str]:
    """A batch of texts as a list of ``str``."""
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise TcdmlInputError("embed: expected a list of str (one text per item)")
    texts = list(values)
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise TcdmlInputError(f"embed: item {bad} is {type(texts[bad]).__name__}, expected str")
    return texts


def check_vectors(values: Any, contract: dict[str, Any]) -> np.ndarray:
    """An adapter's input batch as a C-contiguous float32 (N, input_size) array (module docstring)."""
    width = contract["input_size"]
    array = _numeric(values, f"a float32 (N, {width}) array of input embeddings")
    if array.ndim != 2 or array.shape[1] != width:
        raise TcdmlInputError(f"embed: input of shape {array.shape}, expected (N, {width}) embeddings")
    _refuse_non_finite(array)
    largest = np.abs(array.astype(np.float64, copy=False)).max(axis=1) if len(array) else np.zeros(0)
    if (largest == 0).any():
        raise TcdmlInputError(f"embed: {_rows(largest == 0)} are all zero (no direction to embed)")
    exponent = np.frexp(largest)[1]
    if np.all(np.abs(exponent) <= SAFE_EXPONENT):
        return np.ascontiguousarray(array, dtype=np.float32)
    scaled = np.ldexp(array.astype(np.float64), -exponent[:, None])  # exact powers of two
    return np.ascontiguousarray(scaled, dtype=np.float32)


def _image_contract(contract: dict[str, Any]) -> None:
    check_int("image_size", contract.get("image_size"), low=1, high=MAX_IMAGE_SIZE)
    for key in ("mean", "std"):
        values = contract.get(key)
        ok = isinstance(values, list) and len(values) == 3 and all(map(is_real, values))
        require(ok, key, values, "3 numbers")
    require(all(v > 0 for v in contract["std"]), "std", contract["std"], "positive numbers")


def _text_contract(contract: dict[str, Any]) -> None:
    tokenizer = contract.get("tokenizer")
    require(isinstance(tokenizer, str), "tokenizer", tokenizer, "a file name")
    check_int("max_length", contract.get("max_length"), low=1, high=MAX_TOKENS)
    check_int("pad_id", contract.get("pad_id", 0), low=0)
    pad_token = contract.get("pad_token", "[PAD]")
    require(isinstance(pad_token, str), "pad_token", pad_token, "a token")


def _embedding_contract(contract: dict[str, Any]) -> None:
    check_int("input_size", contract.get("input_size"), low=1, high=MAX_WIDTH)


@dataclass(frozen=True)
class InputKind:
    """One input kind (module docstring); the functions take the manifest's ``input`` contract;
    ``check_contract`` raises ``ParameterError`` naming the contract's key (``image_size``, not
    ``input.image_size``: the manifest reader adds its prefix and its file)."""

    name: str
    inputs: tuple[str, ...]
    dtype: str
    token_axis: bool
    check_contract: Callable[[dict[str, Any]], None]
    check_batch: Callable[[Any, dict[str, Any]], Any]
    graph_shape: Callable[[dict[str, Any]], tuple[list[int | None], str]]
    probe: Callable[[dict[str, Any]], dict[str, np.ndarray]]

    def dynamic_axes(self, output: str) -> dict[str, dict[int, str]]:
        """Batch axis 0 dynamic on every input and ``output``; token axis 1 too for sequences."""
        axes = {
            name: ({0: "batch", 1: "tokens"} if self.token_axis else {0: "batch"}) for name in self.inputs
        }
        return {**axes, output: {0: "batch"}}

    @property
    def onnx_type(self) -> str:
        """The ONNX type of every input: ``tensor(float)`` or ``tensor(int64)``."""
        return "tensor(float)" if self.dtype == "float32" else f"tensor({self.dtype})"


KINDS: dict[str, InputKind] = {
    "image": InputKind(
        "image",
        ("images",),
        "float32",
        False,
        _image_contract,
        check_images,
        lambda c: ([None, 3, c["image_size"], c["image_size"]], f"input.image_size={c['image_size']}"),
        lambda c: {"images": np.zeros((1, 3, c["image_size"], c["image_size"]), dtype=np.float32)},
    ),
    "text": InputKind(
        "text",
        ("input_ids", "attention_mask"),
        "int64",
        True,
        _text_contract,
        check_texts,
        lambda c: ([None, None], "input.kind='text'"),
        lambda c: {
            "input_ids": np.full((1, 1), c.get("pad_id", 0), np.int64),
            "attention_mask": np.ones((1, 1), np.int64),
        },
    ),
    "embedding": InputKind(
        "embedding",
        ("inputs",),
        "float32",
        False,
        _embedding_contract,
        check_vectors,
        lambda c: ([None, c["input_size"]], f"input.input_size={c['input_size']}"),
        lambda c: {"inputs": np.ones((1, c["input_size"]), dtype=np.float32)},
    ),
}
#: Model input names by input kind (ONNX graph inputs, in order).
INPUT_NAMES: dict[str, tuple[str, ...]] = {name: kind.inputs for name, kind in KINDS.items()}
