"""Input checks shared by the metrics: each failure is one ``TcdmlInputError`` line naming the problem.

Numbers may be Python or numpy scalars (``numbers.Real`` / ``numbers.Integral``); ``bool`` is refused where a
number is expected, and so are NaN and (where the range is open) infinities.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

from tcdml.errors import ParameterError, TcdmlInputError

_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def as_embeddings(embeddings: Any, name: str = "embeddings") -> torch.Tensor:
    """Return ``embeddings`` as a finite 2-D float tensor (N x D) with no all-zero row; device kept.

    Rows are scaled by exact powers of two where needed (``rescale_rows``), so rows around 1e19 or 1e-19,
    or float64 rows beyond float32's range, normalise like the same directions at unit scale (cosine
    similarity does not depend on a row's length). The result is float64 for float64 input, else float32.
    """
    if isinstance(embeddings, np.ndarray) and embeddings.dtype.kind not in "fiu":
        raise TcdmlInputError(f"{name}: expected floating-point values, got dtype {embeddings.dtype}")
    try:
        tensor = torch.as_tensor(embeddings)
    except (TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TcdmlInputError(f"{name}: not a numeric N x D array ({reason})") from None
    if tensor.ndim != 2:
        raise TcdmlInputError(f"{name}: expected a 2-D array (N x D), got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise TcdmlInputError(f"{name}: empty array of shape {tuple(tensor.shape)}")
    if not (tensor.is_floating_point() or tensor.dtype in _INTEGER_DTYPES):
        raise TcdmlInputError(f"{name}: expected floating-point values, got dtype {tensor.dtype}")
    if tensor.dtype != torch.float64:
        tensor = tensor.float()
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
    return rescale_rows(tensor)


#: Rows whose largest magnitude lies in [2^-40, 2^40) normalise exactly in float32 as they are.
SAFE_EXPONENT = 40


def rescale_rows(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` (finite, no zero row) with each row times the power of two putting its max-abs in [0.5, 1).

    The power is applied as two factors, each representable in the tensor's dtype, so the scaling is exact
    (up to entries far below the row's largest, which cannot matter to its direction). When every row's
    largest magnitude is within ``2^±SAFE_EXPONENT`` the tensor is returned as it is (scaling would not change
    the normalised rows).
    """
    _, exponent = torch.frexp(tensor.abs().amax(dim=1))
    if bool((exponent.abs() <= SAFE_EXPONENT).all()):
        return tensor  # float32 squares and norms neither overflow nor underflow: the same result, no copy
    first = -torch.div(exponent, 2, rounding_mode="floor")
    second = -exponent - first
    two = torch.tensor(2.0, dtype=tensor.dtype, device=tensor.device)
    return tensor * two.pow(first.to(tensor.dtype))[:, None] * two.pow(second.to(tensor.dtype))[:, None]


