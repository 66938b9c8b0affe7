"""`MetricCallback`: the shared adapter behind the metric callbacks.

Subclasses implement ``compute(z, outputs, y) -> dict[str, float]`` (maths
lives in `keras_lpc.metrics` / `keras_lpc.robustness`, not here) and list
the names they log in ``metric_names``. This base class validates the data,
subsamples it once, reads latents through ``self.model`` (which also syncs
JAX state), writes ``prefix + name`` into ``logs`` every ``every`` epochs,
and turns failures on non-finite values into NaN with a single warning.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import keras
import numpy as np

from keras_lpc._latents import collect, materialize, validate_data
from keras_lpc._validation import check_int


class MetricCallback(keras.callbacks.Callback):
    """Base class of `CollapseMetrics`, `RobustnessMetrics`, `InformationMetrics`."""

    metric_names: tuple[str, ...] = ()

    def __init__(
        self,
        data: Any,
        every: int = 1,
        max_samples: int | None = 10000,
        prefix: str = "val_",
        layer: Any = None,
        verbose: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data = validate_data(data)
        self.every = check_int("every", every, minimum=1)
        if max_samples is not None:
            max_samples = check_int("max_samples", max_samples, minimum=1)
        self.max_samples = max_samples
        if not isinstance(prefix, str):
            raise TypeError(f"`prefix` must be a string. Received: prefix={prefix!r}")
        self.prefix = prefix
        self.layer = layer
        self.verbose = verbose
        self.seed = seed
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._warned = False
        self.last: dict[str, float] = {}

    # KerasTuner deep-copies callbacks: share the (possibly large, possibly
    # un-copyable tf.data) data, copy everything else.
    def __deepcopy__(self, memo: dict) -> MetricCallback:
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key in ("data", "_arrays", "_model"):
                setattr(new, key, value if key != "_model" else None)
            else:
                setattr(new, key, copy.deepcopy(value, memo))
        return new

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The (subsampled) evaluation data as NumPy arrays, built once."""
        if self._arrays is None:
            self._arrays = materialize(self.data, self.max_samples, self.seed)
        return self._arrays

    def latents(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(z, outputs)`` of the current model on ``x``."""
        return collect(self.model, x, self.layer)

    def compute(self, z: np.ndarray, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        raise NotImplementedError  # pragma: no cover

    def due(self, epoch: int) -> bool:
        return (epoch + 1) % self.every == 0

    def evaluate(self) -> dict[str, float]:
        """Compute the metrics now on the current model (unprefixed names)."""
        x, y = self.arrays()
        z, outputs = self.latents(x)
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(outputs))):
            self._warn_once("the latents or outputs contain NaN or inf")
            return {name: float("nan") for name in self.metric_names}
        try:
            values = self.compute(z, outputs, y)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            self._warn_once(str(err))
            return {name: float("nan") for name in self.metric_names}
        return {k: float(v) for k, v in values.items()}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.due(epoch):
            return
        values = self.evaluate()
        self.last = values
        if logs is not None:
            for name, value in values.items():
                logs[self.prefix + name] = value
        if self.verbose:
            shown = ", ".join(f"{self.prefix}{k}={v:.4g}" for k, v in values.items())
            print(f"\n{type(self).__name__} epoch {epoch + 1}: {shown}")

    def _warn_once(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{type(self).__name__}: logging NaN because {reason}. "
                "Training continues; this warning is shown once.",
                RuntimeWarning,
                stacklevel=3,
            )
