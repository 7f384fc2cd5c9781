"""What the post-hoc score models share: numpy checks of embedding inputs and of stored model arrays.

Apply-time code (``scores``, ``score_matrix``, ``from_dict``) needs numpy only, so a deployment can apply a
fitted model without torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tcdml.errors import TcdmlInputError


def unit_rows(embeddings: Any, name: str, dim: int | None = None) -> np.ndarray:
    """``embeddings`` as a finite float64 N x D array with L2-normalised rows: ``x_i / ||x_i||``.

    ``TcdmlInputError`` (one line) for a non-numeric, non-2-D or empty array, NaN/Inf, an all-zero row, or
    ``D != dim`` when ``dim`` is given (the model's embedding size).
    """
    try:
        array = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError):
        raise TcdmlInputError(f"{name}: not a numeric N x D array") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise TcdmlInputError(f"{name}: expected a non-empty 2-D array (N x D), got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise TcdmlInputError(f"{name}: {array.shape[1]}-d embeddings, but the model was fitted on {dim}-d")
    if not np.isfinite(array).all():
        raise TcdmlInputError(f"{name}: contains NaN or Inf")
    norms = np.linalg.norm(array, axis=1)
    if (norms == 0).any():
        raise TcdmlInputError(f"{name}: row {int(np.argmax(norms == 0))} is all zeros (no direction)")
    return array / norms[:, None]


def stored_array(data: dict[str, Any], key: str, ndim: int, owner: str) -> np.ndarray:
    """``data[key]`` as a finite float64 ``ndim``-D array (``owner`` names the model in errors)."""
    if key not in data:
        raise TcdmlInputError(f"{owner}: stored model has no {key!r}")
    try:
        array = np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise TcdmlInputError(f"{owner}: stored {key!r} is not numeric") from None
    if array.ndim != ndim or array.size == 0 or not np.isfinite(array).all():
        raise TcdmlInputError(f"{owner}: stored {key!r} must be a finite non-empty {ndim}-D array")
    return array


def check_kind(data: Any, kind: str) -> None:
    """``data`` is a mapping written by ``to_dict`` of a ``kind`` model, else a one-line error."""
    if not isinstance(data, dict) or data.get("kind") != kind:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise TcdmlInputError(f"{kind}: expected a stored {kind} model (kind {kind!r}), got {found!r}")


def paired_rows(a: np.ndarray, b: np.ndarray) -> None:
    """``a`` and ``b`` hold the same number of rows (pair i = (a_i, b_i))."""
    if a.shape[0] != b.shape[0]:
        raise TcdmlInputError(f"scores: a has {a.shape[0]} rows and b {b.shape[0]}; pairs need as many")
