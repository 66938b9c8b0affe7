"""The `LatentPointCollapse` layer: a linear bottleneck and its annealed penalty."""

from __future__ import annotations

import dataclasses
import math
import warnings
import weakref
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc import schedules
from keras_lpc._validation import check_float, check_int

# Layers being read by `keras_lpc._latents.recording`: layer -> list of z. Weak
# keys: an entry cannot outlive its layer nor be found by another one.
# Module-level, because a list attribute would be tracked by Keras.
_RECORDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# Key under which `save_own_variables` stores `GammaAnnealing`'s resume state:
# one float entry per field, ``annealing_state.<slot>.<field>``; files written
# before the named format hold one 9-float array under the bare key.
ANNEALING_STATE_KEY = "annealing_state"

# The layer's own variables, in the order they are saved ("0", "1", ...).
# Files written before the in-graph schedule hold gamma only.
_ANNEALING_VARIABLES = ("annealing_count", "annealing_rate", "annealing_scale", "annealing_on")


@dataclasses.dataclass(frozen=True)
class EpochState:
    """`GammaAnnealing`'s state at the start of one epoch.

    Attributes:
        epoch: the epoch (0-based) this state starts.
        count: effective count (steps or epochs, less those held) at its start.
        best: best value of the hold monitor before it (``-inf``/``inf``: none yet).
        rate: advance of the count per step (per epoch with ``unit="epoch"``)
            during the epoch: 1 at full speed, 0 held, in between slowed.
        policy: further named numbers kept by the per-epoch rule.
    """

    epoch: int
    count: float
    best: float
    rate: float = 1.0
    policy: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AnnealingState:
    """What `GammaAnnealing` saves with a `LatentPointCollapse` layer to resume a run.

    ``current`` is the state the epoch in progress (or the last one trained)
    started from and ``next`` the one the epoch after it starts from, once
    decided (``None`` before): a checkpoint written at the end of an epoch by
    a callback listed before or after `GammaAnnealing` resumes exactly either
    way. Saved field by field under ``annealing_state.<current|next>.<field>``.

    Attributes:
        current: the `EpochState` of the epoch in progress or last trained.
        next: the `EpochState` of the following epoch, or ``None``.
        counts_per_epoch: counts in one epoch (steps, 1 with ``unit="epoch"``,
            0 when the run's length was unknown).
        scale: schedule counts per effective count (the pacing), so that a
            later ``fit`` can continue the same gamma.

    Example:

    >>> s = AnnealingState(EpochState(2, 8.0, 0.9), EpochState(3, 12.0, 0.9, 0.0), 4, 2.5)
    >>> AnnealingState.from_entries(s.to_entries()) == s
    True
    """

    current: EpochState
    next: EpochState | None
    counts_per_epoch: int
    scale: float = 1.0

    def latest(self) -> EpochState:
        """``next`` when decided, else ``current``."""
        return self.next if self.next is not None else self.current

    def to_entries(self) -> dict[str, np.ndarray]:
        """The state as named float64 scalars (the keys a weights file stores)."""
        out = {
            f"{ANNEALING_STATE_KEY}.counts_per_epoch": self.counts_per_epoch,
            f"{ANNEALING_STATE_KEY}.scale": self.scale,
        }
        for slot in ("current", "next"):
            state = getattr(self, slot)
            if state is None:
                continue
            prefix = f"{ANNEALING_STATE_KEY}.{slot}."
            for field in ("epoch", "count", "best", "rate"):
                out[prefix + field] = getattr(state, field)
            for name, value in state.policy.items():
                out[f"{prefix}policy.{name}"] = value
        return {k: np.asarray(v, dtype="float64") for k, v in out.items()}

    @classmethod
    def from_entries(cls, entries: dict[str, Any]) -> AnnealingState | None:
        """Rebuild from `to_entries`' keys, or from the earlier 9-float array.

        The array (files saved before the named format) holds, in order,
        epoch, count, best and hold flag of the current epoch, the same four
        of the next one (NaN: not decided), and the counts per epoch.
        """
        values = {k: np.asarray(v, dtype="float64") for k, v in entries.items()}
        if ANNEALING_STATE_KEY in values:
            array = values[ANNEALING_STATE_KEY].reshape(-1)
            if array.shape != (9,):
                return None
            slots = [array[0:4], array[4:8]]
            states = [
                None
                if math.isnan(slot[0])
                else EpochState(int(slot[0]), float(slot[1]), float(slot[2]), 1.0 - float(slot[3]))
                for slot in slots
            ]
            if states[0] is None:
                return None
            return cls(states[0], states[1], int(array[8]))

        def slot(name: str) -> EpochState | None:
            prefix = f"{ANNEALING_STATE_KEY}.{name}."
            if prefix + "epoch" not in values:
                return None
            policy = {
                key[len(prefix + "policy.") :]: float(v)
                for key, v in values.items()
                if key.startswith(prefix + "policy.")
            }
            return EpochState(
                int(values[prefix + "epoch"]),
                float(values[prefix + "count"]),
                float(values[prefix + "best"]),
                float(values[prefix + "rate"]),
                policy,
            )

        current = slot("current")
        if current is None:
            return None
        return cls(
            current,
            slot("next"),
            int(values[f"{ANNEALING_STATE_KEY}.counts_per_epoch"]),
            float(values.get(f"{ANNEALING_STATE_KEY}.scale", 1.0)),
        )


