"""Fixtures the CLI tests share with the library tests (a tiny image tree and its config; digits)."""

from tests.adapt.conftest import digit_pixels  # noqa: F401
from tests.training.conftest import config_file, image_tree  # noqa: F401