def as_labels(labels: Any, num_samples: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D integer numpy array of length ``num_samples``, every value kept.

    Signed and unsigned labels become int64, except unsigned labels of 2^63 or more: those stay uint64
    (an int64 cast would wrap them to negative names in the per-class table).
    """
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim != 1:
        raise TcdmlInputError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        raise TcdmlInputError(f"{name}: expected integer class labels, got dtype {array.dtype}")
    if len(array) != num_samples:
        raise TcdmlInputError(f"{name}: length {len(array)} does not match {num_samples} embeddings")
    if array.dtype == np.uint64 and len(array) and int(array.max()) > np.iinfo(np.int64).max:
        return array
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


def is_real(value: Any) -> bool:
    """A Python or numpy real number that is not a bool and not NaN."""
    return (
        isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and not math.isnan(value)
    )


def show(value: Any) -> str:
    """``value`` for a message: numbers as printed (``0.1``, not ``np.float32(0.1)``), else its repr."""
    return str(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else repr(value)


def check_integer(value: Any, name: str, low: int, high: int | None = None) -> int:
    """Check ``value`` is an integer (Python/numpy, or an integral float) in ``[low, high]``."""
    ok = is_real(value) and math.isfinite(value) and float(value).is_integer()
    if ok and low <= int(value) and (high is None or int(value) <= high):
        return int(value)
    bound = f"in [{low:,}, {high:,}]" if high is not None else f">= {low:,}"
    raise ParameterError(
        f"{name}={show(value)}: expected an integer {bound}", name, value, f"an integer {bound}"
    )


def check_far_range(far_min: Any, far_max: Any) -> tuple[float, float]:
    """Check ``0 < far_min < far_max < 1``."""
    if not (is_real(far_min) and is_real(far_max) and 0.0 < far_min < 1.0 and 0.0 < far_max < 1.0):
        raise ParameterError(
            f"far range: far_min={show(far_min)}, far_max={show(far_max)} must both lie in (0, 1)",
            "far_range",
            (far_min, far_max),
            "(far_min, far_max), both in (0, 1)",
        )
    if far_min >= far_max:
        raise ParameterError(
            f"far range: far_min={far_min} must be smaller than far_max={far_max}",
            "far_range",
            (far_min, far_max),
            "far_min < far_max",
        )
    return float(far_min), float(far_max)


def check_far_pair(far_range: Any) -> tuple[float, float]:
    """Check a ``(far_min, far_max)`` pair (see ``check_far_range``)."""
    try:
        far_min, far_max = far_range
    except (TypeError, ValueError):
        expected = "a pair (far_min, far_max)"
        raise ParameterError(
            f"far_range={far_range!r}: expected {expected}", "far_range", far_range, expected
        ) from None
    return check_far_range(far_min, far_max)


def check_open_unit(value: Any, name: str) -> float:
    """Check ``0 < value < 1`` (eps, target rates)."""
    if not (is_real(value) and 0.0 < value < 1.0):
        raise ParameterError(f"{name}={show(value)} must lie in (0, 1)", name, value, "a number in (0, 1)")
    return float(value)


def check_positive(value: Any, name: str) -> float:
    """Check ``value > 0`` and finite (beta)."""
    if not (is_real(value) and math.isfinite(value) and value > 0):
        expected = "a positive finite number"
        raise ParameterError(f"{name}={show(value)} must be {expected}", name, value, expected)
    return float(value)


#: The largest calibration grid: beyond the 16,384 default histogram bins extra thresholds add nothing,
#: and the per-class curves take (classes x thresholds x 8) bytes several times over.
MAX_THRESHOLDS = 100_000


def check_num_thresholds(num_thresholds: Any) -> int:
    """Check the calibration grid has between 2 and ``MAX_THRESHOLDS`` thresholds."""
    try:
        return check_integer(num_thresholds, "thresholds", 2, MAX_THRESHOLDS)
    except TcdmlInputError:
        expected = f"at least 2 thresholds and at most {MAX_THRESHOLDS:,}"
        message = f"thresholds={show(num_thresholds)}: the grid needs {expected}"
        raise ParameterError(message, "num_thresholds", num_thresholds, expected) from None


def check_ks(ks: Any) -> tuple[int, ...]:
    """Check the Recall@k list: positive integers, returned sorted and unique."""
    try:
        values = list(ks)
    except TypeError:
        values = None
    if (
        isinstance(ks, (str, bytes))
        or not values
        or not all(
            isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)) and k >= 1 for k in values
        )
    ):
        expected = "one or more positive integers"
        raise ParameterError(f"k={ks!r}: expected {expected}", "ks", ks, expected)
    return tuple(sorted({int(k) for k in values}))


#: The most FMR targets one evaluation reports.
MAX_FMR_TARGETS = 20


def check_fmr_targets(targets: Any, name: str = "fmr_targets") -> tuple[float, ...]:
    """Check the FMR targets of FNMR@FMR: 1 to ``MAX_FMR_TARGETS`` distinct rates in (0, 1), sorted;
    messages name the parameter ``name`` (the CLI passes ``--fmr``)."""
    try:
        values = list(targets)
    except TypeError:
        values = None
    if isinstance(targets, (str, bytes)) or not values:
        expected = "one or more rates in (0, 1), e.g. 1e-4,1e-3"
        raise ParameterError(f"{name}={targets!r}: expected {expected}", name, targets, expected)
    if len(values) > MAX_FMR_TARGETS:
        expected = f"at most {MAX_FMR_TARGETS} targets"
        raise ParameterError(f"{name}: {len(values)} targets; expected {expected}", name, targets, expected)
    for value in values:
        if not (is_real(value) and 0.0 < value < 1.0):
            message = f"{name}: {show(value)} is not a rate in (0, 1)"
            raise ParameterError(message, name, targets, "rates in (0, 1)")
    rates = [float(value) for value in values]
    repeated = sorted({rate for rate in rates if rates.count(rate) > 1})
    if repeated:
        message = f"{name}: {show(repeated[0])} is given twice; expected distinct targets"
        raise ParameterError(message, name, targets, "distinct targets")
    return tuple(sorted(rates))


def check_device(name: Any) -> torch.device:
    """The compute device named by the user (``cpu``, ``cuda``, ``cuda:1``, ``mps``), checked to exist."""

    def refuse(problem: str, expected: str) -> ParameterError:
        return ParameterError(f"device={name!r}: {problem}", "device", name, expected)

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise refuse("not a torch device name (e.g. cpu, cuda, cuda:1)", "a torch device name") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise refuse("CUDA is not available on this machine", "a device of this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise refuse(f"this machine has {count} CUDA device(s)", "a device of this machine")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise refuse("MPS is not available on this machine", "a device of this machine")
    elif device.type != "cpu":
        raise refuse("expected cpu, cuda[:N] or mps", "cpu, cuda[:N] or mps")
    return device