@keras.saving.register_keras_serializable(package="keras_lpc")
class LatentPointCollapse(keras.layers.Layer):
    """Linear low-dimensional penultimate layer with the LPC penalty.

    The layer maps its input ``h`` to latents ``z = h @ W + b`` (or passes
    ``h`` through unchanged when ``dim=None``) and adds to the model's losses

    ```
    penalty = gamma * mean(z ** 2)
    ```

    where the mean runs over the batch **and** every non-batch axis (the
    authors' ``mse_loss(z, 0, reduction="mean")``). Keras'
    ``activity_regularizer=L2(l)`` adds ``l * sum(z ** 2) / batch`` instead,
    so ``l = gamma / d`` is the same penalty on a rank-2 ``z`` with ``d``
    features; unlike that float, ``gamma`` here lives in a non-trainable
    float32 variable, so `keras_lpc.GammaAnnealing` (or any code) can raise it
    while an already compiled train step runs, on every backend, and it is
    saved with the model. The penalty is always computed in float32, also
    under ``mixed_float16`` / ``mixed_bfloat16`` policies.

    **Gamma inside the train step.** While `keras_lpc.GammaAnnealing` drives
    the layer with a keras_lpc schedule (or a Keras ``LearningRateSchedule``),
    every training call (``training=True``) computes

    ```
    gamma = schedule(annealing_count * annealing_scale)     # in keras.ops
    annealing_count += annealing_rate
    ```

    from four float32 non-trainable variables the step itself updates (as
    BatchNormalization updates its moving statistics), so gamma follows the
    schedule at every optimizer step with no Python per step, also under
    ``steps_per_execution > 1``. ``predict``/``evaluate``/``training=False``
    advance nothing. When no `GammaAnnealing` drives the layer
    (``annealing_on`` is 0), ``gamma`` is used as it is: any code may assign
    it and the next train step uses the new value. While one does, a manual
    ``layer.gamma.assign(v)`` is overwritten by the schedule at the next
    train step.

    Args:
        dim: number of latent units of the linear projection, a positive
            integer, or ``None`` to penalise the incoming features unchanged.
        gamma: initial penalty coefficient, a finite number >= 0.
        use_bias: whether the projection has a bias.
        kernel_initializer: initializer of the projection kernel.
        bias_initializer: initializer of the projection bias.
        kernel_regularizer: optional regularizer of the projection kernel.
        bias_regularizer: optional regularizer of the projection bias.
        kernel_constraint: optional constraint of the projection kernel.
        bias_constraint: optional constraint of the projection bias.
        **kwargs: base `keras.layers.Layer` arguments (``name``, ``dtype``...).

    Input shape:
        ``(batch, ..., features)``; any rank >= 2.

    Output shape:
        ``(batch, ..., dim)``, or the input shape when ``dim=None``.

    Attributes:
        gamma: the float32 variable holding the coefficient.
        kernel, bias: the projection's weights (``None`` when ``dim=None``,
            ``bias`` also without ``use_bias``).
        annealing_state: `GammaAnnealing`'s resume state (read-only), or ``None``.

    Example:

    >>> import keras, keras_lpc
    >>> layer = keras_lpc.LatentPointCollapse(dim=2, gamma=0.5)
    >>> z = layer(keras.ops.ones((4, 3)))
    >>> tuple(z.shape)
    (4, 2)
    >>> len(layer.losses)
    1

    References:
        Sbailo & Ghiringhelli, "Latent Point Collapse on a Low Dimensional
        Embedding in Deep Neural Network Classifiers".
    """

    def __init__(
        self,
        dim: int | None = None,
        gamma: float = 0.0,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        if dim is not None:
            dim = check_int("dim", dim, minimum=1)
        gamma = check_float("gamma", gamma, minimum=0.0)
        if gamma > schedules.DEFAULT_MAXIMUM:
            warnings.warn(
                f"LatentPointCollapse: gamma={gamma:g} from the first step is above "
                f"{schedules.DEFAULT_MAXIMUM:g}, the largest gamma an Adam-type optimizer can "
                "follow in most runs (keras_lpc.schedules.gamma_budget); such a model trains "
                "at chance. Start at gamma=0 and let keras_lpc.GammaAnnealing() raise it.",
                stacklevel=2,
            )
        if not isinstance(use_bias, bool):
            raise TypeError(f"`use_bias` must be a bool. Received: use_bias={use_bias!r}")
        _check_identifiers(
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        super().__init__(**kwargs)
        self.dim = dim
        self.use_bias = use_bias
        self._initial_gamma = gamma
        # `keras_lpc.GammaAnnealing`'s resume state (an `AnnealingState`), saved
        # with the weights by `save_own_variables`; see `annealing_state`.
        self._annealing_state: AnnealingState | None = None
        # The schedule traced into the train step by `_drive` (None: none).
        self._annealing_schedule = None
        self.projection = None
        if dim is not None:
            self.projection = keras.layers.Dense(
                dim,
                use_bias=use_bias,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
                kernel_regularizer=kernel_regularizer,
                bias_regularizer=bias_regularizer,
                kernel_constraint=kernel_constraint,
                bias_constraint=bias_constraint,
                dtype=self.dtype_policy,
                name="projection",
            )
        # float32 and never autocast: 1e6 does not fit in float16. Under a
        # tf.distribute strategy each replica computes the same value; the
        # first replica's is kept.
        self.gamma = self._state_variable("gamma", gamma)
        # In-graph annealing state: count, its advance per train step, the
        # schedule counts per count (pacing) and whether the schedule is on.
        self.annealing_count = self._state_variable("annealing_count", 0.0)
        self.annealing_rate = self._state_variable("annealing_rate", 0.0)
        self.annealing_scale = self._state_variable("annealing_scale", 1.0)
        self.annealing_on = self._state_variable("annealing_on", 0.0)
        if dim is None:
            self.built = True

    def _state_variable(self, name: str, value: float) -> keras.Variable:
        # Under a tf.distribute strategy every replica updates its own copy
        # (the same value: the same count and schedule) without a cross-replica
        # merge inside the step, and reads outside a replica see the first one.
        # Other backends ignore the two settings. Created as `add_weight` does
        # (which does not take `synchronization`), tracked as an attribute.
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

    @property
    def kernel(self) -> keras.Variable | None:
        """The projection's kernel (``None`` when ``dim=None``)."""
        return None if self.projection is None else self.projection.kernel

    @property
    def bias(self) -> keras.Variable | None:
        """The projection's bias (``None`` when ``dim=None`` or ``use_bias=False``)."""
        return None if self.projection is None else self.projection.bias

    @property
    def annealing_state(self) -> AnnealingState | None:
        """`GammaAnnealing`'s resume state of this layer (read-only), ``None`` before any.

        Written by `GammaAnnealing` during ``fit`` and saved with the weights
        (``save_weights``, ``.keras`` files, `keras.callbacks.BackupAndRestore`).
        """
        return self._annealing_state

    def _drive(self, schedule: Any) -> bool:
        """Trace ``schedule`` into the train step (``None``: no in-graph schedule).

        Returns whether it differs from the one traced so far, i.e. whether
        an already compiled train function must be rebuilt.
        """
        previous = self._annealing_schedule
        self._annealing_schedule = schedule
        if previous is schedule:
            return False
        return not (isinstance(previous, schedules.GammaSchedule) and previous == schedule)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if self.projection is not None and not self.projection.built:
            self.projection.build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        z = inputs if self.projection is None else self.projection(inputs)
        gamma = self.gamma
        if training and self._annealing_schedule is not None:
            gamma = self._annealed_gamma()
        self.add_loss(latent_penalty(z, gamma))
        recorder = _RECORDERS.get(self)
        if recorder is not None:  # eager reads by keras_lpc's metric callbacks
            recorder.append(z)
        return z

    def _annealed_gamma(self) -> Any:
        """This step's gamma from the in-graph schedule; advances the count."""
        read = ops.convert_to_tensor
        count = read(self.annealing_count)
        value = schedules.ops_value(self._annealing_schedule, count * read(self.annealing_scale))
        gamma = ops.where(read(self.annealing_on) > 0.5, value, read(self.gamma))
        self.gamma.assign(gamma)
        self.annealing_count.assign(count + read(self.annealing_rate))
        return gamma

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        if self.dim is None:
            return tuple(input_shape)
        return tuple(input_shape[:-1]) + (self.dim,)

    def save_own_variables(self, store: Any) -> None:
        """Save the variables and, after a `GammaAnnealing` fit, its resume state.

        The variables go under ``"0"``, ``"1"``...: ``gamma`` first, then the
        four annealing variables. The `AnnealingState` is extra named float
        entries (``annealing_state.current.count``...), not variables. It lets
        `keras.callbacks.BackupAndRestore` and `ModelCheckpoint` resume a
        held schedule exactly.
        """
        super().save_own_variables(store)
        if self._annealing_state is not None:
            for key, value in self._annealing_state.to_entries().items():
                store[key] = value

    def load_own_variables(self, store: Any) -> None:
        """Load the variables and the annealing state when the file has one.

        Files saved before the in-graph schedule hold ``gamma`` alone (and the
        annealing state as a 9-float array): they load, with the annealing
        variables at their defaults (schedule off).
        """
        keys = list(store.keys())
        entries = {k: store[k] for k in keys if k.startswith(ANNEALING_STATE_KEY)}
        variables = {k: store[k] for k in keys if not k.startswith(ANNEALING_STATE_KEY)}
        own = self._trainable_variables + self._non_trainable_variables
        if len(variables) == 1 and len(own) == 1 + len(_ANNEALING_VARIABLES):
            self.gamma.assign(variables["0"])
            for name, default in zip(_ANNEALING_VARIABLES, (0.0, 0.0, 1.0, 0.0)):
                getattr(self, name).assign(default)
        else:
            super().load_own_variables(variables)
        self._annealing_state = AnnealingState.from_entries(entries) if entries else None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"dim": self.dim, "gamma": self._current_gamma(), "use_bias": self.use_bias})
        if self.projection is not None:
            ser = keras.saving.serialize_keras_object
            p = self.projection
            config.update(
                {
                    "kernel_initializer": ser(p.kernel_initializer),
                    "bias_initializer": ser(p.bias_initializer),
                    "kernel_regularizer": ser(p.kernel_regularizer),
                    "bias_regularizer": ser(p.bias_regularizer),
                    "kernel_constraint": ser(p.kernel_constraint),
                    "bias_constraint": ser(p.bias_constraint),
                }
            )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LatentPointCollapse:
        config = dict(config)
        deser = keras.saving.deserialize_keras_object
        for key in (
            "kernel_initializer",
            "bias_initializer",
            "kernel_regularizer",
            "bias_regularizer",
            "kernel_constraint",
            "bias_constraint",
        ):
            if isinstance(config.get(key), dict):
                config[key] = deser(config[key])
        # A saved model annealed past the warning's threshold loads silently.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LatentPointCollapse: gamma=")
            return cls(**config)

    def _current_gamma(self) -> float:
        """The variable's value, or the initial one while JAX holds the state."""
        try:
            return float(ops.convert_to_numpy(self.gamma.value))
        except Exception:  # value purged by the JAX trainer mid-fit
            return self._initial_gamma


