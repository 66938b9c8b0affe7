"""Tuning gamma with KerasTuner (the ``[tune]`` extra).

`gamma_hyperparameters` declares LPC's hyperparameters on a
`keras_tuner.HyperParameters` and returns the matching layer and annealing
callback, so any tuner (RandomSearch, BayesianOptimization, Hyperband) can
search them in a few lines. The callback follows the quadratic ramp from 0
to the tuned maximum on the clock (per step, stretched to end at 95 % of
the run, no policy that could hold it lower), so every trial trains at the
gamma it was given, short Hyperband trials and their continuations too.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import keras

from keras_lpc import schedules
from keras_lpc._validation import check_float, check_int, require
from keras_lpc.annealing.budget import default_schedule
from keras_lpc.annealing.plan import CLOCK_RAMP_FRACTION
from keras_lpc.callbacks.gamma_annealing import GammaAnnealing
from keras_lpc.layers import LatentPointCollapse


def require_keras_tuner() -> Any:
    """Import keras_tuner, or raise an ImportError naming the extra to install."""
    return require("keras_tuner", "tune", "keras_lpc.tuning")


@dataclasses.dataclass
class LPCChoice:
    """What one trial's hyperparameters select.

    Attributes:
        max_gamma: the gamma the ramp reaches at ``ramp_fraction`` of the run.
        unit: ``"step"`` or ``"epoch"``.
        dim: latent dimension of the LPC layer.
        ramp_fraction: fraction of the run spent ramping, or ``"auto"``
            (0.95).
    """

    max_gamma: float
    unit: str
    dim: int
    ramp_fraction: float | str

    def layer(self, **kwargs: Any) -> LatentPointCollapse:
        """A `LatentPointCollapse(dim)` layer for this trial."""
        return LatentPointCollapse(dim=self.dim, **kwargs)

    def schedule(self) -> schedules.GammaSchedule:
        """The ramp to this trial's maximum: ``default_schedule(max_gamma)``.

        ``Polynomial(0, max_gamma, power=2)``, stretched by the callback to end
        at ``ramp_fraction`` of the run.
        """
        return default_schedule(self.max_gamma)

    def callback(self, **kwargs: Any) -> GammaAnnealing:
        """`GammaAnnealing` for this trial: it reaches ``max_gamma`` at ``ramp_fraction`` of the run.

        ``GammaAnnealing(self.schedule(), ramp_fraction=..., unit=...)``: the
        quadratic ramp on the clock, with no per-epoch policy (a hold or the
        training's pace would end the trial below the value tuned); ``kwargs``
        go to `GammaAnnealing` (e.g. ``policy=keras_lpc.annealing.Hold()`` to
        keep the guard against a collapsing accuracy anyway).
        """
        fraction = CLOCK_RAMP_FRACTION if self.ramp_fraction == "auto" else self.ramp_fraction
        return GammaAnnealing(self.schedule(), ramp_fraction=fraction, unit=self.unit, **kwargs)


def gamma_hyperparameters(
    hp: Any,
    *,
    max_gamma: tuple[float, float] = (1.0, 1e4),
    dims: tuple[int, ...] = (8, 16, 32),
    units: tuple[str, ...] = ("step",),
    ramp_fraction: tuple[float, float] | float | str = "auto",
    start_gamma: float | None = None,
) -> LPCChoice:
    """Declare LPC's hyperparameters on ``hp`` and return this trial's choice.

    Declared names: ``lpc_max_gamma`` (log-uniform in ``max_gamma``),
    ``lpc_dim`` (one of ``dims``), ``lpc_unit`` (one of ``units``, fixed when
    only one) and ``lpc_ramp_fraction`` (uniform, or fixed when a float or
    ``"auto"``, which is 0.95). The choice's ``callback()`` follows the
    quadratic ramp ``max_gamma * (s / (ramp_fraction * N)) ** 2`` at step
    ``s`` of a run of ``N`` steps, then ``max_gamma``: every trial reaches the
    value tuned, whatever its length (a Hyperband continuation resumes the
    ramp of its longer run). The tuned maximum is used as drawn, also above
    `gamma_budget` of the run (the tuner explores it); choose the range's
    upper end with ``gamma_budget(steps, learning_rate, multiplier)`` in mind.

    Args:
        hp: a `keras_tuner.HyperParameters`.
        max_gamma: ``(low, high)``, both > 0, low <= high (dimensionless).
        dims: candidate latent dimensions (positive integers).
        units: candidate annealing units (``"step"``/``"epoch"``).
        ramp_fraction: ``(low, high)`` in (0, 1], a fixed float, or
            ``"auto"`` (0.95).
        start_gamma: deprecated and ignored (the retired geometric ramp's
            first gamma; the quadratic ramp starts at 0).

    Returns:
        An `LPCChoice` whose ``layer()`` and ``callback()`` build this trial's
        `LatentPointCollapse` and `GammaAnnealing`.

    Example:

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> choice = gamma_hyperparameters(hp, max_gamma=(10.0, 1000.0), dims=(16,))
    >>> choice.dim, choice.max_gamma, choice.ramp_fraction, sorted(hp.values)
    (16, 10.0, 'auto', ['lpc_dim', 'lpc_max_gamma', 'lpc_ramp_fraction', 'lpc_unit'])
    >>> choice.schedule()(500)  # the quadratic ramp half way (of 1000): a quarter of the maximum
    2.5
    """
    if not all(callable(getattr(hp, name, None)) for name in ("Float", "Choice", "Fixed")):
        raise TypeError(f"`hp` must be a keras_tuner.HyperParameters. Received: hp={hp!r}")
    if start_gamma is not None:
        warnings.warn(
            "`start_gamma` is deprecated and ignored: the tuned callback is GammaAnnealing's "
            "default quadratic ramp, which starts at 0.",
            FutureWarning,
            stacklevel=2,
        )
    if not isinstance(max_gamma, (tuple, list)) or len(max_gamma) != 2:
        raise TypeError(
            f"`max_gamma` must be a pair (low, high). Received: max_gamma={max_gamma!r}"
        )
    low = check_float("max_gamma", max_gamma[0], strictly_positive=True)
    high = check_float("max_gamma", max_gamma[1], strictly_positive=True)
    if high < low:
        raise ValueError(
            f"`max_gamma` must be a pair (low, high) with low <= high. Received: max_gamma={max_gamma!r}"
        )
    if not dims:
        raise ValueError(f"`dims` must list at least one dimension. Received: dims={dims!r}")
    dims = tuple(check_int("dims", d, minimum=1) for d in dims)
    for unit in units:
        if unit not in ("step", "epoch"):
            raise ValueError(f"`units` must contain 'step' or 'epoch'. Received: units={units!r}")
    chosen_max = (
        hp.Float("lpc_max_gamma", low, high, sampling="log")
        if high > low
        else hp.Fixed("lpc_max_gamma", low)
    )
    dim = hp.Choice("lpc_dim", list(dims)) if len(dims) > 1 else hp.Fixed("lpc_dim", dims[0])
    unit = hp.Choice("lpc_unit", list(units)) if len(units) > 1 else hp.Fixed("lpc_unit", units[0])
    if isinstance(ramp_fraction, (tuple, list)):
        r_low = check_float("ramp_fraction", ramp_fraction[0], strictly_positive=True)
        r_high = check_float("ramp_fraction", ramp_fraction[1], strictly_positive=True)
        if not r_low <= r_high <= 1:
            raise ValueError(
                f"`ramp_fraction` must be a pair in (0, 1] with low <= high. Received: ramp_fraction={ramp_fraction!r}"
            )
        ramp = float(hp.Float("lpc_ramp_fraction", r_low, r_high))
    elif ramp_fraction == "auto":
        ramp = str(hp.Fixed("lpc_ramp_fraction", "auto"))
    else:
        ramp = check_float("ramp_fraction", ramp_fraction, strictly_positive=True)
        if ramp > 1:
            raise ValueError(
                f"`ramp_fraction` must be in (0, 1]. Received: ramp_fraction={ramp_fraction!r}"
            )
        ramp = float(hp.Fixed("lpc_ramp_fraction", ramp))
    return LPCChoice(float(chosen_max), str(unit), int(dim), ramp)


class CombinedObjective(keras.callbacks.Callback):
    """Log ``val_accuracy_robustness = logs[accuracy] + weight * logs[robustness]``.

    A KerasTuner objective must be one log entry; this callback makes one
    that rewards accuracy and robustness together. Place it after the
    callbacks that log the two parts (e.g. `keras_lpc.RobustnessMetrics`);
    the entry is written at the epochs where both are present.

    Example:

    >>> cb = CombinedObjective(weight=2.0)
    >>> logs = {"val_accuracy": 0.9, "val_deepfool": 0.05}
    >>> cb.on_epoch_end(0, logs)
    >>> round(logs["val_accuracy_robustness"], 6)
    1.0
    """

    name = "val_accuracy_robustness"

    def __init__(
        self, accuracy: str = "val_accuracy", robustness: str = "val_deepfool", weight: float = 1.0
    ) -> None:
        super().__init__()
        self.accuracy = accuracy
        self.robustness = robustness
        self.weight = check_float("weight", weight, minimum=0.0)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and self.accuracy in logs and self.robustness in logs:
            logs[self.name] = float(logs[self.accuracy]) + self.weight * float(
                logs[self.robustness]
            )

    def objective(self) -> Any:
        """The matching ``keras_tuner.Objective("val_accuracy_robustness", "max")``."""
        return require_keras_tuner().Objective(self.name, direction="max")
