"""Shared test data: seeded, generated here (no downloads)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import make_image_tree, tiny_config

# Tests never write to the user's cache: the default feature cache (tcdml.models.feature_store) of this
# session, and of the commands it runs, is a fresh temporary folder.
TEST_CACHE = tempfile.mkdtemp(prefix="tcdml-test-cache-")
os.environ["TCDML_CACHE"] = TEST_CACHE


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Real data: sklearn's 1,797 8x8 digits as raw-pixel embeddings (ships with scikit-learn)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny folder-per-class image tree (``make_image_tree``), built once per session."""
    return make_image_tree(tmp_path_factory.mktemp("images"))


@pytest.fixture
def config_file(image_tree: Path, tmp_path: Path) -> Path:
    """``tiny_config`` on ``image_tree`` written as YAML, its run folder under ``tmp_path``."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(image_tree, tmp_path / "run")))
    return path
