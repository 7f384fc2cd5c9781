"""Shared test data: seeded, generated here (no downloads)."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest

# Tests never write to the user's cache: the default feature cache (tcdml.models.feature_store) of this
# session, and of the commands it runs, is a fresh temporary folder.
TEST_CACHE = tempfile.mkdtemp(prefix="tcdml-test-cache-")
os.environ["TCDML_CACHE"] = TEST_CACHE


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


def clustered_embeddings(
    class_sizes: list[int], dim: int = 16, spread: float | list[float] = 0.6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters around random unit centres; per-class ``spread`` makes classes unequally compact."""
    rng = np.random.default_rng(seed)
    spreads = np.broadcast_to(np.asarray(spread, dtype=float), (len(class_sizes),))
    parts, labels = [], []
    for label, (size, sigma) in enumerate(zip(class_sizes, spreads, strict=True)):
        centre = rng.normal(size=dim)
        centre /= np.linalg.norm(centre)
        parts.append(centre + sigma * rng.normal(size=(size, dim)) / np.sqrt(dim))
        labels.append(np.full(size, label))
    return np.concatenate(parts).astype(np.float32), np.concatenate(labels).astype(np.int64)


@pytest.fixture
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Real data: sklearn's 1,797 8x8 digits as raw-pixel embeddings (ships with scikit-learn)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)
