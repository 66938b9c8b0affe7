"""Gamma schedules: pure, serializable functions of a step (or epoch) count.

A schedule maps a count (from 0) to gamma. Its formula is written **once**,
in `formula(count, xp)`, against the NumPy API that `keras.ops` mirrors
(``xp.minimum``, ``xp.where``, ``xp.exp``...). Evaluated with ``xp=keras.ops``
on a float32 tensor it runs inside the compiled train step
(`GammaSchedule.ops_value`, what `keras_lpc.LatentPointCollapse` uses);
evaluated with ``xp=numpy`` on a float64 number it gives the Python float of
``schedule(count)``. The two agree to float32 rounding
(tests/test_schedules.py). Because the value depends on the count alone, a
resumed run follows the same trajectory as an uninterrupted one.

Every schedule also reports its ``span``: the count from which its value
no longer changes (``None`` when it never settles); stretching a schedule
to a run's length (`keras_lpc.GammaAnnealing`'s ``ramp_fraction``) uses it.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_lpc._validation import check_float, check_int
from keras_lpc.annealing.base import GammaSchedule, power, register
from keras_lpc.annealing.ramps import Cosine, Geometric, Linear, Polynomial

__all__ = [
    "GammaSchedule",
    "Constant",
    "Exponential",
    "TwoPhaseExponential",
    "Linear",
    "Cosine",
    "Geometric",
    "Polynomial",
    "Join",
    "get",
    "ops_value",
    "in_graph",
    "value",
]


@register
class Constant(GammaSchedule):
    """``gamma(count) = value``.

    Example:

    >>> Constant(0.5)(100)
    0.5
    """

    def __init__(self, value: float) -> None:
        self.value_ = check_float("value", value, minimum=0.0)

    def formula(self, count: Any, xp: Any) -> Any:
        return xp.zeros_like(count) + self.value_

    @property
    def span(self) -> float:
        return 0.0

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value_}


@register
class Exponential(GammaSchedule):
    """Stepwise exponential growth with a ceiling.

    ```
    gamma(count) = min(maximum, initial * factor ** (count // every))
    ```

    Args:
        initial: gamma at count 0, > 0.
        factor: growth per ``every`` counts, > 0 (< 1 decays).
        every: counts between two multiplications, an integer >= 1.
        maximum: ceiling, >= ``initial``.

    Example:

    >>> s = Exponential(initial=0.01, factor=1.05, every=1, maximum=1e6)
    >>> round(s(10), 6)
    0.016289
    """

    def __init__(
        self, initial: float = 1e-2, factor: float = 1.05, every: int = 1, maximum: float = 1e6
    ) -> None:
        self.initial = check_float("initial", initial, strictly_positive=True)
        self.factor = check_float("factor", factor, strictly_positive=True)
        self.every = check_int("every", every, minimum=1)
        self.maximum = check_float("maximum", maximum, minimum=self.initial)

    def formula(self, count: Any, xp: Any) -> Any:
        k = xp.floor(count / self.every)
        if self.factor > 1:  # factor ** k overflows past the ceiling: cap k first
            k = xp.minimum(k, self._k_max)
        return xp.minimum(self.maximum, self.initial * power(self.factor, k, xp))

    @property
    def _k_max(self) -> float:
        return math.ceil(math.log(self.maximum / self.initial) / math.log(self.factor)) + 1.0

    @property
    def span(self) -> float | None:
        if self.factor <= 1:
            return 0.0 if self.factor == 1 else None
        if self.maximum == self.initial:
            return 0.0
        k = math.ceil(math.log(self.maximum / self.initial) / math.log(self.factor) - 1e-9)
        return float(k * self.every)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial": self.initial,
            "factor": self.factor,
            "every": self.every,
            "maximum": self.maximum,
        }


@register
class TwoPhaseExponential(GammaSchedule):
    """The authors' schedule: fast growth to ``switch``, then slower growth.

    Every ``every`` counts gamma is multiplied by ``factor`` while it is below
    ``switch`` and by ``second_factor`` once it has reached it, up to
    ``maximum``. In closed form, with ``k = count // every`` and ``k1`` the
    first ``k`` with ``initial * factor ** k >= switch``:

    ```
    gamma = min(maximum, initial * factor ** k)                       k <= k1
    gamma = min(maximum, initial * factor ** k1 * second_factor ** (k - k1))
    ```

    The defaults are the paper's (latest version): 1e-4, x2 every 5 epochs
    up to 1e3, then x1.25 every 5 epochs up to 1e6. gamma first exceeds 1e3
    at epoch 120 and reaches 1e6 at epoch 265.

    Example:

    >>> s = TwoPhaseExponential()
    >>> s(0), round(s(120), 2), s(265)
    (0.0001, 1677.72, 1000000.0)
    """

    def __init__(
        self,
        initial: float = 1e-4,
        factor: float = 2.0,
        switch: float = 1e3,
        second_factor: float = 1.25,
        maximum: float = 1e6,
        every: int = 5,
    ) -> None:
        self.initial = check_float("initial", initial, strictly_positive=True)
        self.factor = check_float("factor", factor, strictly_positive=True)
        if self.factor <= 1:
            raise ValueError(f"`factor` must be a number > 1. Received: factor={factor!r}")
        self.switch = check_float("switch", switch, minimum=self.initial)
        self.second_factor = check_float("second_factor", second_factor, strictly_positive=True)
        if self.second_factor <= 1:
            raise ValueError(
                f"`second_factor` must be a number > 1. Received: second_factor={second_factor!r}"
            )
        self.maximum = check_float("maximum", maximum, minimum=self.initial)
        self.every = check_int("every", every, minimum=1)
        ratio = self.switch / self.initial
        self._k1 = max(0, math.ceil(math.log(ratio) / math.log(self.factor) - 1e-9))
        self._g1 = self.initial * self.factor**self._k1

    def formula(self, count: Any, xp: Any) -> Any:
        k = xp.floor(count / self.every)
        first = xp.minimum(
            self.maximum, self.initial * power(self.factor, xp.minimum(k, self._k1), xp)
        )
        if self._g1 >= self.maximum:
            return first
        cap = math.ceil(math.log(self.maximum / self._g1) / math.log(self.second_factor)) + 1.0
        steps = xp.clip(k - self._k1, 0.0, cap)
        second = xp.minimum(self.maximum, self._g1 * power(self.second_factor, steps, xp))
        return xp.where(k <= self._k1, first, second)

    @property
    def span(self) -> float:
        if self._g1 >= self.maximum:
            k = math.ceil(math.log(self.maximum / self.initial) / math.log(self.factor) - 1e-9)
            return float(k * self.every)
        k2 = math.ceil(math.log(self.maximum / self._g1) / math.log(self.second_factor) - 1e-9)
        return float((self._k1 + k2) * self.every)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial": self.initial,
            "factor": self.factor,
            "switch": self.switch,
            "second_factor": self.second_factor,
            "maximum": self.maximum,
            "every": self.every,
        }


@register
class Join(GammaSchedule):
    """Run ``schedules[i]`` from ``boundaries[i - 1]`` to ``boundaries[i]``.

    Each piece counts from its own start: piece ``i`` sees
    ``count - boundaries[i - 1]``.

    Example:

    >>> s = Join([Constant(0.0), Linear(0.0, 1.0, steps=10)], boundaries=[5])
    >>> s(4), s(10)
    (0.0, 0.5)
    """

    def __init__(self, schedules: list[Any], boundaries: list[int]) -> None:
        schedules = [_as_gamma_schedule(s) for s in schedules]
        if not isinstance(boundaries, (list, tuple)):
            raise TypeError(
                f"`boundaries` must be a list of increasing integers. Received: boundaries={boundaries!r}"
            )
        boundaries = [check_int("boundaries", b, minimum=0) for b in boundaries]
        if len(boundaries) != len(schedules) - 1:
            raise ValueError(
                "`boundaries` must have one entry fewer than `schedules` "
                f"({len(schedules) - 1}). Received: boundaries={boundaries!r}"
            )
        if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(
                f"`boundaries` must be strictly increasing. Received: boundaries={boundaries!r}"
            )
        self.schedules = schedules
        self.boundaries = boundaries

    def formula(self, count: Any, xp: Any) -> Any:
        starts = [0, *self.boundaries]
        value = self.schedules[-1].formula(xp.maximum(count - starts[-1], 0.0), xp)
        # From the last piece back: piece i applies below boundaries[i].
        for i in range(len(self.boundaries) - 1, -1, -1):
            piece = self.schedules[i].formula(xp.maximum(count - starts[i], 0.0), xp)
            value = xp.where(count < self.boundaries[i], piece, value)
        return value

    @property
    def span(self) -> float | None:
        last = self.schedules[-1].span
        start = self.boundaries[-1] if self.boundaries else 0
        return None if last is None else float(start + last)

    def get_config(self) -> dict[str, Any]:
        ser = keras.saving.serialize_keras_object
        return {"schedules": [ser(s) for s in self.schedules], "boundaries": list(self.boundaries)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Join:
        deser = keras.saving.deserialize_keras_object
        schedules = [deser(s) if isinstance(s, dict) else s for s in config["schedules"]]
        return cls(schedules, config["boundaries"])


def _as_gamma_schedule(identifier: Any) -> GammaSchedule:
    """A `GammaSchedule` from a schedule, a number or a serialized config (else TypeError)."""
    if isinstance(identifier, GammaSchedule):
        return identifier
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, GammaSchedule):
            return obj
    elif not isinstance(identifier, bool) and isinstance(identifier, (int, float)):
        return Constant(identifier)
    raise TypeError(
        "`schedule` must be a keras_lpc.schedules.GammaSchedule, a number or a "
        f"serialized schedule. Received: schedule={identifier!r}"
    )


def get(identifier: Any) -> Any:
    """Return a schedule from a schedule, a number, a serialized config or a callable.

    * a `GammaSchedule` is returned as is; a plain number gives
      ``Constant(number)``; a dict is deserialized (a keras_lpc schedule or a
      `keras.optimizers.schedules.LearningRateSchedule` config);
    * a `keras.optimizers.schedules.LearningRateSchedule` or any other
      callable ``count -> float`` is returned as is.

    A `GammaSchedule` and a ``LearningRateSchedule`` can be evaluated inside
    the compiled train step (`in_graph`); other callables cannot.

    Example:

    >>> get(0.5), get({"class_name": "Constant", "config": {"value": 2.0},
    ...                "module": None, "registered_name": "keras_lpc>Constant"})
    (Constant(value=0.5), Constant(value=2.0))
    """
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, (GammaSchedule, keras.optimizers.schedules.LearningRateSchedule)):
            return obj
    elif isinstance(identifier, GammaSchedule) or (
        callable(identifier) and not isinstance(identifier, type)
    ):
        return identifier
    return _as_gamma_schedule(identifier)


def in_graph(schedule: Any) -> bool:
    """Whether `ops_value` can evaluate ``schedule`` inside a compiled train step.

    True for keras_lpc schedules and `keras.optimizers.schedules.LearningRateSchedule`
    (both computed with `keras.ops`); False for other callables, which run in
    Python only.

    Example:

    >>> in_graph(Linear(0.0, 1.0, steps=10)), in_graph(lambda count: 2.0 * count)
    (True, False)
    """
    return isinstance(schedule, (GammaSchedule, keras.optimizers.schedules.LearningRateSchedule))


def ops_value(schedule: Any, count: Any) -> Any:
    """``schedule(count)`` for a tensor count, as a float32 tensor (`keras.ops` only).

    Args:
        schedule: a `GammaSchedule` or a `keras.optimizers.schedules.LearningRateSchedule`.
        count: a float tensor (or number) >= 0.

    Returns:
        A float32 tensor of the shape of ``count``.

    Example:

    >>> float(ops_value(Polynomial(0.0, 1e3, steps=100), 50.0))
    250.0
    """
    if isinstance(schedule, GammaSchedule):
        return schedule.ops_value(count)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return ops.cast(schedule(ops.cast(count, "float32")), "float32")
    raise TypeError(
        "`schedule` must be a keras_lpc schedule or a keras LearningRateSchedule to be "
        f"evaluated in keras.ops. Received: schedule={schedule!r}"
    )


def value(schedule: Any, count: float) -> float:
    """``schedule(count)`` as a validated Python float, for any schedule or callable.

    Raises:
        TypeError: the schedule did not return a number.
        ValueError: it returned a negative or non-finite number.

    Example:

    >>> value(Linear(0.0, 10.0, steps=100), 50), value(lambda n: 2.0 * n, 3)
    (5.0, 6.0)
    """
    raw = schedule(count)
    try:
        result = float(ops.convert_to_numpy(raw))
    except (TypeError, ValueError):
        raise TypeError(
            f"`schedule` must return a number. Received: schedule({count!r})={raw!r}"
        ) from None
    if not math.isfinite(result) or result < 0:
        raise ValueError(
            f"`schedule` must return a finite number >= 0. Received: schedule({count!r})={result!r}"
        )
    return result
