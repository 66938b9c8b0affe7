"""The base of gamma schedules: one formula, evaluated as a Python float or in `keras.ops`."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["GammaSchedule"]


def check_count(count: Any) -> float:
    if isinstance(count, bool):
        raise TypeError(f"`count` must be a number >= 0. Received: count={count!r}")
    try:
        value = float(count)
    except (TypeError, ValueError):
        raise TypeError(f"`count` must be a number >= 0. Received: count={count!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`count` must be a finite number >= 0. Received: count={count!r}")
    return value


def power(base: float, k: Any, xp: Any) -> Any:
    """``base ** k`` for whole numbers ``k``, as exact as the evaluation's precision allows.

    In float32 (``xp`` is `keras.ops`) a base that float32 holds exactly (2,
    1.5, 1.25...) is raised directly, so its exact powers stay exact; any
    other base (1.05) would carry its own rounding ``k`` times, so the power
    is ``exp(k * log(base))`` with the logarithm taken in float64.
    """
    if xp is np or float(np.float32(base)) == base:
        return xp.power(base, k)
    return xp.exp(k * math.log(base))


class GammaSchedule:
    """Base class: one `formula`, evaluated as a Python float or in `keras.ops`.

    Subclasses implement ``formula(count, xp)`` (``count`` >= 0, a float64
    NumPy value or a float32 tensor; ``xp`` is `numpy` or `keras.ops`) and
    ``get_config`` returning exactly their constructor arguments.
    """

    def formula(self, count: Any, xp: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, count: float) -> float:
        """gamma at ``count`` (a number >= 0) as a Python float (float64)."""
        return float(self.formula(np.float64(check_count(count)), np))

    def ops_value(self, count: Any) -> Any:
        """The schedule at a tensor ``count`` (>= 0), as a float32 tensor of its shape.

        `keras.ops` only, so it runs inside a compiled train step on every
        backend; it equals ``self(count)`` to float32 rounding.

        Example:

        >>> import keras
        >>> from keras_lpc.schedules import Linear
        >>> float(Linear(0.0, 10.0, steps=100).ops_value(keras.ops.convert_to_tensor(25.0)))
        2.5
        """
        count = ops.cast(count, "float32")
        return ops.cast(self.formula(count, ops), "float32")

    @property
    def span(self) -> float | None:
        """Count from which the value stays constant (``None``: never)."""
        return None

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GammaSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))


def register(cls: type) -> type:
    """Register a schedule class with Keras under ``keras_lpc>Name``."""
    return keras.saving.register_keras_serializable(package="keras_lpc")(cls)
