"""Real embeddings for the adapter tests: sklearn's digits (1,797 x 64 pixel vectors, 10 classes)."""

from __future__ import annotations

import numpy as np
import pytest

from tcdml.adapt.settings import AdaptSettings

#: Small and fast: 12 classes-slots of 4 per batch, a 32-wide residual head.
FAST = {"batch_size": 48, "m_per_class": 4, "hidden": 32}


@pytest.fixture(scope="session")
def digit_pixels() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


def fast(**changes) -> AdaptSettings:
    """``AdaptSettings`` for tests: small batches and head, 3 epochs unless changed."""
    return AdaptSettings(**{"epochs": 3, **FAST, **changes})
