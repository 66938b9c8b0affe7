"""Argument checks shared by every public entry point.

Every message names the argument, what was expected and the value received,
in the form ``"`name` must be <expected>. Received: name=<value>"``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def _fail(name: str, expected: str, value: Any, error: type[Exception] = ValueError):
    raise error(f"`{name}` must be {expected}. Received: {name}={value!r}")


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    strictly_positive: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a float after checking it is a finite real number.

    Raises ``TypeError`` for non-numbers (and bools), ``ValueError`` for NaN,
    infinity (unless ``allow_inf``) and values below ``minimum`` (or not
    above 0 when ``strictly_positive``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, "a real number", value, TypeError)
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        _fail(name, "a finite number", value)
    if strictly_positive and value <= 0:
        _fail(name, "a positive number", value)
    if minimum is not None and value < minimum:
        _fail(name, f"a number >= {minimum:g}", value)
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int after checking it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        _fail(name, expected, value, TypeError)
    value = int(value)
    if minimum is not None and value < minimum:
        _fail(name, f"an integer >= {minimum}", value)
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` after checking it is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        _fail(name, f"one of {options}", value)
    return value
