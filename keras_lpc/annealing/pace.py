"""`TrainingPace`: how fast the gamma ramp may advance, decided from the training itself.

A pure, per-epoch policy with a named state of five floats, `PaceState`
(its evidence: docs/recipe.md). `GammaAnnealing` asks it once per epoch for
the next epoch's *rate*, the fraction of a ramp step the effective count
advances per optimizer step (1: the ramp moves at its clock pace, 0: gamma
holds), and for the count the next epoch starts from (lower than the
current one after a loss of ground: gamma backs off).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Any

from keras_lpc._validation import check_float
from keras_lpc.annealing.policies import Decision, Policy, monitor_value

__all__ = ["PaceState", "TrainingPace"]


@dataclasses.dataclass(frozen=True)
class PaceState:
    """`TrainingPace`'s state between epochs, enough to resume exactly.

    Attributes:
        best: best training accuracy so far (``-inf``: none yet).
        previous_error: the last epoch's training error ``1 - accuracy`` (NaN: none).
        last_rate: the rate decided last.
        speed: the ramp's speed factor (1, halved by every back-off).
        good_count: the count at the end of the last epoch that did not lose ground.

    Example:

    >>> s = PaceState(0.9, 0.1, 1.0, 0.5, 40.0)
    >>> PaceState.from_entries(s.to_entries()) == s
    True
    """

    best: float = -math.inf
    previous_error: float = math.nan
    last_rate: float = 1.0
    speed: float = 1.0
    good_count: float = math.nan

    #: the names under which the fields are saved with the layer
    KEYS = ("pace_best", "pace_error", "pace_rate", "pace_speed", "pace_good")

    def to_entries(self) -> dict[str, float]:
        """The fields as named floats (``pace_best``, ``pace_error``...)."""
        return dict(zip(self.KEYS, (float(v) for v in dataclasses.astuple(self))))

    @classmethod
    def from_entries(cls, entries: Mapping[str, float]) -> PaceState:
        """From `to_entries`' names; states saved before the back-off lack the last two."""
        values = [float(entries[k]) for k in cls.KEYS if k in entries]
        return cls(*values)


