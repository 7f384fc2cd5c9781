"""The shared parameter checks (tcdml.checks): one definition of each rule, one error shape."""

import math

import numpy as np
import pytest

from tcdml.checks import check_bool, check_choice, check_int, check_real, check_text, fits, is_int, is_real
from tcdml.errors import ParameterError


@pytest.mark.parametrize("value", [1, np.int64(3), -2])
def test_integers(value):
    assert is_int(value)


@pytest.mark.parametrize("value", [True, np.bool_(True), 1.0, "1", None])
def test_not_integers(value):
    assert not is_int(value)


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.1), -3])
def test_reals(value):
    assert is_real(value)


@pytest.mark.parametrize("value", [True, math.nan, math.inf, "0.1", None, 10**400])
def test_not_finite_reals(value):
    assert not is_real(value)


def test_infinite_reals_when_allowed():
    assert is_real(math.inf, finite=False) and is_real(10**400, finite=False)
    assert not is_real(math.nan, finite=False)


def test_check_real_interval_and_message():
    assert check_real("eps", np.float32(0.25), low=0, high=1, open_low=True) == 0.25
    with pytest.raises(ParameterError) as caught:
        check_real("eps", 1.5, low=0, high=1, open_low=True)
    assert (caught.value.name, caught.value.value) == ("eps", 1.5)
    assert str(caught.value) == "eps=1.5: expected a number in (0, 1]"
    with pytest.raises(ParameterError, match=r"lr=0: expected a number > 0"):
        check_real("lr", 0, low=0, open_low=True)


def test_check_int_refuses_bools_and_names_bounds():
    assert check_int("k", np.int32(4), low=1) == 4
    with pytest.raises(ParameterError, match=r"k=True: expected an integer >= 1"):
        check_int("k", True, low=1)
    with pytest.raises(ParameterError, match=r"expected an integer in \[1, 10\]"):
        check_int("k", 11, low=1, high=10)


def test_other_checks():
    assert check_bool("hflip", False) is False
    assert check_choice("mode", "max", ("max", "min")) == "max"
    assert check_text("name", "a") == "a"
    for call in (
        lambda: check_bool("hflip", 1),
        lambda: check_choice("mode", "up", ("max", "min")),
        lambda: check_text("name", " "),
    ):
        with pytest.raises(ParameterError):
            call()


def test_renamed_keeps_value_and_expectation():
    with pytest.raises(ParameterError) as caught:
        check_real("eps", -1, low=0, high=1)
    renamed = caught.value.renamed("eval.eps")
    assert (renamed.name, renamed.value, renamed.expected) == ("eval.eps", -1, caught.value.expected)
    assert str(renamed).startswith("eval.eps=-1: expected")


def test_fits_annotations():
    assert fits([0.1, 1], tuple[float, float]) and fits(None, int | None) and fits(3, float)
    assert not fits(True, int) and not fits("a", float) and not fits([1, "a"], tuple[int, ...])
