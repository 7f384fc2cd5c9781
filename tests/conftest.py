"""Shared test data: seeded, generated here (no downloads)."""

from __future__ import annotations

import os
import shutil
import signal
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

# Ctrl-C tests need SIGINT to interrupt: a suite started as a background job inherits it ignored (and so would
# every process it starts); Python's own handler is restored here, and exec'd children get the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Under pytest-xdist (`make test` runs one worker per core) each worker and the processes it starts use their
# share of the cores, not all of them (no oversubscription of torch's thread pool).
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))


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
