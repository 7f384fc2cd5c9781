"""The shared parameter checks: every settings object checks its values through these.

Each check raises ``ParameterError(name, value, expected)`` in the parameter's own vocabulary; a front end
renames, never re-parses: a config loader turns ``name`` into its dotted key (``eval.eps``), the CLI into its
option (``--eps``), with ``ParameterError.renamed``. The predicates (``is_int``, ``is_real``) are the one
definition of "an integer, not a bool" and "a real number, not a bool" for the whole package.

>>> check_real("eps", 0.1, low=0.0, high=1.0, open_low=True)
0.1
>>> try:
...     check_int("k", True, low=1)
... except ParameterError as exc:
...     print(exc.name, "|", exc)
k | k=True: expected an integer >= 1
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Collection
from typing import Any

from tcdml.errors import ParameterError


def is_int(value: Any) -> bool:
    """A Python or numpy integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any, *, finite: bool = True) -> bool:
    """A Python or numpy real number that is not a bool (nor NaN; nor infinite when ``finite``)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        number = float(value)
    except (OverflowError, ValueError):  # a huge integer: real, but not finite as a float
        return not finite
    return math.isfinite(number) if finite else not math.isnan(number)


def require(ok: bool, name: str, value: Any, expected: str) -> None:
    """Raise ``ParameterError(name, value, expected)`` unless ``ok``."""
    if not ok:
        raise ParameterError.of(name, value, expected)


def interval_text(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    """``[0, 1)``, ``>= 0``, ``> 0``, ``<= 1`` ... as a message reads it."""
    if low is not None and high is not None:
        return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if low is not None:
        return f"{'>' if open_low else '>='} {low:g}"
    if high is not None:
        return f"{'<' if open_high else '<='} {high:g}"
    return "finite"


def in_interval(value: float, low: float | None, high: float | None, open_low: bool, open_high: bool) -> bool:
    """Whether ``value`` lies in the interval the bounds describe (None: unbounded on that side)."""
    if low is not None and not (value > low if open_low else value >= low):
        return False
    return high is None or (value < high if open_high else value <= high)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
    what: str = "a number",
) -> float:
    """A finite real number (not a bool) in the interval; returned as a float."""
    ok = is_real(value) and in_interval(float(value), low, high, open_low, open_high)
    bounds = interval_text(low, high, open_low, open_high)
    require(ok, name, value, what if bounds == "finite" else f"{what} {bounds}")
    return float(value)


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (Python or numpy, not a bool) in ``[low, high]``; returned as an int."""
    ok = is_int(value) and in_interval(int(value), low, high, False, False)
    if low is not None and high is not None:
        expected = f"an integer in [{low}, {high}]"
    elif low is not None:
        expected = f"an integer >= {low}"
    else:
        expected = "an integer" if high is None else f"an integer <= {high}"
    require(ok, name, value, expected)
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``True`` or ``False`` (not 0 / 1, not a string)."""
    require(isinstance(value, bool), name, value, "true or false")
    return value


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """One of ``choices``."""
    require(isinstance(value, str) and value in choices, name, value, f"one of {', '.join(choices)}")
    return value


def check_text(name: str, value: Any) -> str:
    """A non-empty string."""
    require(isinstance(value, str) and value.strip() != "", name, value, "a non-empty string")
    return value


def fits(value: Any, hint: Any) -> bool:
    """Whether a plain (YAML / JSON) value fits a type annotation: lists stand for tuples, an int is a valid
    float, a bool is not an int."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (tuple, list):
        args = [arg for arg in typing.get_args(hint) if arg is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(fits(item, args[0]) for item in value if args)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return is_real(value, finite=False)
    if hint is int:
        return is_int(value)
    return not isinstance(hint, type) or isinstance(value, hint)


def type_name(hint: Any) -> str:
    """A type annotation as a message reads it (``int | None``, ``tuple[float, float]``)."""
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
