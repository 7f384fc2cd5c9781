"""OPIS and eps-OPIS from a (T classes x K thresholds) utility matrix (docs/spec.md: "OPIS and epsilon-OPIS").

Per-class / per-threshold arrays come out of the ``*_per_*`` functions; the scores reduce them.
"""

from __future__ import annotations

import math

import numpy as np

from tcdml.errors import TcdmlInputError


def opis_per_class(utilities: np.ndarray) -> np.ndarray:
    """(T,) ``mean_k (U_c(t_k) - Ubar(t_k))^2`` with ``Ubar(t) = mean_c U_c(t)``."""
    utilities = _check(utilities)
    return ((utilities - utilities.mean(axis=0, keepdims=True)) ** 2).mean(axis=1)


def opis(utilities: np.ndarray) -> float:
    """``OPIS = (1/T) sum_c mean_k (U_c(t_k) - Ubar(t_k))^2``; in [0, 1] since utilities lie in [0, 1]."""
    return float(opis_per_class(utilities).mean())


def worst_count(eps: float, num_classes: int) -> int:
    """``ceil(eps * T)``, the size of the worst group (round-off guarded: 10 % of 30 classes is 3, not 4)."""
    return math.ceil(round(eps * num_classes, 9))


def check_worst_group(eps: float, num_classes: int) -> int:
    """``worst_count(eps, num_classes)``, refused when it leaves no class in the rest (one line)."""
    worst = worst_count(eps, num_classes)
    if worst >= num_classes:
        raise TcdmlInputError(
            f"eps={eps} puts all {num_classes} classes with positive pairs in the worst group; "
            "eps-OPIS needs at least one class in the rest"
        )
    return worst


def worst_rest_gap(utilities: np.ndarray, eps: float) -> np.ndarray:
    """(K,) ``W(t_k) - R(t_k)``: mean of the lowest ``ceil(eps T)`` utilities minus the mean of the others."""
    utilities = _check(utilities)
    worst = check_worst_group(eps, utilities.shape[0])
    ordered = np.sort(utilities, axis=0)
    return ordered[:worst].mean(axis=0) - ordered[worst:].mean(axis=0)


def eps_opis(utilities: np.ndarray, eps: float = 0.1) -> float:
    """``eps-OPIS = mean_k (W(t_k) - R(t_k))^2`` (``eps = 0.1``: "10%-OPIS")."""
    return float((worst_rest_gap(utilities, eps) ** 2).mean())


def _check(utilities: np.ndarray) -> np.ndarray:
    utilities = np.asarray(utilities, dtype=np.float64)
    if utilities.ndim != 2 or utilities.shape[0] == 0 or utilities.shape[1] == 0:
        raise TcdmlInputError(
            f"utilities: expected a non-empty (classes x thresholds) array, got {utilities.shape}"
        )
    if np.isnan(utilities).any():
        raise TcdmlInputError("utilities: NaN values (classes without positive pairs must be left out first)")
    return utilities
