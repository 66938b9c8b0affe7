"""Gamma schedules: pure, serializable functions of an epoch or step count.

A schedule maps a count (epoch or global optimizer step, from 0) to gamma.
Because the value depends on the count alone, a run resumed with
``initial_epoch`` or `keras.callbacks.BackupAndRestore` follows the same
trajectory as an uninterrupted one.

Every schedule also reports its ``span``: the count from which its value no
longer changes (``None`` when it never settles). `keras_lpc.GammaAnnealing`
uses the span to pace a schedule to the length of the run it is given.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from keras_lpc._validation import check_float, check_int

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
]


def _count(count: Any) -> float:
    if isinstance(count, bool):
        raise TypeError(f"`count` must be a number >= 0. Received: count={count!r}")
    try:
        value = float(count)
    except (TypeError, ValueError):
        raise TypeError(f"`count` must be a number >= 0. Received: count={count!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`count` must be a finite number >= 0. Received: count={count!r}")
    return value


class GammaSchedule:
    """Base class: ``__call__(count) -> float``, ``get_config``, ``span``.

    Subclasses implement ``value(count)`` for a validated float count >= 0 and
    ``get_config`` returning exactly their constructor arguments.
    """

    def __call__(self, count: float) -> float:
        return float(self.value(_count(count)))

    def value(self, count: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

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


def _register(cls: type) -> type:
    return keras.saving.register_keras_serializable(package="keras_lpc")(cls)


@_register
class Constant(GammaSchedule):
    """``gamma(count) = value``.

    Example:

    >>> Constant(0.5)(100)
    0.5
    """

    def __init__(self, value: float) -> None:
        self.value_ = check_float("value", value, minimum=0.0)

    def value(self, count: float) -> float:
        return self.value_

    @property
    def span(self) -> float:
        return 0.0

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value_}


@_register
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

    def value(self, count: float) -> float:
        k = math.floor(count / self.every)
        if self.factor > 1:
            # Avoid overflow: past the ceiling the value is the ceiling.
            if k * math.log(self.factor) >= math.log(self.maximum / self.initial):
                return self.maximum
        return min(self.maximum, self.initial * self.factor**k)

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


@_register
class TwoPhaseExponential(GammaSchedule):
    """The authors' schedule: fast growth to ``switch``, then slower growth.

    Every ``every`` counts gamma is multiplied by ``factor`` while it is below
    ``switch`` and by ``second_factor`` once it has reached it, up to
    ``maximum``. In closed form, with ``k = count // every`` and ``k1`` the
    first ``k`` with ``initial * factor ** k >= switch``:

    ```
    gamma = initial * factor ** k                                  k <= k1
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

    def value(self, count: float) -> float:
        k = math.floor(count / self.every)
        if k <= self._k1:
            return min(self.maximum, self.initial * self.factor**k)
        if self._g1 >= self.maximum:
            return self.maximum
        steps = k - self._k1
        if steps * math.log(self.second_factor) >= math.log(self.maximum / self._g1):
            return self.maximum
        return min(self.maximum, self._g1 * self.second_factor**steps)

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


class _Ramp(GammaSchedule):
    """Shared arguments of the ramps from ``start`` to ``stop``."""

    def __init__(self, start: float, stop: float, steps: int, delay: int = 0) -> None:
        self.start = check_float("start", start, minimum=0.0)
        self.stop = check_float("stop", stop, minimum=0.0)
        self.steps = check_int("steps", steps, minimum=1)
        self.delay = check_int("delay", delay, minimum=0)

    def progress(self, count: float) -> float:
        """Fraction of the ramp done: ``clip((count - delay) / steps, 0, 1)``."""
        return min(1.0, max(0.0, (count - self.delay) / self.steps))

    @property
    def span(self) -> float:
        return float(self.delay + self.steps)

    def get_config(self) -> dict[str, Any]:
        return {"start": self.start, "stop": self.stop, "steps": self.steps, "delay": self.delay}


@_register
class Linear(_Ramp):
    """Linear ramp: ``start + (stop - start) * t``, ``t = clip((count - delay) / steps, 0, 1)``.

    Example:

    >>> Linear(0.0, 10.0, steps=100)(25)
    2.5
    """

    def value(self, count: float) -> float:
        return self.start + (self.stop - self.start) * self.progress(count)


@_register
class Cosine(_Ramp):
    """Half-cosine ramp: ``start + (stop - start) * (1 - cos(pi * t)) / 2``.

    ``t = clip((count - delay) / steps, 0, 1)``.

    Example:

    >>> round(Cosine(0.0, 10.0, steps=100)(50), 12)
    5.0
    """

    def value(self, count: float) -> float:
        t = self.progress(count)
        return self.start + (self.stop - self.start) * (1.0 - math.cos(math.pi * t)) / 2.0


@_register
class Geometric(_Ramp):
    """Smooth exponential ramp: ``start * (stop / start) ** t``.

    ``t = clip((count - delay) / steps, 0, 1)``: gamma grows by the same
    factor every count, from ``start`` (> 0) to ``stop`` (> 0). This is the
    continuous form of `Exponential` and the default shape of
    `keras_lpc.GammaAnnealing`.

    Example:

    >>> round(Geometric(1e-4, 1e4, steps=8)(2), 12)
    0.01
    """

    def __init__(self, start: float, stop: float, steps: int, delay: int = 0) -> None:
        super().__init__(start, stop, steps, delay)
        check_float("start", start, strictly_positive=True)
        check_float("stop", stop, strictly_positive=True)

    def value(self, count: float) -> float:
        t = self.progress(count)
        if t >= 1.0:
            return self.stop
        return float(self.start * math.exp(t * math.log(self.stop / self.start)))


@_register
class Polynomial(_Ramp):
    """Power ramp: ``start + (stop - start) * t ** power``, ``t = clip((count - delay) / steps, 0, 1)``.

    With ``power=2`` (the default) ``sqrt(gamma - start)`` grows linearly
    with the count. That is the shape LPC's output layer can follow: as
    gamma rises the latents shrink like ``1 / sqrt(gamma)``, so the output
    layer must grow like ``sqrt(gamma)``, and Adam grows a weight by about
    one learning rate per step, i.e. linearly. A geometric ramp instead
    asks for most of that growth in its last few counts (docs/recipe.md).

    Example:

    >>> s = Polynomial(0.0, 1e3, steps=100)
    >>> s(0), s(50), s(100), s(150)
    (0.0, 250.0, 1000.0, 1000.0)
    """

    def __init__(
        self, start: float, stop: float, steps: int, delay: int = 0, power: float = 2.0
    ) -> None:
        super().__init__(start, stop, steps, delay)
        self.power = check_float("power", power, strictly_positive=True)

    def value(self, count: float) -> float:
        return self.start + (self.stop - self.start) * self.progress(count) ** self.power

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "power": self.power}


@_register
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
        schedules = [get(s) for s in schedules]
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

    def value(self, count: float) -> float:
        start = 0
        for schedule, boundary in zip(self.schedules, self.boundaries):
            if count < boundary:
                return schedule(count - start)
            start = boundary
        return self.schedules[-1](count - start)

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


def get(identifier: Any) -> GammaSchedule:
    """Return a `GammaSchedule` from a schedule, a number or a serialized config.

    A plain number gives `Constant(number)`; a dict is deserialized.
    """
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
