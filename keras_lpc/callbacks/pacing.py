"""`TrainingPace`: how fast the gamma ramp may advance, decided from the training itself.

A pure, per-epoch rule with a state of five floats (its evidence:
docs/recipe.md). `GammaAnnealing` asks it once per epoch for the next
epoch's *rate*, the fraction of a ramp step the effective count advances per
optimizer step (1: the ramp moves at its clock pace, 0: gamma holds), and
for the count the next epoch starts from (lower than the current one after
a loss of ground: gamma backs off).
"""

from __future__ import annotations

import math
from typing import Any

from keras_lpc._validation import check_float

__all__ = ["TrainingPace"]


class TrainingPace:
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
    effective count of `GammaAnnealing`, in steps). The state, five floats
    (``best``, ``e_prev``, ``rate``, ``speed``, ``good``), is `get_state` /
    `set_state`.

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

    Example:

    >>> pace = TrainingPace()
    >>> tuple(round(pace.rate(a), 3) for a in (0.50, 0.90, 0.95, 0.95, 0.951, 0.99, 0.90))
    (0.0, 0.0, 0.0, 1.0, 0.6, 0.0, 0.0)
    >>> tuple(round(v, 3) for v in pace.get_state()[:3])
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
        self.reset()

    def reset(self) -> None:
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

    def get_state(self) -> tuple[float, float, float, float, float]:
        """``(best, previous_error, last_rate, speed, good_count)``, enough to resume exactly."""
        return (
            float(self.best),
            float(self.previous_error),
            float(self.last_rate),
            float(self.speed),
            float(self.good_count),
        )

    def set_state(self, state: Any) -> None:
        """Restore a state returned by `get_state` (a 3-tuple of an earlier version: speed 1)."""
        values = [float(v) for v in state]
        if len(values) == 3:
            values += [1.0, math.nan]
        if len(values) != 5:
            raise ValueError(
                "`state` must be the 5 floats of `get_state()` (or 3 of an earlier version). "
                f"Received: state={state!r}"
            )
        self.best, self.previous_error, self.last_rate, self.speed, self.good_count = values
        self.backed_off = False

    def get_config(self) -> dict[str, float]:
        return {
            "fast": self.fast,
            "floor": self.floor,
            "lost_min": self.lost_min,
            "lost_rel": self.lost_rel,
            "retreat": self.retreat,
            "backoff": self.backoff,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"TrainingPace({args})"