class TrainingPace(Policy):
    """Pace the gamma ramp by how fast the model is still learning, and back off when it loses ground.

    From the epoch's training accuracy ``a`` (error ``e = 1 - a``), the best
    accuracy so far ``best`` and the previous epoch's error ``e_prev``:

    ```
    tol  = max(lost_min, lost_rel * (1 - best))
    lost = a < best - tol                                   (lost ground)
    rate = 0                                       if lost or on the first epoch
    rho  = (e_prev - e) / max(e_prev, floor)                            (progress)
    rate = speed * clip(1 - rho / fast, 0, 1)      otherwise
    ```

    ``rho`` is the fraction of the remaining training error removed in the
    last epoch. While the model removes ``fast`` (5 %) or more of it per
    epoch it is still learning at the current gamma and the ramp holds; on
    a plateau (``rho <= 0``) the ramp moves at full pace; in between it moves
    proportionally slower. A model whose accuracy fell more than ``tol``
    below its best has lost ground: the ramp holds until it has caught up.

    **Back-off.** Given the ramp's count at the end of each epoch
    (``count``), the rule remembers the count of the last epoch that did not
    lose ground (``good``). An epoch that loses ground after the ramp moved
    past ``good`` sends the count back to ``retreat * good`` (`next_count`;
    with the default quadratic ramp gamma halves: ``0.7 ** 2 = 0.49``) and
    multiplies ``speed`` (initially 1) by ``backoff``, so the ramp climbs
    again more slowly once the model has caught up. A hold alone freezes
    gamma where the fit broke, and going back only to the last good value is
    not enough either: measured on 20 overlapping clusters (TensorFlow, 30
    epochs, ``max_gamma=100``), training accuracy fell from 1.0 to 0.47 at
    gamma 51 held and to 0.62 at gamma 44 (the last good value), and
    recovered to 0.99 within three epochs at gamma 22.

    All quantities are fractions (dimensionless) except the counts (the
    effective count of `GammaAnnealing`, in steps). The state is a
    `PaceState` (`get_state` / `set_state`). As a policy (`decide`) it
    reads the training accuracy ``monitor`` from the epoch's logs.

    Args:
        fast: relative progress per epoch at which the ramp holds fully, > 0.
        floor: smallest error used as the denominator of ``rho``, in (0, 1],
            so that a step from 99.8 % to 100 % counts as progress 0.04, not 1.
        lost_min: smallest accuracy drop below the best that counts as lost
            ground, in [0, 1].
        lost_rel: the drop that counts as lost ground, as a fraction of the
            best's remaining error, >= 0.
        retreat: where a back-off sends the count, as a fraction of the last
            good count, in [0, 1] (1: back to the last good gamma; 0: gamma
            back to the schedule's start).
        backoff: factor applied to the ramp's speed at every back-off, in
            [0, 1] (1: gamma goes back but climbs again at full speed; 0: it
            stays where it went back to for the rest of the run).
        monitor: the training accuracy (a fraction, higher is better) read
            from the logs by `decide`.

    Example:

    >>> pace = TrainingPace()
    >>> tuple(round(pace.rate(a), 3) for a in (0.50, 0.90, 0.95, 0.95, 0.951, 0.99, 0.90))
    (0.0, 0.0, 0.0, 1.0, 0.6, 0.0, 0.0)
    >>> state = pace.get_state()
    >>> round(state.best, 3), round(state.previous_error, 3), state.last_rate
    (0.99, 0.1, 0.0)

    With counts: the ramp moved from 40 to 60 while the accuracy fell, so the
    next epoch starts back at ``0.7 * 40 = 28`` and later climbs at half speed.

    >>> pace = TrainingPace()
    >>> tuple(pace.rate(a, count=c) for a, c in ((1.0, 0.0), (1.0, 40.0), (0.9, 60.0)))
    (0.0, 1.0, 0.0)
    >>> round(pace.next_count(60.0), 6), pace.speed
    (28.0, 0.5)
    """

    def __init__(
        self,
        fast: float = 0.05,
        floor: float = 0.05,
        lost_min: float = 0.01,
        lost_rel: float = 0.2,
        retreat: float = 0.7,
        backoff: float = 0.5,
        monitor: str = "accuracy",
    ) -> None:
        self.fast = check_float("fast", fast, strictly_positive=True)
        self.floor = check_float("floor", floor, strictly_positive=True)
        if self.floor > 1:
            raise ValueError(f"`floor` must be in (0, 1]. Received: floor={floor!r}")
        self.lost_min = check_float("lost_min", lost_min, minimum=0.0)
        if self.lost_min > 1:
            raise ValueError(f"`lost_min` must be in [0, 1]. Received: lost_min={lost_min!r}")
        self.lost_rel = check_float("lost_rel", lost_rel, minimum=0.0)
        self.retreat = check_float("retreat", retreat, minimum=0.0)
        if self.retreat > 1:
            raise ValueError(f"`retreat` must be in [0, 1]. Received: retreat={retreat!r}")
        self.backoff = check_float("backoff", backoff, minimum=0.0)
        if self.backoff > 1:
            raise ValueError(f"`backoff` must be in [0, 1]. Received: backoff={backoff!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"`monitor` must be a metric name. Received: monitor={monitor!r}")
        self.monitor = monitor
        self.reset()

    def reset(self, classes: int | None = None) -> None:
        """Forget the run: no best, no previous epoch, rate 1, speed 1, no good count."""
        self.best = -math.inf
        self.previous_error = math.nan
        self.last_rate = 1.0
        self.speed = 1.0
        self.good_count = math.nan
        self.backed_off = False

    def rate(self, accuracy: float, count: float = math.nan) -> float:
        """Record one epoch's training accuracy (a fraction) and return the next epoch's rate.

        ``count`` is the ramp's count at the end of the epoch (optional:
        without it there is no back-off). A non-finite accuracy leaves the
        state and the rate unchanged. After the call, `next_count` gives the
        count the next epoch starts from.
        """
        accuracy = float(accuracy)
        count = float(count)
        if not math.isfinite(accuracy):
            self.backed_off = False
            return self.last_rate
        error = 1.0 - accuracy
        self.best = max(self.best, accuracy)
        tolerance = max(self.lost_min, self.lost_rel * (1.0 - self.best))
        previous, self.previous_error = self.previous_error, error
        lost = accuracy < self.best - tolerance
        if lost or not math.isfinite(previous):
            rate = 0.0
        else:
            progress = (previous - error) / max(previous, self.floor)
            rate = self.speed * min(1.0, max(0.0, 1.0 - progress / self.fast))
        # a loss of ground after the ramp moved past the last good count backs off
        self.backed_off = lost and math.isfinite(count) and count > self.good_count
        if self.backed_off:
            self.speed *= self.backoff  # and `next_count` returns to retreat * good_count
        elif not lost and math.isfinite(count):
            self.good_count = count
        self.last_rate = float(rate)
        return self.last_rate

    def next_count(self, count: float) -> float:
        """The count the next epoch starts from, given the current epoch's end ``count``.

        ``count`` itself, or ``retreat`` times the last good count after an
        epoch that lost ground while the ramp moved.
        """
        return float(self.retreat * self.good_count) if self.backed_off else float(count)

    def decide(self, logs: Mapping[str, Any], count: float) -> Decision:
        """`rate` and `next_count` from the epoch's logs (no decision without the monitor)."""
        value = monitor_value(logs, self.monitor)
        if value is None:
            return Decision(None, count)
        rate = self.rate(value, count=count)
        return Decision(rate, self.next_count(count))

    def get_state(self) -> PaceState:
        """The state after the last epoch, enough to resume exactly."""
        return PaceState(
            self.best, self.previous_error, self.last_rate, self.speed, self.good_count
        )

    def set_state(self, state: PaceState | Any) -> None:
        """Restore a `PaceState` (a tuple of 5, or 3 from an earlier version, is deprecated)."""
        if not isinstance(state, PaceState):
            values = [float(v) for v in state]
            if len(values) not in (3, 5):
                raise ValueError(
                    "`state` must be a PaceState (or the 5 floats of an earlier version). "
                    f"Received: state={state!r}"
                )
            warnings.warn(
                "TrainingPace.set_state: a tuple is deprecated; pass a PaceState.",
                DeprecationWarning,
                stacklevel=2,
            )
            state = PaceState(*values)
        self.best, self.previous_error, self.last_rate = (
            state.best,
            state.previous_error,
            state.last_rate,
        )
        self.speed, self.good_count = state.speed, state.good_count
        self.backed_off = False

    def state_entries(self) -> dict[str, float]:
        return self.get_state().to_entries()

    def load_entries(self, entries: Mapping[str, float]) -> None:
        if "pace_best" in entries:
            self.set_state(PaceState.from_entries(entries))
        else:
            self.reset()

    def get_config(self) -> dict[str, float]:
        return {
            "fast": self.fast,
            "floor": self.floor,
            "lost_min": self.lost_min,
            "lost_rel": self.lost_rel,
            "retreat": self.retreat,
            "backoff": self.backoff,
            "monitor": self.monitor,
        }
