"""Gamma inside the train step: the variables and methods `LatentPointCollapse` anneals with.

While `keras_lpc.GammaAnnealing` drives a layer, every training call
computes, in `keras.ops`, from the optimizer's step ``s`` (its
``iterations``, read once per step however many times a shared layer is
called; `keras_lpc.backend.train_step_count`)::

    count = annealing_count + annealing_rate * (s - annealing_origin)
    gamma = schedule(annealing_scale * count)       if annealing_on else gamma

and stores ``gamma`` in the layer's variable. The callback only sets the
four numbers once per epoch (`AnnealedGamma.set_annealing`); no Python runs
per step. The variables are float32, non-trainable, never autocast and saved
with the layer (``gamma`` first, then `VARIABLES` in order).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc.annealing import schedules
from keras_lpc.annealing.state import ANNEALING_STATE_KEY, AnnealingState

__all__ = ["AnnealedGamma", "LayerAnnealing"]

#: The annealing variables after ``gamma``, in the order they are saved.
VARIABLES = ("count", "origin", "step", "rate", "scale", "on")
_DEFAULTS = {"count": 0.0, "origin": 0.0, "step": 0.0, "rate": 0.0, "scale": 1.0, "on": 0.0}
# Files of the previous version: gamma, then count, rate, scale, on.
_V2 = ("count", "rate", "scale", "on")


@dataclasses.dataclass(frozen=True)
class LayerAnnealing:
    """A read-only snapshot of a layer's annealing (`LatentPointCollapse.annealing`).

    Attributes:
        schedule: the schedule traced into the train step, or ``None``.
        on: whether the train step computes gamma from it (while a
            `GammaAnnealing` drives the layer).
        count: the effective count the next train step uses.
        rate: the count's advance per optimizer step.
        scale: schedule counts per effective count (stretching to the run).
        step: the optimizer step the next train step runs at, as last seen.
        resume: `GammaAnnealing`'s resume state (`AnnealingState`), or ``None``.
    """

    schedule: Any
    on: bool
    count: float
    rate: float
    scale: float
    step: float
    resume: AnnealingState | None


def _value(variable: Any) -> float:
    return float(np.asarray(ops.convert_to_numpy(variable)))


class AnnealedGamma:
    """Mixin of `LatentPointCollapse`: gamma and its in-graph schedule (see the module)."""

    def _init_annealing(self, gamma: float) -> None:
        # float32 and never autocast: 1e6 does not fit in float16.
        self.gamma = self._state_variable("gamma", gamma)
        self._anneal = {
            name: self._state_variable(f"annealing_{name}", _DEFAULTS[name]) for name in VARIABLES
        }
        self._schedule: Any = None  # traced into the train step by `drive`
        self._step_source: Any = None  # the optimizer's `iterations` (not tracked)
        self._resume: AnnealingState | None = None

    def _state_variable(self, name: str, value: float) -> keras.Variable:
        # Under a tf.distribute strategy every replica updates its own copy (the
        # same value: the same step and schedule) without a cross-replica merge
        # inside the step, and reads outside a replica see the first one. Other
        # backends ignore the two settings. Created as `add_weight` does (which
        # does not take `synchronization`), tracked as an attribute.
        with keras.name_scope(self.name, caller=self):
            variable = keras.Variable(
                initializer=keras.initializers.Constant(value),
                shape=(),
                dtype="float32",
                trainable=False,
                autocast=False,
                aggregation="only_first_replica",
                synchronization="on_read",
                name=name,
            )
        variable.regularizer = None
        variable.constraint = None
        return variable

    # ------------------------------------------------------------ read
    @property
    def annealing(self) -> LayerAnnealing:
        """The layer's annealing, read-only (a `LayerAnnealing` snapshot)."""
        v = {name: _value(var) for name, var in self._anneal.items()}
        count = v["count"] + v["rate"] * (v["step"] - v["origin"])
        return LayerAnnealing(
            self._schedule, v["on"] > 0.5, count, v["rate"], v["scale"], v["step"], self._resume
        )

    @property
    def annealing_state(self) -> AnnealingState | None:
        """Deprecated: use ``layer.annealing.resume``."""
        warnings.warn(
            "`layer.annealing_state` is deprecated; use `layer.annealing.resume`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._resume

    # ------------------------------------------------------------ write (GammaAnnealing)
    def drive(self, schedule: Any, steps: Any) -> bool:
        """Trace ``schedule`` into the train step, counting the optimizer's ``steps``.

        ``schedule`` is a keras_lpc schedule or a Keras ``LearningRateSchedule``
        (``None``: none); ``steps`` the optimizer's ``iterations`` variable.
        Returns whether the schedule differs from the one traced so far, i.e.
        whether an already compiled train function must be rebuilt.
        """
        previous, self._schedule = self._schedule, schedule
        object.__setattr__(self, "_step_source", steps)  # not a variable of this layer
        if previous is schedule:
            return False
        return not (isinstance(previous, schedules.GammaSchedule) and previous == schedule)

    def set_annealing(self, *, count: float, origin: float, rate: float, scale: float) -> None:
        """Turn the in-graph schedule on: from optimizer step ``origin`` the count is
        ``count + rate * (step - origin)``, gamma ``schedule(scale * count)``."""
        values = {"count": count, "origin": origin, "step": origin, "rate": rate, "scale": scale}
        for name, value in {**values, "on": 1.0}.items():
            self._anneal[name].assign(float(value))

    def release(self) -> None:
        """Turn the in-graph schedule off: gamma keeps its value and is used as it is.

        The count reached is kept (``annealing.count``), frozen.
        """
        count = self.annealing.count
        self._anneal["count"].assign(count)
        self._anneal["origin"].assign(_value(self._anneal["step"]))
        self._anneal["on"].assign(0.0)
        self._anneal["rate"].assign(0.0)

    def record_annealing(self, state: AnnealingState | None) -> None:
        """Keep ``state`` (`GammaAnnealing`'s resume state) to save with the weights."""
        self._resume = state

    # ------------------------------------------------------------ the step
    def _step_gamma(self) -> Any:
        """This train step's gamma (assigned to ``self.gamma``), or ``self.gamma`` undriven."""
        if self._schedule is None or self._step_source is None:
            return self.gamma
        a = {name: ops.convert_to_tensor(var) for name, var in self._anneal.items()}
        on = a["on"] > 0.5
        step = backend.train_step_count(self._step_source, self._anneal["step"], self, on)
        count = a["count"] + a["rate"] * (step - a["origin"])
        value = schedules.ops_value(self._schedule, count * a["scale"])
        gamma = ops.where(on, value, ops.convert_to_tensor(self.gamma))
        self.gamma.assign(gamma)
        return gamma

    def _current_gamma(self) -> float:
        """The variable's value, or the initial one while JAX holds the state."""
        try:
            return _value(self.gamma.value)
        except Exception:  # value purged by the JAX trainer mid-fit
            return self._initial_gamma

    # ------------------------------------------------------------ files
    def _save_annealing(self, store: Any) -> None:
        if self._resume is not None:
            for key, value in self._resume.to_entries().items():
                store[key] = value

    def _load_annealing(self, store: Any, load_variables: Any) -> None:
        """Load the variables (files of every version) and the resume state if any."""
        keys = list(store.keys())
        entries = {k: store[k] for k in keys if k.startswith(ANNEALING_STATE_KEY)}
        variables = {k: store[k] for k in keys if not k.startswith(ANNEALING_STATE_KEY)}
        if len(variables) in (1, 1 + len(_V2)):  # files of earlier versions
            self.gamma.assign(variables["0"])
            old = (
                dict(zip(_V2, (variables[str(i + 1)] for i in range(len(_V2)))))
                if len(variables) > 1
                else {}
            )
            for name in VARIABLES:
                self._anneal[name].assign(old.get(name, _DEFAULTS[name]))
        else:
            load_variables(variables)
        self._resume = AnnealingState.from_entries(entries) if entries else None
