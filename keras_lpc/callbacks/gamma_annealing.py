"""`GammaAnnealing`: raises the LPC penalty coefficient during `fit`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_lpc import schedules as schedules_module
from keras_lpc._models import find_lpc_layers
from keras_lpc._validation import check_choice, check_float

DEFAULT_MAXIMUM = 1e3


def default_schedule(maximum: float = DEFAULT_MAXIMUM) -> schedules_module.GammaSchedule:
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
    if maximum <= 1e-2:
        return schedules_module.Constant(float(maximum))
    return schedules_module.Polynomial(0.0, float(maximum), steps=1000, power=2.0)


BUDGET_REFERENCE = 4.5  # learning rate x steps at which the budget is DEFAULT_MAXIMUM


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


class GammaAnnealing(keras.callbacks.Callback):
    """Set ``gamma`` of the model's `LatentPointCollapse` layers from a schedule.

    At the start of every train step (``unit="step"``, the default) or epoch
    (``unit="epoch"``) the callback computes the *effective count* ``n`` (the
    global step or epoch, from 0, less any counts spent holding) and assigns

    ```
    gamma = schedule(n * span / (ramp_fraction * total))   # pace=True
    gamma = schedule(n)                                     # pace=False
    ```

    to every `LatentPointCollapse` in the model (nested models included), or
    to the ones given in ``layers``. ``span`` is the count at which the
    schedule reaches its final value and ``total`` the length of the run
    (``epochs * steps`` or ``epochs``, read from the ``fit`` call), so a
    paced schedule reaches its maximum at ``ramp_fraction`` of the run
    whatever its length. ``gamma`` and the effective count
    (``gamma_count``) are written into ``logs``, so `History`, `CSVLogger`,
    TensorBoard and KerasTuner see them.

    **Default schedule and budget.** With ``schedule=None``, gamma follows
    `default_schedule` (``Polynomial(0, maximum, power=2)``, per step, paced
    to end at 95 % of the run). With
    ``max_gamma="auto"`` the maximum is 1e3, lowered for short runs to
    `gamma_budget` (``1e3 * (k * lr * steps / 4.5) ** 2``, from the run's
    steps, the optimizer's learning rate and the largest learning-rate
    multiplier ``k`` of a `keras_lpc.optimizers.LRMultiplierOptimizer`), the
    largest gamma an Adam-type optimizer's output layer can follow; a
    100-epoch run on digits at batch 32 gets 1e3, a 15-epoch run about 22.
    The maximum chosen for the current run is ``self.max_gamma_used``.

    **Hold.** With ``hold_monitor`` (default ``"accuracy"``), when the
    monitored training metric at the end of an epoch falls below
    ``hold_fraction`` times its best value so far, the effective count stops
    advancing (gamma stays where it is) until the metric recovers. This
    guards against the known failure of large gamma with a slow output
    layer: accuracy dropping to chance.

    **Cost.** Every assignment goes through ``self.model``; on JAX that syncs
    the trainer's state into the variables, so ``unit="step"`` costs about
    0.4 ms per step on a 2-core CPU (docs/benchmarks.md). For very small
    models on JAX, ``unit="epoch"`` avoids it.

    **Resume.** The schedule is a pure function of the effective count, and
    the count, the best monitored value and the hold flag are kept on the
    `LatentPointCollapse` layers and saved with their weights, so a run
    resumed by `keras.callbacks.BackupAndRestore`, from a `ModelCheckpoint`
    file, or with ``initial_epoch`` follows the same gamma trajectory as an
    uninterrupted one, holds included. The next epoch's state is ready from
    the epoch's last batch (when ``fit`` knows the number of steps and the
    monitor is a training metric), so the callbacks' order does not matter;
    otherwise list `GammaAnnealing` before a checkpointing callback. A model
    without saved state resumes at ``initial_epoch * steps`` (no holds).

    Args:
        schedule: a `keras_lpc.schedules.GammaSchedule`, a number (constant
            gamma), a `keras.optimizers.schedules.LearningRateSchedule` or any
            callable ``count -> float``. ``None``: `default_schedule()`.
        unit: ``"step"`` (per optimizer step) or ``"epoch"``.
        layers: ``None`` (all LPC layers) or layers / layer names.
        pace: ``"auto"`` (pace schedules that report a finite ``span``),
            ``True`` (require one) or ``False`` (use counts as they are).
        ramp_fraction: fraction of the run at which a paced schedule ends,
            in (0, 1].
        hold_monitor: name of a training metric in ``logs`` (``None``
            disables holding). A missing metric disables it with a warning.
        hold_fraction: hold while ``metric < hold_fraction * best``, in [0, 1].
        max_gamma: maximum of the default schedule: ``"auto"`` (1e3, or
            `gamma_budget` when lower) or a number > 0. Only with
            ``schedule=None``.
        verbose: 1 prints gamma at the start of every epoch.

    Example:

    >>> import keras, numpy as np, keras_lpc
    >>> model = keras.Sequential([keras.Input((4,)), keras_lpc.LatentPointCollapse(2),
    ...                           keras.layers.Dense(2)])
    >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> cb = keras_lpc.GammaAnnealing(keras_lpc.schedules.Exponential(1.0, 2.0, 1, 8.0),
    ...                               unit="epoch", pace=False)
    >>> h = model.fit(np.ones((8, 4)), np.zeros(8), epochs=3, verbose=0, callbacks=[cb])
    >>> tuple(h.history["gamma"])
    (1.0, 2.0, 4.0)
    """

    def __init__(
        self,
        schedule: Any = None,
        unit: str = "step",
        layers: Any = None,
        verbose: int = 0,
        pace: bool | str = "auto",
        ramp_fraction: float = 0.95,
        hold_monitor: str | None = "accuracy",
        hold_fraction: float = 0.8,
        max_gamma: float | str = "auto",
    ) -> None:
        super().__init__()
        self._auto_schedule = schedule is None
        if max_gamma != "auto":
            if not self._auto_schedule:
                raise ValueError(
                    "`max_gamma` applies to the default schedule only; give the maximum "
                    f"in your schedule instead. Received: max_gamma={max_gamma!r} with "
                    f"schedule={schedule!r}"
                )
            if isinstance(max_gamma, str):
                raise ValueError(
                    f"`max_gamma` must be 'auto' or a number > 0. Received: max_gamma={max_gamma!r}"
                )
            check_float("max_gamma", max_gamma, strictly_positive=True)
        self.max_gamma = max_gamma
        self.max_gamma_used: float | None = None
        self.schedule = self._check_schedule(
            default_schedule(float(max_gamma)) if max_gamma != "auto" else schedule
        )
        self.unit = check_choice("unit", unit, ("step", "epoch"))
        self.layers = layers
        self.verbose = verbose
        if pace not in ("auto", True, False):
            raise ValueError(f"`pace` must be one of 'auto', True, False. Received: pace={pace!r}")
        if pace is True and _span(self.schedule) is None:
            raise ValueError(
                "`pace=True` needs a schedule with a finite `span` (a keras_lpc schedule "
                f"that settles). Received: schedule={self.schedule!r}"
            )
        self.pace = pace
        self.ramp_fraction = check_float("ramp_fraction", ramp_fraction, strictly_positive=True)
        if self.ramp_fraction > 1:
            raise ValueError(
                f"`ramp_fraction` must be in (0, 1]. Received: ramp_fraction={ramp_fraction!r}"
            )
        if hold_monitor is not None and not isinstance(hold_monitor, str):
            raise TypeError(
                f"`hold_monitor` must be a metric name or None. Received: hold_monitor={hold_monitor!r}"
            )
        self.hold_monitor = hold_monitor
        self.hold_fraction = check_float("hold_fraction", hold_fraction, minimum=0.0)
        if self.hold_fraction > 1:
            raise ValueError(
                f"`hold_fraction` must be in [0, 1]. Received: hold_fraction={hold_fraction!r}"
            )
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.count = 0.0  # effective count at the start of the current unit
        self.gamma = None
        self.holding = False
        self._best = -math.inf
        self._steps = None
        self._total = None
        self._started = False  # set by the first epoch of a fit
        self._epoch_start = 0.0
        self._targets = None
        self._last_assigned = None
        self._warned_monitor = False
        self._epoch = 0
        self._per_epoch = 0  # counts per epoch: 1, steps, or 0 (unknown)
        self._closed = False  # the current epoch's hold decision is made
        self._hold_evaluated = False
        self._next_count = 0.0
        self._start_state: tuple[float, ...] = (math.nan,) * 4
        self._next_state: tuple[float, ...] = (math.nan,) * 4

    @staticmethod
    def _check_schedule(schedule: Any) -> Callable[[float], Any]:
        if schedule is None:
            return default_schedule()
        if isinstance(schedule, bool):
            raise TypeError(
                f"`schedule` must be a schedule, a number or a callable. Received: schedule={schedule!r}"
            )
        if isinstance(schedule, (int, float)):
            return schedules_module.Constant(schedule)
        if isinstance(schedule, dict):
            return schedules_module.get(schedule)
        if not callable(schedule):
            raise TypeError(
                "`schedule` must be a keras_lpc schedule, a number, a "
                "keras LearningRateSchedule or a callable count -> float. "
                f"Received: schedule={schedule!r}"
            )
        return schedule

    def paced_count(self, count: float) -> float:
        """Map an effective count of this run onto the schedule's own count."""
        span = _span(self.schedule)
        if self.pace is False or span is None or not self._total:
            return count
        return count * span / (self.ramp_fraction * self._total)

    def value_at(self, count: float) -> float:
        """gamma for an effective count (validated: finite and >= 0)."""
        raw = self.schedule(self.paced_count(count))
        try:
            value = float(keras.ops.convert_to_numpy(raw))
        except (TypeError, ValueError):
            raise TypeError(
                f"`schedule` must return a number. Received: schedule({count!r})={raw!r}"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                "`schedule` must return a finite number >= 0. "
                f"Received: schedule({count!r})={value!r}"
            )
        return value

    # ------------------------------------------------------------------ hooks
    def _lpc_layers(self) -> list:
        # `self.model` (not a cached model) in every hook: on JAX that property
        # syncs the trainer's state into the variables, so that the next train
        # step reads the gamma assigned here instead of a stale copy.
        model = self.model
        if self._targets is None:
            self._targets = find_lpc_layers(model, self.layers)
        return self._targets

    def _assign(self, count: float) -> None:
        value = self.value_at(count)
        layers = self._lpc_layers()
        if value != self._last_assigned:
            for layer in layers:
                layer.gamma.assign(value)
            self._last_assigned = value
        self.gamma = value

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._reset()
        params = self.params or {}
        self._steps = params.get("steps")
        epochs = params.get("epochs")
        if self.unit == "epoch":
            self._total = epochs
        elif self._steps and epochs:
            self._total = epochs * self._steps
        if self._auto_schedule and self.max_gamma == "auto":
            self.schedule = default_schedule(self._auto_maximum(epochs))
        self.max_gamma_used = float(getattr(self.schedule, "stop", math.nan))
        if self.pace is True and not self._total:
            raise ValueError(
                "`pace=True` needs the run's length, but fit() did not report "
                f"`steps` (a dataset of unknown size). Received: params={params!r}"
            )
        self._lpc_layers()  # fail early if the model has no LPC layer

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self._started:
            # First epoch of this fit: a resumed run (initial_epoch > 0)
            # starts from the state that epoch had in the original run.
            self._started = True
            self._per_epoch = 1 if self.unit == "epoch" else (self._steps or 0)
            if not (epoch > 0 and self._restore(epoch)):
                self.count = float(epoch * self._per_epoch)
        self._epoch = epoch
        self._epoch_start = self.count
        self._closed = False
        self._hold_evaluated = False
        self._start_state = (epoch, self.count, self._best, float(self.holding))
        self._next_state = (math.nan,) * 4
        self._publish()
        if self.unit == "epoch":
            self._assign(self.count)
        if self.verbose:
            value = self.value_at(self.count)
            print(f"\nEpoch {epoch + 1}: GammaAnnealing sets gamma to {value:.6g}")

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.unit != "step":
            return
        current = self._epoch_start if self.holding else self._epoch_start + batch
        self.count = float(current)
        self._assign(self.count)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if logs is not None and self.gamma is not None:
            logs["gamma"] = self.gamma
        # After the last batch the training metrics are final: decide the
        # hold now, so a checkpoint saved by a callback listed before this
        # one in on_epoch_end already holds the next epoch's state.
        last = bool(self._steps) and batch + 1 >= self._steps
        if last and logs is not None and (self.hold_monitor is None or self.hold_monitor in logs):
            self._close_epoch(logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._close_epoch(logs if logs is not None else {})
        if logs is not None:
            logs["gamma"] = self.gamma if self.gamma is not None else float("nan")
            logs["gamma_count"] = self.count
            if self._hold_evaluated:
                logs["gamma_holding"] = float(self.holding)
        self.count = self._next_count

    def _close_epoch(self, logs: dict) -> None:
        """Decide the next epoch's count and hold once per epoch, and publish them."""
        if self._closed:
            return
        self._closed = True
        # The count advances by one past the last unit of this epoch, unless
        # this epoch was held (then it stayed at the epoch's start).
        self._next_count = self.count if self.holding else self.count + 1
        self._update_hold(logs)
        self._next_state = (self._epoch + 1, self._next_count, self._best, float(self.holding))
        self._publish()

    def _publish(self) -> None:
        """Put the resume state on the target layers, which save it with their weights."""
        state = np.array([*self._start_state, *self._next_state, self._per_epoch], "float64")
        for layer in self._lpc_layers():
            layer._annealing_state = state

    def _restore(self, epoch: int) -> bool:
        """Resume from the state saved on the first target layer, if it is for ``epoch``."""
        state = getattr(self._lpc_layers()[0], "_annealing_state", None)
        if state is None:
            return False
        state = np.asarray(state, "float64")
        if state.shape == (9,) and state[8] == self._per_epoch:
            for slot in (state[0:4], state[4:8]):
                if slot[0] == epoch:
                    self.count, self._best = float(slot[1]), float(slot[2])
                    self.holding = bool(slot[3])
                    return True
        warnings.warn(
            f"GammaAnnealing: the model's saved annealing state does not match epoch {epoch} "
            f"with {self._per_epoch} counts per epoch (state: {state.tolist()}); resuming at "
            "count initial_epoch * steps without holds. List GammaAnnealing before "
            "checkpointing callbacks to save the state of every epoch.",
            stacklevel=2,
        )
        return False

    def _auto_maximum(self, epochs: int | None) -> float:
        """1e3, or `gamma_budget` of this run when that is lower (unknown length: 1e3)."""
        if not self._steps or not epochs:
            return DEFAULT_MAXIMUM
        optimizer = getattr(self.model, "optimizer", None)
        try:
            lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return DEFAULT_MAXIMUM
        factors = [float(f) for f in getattr(optimizer, "multipliers", {}).values()]
        budget = gamma_budget(epochs * self._steps, lr, max([1.0, *factors]))
        return max(min(DEFAULT_MAXIMUM, budget), 1e-1)

    def _update_hold(self, logs: dict) -> None:
        if self.hold_monitor is None:
            return
        if self.hold_monitor not in logs:
            if not self._warned_monitor:
                self._warned_monitor = True
                warnings.warn(
                    f"GammaAnnealing: `hold_monitor`={self.hold_monitor!r} is not in the "
                    f"training logs (available: {sorted(logs)}); holding is disabled. "
                    "Compile with metrics=['accuracy'] or pass hold_monitor=None.",
                    stacklevel=2,
                )
            return
        value = float(np.asarray(logs[self.hold_monitor]))
        if not math.isfinite(value):
            return
        self._best = max(self._best, value)
        self.holding = value < self.hold_fraction * self._best
        self._hold_evaluated = True

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        ser = keras.saving.serialize_keras_object
        return {
            "schedule": None
            if self._auto_schedule
            else (ser(self.schedule) if hasattr(self.schedule, "get_config") else None),
            "unit": self.unit,
            "verbose": self.verbose,
            "pace": self.pace,
            "ramp_fraction": self.ramp_fraction,
            "hold_monitor": self.hold_monitor,
            "hold_fraction": self.hold_fraction,
            "max_gamma": self.max_gamma,
        }


def _span(schedule: Any) -> float | None:
    span = getattr(schedule, "span", None)
    if span is None or not isinstance(span, (int, float)) or not math.isfinite(span) or span <= 0:
        return None
    return float(span)
