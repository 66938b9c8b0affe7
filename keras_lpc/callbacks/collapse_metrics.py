"""`CollapseMetrics`: logs the collapse geometry of the latents during `fit`."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_lpc._validation import check_choice
from keras_lpc.callbacks._base import LatentMetricCallback, legacy_positional
from keras_lpc.metrics import collapse


class CollapseMetrics(LatentMetricCallback):
    """Log neural-collapse metrics of the `LatentPointCollapse` latents every ``every`` epochs.

    Runs the model on (a fixed subset of at most ``max_samples`` rows of)
    ``data``, reads the latents ``z`` of the LPC layer and writes
    ``prefix + name`` into the epoch's ``logs`` for each value of
    `keras_lpc.metrics.collapse_metrics(z, labels, include=include)`
    (``val_nc1``, ``val_separation_ratio``, ...). The values are computed on
    the first epoch of ``fit``, every ``every``-th epoch and the last one; on
    the other epochs the keys hold NaN, so every key is in ``logs`` every
    epoch (``computed_epochs`` lists the computed ones). The callback puts itself ahead of Keras' own
    callbacks, so `History`, `CSVLogger`, `TensorBoard`, `EarlyStopping`,
    `ModelCheckpoint` and KerasTuner objectives see the keys whatever the
    order of the ``callbacks`` list. The classes are the model's predictions
    (``labels="predicted"``, argmax of the outputs, as in the paper) or the
    true labels (``"true"``). It never changes the model. The data is checked
    when constructed (labels are integers or one-hot rows) and against the
    model at ``on_train_begin`` (input shape, labels below the number of
    outputs). Non-finite latents log NaN with one warning.

    Args:
        data: ``(x, y)`` arrays, a ``tf.data.Dataset`` or a
            `keras.utils.PyDataset` of ``(x, y)`` batches; ``y`` integer
            labels or one-hot. A dataset is read once (pairs stay together,
            so shuffling is fine); at most ``max_samples`` rows are kept.
        every: compute every this many epochs (>= 1).
        max_samples: use at most this many samples (``None``: all).
        seed: seed of the random subset of array ``data``.
        prefix: prefix of the names written into ``logs``.
        labels: ``"predicted"`` or ``"true"``.
        layer: the `LatentPointCollapse` layer or its name (default: first).
        include: metric names for `collapse_metrics` (``None``: defaults).
        verbose: 1 prints the values.

    All arguments but ``data`` are keyword arguments (the old positional
    order still works, with a `DeprecationWarning`).

    Example:

    >>> import keras, numpy as np, keras_lpc
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> model = keras.Sequential([keras.Input((4,)), keras_lpc.LatentPointCollapse(2),
    ...                           keras.layers.Dense(2)])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> cb = keras_lpc.CollapseMetrics((x, y), labels="true")
    >>> h = model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    >>> "val_nc1" in h.history and "val_separation_ratio" in h.history
    True
    """

    @legacy_positional("every", "max_samples", "prefix", "labels", "layer", "include", "verbose")
    def __init__(
        self,
        data: Any,
        *,
        every: int = 1,
        max_samples: int | None = 10000,
        seed: int = 0,
        prefix: str = "val_",
        labels: str = "predicted",
        layer: Any = None,
        include: Any = None,
        verbose: int = 0,
    ) -> None:
        self.labels = check_choice("labels", labels, ("predicted", "true"))
        self.uses_labels = self.labels == "true"
        super().__init__(
            data,
            every=every,
            max_samples=max_samples,
            seed=seed,
            prefix=prefix,
            layer=layer,
            verbose=verbose,
        )
        self.include = collapse._check_include(include, set())
        if "ncc_agreement" in self.include or "self_duality" in self.include:
            raise ValueError(
                "`include` must name metrics computable from latents and labels alone. "
                f"Received: include={include!r}"
            )
        self.metric_names = tuple(n for n in self.include if n != "binarity") + (
            collapse.BINARITY_NAMES if "binarity" in self.include else ()
        )

    def compute(self, z: np.ndarray, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        z = z.reshape(len(z), -1)
        if self.labels == "predicted":
            labels = np.argmax(outputs.reshape(len(outputs), -1), axis=1)
        else:
            labels = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
        return collapse.collapse_metrics(z, labels, include=self.include)
