"""Every ``>>>`` example in a tcdml docstring runs and prints what it says (torchmetrics' habit)."""

import doctest
import importlib
import pkgutil

import pytest

import tcdml

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(tcdml.__path__, "tcdml.")
    if ">>>" in (importlib.util.find_spec(info.name).loader.get_source(info.name) or "")
)


def test_the_examples_are_found():
    assert "tcdml.checks" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
