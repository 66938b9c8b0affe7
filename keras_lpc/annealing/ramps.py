"""Ramps from ``start`` to ``stop`` over ``steps`` counts: linear, cosine, geometric, power."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from keras_lpc._validation import check_float, check_int
from keras_lpc.annealing.base import GammaSchedule, register

__all__ = ["Cosine", "Geometric", "Linear", "Polynomial"]


class _Ramp(GammaSchedule):
    """Shared arguments of the ramps from ``start`` to ``stop``: ``t = clip((count - delay) / steps, 0, 1)``."""

    def __init__(self, start: float, stop: float, steps: int, delay: int = 0) -> None:
        self.start = check_float("start", start, minimum=0.0)
        self.stop = check_float("stop", stop, minimum=0.0)
        self.steps = check_int("steps", steps, minimum=1)
        self.delay = check_int("delay", delay, minimum=0)

    def progress(self, count: Any, xp: Any = np) -> Any:
        """Fraction of the ramp done: ``clip((count - delay) / steps, 0, 1)``."""
        return xp.clip((count - self.delay) / self.steps, 0.0, 1.0)

    def formula(self, count: Any, xp: Any) -> Any:
        return self.start + (self.stop - self.start) * self.shape(self.progress(count, xp), xp)

    def shape(self, t: Any, xp: Any) -> Any:  # pragma: no cover - abstract
        """The ramp's shape: 0 at ``t = 0``, 1 at ``t = 1``."""
        raise NotImplementedError

    @property
    def span(self) -> float:
        return float(self.delay + self.steps)

    def get_config(self) -> dict[str, Any]:
        return {"start": self.start, "stop": self.stop, "steps": self.steps, "delay": self.delay}


@register
class Linear(_Ramp):
    """Linear ramp: ``start + (stop - start) * t``, ``t = clip((count - delay) / steps, 0, 1)``.

    Example:

    >>> Linear(0.0, 10.0, steps=100)(25)
    2.5
    """

    def shape(self, t: Any, xp: Any) -> Any:
        return t


@register
class Cosine(_Ramp):
    """Half-cosine ramp: ``start + (stop - start) * (1 - cos(pi * t)) / 2``.

    ``t = clip((count - delay) / steps, 0, 1)``.

    Example:

    >>> round(Cosine(0.0, 10.0, steps=100)(50), 12)
    5.0
    """

    def shape(self, t: Any, xp: Any) -> Any:
        return (1.0 - xp.cos(math.pi * t)) / 2.0


@register
class Geometric(_Ramp):
    """Smooth exponential ramp: ``start * (stop / start) ** t``.

    ``t = clip((count - delay) / steps, 0, 1)``: gamma grows by the same
    factor every count, from ``start`` (> 0) to ``stop`` (> 0). This is the
    continuous form of `Exponential`.

    Example:

    >>> round(Geometric(1e-4, 1e4, steps=8)(2), 12)
    0.01
    """

    def __init__(self, start: float, stop: float, steps: int, delay: int = 0) -> None:
        super().__init__(start, stop, steps, delay)
        check_float("start", start, strictly_positive=True)
        check_float("stop", stop, strictly_positive=True)

    def formula(self, count: Any, xp: Any) -> Any:
        t = self.progress(count, xp)
        grown = self.start * xp.exp(t * math.log(self.stop / self.start))
        return xp.where(t >= 1.0, self.stop, grown)


@register
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

    def shape(self, t: Any, xp: Any) -> Any:
        return xp.power(t, self.power)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "power": self.power}
