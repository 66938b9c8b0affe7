"""`InformationMetrics`: entropy, I(z; y) and GIB synergy of the latents during `fit`."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_lpc import plotting as _plotting
from keras_lpc._validation import check_choice, check_int
from keras_lpc.callbacks._base import LatentMetricCallback, legacy_positional
from keras_lpc.metrics.information import METHODS, information_metrics


class InformationMetrics(LatentMetricCallback):
    """Log the information metrics of the `LatentPointCollapse` latents every few epochs.

    The callback reads the latents ``z`` of the (subsampled) ``data`` and
    writes into the epoch's ``logs``, in nats:

    * ``{prefix}entropy``: `keras_lpc.metrics.kl_entropy` (by default the
      authors' variant: standardised features, nats per dimension);
    * ``{prefix}mutual_information``: `keras_lpc.metrics.mutual_information`
      ``I(z; y)`` with the true labels ``y``;
    * ``{prefix}interaction_information``: the Generalized Information
      Bottleneck's synergy, `keras_lpc.metrics.interaction_information`.

    The cost grows like ``d * N**2`` (``2 d + 1`` k-NN estimates on ``N``
    samples of ``d`` features), hence the defaults ``every=10`` and
    ``max_samples=5000``. As for every metric callback, the values are
    computed on the first epoch, every ``every``-th epoch and the last one,
    and the keys hold NaN on the epochs between (see
    `CollapseMetrics`). Plot the logged values next to gamma with
    `plot_information`.

    Args:
        data: ``(x, y)`` arrays (``y`` integer or one-hot), a
            ``tf.data.Dataset`` or a `keras.utils.PyDataset`.
        every: compute every this many epochs.
        max_samples: fixed random subset of ``data`` (``None``: all).
        seed: seed of the subset (also passed to `information_metrics`).
        prefix: prefix of the names in ``logs``.
        k: neighbour order of the estimators.
        standardize: entropy in the authors' standardised per-dimension form.
        method: ``"knn"`` or ``"plugin"`` (for latents collapsed to points).
        features: features to average the synergy over (``None``: all).
        layer: the LPC layer (object or name) to read; default: the first.
        verbose: 1 prints the values when computed.

    All arguments but ``data`` are keyword arguments (the old positional
    order still works, with a `DeprecationWarning`).

    Example:

    >>> import keras, numpy as np, keras_lpc
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> model = keras.Sequential([keras.Input((4,)), keras_lpc.LatentPointCollapse(2),
    ...                           keras.layers.Dense(2)])
    >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> cb = keras_lpc.InformationMetrics((x, y), every=1)
    >>> history = model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    >>> sorted(k for k in history.history if k.startswith("val_"))
    ['val_entropy', 'val_interaction_information', 'val_mutual_information']
    """

    metric_names = ("entropy", "mutual_information", "interaction_information")

    @legacy_positional(
        "every",
        "max_samples",
        "prefix",
        "k",
        "standardize",
        "method",
        "features",
        "layer",
        "verbose",
        "seed",
    )
    def __init__(
        self,
        data: Any,
        *,
        every: int = 10,
        max_samples: int | None = 5000,
        seed: int = 0,
        prefix: str = "val_",
        k: int = 3,
        standardize: bool = True,
        method: str = "knn",
        features: Any = None,
        layer: Any = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            data,
            every=every,
            max_samples=max_samples,
            seed=seed,
            prefix=prefix,
            layer=layer,
            verbose=verbose,
        )
        self.k = check_int("k", k, minimum=1)
        self.standardize = bool(standardize)
        self.method = check_choice("method", method, METHODS)
        self.features = features

    def compute(self, z: np.ndarray, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return information_metrics(
            z,
            y,
            k=self.k,
            standardize=self.standardize,
            method=self.method,
            features=self.features,
            seed=self.seed,
        )


# The one implementation lives in `keras_lpc.plotting`; this name is kept for
# code written against `keras_lpc.callbacks.plot_information`.
plot_information = _plotting.plot_information