def _check_identifiers(**named: Any) -> None:
    """Resolve each initializer/regularizer/constraint argument, naming it on failure."""
    getters = {
        "initializer": keras.initializers.get,
        "regularizer": keras.regularizers.get,
        "constraint": keras.constraints.get,
    }
    for name, value in named.items():
        kind = name.rsplit("_", 1)[1]
        try:
            getters[kind](value)
        except (ValueError, TypeError):
            raise ValueError(
                f"`{name}` must be a Keras {kind}, its name or its config. "
                f"Received: {name}={value!r}"
            ) from None


def latent_penalty(z: Any, gamma: Any) -> Any:
    """The LPC penalty ``gamma * mean(z ** 2)``, computed in float32.

    The mean runs over every axis (batch and features), so the value does not
    depend on the batch size or on ``d``. Under mixed precision ``z`` arrives
    as float16/bfloat16: it is cast to float32 before squaring, so float16
    latents (``|z| <= 65504``) give a finite penalty for any ``gamma`` up to
    ``3.4e38 / 65504 ** 2 = 7.9e28``. bfloat16 and float32 latents give a
    finite one while ``|z| < sqrt(3.4e38 / max(gamma, n))``, ``n`` the number
    of elements averaged (1.8e16 at gamma 1e6), and inf beyond
    (tests/test_nonfinite.py).

    Args:
        z: latents of any shape.
        gamma: scalar coefficient (a float or a float32 variable).

    Returns:
        A float32 scalar tensor.

    Example:

    >>> import numpy as np
    >>> float(latent_penalty(np.array([[1.0, 3.0]]), 2.0))
    10.0
    """
    if keras.backend.standardize_dtype(getattr(z, "dtype", "float64")) != "float32":
        z = ops.cast(z, "float32")
    if not (isinstance(gamma, keras.Variable) and gamma.dtype == "float32"):
        gamma = ops.cast(gamma, "float32")
    return gamma * ops.mean(ops.square(z))
