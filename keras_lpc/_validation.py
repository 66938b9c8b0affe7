"""Argument and array checks shared by every public entry point.

Every message names the argument, what was expected and the value received,
in the form ``"`name` must be <expected>. Received: name=<value>"``.
"""

from __future__ import annotations

import importlib
import math
import numbers
from types import ModuleType
from typing import Any

import numpy as np


def _fail(name: str, expected: str, value: Any, error: type[Exception] = ValueError):
    raise error(f"`{name}` must be {expected}. Received: {name}={value!r}")


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` (an optional dependency), or raise the one "install the extra" error.

    ``purpose`` says what needs it (e.g. ``"keras_lpc.plotting"``); the message names the
    missing module and the extra to install, quoted for the shell::

        keras_lpc.plotting needs matplotlib (missing: matplotlib): pip install 'keras-lpc[plot]'

    Raises:
        ImportError: ``module`` (or one of its own dependencies) cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs {module.split('.')[0]} (missing: {err.name or module}): "
            f"pip install 'keras-lpc[{extra}]'"
        ) from err


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


def as_latents(z: Any, name: str = "z", *, flatten: bool = False) -> np.ndarray:
    """``z`` as a finite float64 array of shape (N, d), N, d >= 1.

    With ``flatten=True`` trailing axes are flattened (``(N, h, w)`` becomes
    ``(N, h * w)``); otherwise ``z`` must be 2-D. Raises ``TypeError`` for
    non-numeric input and ``ValueError`` for a wrong shape or NaN/inf.
    """
    try:
        arr = np.asarray(z)
    except (TypeError, ValueError):
        _fail(name, "a numeric array", z, TypeError)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(
            f"`{name}` must be a numeric array. Received: {name} with dtype {arr.dtype}"
        )
    if flatten and arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        shape = "(N, d) (or more axes, flattened)" if flatten else "(N, d)"
        raise ValueError(
            f"`{name}` must be a 2-D array of shape {shape}. "
            f"Received: {name} with shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"`{name}` must hold at least one sample and one feature. "
            f"Received: {name} with shape {arr.shape}"
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"`{name}` must be finite. Received: {name} with "
            f"{int(np.sum(~np.isfinite(arr)))} NaN or inf values"
        )
    return arr


def precision_of(z: Any) -> float:
    """Machine epsilon of the floating type ``z`` arrived in (float64's for integers)."""
    dtype = getattr(z, "dtype", None)
    if dtype is None:
        dtype = np.asarray(z).dtype
    try:
        return float(np.finfo(dtype).eps)
    except ValueError:  # integers, booleans: exact, so float64's rounding
        return float(np.finfo(np.float64).eps)


def as_labels(
    labels: Any,
    n: int,
    name: str = "labels",
    *,
    integer: bool = True,
    one_hot: bool = False,
    of: str = "z",
    classes: int | None = None,
    nonnegative: bool = False,
    context: str = "",
) -> np.ndarray:
    """One label per row of ``of`` (``n`` rows) as a 1-D array: the one label checker.

    ``integer=True``: integer class ids as int64 (integral floats and booleans
    accepted); otherwise any values, returned as given. ``one_hot=True`` also
    accepts one-hot / probability rows ``(n, C)`` (argmax-ed) and a ``(n, 1)``
    column. ``classes`` (a model's output count) requires ids in
    ``[0, classes)`` and one-hot rows of that width; ``nonnegative`` ids
    ``>= 0``. ``context`` starts every message (e.g. ``"`data`: "``).

    Raises:
        ValueError: naming ``name``, what it received and what is expected.
    """
    arr = np.asarray(labels)
    if one_hot and arr.ndim == 2:
        if classes is not None and arr.shape[1] not in (1, classes):
            raise ValueError(
                f"{context}`{name}` must hold one-hot rows of width {classes} (the model's "
                f"outputs). Received: {name} with shape {arr.shape}"
            )
        arr = np.argmax(arr, axis=1) if arr.shape[1] > 1 else arr.reshape(-1)
    if arr.ndim != 1 or len(arr) != n:
        extra = f" (or one-hot rows ({n}, {classes or 'C'}))" if one_hot else ""
        raise ValueError(
            f"{context}`{name}` must be a 1-D array with one label per row of `{of}` ({n})"
            f"{extra}. Received: {name} with shape {np.shape(labels)}"
        )
    if not integer:
        return arr
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if not (
            np.issubdtype(arr.dtype, np.floating)
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            raise ValueError(
                f"{context}`{name}` must hold integer class ids. Received: {name} with dtype "
                f"{arr.dtype}"
                + (f" (first values {arr[:3].tolist()})" if arr.dtype != object else "")
            )
    arr = arr.astype(np.int64, copy=False)
    if len(arr) and (classes is not None or nonnegative):
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or (classes is not None and high >= classes):
            expected = (
                ">= 0"
                if classes is None
                else f"in [0, {classes}) for the model's {classes} outputs"
            )
            raise ValueError(
                f"{context}`{name}` must hold labels {expected}. "
                f"Received: {name} with values in [{low}, {high}]"
            )
    return arr


def subsample(n: int, max_samples: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a fixed random subset of ``max_samples`` of ``n`` rows.

    ``None`` when no subset is needed (``max_samples`` is ``None`` or ``>= n``).
    The same ``(n, max_samples, seed)`` always gives the same rows.
    """
    if max_samples is None or n <= max_samples:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))


def standardize(z: np.ndarray) -> np.ndarray:
    """Zero mean, unit (population) variance per feature; constant features are only centred."""
    std = z.std(axis=0)
    return (z - z.mean(axis=0)) / np.where(std > 0, std, 1.0)


def epoch_positions(count: int, epochs: int, every: int | None = None) -> np.ndarray:
    """1-based epochs of ``count`` values logged every ``every`` epochs of ``epochs``.

    Metric callbacks with ``every=k`` log at epochs k, 2k, ..., so their
    `History` lists are shorter than those logged every epoch. With
    ``every=None`` the spacing is ``epochs // count`` (at least 1), so a
    series as long as the run (metric callbacks that log NaN on the epochs
    between computations) is at epochs 1, 2, ...
    """
    if every is None:
        every = max(1, epochs // count) if count and epochs else 1
    return every * np.arange(1, count + 1)
