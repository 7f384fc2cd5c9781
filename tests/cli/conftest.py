"""Fixtures the CLI tests share with the training tests (a tiny image tree and its config)."""

from tests.training.conftest import config_file, image_tree  # noqa: F401
