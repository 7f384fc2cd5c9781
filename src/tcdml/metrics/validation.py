"""Input checks shared by the metrics: each failure is one ``TcdmlInputError`` line naming the problem."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from tcdml.errors import TcdmlInputError


def as_embeddings(embeddings: Any, name: str = "embeddings") -> torch.Tensor:
    """Return ``embeddings`` as a finite 2-D float tensor (N x D) with no all-zero row; device kept."""
    tensor = torch.as_tensor(embeddings)
    if tensor.ndim != 2:
        raise TcdmlInputError(f"{name}: expected a 2-D array (N x D), got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise TcdmlInputError(f"{name}: empty array of shape {tuple(tensor.shape)}")
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64, torch.int16)):
        raise TcdmlInputError(f"{name}: expected floating-point values, got dtype {tensor.dtype}")
    tensor = tensor.float() if tensor.dtype != torch.float64 else tensor
    finite = torch.isfinite(tensor).all(dim=1)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0])
        count = int((~finite).sum())
        raise TcdmlInputError(f"{name}: {count} row(s) contain NaN or Inf (first: row {bad})")
    zero = (tensor == 0).all(dim=1)
    if bool(zero.any()):
        bad = int(zero.nonzero()[0, 0])
        raise TcdmlInputError(
            f"{name}: {int(zero.sum())} all-zero row(s) cannot be L2-normalised (first: row {bad})"
        )
    return tensor


def as_labels(labels: Any, num_samples: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D int64 numpy array of length ``num_samples``."""
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim != 1:
        raise TcdmlInputError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        raise TcdmlInputError(f"{name}: expected integer class labels, got dtype {array.dtype}")
    if len(array) != num_samples:
        raise TcdmlInputError(f"{name}: length {len(array)} does not match {num_samples} embeddings")
    return array.astype(np.int64, copy=False)


def as_mask(mask: Any, num_samples: int, name: str) -> np.ndarray:
    """Return an optional boolean mask as a numpy bool array of length ``num_samples`` (all True if None)."""
    if mask is None:
        return np.ones(num_samples, dtype=bool)
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim != 1 or len(array) != num_samples:
        raise TcdmlInputError(f"{name}: expected shape ({num_samples},), got {array.shape}")
    if array.dtype != np.bool_:
        raise TcdmlInputError(f"{name}: expected a bool mask, got dtype {array.dtype}")
    if not array.any():
        raise TcdmlInputError(f"{name}: selects no sample")
    return array


def check_far_range(far_min: float, far_max: float) -> tuple[float, float]:
    """Check ``0 < far_min < far_max < 1``."""
    if not (0.0 < far_min < 1.0) or not (0.0 < far_max < 1.0):
        raise TcdmlInputError(f"far range: far_min={far_min}, far_max={far_max} must both lie in (0, 1)")
    if far_min >= far_max:
        raise TcdmlInputError(f"far range: far_min={far_min} must be smaller than far_max={far_max}")
    return float(far_min), float(far_max)


def check_open_unit(value: float, name: str) -> float:
    """Check ``0 < value < 1`` (eps, target rates)."""
    if not (isinstance(value, (int, float)) and 0.0 < value < 1.0) or math.isnan(value):
        raise TcdmlInputError(f"{name}={value} must lie in (0, 1)")
    return float(value)


def check_positive(value: float, name: str) -> float:
    """Check ``value > 0`` and finite (beta)."""
    if not (math.isfinite(value) and value > 0):
        raise TcdmlInputError(f"{name}={value} must be a positive finite number")
    return float(value)


def check_num_thresholds(num_thresholds: int) -> int:
    """Check the calibration grid has at least 2 thresholds."""
    if int(num_thresholds) != num_thresholds or num_thresholds < 2:
        raise TcdmlInputError(f"thresholds={num_thresholds}: the grid needs at least 2 thresholds")
    return int(num_thresholds)


def check_ks(ks: Any) -> tuple[int, ...]:
    """Check the Recall@k list: positive integers, returned sorted and unique."""
    values = tuple(sorted({int(k) for k in ks}))
    if not values or any(k < 1 for k in values) or any(int(k) != k for k in ks):
        raise TcdmlInputError(f"k={list(ks)}: expected one or more positive integers")
    return values
