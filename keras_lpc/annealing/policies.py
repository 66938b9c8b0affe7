"""Per-epoch policies: how fast gamma's count may advance, decided from the training logs.

A policy reads one epoch's training logs and the ramp's count at the end of
the epoch, and returns a `Decision`: the next epoch's *rate* (the fraction
of a count the ramp advances per optimizer step: 1 at its own pace, 0 held,
``None`` for no decision) and the count the next epoch starts from (lower
than the current one after a back-off). `keras_lpc.GammaAnnealing` asks its
policies once per epoch and follows the most cautious answer (the smallest
rate and count). Policies are pure Python with a small named state, saved
with the layer so that a resumed run decides the same.

* `Hold`: hold while a monitored training metric is worse than a fraction
  of its best (the guard against accuracy falling to chance).
* `TrainingPace`: ramp only as fast as the model has stopped learning, and
  back off after a loss of ground (`keras_lpc.annealing.pace`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_lpc._validation import check_choice, check_float

__all__ = ["Decision", "Hold", "Policy", "monitor_value"]


@dataclasses.dataclass(frozen=True)
class Decision:
    """A policy's answer for the next epoch.

    Attributes:
        rate: the next epoch's advance of the count per step (per epoch with
            ``unit="epoch"``) in [0, 1], or ``None`` (no decision: keep the
            current rate).
        count: the count the next epoch starts from.
    """

    rate: float | None
    count: float


def monitor_value(logs: Mapping[str, Any], monitor: str) -> float | None:
    """``logs[monitor]`` as a float, ``None`` when missing or not finite.

    Example:

    >>> monitor_value({"accuracy": 0.5}, "accuracy"), monitor_value({}, "accuracy")
    (0.5, None)
    """
    if monitor not in logs:
        return None
    value = float(np.asarray(logs[monitor]))
    return value if math.isfinite(value) else None


class Policy:
    """Base class of the per-epoch policies.

    Subclasses implement `decide` and, when they keep numbers between epochs,
    `get_state` / `set_state` (a dataclass) and `state_entries` /
    `load_entries` (the same numbers as named floats, saved with the layer).
    """

    #: the training metric the policy reads
    monitor: str = "accuracy"

    def reset(self, classes: int | None = None) -> None:
        """Forget the run; ``classes`` is the model's number of class scores, when known."""

    def decide(self, logs: Mapping[str, Any], count: float) -> Decision:  # pragma: no cover
        raise NotImplementedError

    def state_entries(self) -> dict[str, float]:
        """The policy's state as named floats (saved with the layer)."""
        return {}

    def load_entries(self, entries: Mapping[str, float]) -> None:
        """Restore `state_entries`' numbers (missing names: start afresh)."""

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Policy:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Hold(Policy):
    """Hold gamma (rate 0) while a training metric is worse than a fraction of its best.

    With ``best`` the best value of ``monitor`` so far (replaced only by one
    better by more than ``min_delta``, as in Keras' monitor callbacks):

    ```
    hold = value < fraction * best        (mode "max")
    hold = value > best / fraction        (mode "min", e.g. a loss)
    hold = hold or value is worse than baseline
    rate = 0 if hold else 1
    ```

    ``baseline="auto"`` is the chance level ``1 / classes`` for an accuracy
    monitor (so a run whose accuracy was never high still holds while it
    sits below chance) and none otherwise. This guards against the known
    failure of large gamma with a slow output layer: accuracy falling to
    chance. A hold freezes gamma; it does not lower it. A missing monitor
    disables the policy with one warning.

    Args:
        monitor: name of a training metric in the epoch's logs.
        fraction: the threshold as a fraction of the best value, in [0, 1].
        mode: ``"auto"`` (``"min"`` when the name contains ``"loss"``, else
            ``"max"``), ``"max"`` or ``"min"``.
        min_delta: smallest change that counts as a new best, >= 0.
        baseline: ``"auto"``, ``None`` or a number: hold while worse than it.

    Example:

    >>> hold = Hold(fraction=0.8, baseline=None)
    >>> tuple(hold.decide({"accuracy": a}, count=0.0).rate for a in (0.5, 0.9, 0.6, 0.85))
    (1.0, 1.0, 0.0, 1.0)
    """

    def __init__(
        self,
        monitor: str = "accuracy",
        fraction: float = 0.8,
        mode: str = "auto",
        min_delta: float = 0.0,
        baseline: float | str | None = "auto",
    ) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"`monitor` must be a metric name. Received: monitor={monitor!r}")
        self.monitor = monitor
        self.fraction = check_float("fraction", fraction, minimum=0.0)
        if self.fraction > 1:
            raise ValueError(f"`fraction` must be in [0, 1]. Received: fraction={fraction!r}")
        self.mode = check_choice("mode", mode, ("auto", "max", "min"))
        self.min_delta = check_float("min_delta", min_delta, minimum=0.0)
        if baseline not in ("auto", None):
            if isinstance(baseline, str):
                raise ValueError(
                    f"`baseline` must be 'auto', None or a number. Received: baseline={baseline!r}"
                )
            baseline = check_float("baseline", baseline)
        self.baseline = baseline
        self.reset()

    @property
    def direction(self) -> str:
        """``"max"`` or ``"min"``: the direction in which ``monitor`` improves."""
        if self.mode != "auto":
            return self.mode
        return "min" if "loss" in self.monitor.lower() else "max"

    def reset(self, classes: int | None = None) -> None:
        self.best = math.inf if self.direction == "min" else -math.inf
        self._warned = False
        self._threshold = self.baseline if self.baseline != "auto" else None
        if self.baseline == "auto" and "acc" in self.monitor and self.direction == "max":
            if classes is not None:
                self._threshold = 1.0 / classes if classes >= 2 else 0.5

    def decide(self, logs: Mapping[str, Any], count: float) -> Decision:
        value = monitor_value(logs, self.monitor)
        if value is None:
            if self.monitor not in logs and not self._warned:
                self._warned = True
                warnings.warn(
                    f"Hold: `monitor`={self.monitor!r} is not in the training logs "
                    f"(available: {sorted(logs)}); holding is disabled. Compile with "
                    "metrics=['accuracy'] or give the policy another monitor.",
                    stacklevel=3,
                )
            return Decision(None, count)
        sign = -1.0 if self.direction == "min" else 1.0
        if not math.isfinite(self.best) or sign * (value - self.best) > self.min_delta:
            self.best = value
        if sign > 0:
            hold = value < self.fraction * self.best
        else:
            hold = self.fraction > 0 and value > self.best / self.fraction
        if self._threshold is not None:
            hold = hold or sign * (self._threshold - value) > 0
        return Decision(0.0 if hold else 1.0, count)

    def state_entries(self) -> dict[str, float]:
        return {"hold_best": float(self.best)}

    def load_entries(self, entries: Mapping[str, float]) -> None:
        if "hold_best" in entries:
            self.best = float(entries["hold_best"])

    def get_config(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "fraction": self.fraction,
            "mode": self.mode,
            "min_delta": self.min_delta,
            "baseline": self.baseline,
        }
