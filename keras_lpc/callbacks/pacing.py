"""`TrainingPace`: how fast the gamma ramp may advance, decided from the training itself.

A pure, per-epoch rule with a state of three floats (its evidence:
docs/recipe.md). `GammaAnnealing` asks it once per epoch for the next
epoch's *rate*, the fraction of a ramp step the effective count advances per
optimizer step (1: the ramp moves at its clock pace, 0: gamma holds).
"""

from __future__ import annotations

import math
from typing import Any

from keras_lpc._validation import check_float

__all__ = ["TrainingPace"]


class TrainingPace:
    """Pace the gamma ramp by how fast the model is still learning and whether it lost ground.

    From the epoch's training accuracy ``a`` (error ``e = 1 - a``), the best
    accuracy so far ``best`` and the previous epoch's error ``e_prev``:

    ```
    tol  = max(lost_min, lost_rel * (1 - best))
    rate = 0                                       if a < best - tol   (lost ground)
    rate = 0                                       on the first epoch
    rho  = (e_prev - e) / max(e_prev, floor)                            (progress)
    rate = clip(1 - rho / fast, 0, 1)              otherwise
    ```

    ``rho`` is the fraction of the remaining training error removed in the
    last epoch. While the model removes ``fast`` (5 %) or more of it per
    epoch it is still learning at the current gamma and the ramp holds; on
    a plateau (``rho <= 0``) the ramp moves at full pace; in between it moves
    proportionally slower. A model whose accuracy fell more than ``tol``
    below its best has lost ground: the ramp holds until it has caught up.
    All quantities are fractions (dimensionless). The state, three floats
    (``best``, ``e_prev``, ``rate``), is `get_state` / `set_state`.

    Args:
        fast: relative progress per epoch at which the ramp holds fully, > 0.
        floor: smallest error used as the denominator of ``rho``, in (0, 1],
            so that a step from 99.8 % to 100 % counts as progress 0.04, not 1.
        lost_min: smallest accuracy drop below the best that counts as lost
            ground, in [0, 1].
        lost_rel: the drop that counts as lost ground, as a fraction of the
            best's remaining error, >= 0.

    Example:

    >>> pace = TrainingPace()
    >>> tuple(round(pace.rate(a), 3) for a in (0.50, 0.90, 0.95, 0.95, 0.951, 0.99, 0.90))
    (0.0, 0.0, 0.0, 1.0, 0.6, 0.0, 0.0)
    >>> tuple(round(v, 3) for v in pace.get_state())
    (0.99, 0.1, 0.0)
    """

    def __init__(
        self,
        fast: float = 0.05,
        floor: float = 0.05,
        lost_min: float = 0.01,
        lost_rel: float = 0.2,
    ) -> None:
        self.fast = check_float("fast", fast, strictly_positive=True)
        self.floor = check_float("floor", floor, strictly_positive=True)
        if self.floor > 1:
            raise ValueError(f"`floor` must be in (0, 1]. Received: floor={floor!r}")
        self.lost_min = check_float("lost_min", lost_min, minimum=0.0)
        if self.lost_min > 1:
            raise ValueError(f"`lost_min` must be in [0, 1]. Received: lost_min={lost_min!r}")
        self.lost_rel = check_float("lost_rel", lost_rel, minimum=0.0)
        self.reset()

    def reset(self) -> None:
        """Forget the run: no best, no previous epoch, rate 1."""
        self.best = -math.inf
        self.previous_error = math.nan
        self.last_rate = 1.0

    def rate(self, accuracy: float) -> float:
        """Record one epoch's training accuracy (a fraction) and return the next epoch's rate.

        A non-finite accuracy leaves the state and the rate unchanged.
        """
        accuracy = float(accuracy)
        if not math.isfinite(accuracy):
            return self.last_rate
        error = 1.0 - accuracy
        self.best = max(self.best, accuracy)
        tolerance = max(self.lost_min, self.lost_rel * (1.0 - self.best))
        previous, self.previous_error = self.previous_error, error
        if accuracy < self.best - tolerance or not math.isfinite(previous):
            rate = 0.0
        else:
            progress = (previous - error) / max(previous, self.floor)
            rate = min(1.0, max(0.0, 1.0 - progress / self.fast))
        self.last_rate = float(rate)
        return self.last_rate

    def get_state(self) -> tuple[float, float, float]:
        """``(best, previous_error, last_rate)``, enough to resume exactly."""
        return (float(self.best), float(self.previous_error), float(self.last_rate))

    def set_state(self, state: Any) -> None:
        """Restore a state returned by `get_state`."""
        best, previous, last = (float(v) for v in state)
        self.best, self.previous_error, self.last_rate = best, previous, last

    def get_config(self) -> dict[str, float]:
        return {
            "fast": self.fast,
            "floor": self.floor,
            "lost_min": self.lost_min,
            "lost_rel": self.lost_rel,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"TrainingPace({args})"
