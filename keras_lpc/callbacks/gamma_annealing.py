"""`GammaAnnealing`: raises the LPC penalty coefficient during `fit`.

Wiring only: the schedule runs inside the compiled train step
(`keras_lpc.LatentPointCollapse`, counting the optimizer's steps), the
per-epoch decisions are `keras_lpc.annealing.AnnealingRun`'s and its
policies'. This callback sets, at each epoch's start, where the count starts
and how fast it advances, and logs gamma read from the layer at its end.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras

from keras_lpc._io import print_msg
from keras_lpc._models import find_lpc_layers
from keras_lpc._validation import check_choice, check_float
from keras_lpc.annealing import plan, schedules
from keras_lpc.annealing.budget import DEFAULT_MAXIMUM, default_schedule
from keras_lpc.annealing.plan import CLOCK_RAMP_FRACTION, PACED_RAMP_FRACTION  # noqa: F401
from keras_lpc.annealing.run import AnnealingRun
from keras_lpc.callbacks import _legacy, ordering


class GammaAnnealing(keras.callbacks.Callback):
    """Drive ``gamma`` of the model's `LatentPointCollapse` layers with a schedule.

    At every optimizer step ``s`` (``unit="step"``) or epoch (``"epoch"``)::

        gamma = schedule(scale * n)

    where ``n``, the *effective count*, advances by the epoch's ``rate`` per
    step (1 by default; the policies may slow, hold or lower it) and
    ``scale = 1`` unless the schedule is stretched to the run
    (``scale = span / min(ramp_fraction * total, total - 1)``, ``span`` the
    count at which the schedule settles, ``total`` the run's steps: the
    schedule ends at ``ramp_fraction`` of the run, and by its last step at
    the latest). The schedule is
    evaluated in `keras.ops` inside the train step from the optimizer's step
    count, so a shared layer and ``steps_per_execution`` change nothing; no
    Python runs per step. ``gamma`` (read from the layer at the epoch's end),
    ``gamma_count`` (``n`` of the epoch's last step) and, when a policy
    decided, ``gamma_holding`` (``1 - rate`` of the next epoch) go into
    ``logs``.

    **An explicit schedule is followed as written**: ``GammaAnnealing(
    schedules.Linear(0, 1000, 1000))`` reaches 1000 at step 1000, whatever
    the run's length. ``ramp_fraction=f`` stretches it to end at ``f`` of the
    run instead; ``policy=`` adds per-epoch rules.

    **The default (``schedule=None``)** is the recipe measured in
    docs/recipe.md: `keras_lpc.schedules.default_schedule`, a quadratic ramp
    from 0 to ``max_gamma`` (``"auto"``: 1e3, lowered to
    `keras_lpc.schedules.gamma_budget` for runs too short to follow it),
    stretched to end at 70 % of the run, with the policies `Hold()` (hold
    while the training accuracy is below 0.8 of its best, or chance) and
    `TrainingPace()` (ramp only once the accuracy stops rising fast; back off
    after a loss of ground). ``self.max_gamma_used`` is the maximum chosen.

    **Resume and later fits.** The run's state (count, rate, the policies'
    numbers) is saved with the layers (``layer.annealing.resume``), so a run
    resumed by `keras.callbacks.BackupAndRestore`, from a `ModelCheckpoint`
    file or with ``initial_epoch`` follows the same trajectory; a new ``fit``
    on an annealed layer continues from its gamma. A plain Python callable
    (not a keras_lpc or Keras schedule) cannot run in the step: it is
    evaluated in Python before every execution.

    Args:
        schedule: a `keras_lpc.schedules.GammaSchedule`, a number (constant
            gamma), a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable ``count -> float``; ``None``: the default recipe.
        policy: ``"auto"`` (the default recipe's policies with
            ``schedule=None``, none otherwise), ``None``, or a
            `keras_lpc.annealing.Policy` (`Hold`, `TrainingPace`) or a list.
        ramp_fraction: ``"auto"`` (0.7 for the default recipe, 0.95 for it
            without `TrainingPace`, the schedule as written otherwise),
            ``None`` (as written), or a number in (0, 1]: stretch the schedule
            to end at that fraction of the run.
        max_gamma: the default recipe's maximum, ``"auto"`` or a number > 0.
        unit: ``"step"`` or ``"epoch"``.
        layers: ``None`` (all LPC layers, nested models too) or layers / names.
        verbose: 1 prints gamma at the start of every epoch.

    Example:

    >>> import keras, numpy as np, keras_lpc
    >>> model = keras.Sequential([keras.Input((4,)), keras_lpc.LatentPointCollapse(2),
    ...                           keras.layers.Dense(2)])
    >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> cb = keras_lpc.GammaAnnealing(keras_lpc.schedules.Exponential(1.0, 2.0, 1, 8.0),
    ...                               unit="epoch")
    >>> h = model.fit(np.ones((8, 4)), np.zeros(8), epochs=3, verbose=0, callbacks=[cb])
    >>> tuple(h.history["gamma"])
    (1.0, 2.0, 4.0)
    """

    #: keras_lpc writes logs: Keras' log readers move after it (`keras_lpc.callbacks.ordering`)
    keras_lpc_writes_logs = True

    @_legacy.legacy_positional(*_legacy.ANNEALING_POSITIONAL)
    def __init__(
        self,
        schedule: Any = None,
        *,
        policy: Any = "auto",
        ramp_fraction: float | str | None = "auto",
        max_gamma: float | str = "auto",
        unit: str = "step",
        layers: Any = None,
        verbose: int = 0,
        **deprecated: Any,
    ) -> None:
        super().__init__()
        policy, ramp_fraction = _legacy.translate(deprecated, policy, ramp_fraction, schedule)
        if isinstance(schedule, bool):
            raise TypeError(
                f"`schedule` must be a schedule, a number or a callable. Received: schedule={schedule!r}"
            )
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
        self.schedule = (
            default_schedule(DEFAULT_MAXIMUM if max_gamma == "auto" else float(max_gamma))
            if self._auto_schedule
            else schedules.get(schedule)
        )
        self.policies = plan.policies(policy, self._auto_schedule)
        self.ramp_fraction = plan.ramp_fraction(ramp_fraction, self._auto_schedule, self.policies)
        if self.ramp_fraction is not None and plan.span_of(self.schedule) is None:
            raise ValueError(
                "`ramp_fraction` stretches a schedule that settles (a finite `span`). "
                f"Received: ramp_fraction={ramp_fraction!r} with schedule={self.schedule!r}"
            )
        self.unit = check_choice("unit", unit, ("step", "epoch"))
        self.layers = layers
        self.verbose = verbose
        self.max_gamma_used: float | None = None
        self.gamma: float | None = None  # the last logged gamma
        self._run: AnnealingRun | None = None
        self._in_graph = False
        self._origin = 0
        self._budget_value: float | None = None

    # ------------------------------------------------------------ run set-up
    def _targets(self) -> list:
        # `self.model`, not a cached model: on JAX that property syncs the
        # trainer's state into the variables, so assignments reach the next step.
        return find_lpc_layers(self.model, self.layers)

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs: dict | None = None) -> None:
        ordering.lead_callbacks(self)
        params, optimizer = self.params or {}, getattr(self.model, "optimizer", None)
        lr, multiplier = _learning_rate(optimizer)
        run = plan.plan(
            self.schedule,
            auto_maximum=self._auto_schedule and self.max_gamma == "auto",
            ramp_fraction=self.ramp_fraction,
            unit=self.unit,
            steps=params.get("steps"),
            epochs=params.get("epochs"),
            learning_rate=lr,
            multiplier=multiplier,
        )
        self.schedule, self._budget_value = run.schedule, run.budget
        self.max_gamma_used = float(getattr(self.schedule, "stop", math.nan))
        if run.unknown_length:
            _warn_unknown_length(self.max_gamma_used)
        layers = self._targets()  # fails early if the model has none
        for policy in self.policies:
            policy.reset(_classes(self.model))
        self._run = AnnealingRun(self.policies, run.counts_per_epoch, run.scale)
        # `fit` builds its train function before this hook; a custom training loop
        # (no train function, calls without training=True) gets gamma from Python.
        in_fit = getattr(self.model, "train_function", None) is not None
        self._in_graph = in_fit and schedules.in_graph(self.schedule)
        if self._in_graph:
            steps_variable = self.model.optimizer.iterations
            if any([layer.drive(self.schedule, steps_variable) for layer in layers]):
                self.model.make_train_function(force=True)
        elif self.unit == "step":
            _warn_python_per_execution(self.model, self.schedule)
            self.on_train_batch_begin = self._assign_before_step

    # ------------------------------------------------------------ epochs
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        run, layers = self._run, self._targets()
        if run.current is None:
            how = run.start(epoch, layers[0].annealing.resume)
            if how == "new":
                self._warn_start_above_budget()
        state = run.begin_epoch(epoch)
        self._origin = self._step() if self._in_graph else 0
        rate = state.rate if self.unit == "step" else 0.0
        for layer in layers:
            layer.record_annealing(run.state())
            if self._in_graph:
                layer.set_annealing(
                    count=state.count, origin=self._origin, rate=rate, scale=run.scale
                )
            else:
                layer.release()
        if not self._in_graph:
            self._assign(state.count)
        if self.verbose:
            print_msg(
                f"\nEpoch {epoch + 1}: GammaAnnealing sets gamma to {self._gamma_at(state.count):.6g}"
            )

    def _assign_before_step(self, batch: int, logs: dict | None = None) -> None:
        self._assign(self._run.count + self._run.rate * batch)

    def _assign(self, count: float) -> None:
        value = self._gamma_at(count)
        for layer in self._targets():
            layer.gamma.assign(value)

    def _gamma_at(self, count: float) -> float:
        return schedules.value(self.schedule, count * self._run.scale)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        run, layers = self._run, self._targets()
        if self.unit == "epoch":
            units = 1
        elif self._in_graph:
            units = self._step() - self._origin
        else:
            units = (self.params or {}).get("steps") or 0
        last = run.count + run.rate * max(units - 1, 0) if self.unit == "step" else run.count
        self.gamma = float(keras.ops.convert_to_numpy(layers[0].gamma))
        nxt = run.end_epoch(logs if logs is not None else {}, units)
        for layer in layers:
            layer.record_annealing(run.state())
        if logs is not None:
            logs["gamma"] = self.gamma
            logs["gamma_count"] = last
            if run.decided:
                logs["gamma_holding"] = 1.0 - nxt.rate

    def on_train_end(self, logs: dict | None = None) -> None:
        self.__dict__.pop("on_train_batch_begin", None)
        if self._in_graph:
            for layer in self._targets():  # released: gamma is used as it is
                layer.release()

    def _warn_start_above_budget(self) -> None:
        start = self._gamma_at(self._run.count)
        if self._budget_value and start > max(self._budget_value, 1e-1):
            warnings.warn(
                f"GammaAnnealing: gamma starts at {start:g}, above this run's budget "
                f"{self._budget_value:.3g} (keras_lpc.schedules.gamma_budget); the model will "
                "likely train at chance. Start the schedule at 0 (GammaAnnealing() does).",
                stacklevel=3,
            )

    def get_config(self) -> dict[str, Any]:
        ser = keras.saving.serialize_keras_object
        explicit = not self._auto_schedule and hasattr(self.schedule, "get_config")
        return {
            "schedule": ser(self.schedule) if explicit else None,
            "policy": [
                {"class_name": type(p).__name__, "config": p.get_config()} for p in self.policies
            ],
            "ramp_fraction": self.ramp_fraction,
            "max_gamma": self.max_gamma,
            "unit": self.unit,
            "verbose": self.verbose,
        }


def _learning_rate(optimizer: Any) -> tuple[float | None, float]:
    """The optimizer's learning rate (``None`` if unknown) and its largest multiplier."""
    try:
        lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None, 1.0
    factors = [float(f) for f in getattr(optimizer, "multipliers", {}).values()]
    return lr, max([1.0, *factors])


def _classes(model: Any) -> int | None:
    try:
        return int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _warn_unknown_length(maximum: float) -> None:
    warnings.warn(
        "GammaAnnealing: fit() does not know the number of steps per epoch (a dataset "
        "of unknown length), so gamma is neither stretched to the run nor limited by its "
        f"budget (max_gamma_used={maximum:g}). Pass `steps_per_epoch=len(dataset)` (or "
        "`dataset.repeat()` with steps_per_epoch) to fit(), or give a tf.data dataset of "
        "known cardinality.",
        stacklevel=3,
    )


def _warn_python_per_execution(model: Any, schedule: Any) -> None:
    executions = int(getattr(model, "steps_per_execution", 1) or 1)
    if executions > 1:
        warnings.warn(
            f"GammaAnnealing: the schedule {schedule!r} is a Python callable, assigned "
            f"before every execution of steps_per_execution={executions} steps, so gamma "
            "changes once per execution. Use a keras_lpc schedule (evaluated inside the "
            "train step) to follow it at every step.",
            stacklevel=3,
        )
