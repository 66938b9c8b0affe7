"""The `LatentPointCollapse` layer: a linear bottleneck and its annealed penalty."""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import keras
from keras import ops

from keras_lpc._validation import check_float, check_int
from keras_lpc.annealing.budget import DEFAULT_MAXIMUM
from keras_lpc.annealing.drive import AnnealedGamma
from keras_lpc.annealing.state import AnnealingState, EpochState

__all__ = ["AnnealingState", "EpochState", "LatentPointCollapse", "latent_penalty"]

# Layers being read by `keras_lpc.readout.recording`: layer -> list of z. Weak
# keys: an entry cannot outlive its layer nor be found by another one.
# Module-level, because a list attribute would be tracked by Keras.
_RECORDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package="keras_lpc")
class LatentPointCollapse(AnnealedGamma, keras.layers.Layer):
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
    every training call (``training=True``) computes gamma from the
    optimizer's step count in `keras.ops` (`keras_lpc.annealing.drive`): the
    count advances once per optimizer step, however many times a shared layer
    is called and whatever ``steps_per_execution``, with no Python per step.
    ``predict``/``evaluate``/``training=False`` advance nothing. When no
    `GammaAnnealing` drives the layer, ``gamma`` is used as it is: any code may
    assign it and the next train step uses the new value. While one does, a
    manual ``layer.gamma.assign(v)`` is overwritten by the schedule at the next
    train step. ``layer.annealing`` reads the state (`LayerAnnealing`).

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
        annealing: the annealing state, read-only (`keras_lpc.annealing.LayerAnnealing`).

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
        if gamma > DEFAULT_MAXIMUM:
            warnings.warn(
                f"LatentPointCollapse: gamma={gamma:g} from the first step is above "
                f"{DEFAULT_MAXIMUM:g}, the largest gamma an Adam-type optimizer can "
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
        self._init_annealing(gamma)
        if dim is None:
            self.built = True

    @property
    def kernel(self) -> keras.Variable | None:
        """The projection's kernel (``None`` when ``dim=None``)."""
        return None if self.projection is None else self.projection.kernel

    @property
    def bias(self) -> keras.Variable | None:
        """The projection's bias (``None`` when ``dim=None`` or ``use_bias=False``)."""
        return None if self.projection is None else self.projection.bias

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if self.projection is not None and not self.projection.built:
            self.projection.build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        z = inputs if self.projection is None else self.projection(inputs)
        gamma = self._step_gamma() if training else self.gamma
        self.add_loss(latent_penalty(z, gamma))
        recorder = _RECORDERS.get(self)
        if recorder is not None:  # eager reads by keras_lpc's metric callbacks
            recorder.append(z)
        return z

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        if self.dim is None:
            return tuple(input_shape)
        return tuple(input_shape[:-1]) + (self.dim,)

    def save_own_variables(self, store: Any) -> None:
        """Save the variables and, after a `GammaAnnealing` fit, its resume state.

        The variables go under ``"0"``, ``"1"``...: ``gamma`` first, then the
        annealing variables. The `AnnealingState` is extra named float
        entries (``annealing_state.current.count``...), not variables; it lets
        `keras.callbacks.BackupAndRestore` and `ModelCheckpoint` resume a held
        schedule exactly.
        """
        super().save_own_variables(store)
        self._save_annealing(store)

    def load_own_variables(self, store: Any) -> None:
        """Load the variables and the resume state; files of earlier versions load too
        (``gamma`` alone, or ``gamma`` and four annealing variables)."""
        self._load_annealing(store, super().load_own_variables)

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
    (tests/test_layers.py).

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
