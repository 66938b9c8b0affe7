"""`GammaAnnealing`: raises the LPC penalty coefficient during `fit`.

The schedule itself runs inside the compiled train step (see
`keras_lpc.LatentPointCollapse`); this callback does the per-epoch work
that needs Python: pacing to the run's length, the budget, the hold on a
training metric, the resume state and the logs.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np

from keras_lpc import schedules as schedules_module
from keras_lpc._models import find_lpc_layers
from keras_lpc._validation import check_choice, check_float
from keras_lpc.callbacks._base import lead_callbacks
from keras_lpc.callbacks.pacing import TrainingPace
from keras_lpc.layers import AnnealingState, EpochState

# Re-exported: the default run's policy lives in `keras_lpc.schedules`.
from keras_lpc.schedules import (  # noqa: F401
    BUDGET_REFERENCE,
    DEFAULT_MAXIMUM,
    default_schedule,
    gamma_budget,
)

PACED_RAMP_FRACTION = 0.7  # the default ramp's end when the training paces it
CLOCK_RAMP_FRACTION = 0.95  # ... and when it follows the clock


class GammaAnnealing(keras.callbacks.Callback):
    """Drive ``gamma`` of the model's `LatentPointCollapse` layers with a schedule.

    gamma at every optimizer step (``unit="step"``, the default) or epoch
    (``unit="epoch"``) is

    ```
    gamma = schedule(n * span / (ramp_fraction * total))   # pace=True
    gamma = schedule(n)                                     # pace=False
    ```

    where ``n`` is the *effective count*: the step (or epoch) from 0, less
    the counts spent holding. ``span`` is the count at which the schedule
    reaches its final value and ``total`` the length of the run (``epochs *
    steps`` or ``epochs``, read from the ``fit`` call), so a paced schedule
    reaches its maximum at ``ramp_fraction`` of the run whatever its length.
    The targets are every `LatentPointCollapse` in the model (nested models
    included) or the ones given in ``layers``. ``gamma`` and the effective
    count of the epoch's last unit (``gamma_count``) are written into
    ``logs``, so `History`, `CSVLogger`, TensorBoard and KerasTuner see them.

    **Inside the train step.** With ``unit="step"`` and a keras_lpc
    schedule (or a Keras ``LearningRateSchedule``), the layers evaluate the
    schedule in `keras.ops` at every training call from a count the step
    itself advances; this callback only sets, once per epoch, where the count
    starts, how fast it advances (``rate``: 1 ramping, 0 held) and the pacing.
    No Python runs per step, which costs nothing on JAX (no state sync) and
    keeps gamma exact under ``steps_per_execution > 1``. A plain Python
    callable cannot run in the step: it is evaluated in Python and assigned
    before every execution, as in earlier versions (about 0.4 ms per step on
    JAX, and gamma changes only once per execution when
    ``steps_per_execution > 1``, with a warning). ``unit="epoch"`` assigns
    gamma at the start of every epoch. The logged per-batch ``gamma`` is the
    schedule's value computed in Python (float64); the layer holds the float32
    one computed in the step (equal to float32 rounding).

    Outside ``fit`` (a custom training loop that drives the callbacks with a
    `keras.callbacks.CallbackList` and calls the model without
    ``training=True``) the model has no train function: gamma is then
    assigned from Python before every step too.

    **Manual assignments.** While this callback drives a layer, the step
    computes gamma from the schedule: ``layer.gamma.assign(v)`` from other
    code lasts until the next train step, which overwrites it. After ``fit``
    (``on_train_end``) the layer is released: gamma keeps its last value and
    later ``fit`` calls without this callback use ``layer.gamma`` as it is.

    **Default schedule and budget.** With ``schedule=None``, gamma follows
    `keras_lpc.schedules.default_schedule` (``Polynomial(0, maximum,
    power=2)``, per step), paced by the training (below) and, at full
    pace, ending at 70 % of the run. With
    ``max_gamma="auto"`` the maximum is 1e3, lowered for short runs to
    `keras_lpc.schedules.gamma_budget` (``1e3 * (k * lr * steps / 4.5) **
    2``, from the run's steps, the optimizer's learning rate and the largest
    learning-rate multiplier ``k`` of a
    `keras_lpc.optimizers.LRMultiplierOptimizer`), the largest gamma an
    Adam-type optimizer's output layer can follow; a 100-epoch run on digits
    at batch 32 gets 1e3, a 15-epoch run about 22. The maximum chosen for
    the current run is ``self.max_gamma_used``. A dataset of unknown length
    (no ``steps_per_epoch``) gives neither pacing nor budget: a warning says
    so at the start of ``fit``; so does a schedule that starts above the
    run's budget.

    **Pacing by the training (the default schedule).** With ``schedule=None``
    and an accuracy as ``hold_monitor``, `keras_lpc.callbacks.TrainingPace`
    sets the ramp's rate once per epoch from the training accuracy ``a``:
    with ``rho = (e_prev - e) / max(e_prev, 0.05)`` the fraction of the
    remaining training error ``e = 1 - a`` removed in the last epoch, the
    next epoch ramps at ``rate = clip(1 - rho / 0.05, 0, 1)`` (a model still
    removing 5 % of its error per epoch holds gamma; one on a plateau
    ramps at full pace), and holds (rate 0) while ``a`` is more than
    ``max(0.01, 0.2 (1 - best))`` below its best. A loss of ground while the
    ramp was moving also **backs off**: the effective count returns to 0.7
    times the count of the last epoch that had not lost ground (gamma x0.49
    on the quadratic ramp) and the ramp climbs again at half its speed
    (``TrainingPace(retreat=0.7, backoff=0.5)``; a hold alone froze gamma
    where the fit broke, and the training accuracy of a TensorFlow run fell
    from 1.0 to 0.47 and never recovered). So gamma rises only once
    the network has fitted what it can at the current gamma, and waits for
    it after a loss; at full pace the ramp ends at ``ramp_fraction=0.7`` of
    the run, leaving 30 % of the run for holds. Measured on a suite of
    tasks, half of them held out (docs/recipe.md,
    `benchmarks/recipe_suite.py`): with the clock alone a 1-D CNN ended 13
    and 26 points below the baseline's final training accuracy and up to 3.5
    points below its test accuracy; paced (this default, 90 runs: 10 tasks x
    3 seeds on each of JAX, PyTorch and TensorFlow), the test accuracy was
    within 0.5 points of the baseline or above in 78 runs, the misses on a
    1-D CNN that memorises its training set (down to -4.3 points), a
    low-signal task at gamma 1e3 (-1.3 to -1.8) and one other CNN run
    (-1.5). ``pacing=None`` (or
    ``hold_monitor=None``) keeps
    the clock (and ``ramp_fraction`` 0.95); an explicit ``schedule`` follows
    the clock unless ``pacing=TrainingPace(...)`` is given.

    **Hold.** At the end of every epoch one rule, `_next_rate`, returns the
    next epoch's rate from the epoch's training logs. The built-in rule,
    with ``hold_monitor`` (default ``"accuracy"``), holds (rate 0) while the
    monitored training metric is worse than ``hold_fraction`` of its best
    value so far (mode ``"max"``: below ``hold_fraction * best``; mode
    ``"min"``, e.g. a loss: above ``best / hold_fraction``), or worse than
    ``hold_baseline``, and runs at full speed (rate 1) otherwise. As in
    Keras' monitor callbacks, the best value is replaced only by one better
    by more than ``hold_min_delta``. ``hold_baseline="auto"`` is the chance
    level ``1 / classes`` for an accuracy monitor (so a run whose accuracy
    was never high still holds while it sits below chance) and none for
    other metrics. This guards against the known failure of large gamma
    with a slow output layer: accuracy dropping to chance. A hold freezes
    gamma; it does not lower it.

    **Resume and later fits.** The schedule is a pure function of the
    effective count, and the count, the rate, the best monitored value and
    the pacing are kept on the layers (``layer.annealing_state``) and saved
    with their weights, so a run resumed by
    `keras.callbacks.BackupAndRestore`, from a `ModelCheckpoint` file, or
    with ``initial_epoch`` follows the same gamma trajectory as an
    uninterrupted one, holds included. The next epoch's state is ready from
    the epoch's last batch (when ``fit`` knows the number of steps and the
    monitor is a training metric), so the callbacks' order does not matter;
    otherwise list `GammaAnnealing` before a checkpointing callback. A model
    without matching saved state resumes at ``initial_epoch * steps`` (no
    holds), with a warning if it had another run's state. A new ``fit``
    from epoch 0 on a layer that was annealed before continues from the
    layer's gamma (the same schedule count, paced to the new run) instead
    of restarting at 0.

    Args:
        schedule: a `keras_lpc.schedules.GammaSchedule`, a number (constant
            gamma), a `keras.optimizers.schedules.LearningRateSchedule` or any
            callable ``count -> float``. ``None``: `default_schedule()`.
        unit: ``"step"`` (per optimizer step) or ``"epoch"``.
        layers: ``None`` (all LPC layers) or layers / layer names.
        verbose: 1 prints gamma at the start of every epoch.
        pace: ``"auto"`` (pace schedules that report a finite ``span``),
            ``True`` (require one) or ``False`` (use counts as they are).
        ramp_fraction: fraction of the run at which a paced schedule ends
            at full rate, in (0, 1]; ``"auto"``: 0.7 with ``pacing``, 0.95
            without.
        hold_monitor: name of a training metric in ``logs`` (``None``
            disables holding). A missing metric disables it with a warning.
        hold_fraction: the hold's threshold as a fraction of the best value,
            in [0, 1].
        max_gamma: maximum of the default schedule: ``"auto"`` (1e3, or
            `gamma_budget` when lower) or a number > 0. Only with
            ``schedule=None``.
        hold_mode: ``"auto"`` (``"min"`` when the monitor's name contains
            ``"loss"``, else ``"max"``), ``"max"`` or ``"min"``.
        hold_min_delta: smallest change of the monitor that counts as a new
            best, >= 0.
        hold_baseline: ``"auto"``, ``None`` or a number: hold while the
            monitor is worse than it.
        pacing: ``"auto"`` (a `TrainingPace()` for the default schedule when
            ``hold_monitor`` is an accuracy, else none), ``None`` (the clock
            only), or a `keras_lpc.callbacks.TrainingPace` (or its config
            dict) reading ``hold_monitor``, for any schedule.

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
        ramp_fraction: float | str = "auto",
        hold_monitor: str | None = "accuracy",
        hold_fraction: float = 0.8,
        max_gamma: float | str = "auto",
        hold_mode: str = "auto",
        hold_min_delta: float = 0.0,
        hold_baseline: float | str | None = "auto",
        pacing: Any = "auto",
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
        if isinstance(schedule, bool):
            raise TypeError(
                f"`schedule` must be a schedule, a number or a callable. Received: schedule={schedule!r}"
            )
        if max_gamma != "auto":
            schedule = default_schedule(float(max_gamma))
        self.schedule = default_schedule() if schedule is None else schedules_module.get(schedule)
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
        if ramp_fraction != "auto":
            if isinstance(ramp_fraction, str):
                raise ValueError(
                    "`ramp_fraction` must be 'auto' or a number in (0, 1]. "
                    f"Received: ramp_fraction={ramp_fraction!r}"
                )
            check_float("ramp_fraction", ramp_fraction, strictly_positive=True)
            if ramp_fraction > 1:
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
        self.hold_mode = check_choice("hold_mode", hold_mode, ("auto", "max", "min"))
        self.hold_min_delta = check_float("hold_min_delta", hold_min_delta, minimum=0.0)
        if hold_baseline not in ("auto", None):
            if isinstance(hold_baseline, str):
                raise ValueError(
                    "`hold_baseline` must be 'auto', None or a number. "
                    f"Received: hold_baseline={hold_baseline!r}"
                )
            hold_baseline = check_float("hold_baseline", hold_baseline)
        self.hold_baseline = hold_baseline
        self.pacing = pacing
        self.pacer = self._check_pacing(pacing)
        self.ramp_fraction = (
            float(ramp_fraction)
            if ramp_fraction != "auto"
            else (PACED_RAMP_FRACTION if self.pacer is not None else CLOCK_RAMP_FRACTION)
        )
        self._ramp_fraction_arg = ramp_fraction
        self._reset()

    def _check_pacing(self, pacing: Any) -> TrainingPace | None:
        """The `TrainingPace` this callback uses, or None (the ramp follows the clock)."""
        if isinstance(pacing, dict):
            pacing = TrainingPace(**pacing)
        if pacing is None or isinstance(pacing, TrainingPace):
            if pacing is not None and (self.hold_monitor is None or self._mode() != "max"):
                raise ValueError(
                    "`pacing` reads a training accuracy (a fraction, higher is better) from "
                    "`hold_monitor`. Received: pacing="
                    f"{pacing!r} with hold_monitor={self.hold_monitor!r}, "
                    f"hold_mode={self.hold_mode!r}"
                )
            return pacing
        if pacing != "auto":
            raise ValueError(
                "`pacing` must be 'auto', None, a keras_lpc.callbacks.TrainingPace or its "
                f"config dict. Received: pacing={pacing!r}"
            )
        # "auto": the default schedule follows the training when an accuracy is monitored.
        if self._auto_schedule and self.hold_monitor is not None and self._mode() == "max":
            return TrainingPace()
        return None

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.count = 0.0  # effective count at the start of the current epoch
        self.rate = 1.0  # its advance per unit during the current epoch
        self.gamma = None  # the last logged gamma
        self.policy_state: dict[str, float] = {}  # the per-epoch rule's own numbers
        self._best = math.inf if self._mode() == "min" else -math.inf
        self._steps = None
        self._total = None
        self._scale = 1.0
        self._graph = False
        self._started = False  # set by the first epoch of a fit
        self._targets = None
        self._warned_monitor = False
        self._epoch = 0
        self._per_epoch = 0  # counts per epoch: 1, steps, or 0 (unknown)
        self._last_batch = -1
        self._closed = False  # the current epoch's decision is made
        self._decided = False  # ... and the rule returned one
        self._next_count = 0.0
        self._following_rate = self.rate  # the rate decided for the next epoch
        self._logged = (math.nan, math.nan)  # (count, gamma) cache of the per-batch log
        self._current: EpochState | None = None
        self._next: EpochState | None = None
        self._baseline: float | None = None

    @property
    def holding(self) -> bool:
        """Whether the current epoch is held (its rate is 0)."""
        return self.rate == 0.0

    def paced_count(self, count: float) -> float:
        """Map an effective count of this run onto the schedule's own count."""
        return count * self._scale

    def _pacing_scale(self) -> float:
        span = _span(self.schedule)
        if self.pace is False or span is None or not self._total:
            return 1.0
        return span / (self.ramp_fraction * self._total)

    def value_at(self, count: float) -> float:
        """gamma for an effective count, in Python (validated: finite and >= 0)."""
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

    def count_at(self, batch: int) -> float:
        """Effective count of batch ``batch`` (0-based) of the current epoch."""
        if self.unit == "epoch":
            return self.count
        return self.count + self.rate * batch

    # ------------------------------------------------------------ the rule
    def _next_rate(self, epoch: int, logs: dict) -> float | None:
        """The next epoch's rate in [0, 1] from this epoch's training logs.

        The smaller of the hold's rate (`_hold_rate`) and, when ``pacing`` is
        on, the `TrainingPace` rate; ``None`` when neither decides. The pacing's
        state is kept in ``self.policy_state`` (``pace_best``, ``pace_error``,
        ``pace_rate``, ``pace_speed``, ``pace_good``), so a resumed run decides
        the same. After an epoch that lost ground the pacing also lowers the
        next epoch's count (``self._next_count``) to its last good one.
        """
        hold = self._hold_rate(epoch, logs)
        pace = self._pace_rate(logs)
        if pace is None:
            return hold
        return pace if hold is None else min(hold, pace)

    def _pace_rate(self, logs: dict) -> float | None:
        if self.pacer is None or self.hold_monitor not in logs:
            return None
        value = float(np.asarray(logs[self.hold_monitor]))
        if not math.isfinite(value):
            return None
        state = self.policy_state
        if "pace_best" in state:
            # a state saved before the back-off has the first three keys only
            self.pacer.set_state(tuple(state[key] for key in _PACE_STATE if key in state))
        else:
            self.pacer.reset()
        rate = self.pacer.rate(value, count=self._next_count)
        # A loss of ground sends the next epoch back to the last good count.
        self._next_count = self.pacer.next_count(self._next_count)
        state.update(zip(_PACE_STATE, self.pacer.get_state()))
        return rate

    def _hold_rate(self, epoch: int, logs: dict) -> float | None:
        """The hold's rate: 0 below ``hold_fraction`` of the best (or the baseline), else 1.

        Called once per epoch, when its training metrics are final. Returns
        0 (hold), 1 (full speed), a value in between (slowed), or ``None``
        to keep the current rate (no decision: the monitor is missing or
        not finite). May keep numbers in ``self.policy_state`` (saved and
        restored with the annealing state). The contract for replacing it
        is in the class docstring's "Hold" paragraph.
        """
        if self.hold_monitor is None:
            return None
        if self.hold_monitor not in logs:
            if not self._warned_monitor:
                self._warned_monitor = True
                warnings.warn(
                    f"GammaAnnealing: `hold_monitor`={self.hold_monitor!r} is not in the "
                    f"training logs (available: {sorted(logs)}); holding is disabled. "
                    "Compile with metrics=['accuracy'] or pass hold_monitor=None.",
                    stacklevel=2,
                )
            return None
        value = float(np.asarray(logs[self.hold_monitor]))
        if not math.isfinite(value):
            return None
        sign = -1.0 if self._mode() == "min" else 1.0
        if not math.isfinite(self._best) or sign * (value - self._best) > self.hold_min_delta:
            self._best = value
        if sign > 0:
            hold = value < self.hold_fraction * self._best
        else:
            hold = self.hold_fraction > 0 and value > self._best / self.hold_fraction
        if self._baseline is not None:
            hold = hold or sign * (self._baseline - value) > 0
        return 0.0 if hold else 1.0

    def _mode(self) -> str:
        if self.hold_mode != "auto":
            return self.hold_mode
        return "min" if self.hold_monitor and "loss" in self.hold_monitor.lower() else "max"

    # ------------------------------------------------------------------ hooks
    def _lpc_layers(self) -> list:
        # `self.model` (not a cached model): on JAX that property syncs the
        # trainer's state into the variables, so that what is assigned here
        # reaches the next train step instead of a stale copy.
        model = self.model
        if self._targets is None:
            self._targets = find_lpc_layers(model, self.layers)
        return self._targets

    def on_train_begin(self, logs: dict | None = None) -> None:
        # CSVLogger, TensorBoard, EarlyStopping... listed before this callback
        # move after it, so that they see `gamma` (see `lead_callbacks`).
        lead_callbacks(self)
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
        self._scale = self._pacing_scale()
        self._baseline = self._resolve_baseline()
        layers = self._lpc_layers()  # fail early if the model has no LPC layer
        self._warn_unknown_length()
        # `fit` builds its train function before this hook; a custom training
        # loop (no train function, calls without training=True) gets gamma
        # assigned from Python instead.
        model = self.model
        in_fit = getattr(model, "train_function", None) is not None
        self._graph = self.unit == "step" and in_fit and schedules_module.in_graph(self.schedule)
        if self._graph:
            changed = [layer._drive(self.schedule) for layer in layers]
            if any(changed):
                # Trace this schedule into the step (one traced with another
                # schedule by an earlier fit is replaced).
                model.make_train_function(force=True)
        else:
            self._warn_python_per_execution()

    def _warn_unknown_length(self) -> None:
        paced = self.pace is not False and _span(self.schedule) is not None
        if self._total or not (paced or self._auto_schedule):
            return
        warnings.warn(
            "GammaAnnealing: fit() does not know the number of steps per epoch (a dataset "
            "of unknown length), so gamma is neither paced to the run nor limited by its "
            f"budget (max_gamma_used={self.max_gamma_used:g}). Pass "
            "`steps_per_epoch=len(dataset)` (or `dataset.repeat()` with steps_per_epoch) "
            "to fit(), or give a tf.data dataset of known cardinality.",
            stacklevel=3,
        )

    def _warn_python_per_execution(self) -> None:
        executions = int(getattr(self.model, "steps_per_execution", 1) or 1)
        if self.unit == "step" and executions > 1:
            warnings.warn(
                f"GammaAnnealing: the schedule {self.schedule!r} is a Python callable, "
                f"assigned before every execution of steps_per_execution={executions} "
                "steps, so gamma changes once per execution. Use a keras_lpc schedule "
                "(evaluated inside the train step) to follow it at every step.",
                stacklevel=3,
            )

    def _resolve_baseline(self) -> float | None:
        if self.hold_baseline != "auto":
            return self.hold_baseline
        if not self.hold_monitor or "acc" not in self.hold_monitor or self._mode() != "max":
            return None
        try:
            classes = int(self.model.outputs[0].shape[-1])
        except (AttributeError, IndexError, TypeError, ValueError):
            return None
        return 1.0 / classes if classes >= 2 else 0.5

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if not self._started:
            self._started = True
            self._per_epoch = 1 if self.unit == "epoch" else (self._steps or 0)
            self._start(epoch)
        self._epoch = epoch
        self._closed = False
        self._decided = False
        self._last_batch = -1
        self._current = EpochState(
            epoch, self.count, self._best, self.rate, dict(self.policy_state)
        )
        self._next = None
        layers = self._lpc_layers()  # the epoch's one touch of the model
        self._publish()
        if self._graph:
            for layer in layers:
                layer.annealing_count.assign(self.count)
                layer.annealing_rate.assign(self.rate)
                layer.annealing_scale.assign(self._scale)
                layer.annealing_on.assign(1.0)
        else:
            for layer in layers:
                layer.annealing_on.assign(0.0)
                layer.annealing_rate.assign(0.0)
            if self.unit == "epoch":
                self._assign(self.count)
        if self.verbose:
            value = self.value_at(self.count)
            print(f"\nEpoch {epoch + 1}: GammaAnnealing sets gamma to {value:.6g}")

    def _start(self, epoch: int) -> None:
        """The first epoch of this fit: resume, continue or start at 0."""
        state = self._lpc_layers()[0].annealing_state
        if epoch > 0:
            # A resumed run (initial_epoch > 0) starts from the state that
            # epoch had in the original run.
            for slot in (state.current, state.next) if state is not None else ():
                if (
                    slot is not None
                    and slot.epoch == epoch
                    and state.counts_per_epoch == self._per_epoch
                ):
                    self._load(slot)
                    return
            if state is not None:
                warnings.warn(
                    f"GammaAnnealing: the model's saved annealing state does not match epoch "
                    f"{epoch} with {self._per_epoch} counts per epoch (state: {state}); "
                    "resuming at count initial_epoch * steps without holds. List "
                    "GammaAnnealing before checkpointing callbacks to save the state of "
                    "every epoch.",
                    stacklevel=3,
                )
            self.count = float(epoch * self._per_epoch)
        elif state is not None:
            # A new run on a layer annealed before: the same schedule count.
            latest = state.latest()
            self._load(latest)
            self.count = latest.count * state.scale / self._scale
        else:
            self._warn_start_above_budget()

    def _load(self, state: EpochState) -> None:
        self.count, self._best, self.rate = state.count, state.best, state.rate
        self.policy_state = dict(state.policy)

    def _warn_start_above_budget(self) -> None:
        budget = self._budget((self.params or {}).get("epochs"))
        start = self.value_at(self.count)
        if budget and start > max(budget, 1e-1):
            warnings.warn(
                f"GammaAnnealing: gamma starts at {start:g}, above this run's budget "
                f"{budget:.3g} (keras_lpc.schedules.gamma_budget); the model will likely "
                "train at chance. Start the schedule at 0 (GammaAnnealing() does).",
                stacklevel=3,
            )

    def _assign(self, count: float) -> None:
        value = self.value_at(count)
        for layer in self._lpc_layers():
            layer.gamma.assign(value)
        self.gamma = value

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.unit == "step" and not self._graph:  # a Python callable: assign now
            self._assign(self.count_at(batch))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._last_batch = batch
        if logs is not None:
            count = self.count_at(batch)
            if count != self._logged[0]:
                self._logged = (count, self.value_at(count))
            self.gamma = self._logged[1]
            logs["gamma"] = self.gamma
        # After the last batch the training metrics are final: decide the
        # next epoch now, so a checkpoint saved by a callback listed before
        # this one in on_epoch_end already holds the next epoch's state.
        last = bool(self._steps) and batch + 1 >= self._steps
        if last and logs is not None and (self.hold_monitor is None or self.hold_monitor in logs):
            self._close_epoch(logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._close_epoch(logs if logs is not None else {})
        last = self.count_at(max(self._last_batch, 0))
        if logs is not None:
            logs["gamma"] = self.value_at(last)
            logs["gamma_count"] = last
            if self._decided:
                logs["gamma_holding"] = 1.0 - self._following_rate
        self.count, self.rate = self._next_count, self._following_rate

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._graph and self._targets:
            for layer in self._lpc_layers():  # release: gamma is used as it is
                layer.annealing_on.assign(0.0)
                layer.annealing_rate.assign(0.0)

    def _close_epoch(self, logs: dict) -> None:
        """Decide the next epoch's count and rate once per epoch, and publish them."""
        if self._closed:
            return
        self._closed = True
        units = 1 if self.unit == "epoch" else self._last_batch + 1
        self._next_count = self.count + self.rate * units
        rate = self._next_rate_checked(self._epoch, logs)
        self._decided = rate is not None
        self._following_rate = self.rate if rate is None else rate
        self._next = EpochState(
            self._epoch + 1,
            self._next_count,
            self._best,
            self._following_rate,
            dict(self.policy_state),
        )
        self._publish()

    def _next_rate_checked(self, epoch: int, logs: dict) -> float | None:
        rate = self._next_rate(epoch, logs)
        if rate is None:
            return None
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(
                f"`_next_rate` must return a number in [0, 1] or None. Received: {rate!r}"
            )
        return rate

    def _publish(self) -> None:
        """Put the resume state on the target layers, which save it with their weights."""
        state = AnnealingState(self._current, self._next, self._per_epoch, self._scale)
        for layer in self._targets or ():
            layer._annealing_state = state

    def _budget(self, epochs: int | None) -> float | None:
        """`gamma_budget` of this run, or None when its length or learning rate is unknown."""
        if not self._steps or not epochs:
            return None
        optimizer = getattr(self.model, "optimizer", None)
        try:
            lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return None
        factors = [float(f) for f in getattr(optimizer, "multipliers", {}).values()]
        return gamma_budget(epochs * self._steps, lr, max([1.0, *factors]))

    def _auto_maximum(self, epochs: int | None) -> float:
        """1e3, or `gamma_budget` of this run when that is lower (unknown length: 1e3)."""
        budget = self._budget(epochs)
        if budget is None:
            return DEFAULT_MAXIMUM
        return max(min(DEFAULT_MAXIMUM, budget), 1e-1)

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
            "hold_monitor": self.hold_monitor,
            "hold_fraction": self.hold_fraction,
            "max_gamma": self.max_gamma,
            "hold_mode": self.hold_mode,
            "hold_min_delta": self.hold_min_delta,
            "hold_baseline": self.hold_baseline,
            "ramp_fraction": self._ramp_fraction_arg,
            "pacing": self.pacing.get_config()
            if isinstance(self.pacing, TrainingPace)
            else self.pacing,
        }


# `TrainingPace.get_state()`'s five floats, by name in `policy_state`
_PACE_STATE = ("pace_best", "pace_error", "pace_rate", "pace_speed", "pace_good")


def _span(schedule: Any) -> float | None:
    span = getattr(schedule, "span", None)
    if span is None or not isinstance(span, (int, float)) or not math.isfinite(span) or span <= 0:
        return None
    return float(span)
