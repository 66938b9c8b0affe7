"""The shared adapter behind the metric callbacks, in two flavours by what they feed.

* `LatentMetricCallback` feeds ``compute(z, outputs, y)``: the latents of the
  `LatentPointCollapse` layer and the model's outputs (`CollapseMetrics`,
  `InformationMetrics`).
* `ModelMetricCallback` feeds ``compute(model, x, y)``: the model itself and
  its inputs (`RobustnessMetrics`).

Both share `MetricCallback`: the data is checked when constructed and against
the model at ``on_train_begin``, subsampled once, and every metric is written
into the logs of the epochs it is measured on (see
`MetricCallback.on_epoch_end`); failures on non-finite values turn into NaN
with a single warning. The maths lives in `keras_lpc.metrics` /
`keras_lpc.robustness`, not here.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from typing import Any

import keras
import numpy as np

from keras_lpc._io import print_msg
from keras_lpc._models import find_lpc_layers, first_output
from keras_lpc._validation import check_int
from keras_lpc.callbacks._data import (
    check_inputs_fit,
    check_label_values,
    materialize,
    validate_data,
)
from keras_lpc.callbacks._legacy import legacy_positional  # noqa: F401  (used by subclasses)
from keras_lpc.callbacks.ordering import lead_callbacks
from keras_lpc.readout import latents_and_outputs, outputs, to_numpy


class MetricCallback(keras.callbacks.Callback):
    """Base of the metric callbacks: data, schedule and logging; subclasses feed `measure`.

    Subclasses list the names they log in ``metric_names``, set
    ``uses_labels`` (whether ``y`` enters the metrics, so it is checked) and
    implement ``measure(x, y) -> dict[str, float]`` on the (subsampled)
    NumPy data.

    Logging: the metrics are computed on the first epoch of ``fit``, on
    every ``every``-th epoch and on the last one, and written into those
    epochs' ``logs`` (``metric_names`` with ``prefix``). On the epochs in
    between ``EarlyStopping`` and ``ReduceLROnPlateau`` find the keys
    **absent**, so they count no epoch without a measurement against their
    patience (their "metric not available" warning for these keys is
    silenced during ``fit``); then the keys are completed with NaN
    (`keras_lpc.callbacks.ordering`), so ``ModelCheckpoint(save_best_only=
    True)`` saves on measured epochs only, and `History`, ``CSVLogger`` and
    TensorBoard get a value per epoch, NaN where nothing was measured. The
    epochs computed are in ``computed_epochs``, the latest values in
    ``last``. Monitors on these keys need ``mode=`` ("min" or "max", see each
    key's direction in the docs): Keras cannot guess it for a key that is not
    a compiled metric.
    """

    metric_names: tuple[str, ...] = ()
    uses_labels: bool = True
    #: keras_lpc writes logs: Keras' log readers move after it (`keras_lpc.callbacks.ordering`)
    keras_lpc_writes_logs = True

    def __init__(
        self,
        data: Any,
        *,
        every: int = 1,
        max_samples: int | None = 10000,
        seed: int = 0,
        prefix: str = "val_",
        verbose: int = 0,
    ) -> None:
        super().__init__()
        self.data = validate_data(data)
        self.every = check_int("every", every, minimum=1)
        if max_samples is not None:
            max_samples = check_int("max_samples", max_samples, minimum=1)
        self.max_samples = max_samples
        self.seed = check_int("seed", seed)
        if not isinstance(prefix, str):
            raise TypeError(f"`prefix` must be a string. Received: prefix={prefix!r}")
        self.prefix = prefix
        self.verbose = verbose
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._checked_model: Any = None
        self._warned = False
        self.last: dict[str, float] = {}
        self.computed_epochs: list[int] = []
        self._first_epoch: int | None = None
        if isinstance(self.data, tuple) and self.uses_labels:
            check_label_values(np.asarray(self.data[1]))

    # KerasTuner deep-copies callbacks: share the (possibly large, possibly
    # un-copyable tf.data) data, copy everything else.
    def __deepcopy__(self, memo: dict) -> MetricCallback:
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key in ("data", "_arrays"):
                setattr(new, key, value)
            elif key in ("_model", "_checked_model"):
                setattr(new, key, None)
            else:
                setattr(new, key, copy.deepcopy(value, memo))
        return new

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The (subsampled) evaluation data as NumPy arrays, built once."""
        if self._arrays is None:
            self._arrays = materialize(self.data, self.max_samples, self.seed)
        return self._arrays

    def measure(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        raise NotImplementedError  # pragma: no cover

    def check_model(self) -> None:
        """Check the data against ``self.model`` (input shape, label range), once per model."""
        model = self.model
        if self._checked_model is model:
            return
        x, y = self.arrays()
        check_inputs_fit(model, x, y)
        classes = self._classes(model, x, y)  # a forward pass where shapes are not declared
        if self.uses_labels:
            check_label_values(y, classes)
        self._checked_model = model

    def _classes(self, model: Any, x: np.ndarray, y: np.ndarray) -> int | None:
        """Number of class scores the model outputs (one forward pass on 2 rows if needed)."""
        try:
            shape = model.outputs[0].shape
        except (AttributeError, ValueError, IndexError, TypeError):
            shape = None
        if shape is None or shape[-1] is None:
            try:
                out = model(x[:2], training=False)
            except Exception as err:
                raise ValueError(
                    "`data` must be (x, y) with x the model's inputs. "
                    f"Received: x with shape {x.shape} and y with shape {y.shape}; "
                    f"the model failed on x with {type(err).__name__}: {err}"
                ) from err
            shape = to_numpy(first_output(out)).shape
        return int(shape[-1]) if len(shape) >= 2 else None

    def evaluate(self) -> dict[str, float]:
        """Compute the metrics now on the current model (unprefixed names; NaN on failure)."""
        self.check_model()
        x, y = self.arrays()
        try:
            values = self.measure(x, y)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            self._warn_once(str(err))
            return {name: math.nan for name in self.metric_names}
        return {k: float(v) for k, v in values.items()}

    def due(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) is computed: the fit's first, each ``every``-th, the last."""
        epochs = (self.params or {}).get("epochs")
        return (
            epoch == self._first_epoch
            or (epoch + 1) % self.every == 0
            or (epochs is not None and epoch + 1 >= epochs)
        )

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._first_epoch = None
        lead_callbacks(self)
        self._quiet = _silence_unavailable([self.prefix + n for n in self.metric_names])
        self.check_model()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._first_epoch is None:
            self._first_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._first_epoch is None:
            self._first_epoch = epoch
        if not self.due(epoch):
            return  # absent: Keras' monitors skip the epoch
        values = self.last = self.evaluate()
        self.computed_epochs.append(epoch)
        if self.verbose:
            shown = ", ".join(f"{self.prefix}{k}={v:.4g}" for k, v in values.items())
            print_msg(f"\n{type(self).__name__} epoch {epoch + 1}: {shown}")
        if logs is not None:
            for name in self.metric_names:
                logs[self.prefix + name] = values.get(name, math.nan)

    def occasional_keys(self) -> list[str]:
        """The keys this callback writes on the epochs it measures only."""
        return [self.prefix + name for name in self.metric_names]

    def on_train_end(self, logs: dict | None = None) -> None:
        for entry in getattr(self, "_quiet", ()):
            if entry in warnings.filters:
                warnings.filters.remove(entry)
        getattr(warnings, "_filters_mutated", lambda: None)()  # refresh its caches

    def _warn_once(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{type(self).__name__}: logging NaN because {reason}. "
                "Training continues; this warning is shown once.",
                RuntimeWarning,
                stacklevel=3,
            )


# The warnings Keras' monitors give for a key missing from an epoch's logs.
_UNAVAILABLE = (
    "Early stopping conditioned on metric `{}` which is not available",
    "Learning rate reduction is conditioned on metric `{}` which is not available",
)


def _silence_unavailable(keys: list[str]) -> list[tuple]:
    """Ignore Keras' "metric not available" warnings for ``keys``; the filters added."""
    added = []
    for key in keys:
        for text in _UNAVAILABLE:
            warnings.filterwarnings("ignore", message=re.escape(text.format(key)))
            added.append(warnings.filters[0])
    return added


class LatentMetricCallback(MetricCallback):
    """A `MetricCallback` fed with the latents: implement ``compute(z, outputs, y)``.

    ``z`` is the output of the `LatentPointCollapse` layer ``layer`` (object or
    name; default the first) and ``outputs`` the model's first output, both
    float32 NumPy arrays from one eager forward pass (`keras_lpc.latents_and_outputs`).
    Non-finite latents or outputs log NaN (one warning).
    """

    def __init__(self, data: Any, *, layer: Any = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.layer = layer

    def check_model(self) -> None:
        """Also check, before training starts, that the model has the requested LPC layer."""
        find_lpc_layers(self.model, self.layer, arg="layer")
        super().check_model()

    def latents(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(z, outputs)`` of the current model on ``x``."""
        return latents_and_outputs(self.model, x, self.layer)

    def compute(self, z: np.ndarray, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        raise NotImplementedError  # pragma: no cover

    def measure(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        z, outputs = self.latents(x)
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(outputs))):
            raise ValueError("the latents or outputs contain NaN or inf")
        return self.compute(z, outputs, y)


class ModelMetricCallback(MetricCallback):
    """A `MetricCallback` fed with the model: implement ``compute(model, x, y)``.

    Non-finite model outputs on ``x`` log NaN (one warning) without calling it.
    """

    def compute(self, model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        raise NotImplementedError  # pragma: no cover

    def measure(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        if not np.all(np.isfinite(outputs(self.model, x))):
            raise ValueError("the model's outputs contain NaN or inf")
        return self.compute(self.model, x, y)
