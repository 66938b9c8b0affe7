"""Gamma schedules: pure, serializable functions of an epoch or step count.

A schedule maps a count (epoch or global optimizer step, from 0) to gamma.
Because the value depends on the count alone, a run resumed with
``initial_epoch`` or `keras.callbacks.BackupAndRestore` follows the same
trajectory as an uninterrupted one.

Every schedule also reports its ``span``: the count from which its value no
longer changes (``None`` when it never settles). `keras_lpc.GammaAnnealing`
uses the span to pace a schedule to the length of the run it is given.

Every schedule has two evaluations: ``schedule(count)``, a Python float
(float64 arithmetic, validated count), and ``schedule.ops_value(count)``, a
float32 tensor computed with `keras.ops` from a tensor count. The second is
what `keras_lpc.LatentPointCollapse` runs inside the compiled train step;
the two agree to float32 rounding (tests/test_schedules.py).

The policy of the default run also lives here: `default_schedule` (the
ramp `GammaAnnealing()` uses) and `gamma_budget` (the largest gamma a run
can follow).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

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
    "ops_value",
    "in_graph",
    "default_schedule",
    "gamma_budget",
    "DEFAULT_MAXIMUM",
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


def _ops_power(base: float, k: Any) -> Any:
    """``base ** k`` for a float32 tensor ``k`` of whole numbers, as close to float64 as float32 allows.

    A base that float32 holds exactly (2, 1.5, 1.25...) is raised directly, so
    its exact powers stay exact; any other base (1.05) would carry its own
    rounding ``k`` times, so the power is ``exp(k * log(base))`` with the
    logarithm taken in float64.
    """
    if float(np.float32(base)) == base:
        return ops.power(base, k)
    return ops.exp(k * math.log(base))


class GammaSchedule:
    """Base class: ``__call__(count) -> float``, ``ops_value``, ``get_config``, ``span``.

    Subclasses implement ``value(count)`` for a validated float count >= 0,
    ``_ops(count)`` for a float32 tensor count (the same formula in
    `keras.ops`) and ``get_config`` returning exactly their constructor
    arguments.
    """

    def __call__(self, count: float) -> float:
        return float(self.value(_count(count)))

    def value(self, count: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def ops_value(self, count: Any) -> Any:
        """The schedule at a tensor ``count`` (>= 0), as a float32 tensor of its shape.

        Computed with `keras.ops` only, so it runs inside a compiled train
        step on every backend; it equals ``self(count)`` to float32 rounding.

        Example:

        >>> import keras
        >>> float(Linear(0.0, 10.0, steps=100).ops_value(keras.ops.convert_to_tensor(25.0)))
        2.5
        """
        count = ops.cast(count, "float32")
        return ops.cast(self._ops(count), "float32")

    def _ops(self, count: Any) -> Any:  # pragma: no cover - abstract
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

    def _ops(self, count: Any) -> Any:
        return ops.zeros_like(count) + self.value_

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

    def _ops(self, count: Any) -> Any:
        k = ops.floor(count / self.every)
        # factor ** k overflows to inf past the ceiling; the minimum takes the ceiling.
        return ops.minimum(self.maximum, self.initial * _ops_power(self.factor, k))

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

    def _ops(self, count: Any) -> Any:
        k = ops.floor(count / self.every)
        first = ops.minimum(self.maximum, self.initial * _ops_power(self.factor, k))
        if self._g1 >= self.maximum:
            second = ops.full_like(count, self.maximum)
        else:
            steps = ops.maximum(k - self._k1, 0.0)
            second = ops.minimum(self.maximum, self._g1 * _ops_power(self.second_factor, steps))
        return ops.where(k <= self._k1, first, second)

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

    def ops_progress(self, count: Any) -> Any:
        """`progress` of a tensor count, in `keras.ops`."""
        return ops.clip((count - self.delay) / self.steps, 0.0, 1.0)

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

    def _ops(self, count: Any) -> Any:
        return self.start + (self.stop - self.start) * self.ops_progress(count)


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

    def _ops(self, count: Any) -> Any:
        t = self.ops_progress(count)
        return self.start + (self.stop - self.start) * (1.0 - ops.cos(math.pi * t)) / 2.0


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

    def _ops(self, count: Any) -> Any:
        t = self.ops_progress(count)
        grown = self.start * ops.exp(t * math.log(self.stop / self.start))
        return ops.where(t >= 1.0, self.stop, grown)


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

    def _ops(self, count: Any) -> Any:
        t = self.ops_progress(count)
        return self.start + (self.stop - self.start) * ops.power(t, self.power)

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

    def value(self, count: float) -> float:
        start = 0
        for schedule, boundary in zip(self.schedules, self.boundaries):
            if count < boundary:
                return schedule(count - start)
            start = boundary
        return self.schedules[-1](count - start)

    def _ops(self, count: Any) -> Any:
        starts = [0, *self.boundaries]
        value = self.schedules[-1]._ops(ops.maximum(count - starts[-1], 0.0))
        # From the last piece back: piece i applies below boundaries[i].
        for i in range(len(self.boundaries) - 1, -1, -1):
            piece = self.schedules[i]._ops(ops.maximum(count - starts[i], 0.0))
            value = ops.where(count < self.boundaries[i], piece, value)
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


DEFAULT_MAXIMUM = 1e3
BUDGET_REFERENCE = 4.5  # learning rate x steps at which the budget is DEFAULT_MAXIMUM


def default_schedule(maximum: float = DEFAULT_MAXIMUM) -> GammaSchedule:
    """The schedule `GammaAnnealing()` uses when given none: ``Polynomial(0, maximum, power=2)``.

    A quadratic ramp from 0 to ``maximum`` (1e3 by default, the regime the
    papers study), paced by `GammaAnnealing` so that it ends at
    ``ramp_fraction`` (0.95) of the run. ``sqrt(gamma)`` then grows linearly,
    which is the pace at which Adam can grow the output layer (it must grow
    like ``sqrt(gamma)``). The earlier default, ``Geometric(1e-2, maximum)``
    ending at half the run, asked for 44 % of that growth in the last tenth
    of the ramp and, over 3 seeds per backend, fell below the baseline's
    accuracy in 5 of 9 design-card runs (down to 81 %); docs/recipe.md has
    both.
    `GammaAnnealing` lowers ``maximum`` to `gamma_budget` for runs too short
    to reach 1e3.

    Example:

    >>> default_schedule().stop, default_schedule(50.0).stop, default_schedule()(500)
    (1000.0, 50.0, 250.0)
    """
    maximum = check_float("maximum", maximum, minimum=0.0)
    if maximum <= 1e-2:
        return Constant(maximum)
    return Polynomial(0.0, maximum, steps=1000, power=2.0)


def gamma_budget(steps: int, learning_rate: float, multiplier: float = 1.0) -> float:
    """The largest gamma an Adam-type optimizer can follow in a run of ``steps`` steps.

    ```
    budget = 1e3 * (multiplier * learning_rate * steps / 4.5) ** 2
    ```

    Why: as gamma rises, the latents shrink like ``1 / sqrt(gamma)`` and the
    output layer's weights must grow like ``sqrt(gamma)`` to keep the logits.
    Adam, AdamW and their kin move a weight by about one learning rate per
    step, so in ``steps`` steps the output layer can grow by about
    ``multiplier * learning_rate * steps`` (``multiplier``: its learning-rate
    factor, see `keras_lpc.optimizers.with_lr_multipliers`), and gamma can
    follow the square of that. The constant is measured on digits
    (docs/recipe.md): 4,500 AdamW steps at 1e-3 follow a ramp to 1e3 at
    98 % accuracy, and a ramp to 3e3 fell to 75 %. Dimensionless.

    Args:
        steps: optimizer steps in the run (``epochs * steps_per_epoch``).
        learning_rate: the optimizer's (initial) learning rate.
        multiplier: learning-rate factor of the layer after the LPC layer.

    Example:

    >>> gamma_budget(4500, 1e-3), round(gamma_budget(675, 1e-3), 2)
    (1000.0, 22.5)
    >>> gamma_budget(675, 1e-3, multiplier=10.0)
    2250.0
    """
    steps = check_float("steps", steps, minimum=0.0)
    learning_rate = check_float("learning_rate", learning_rate, minimum=0.0)
    multiplier = check_float("multiplier", multiplier, strictly_positive=True)
    return float(DEFAULT_MAXIMUM * (multiplier * learning_rate * steps / BUDGET_REFERENCE) ** 2)
