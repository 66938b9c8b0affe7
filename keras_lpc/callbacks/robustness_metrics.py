"""`RobustnessMetrics`: DeepFool score, Lipschitz proxy and PGD accuracy during `fit`."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_lpc._validation import check_float
from keras_lpc.callbacks._base import MetricCallback
from keras_lpc.robustness import deepfool as deepfool_fn
from keras_lpc.robustness import lipschitz as lipschitz_fn
from keras_lpc.robustness import pgd_accuracy


class RobustnessMetrics(MetricCallback):
    """Log robustness metrics of the model every ``every`` epochs.

    Writes ``prefix + name`` into ``logs`` for ``deepfool`` (mean
    ``||r||/||x||``, see `keras_lpc.robustness.deepfool`),
    ``deepfool_correct`` (over correctly classified inputs),
    ``lipschitz_max`` / ``lipschitz_mean`` (see
    `keras_lpc.robustness.lipschitz`) and ``pgd_accuracy_<eps>`` for each
    L-inf budget in ``pgd_eps``. Works on any classifier (no
    `LatentPointCollapse` layer needed): the maths is in
    `keras_lpc.robustness`; this class only wires it to ``fit``.

    Args:
        data: ``(x, y)`` arrays, a ``tf.data.Dataset`` or a ``PyDataset``.
        every: compute every this many epochs (>= 1).
        max_samples: fixed random subset size (>= 1) or ``None`` for all.
        prefix: prepended to every log name.
        deepfool: log the DeepFool scores.
        lipschitz: log the Lipschitz proxy.
        pgd_eps: optional list of L-inf budgets for PGD accuracy.
        verbose: 1 shows a Keras progress bar over the metrics and prints them.

    Example:

    >>> import keras, numpy as np, keras_lpc
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> cb = keras_lpc.RobustnessMetrics((np.array([[3.0, 4.0]]), np.array([0])))
    >>> cb.set_model(model)
    >>> values = cb.evaluate()
    >>> print(round(values["deepfool"], 3), values["lipschitz_max"])
    0.612 2.0
    """

    def __init__(
        self,
        data: Any,
        every: int = 10,
        max_samples: int | None = 1000,
        prefix: str = "val_",
        deepfool: bool = True,
        lipschitz: bool = True,
        pgd_eps: list[float] | None = None,
        verbose: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            data, every=every, max_samples=max_samples, prefix=prefix, verbose=verbose, **kwargs
        )
        self.deepfool = bool(deepfool)
        self.lipschitz = bool(lipschitz)
        self.pgd_eps = (
            []
            if pgd_eps is None
            else [check_float("pgd_eps", e, minimum=0.0) for e in np.ravel(pgd_eps).tolist()]
        )
        names = []
        if self.deepfool:
            names += ["deepfool", "deepfool_correct"]
        if self.lipschitz:
            names += ["lipschitz_max", "lipschitz_mean"]
        names += [f"pgd_accuracy_{e:g}" for e in self.pgd_eps]
        self.metric_names = tuple(names)

    def latents(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Robustness needs the inputs, not latents: returns ``(x, outputs)``."""
        out = self.model.predict(x, verbose=0)
        return x, np.asarray(out[0] if isinstance(out, (list, tuple)) else out)

    def compute(self, z: np.ndarray, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """The metrics on inputs ``z`` (= x) with labels ``y``."""
        steps = int(self.deepfool) + int(self.lipschitz) + int(bool(self.pgd_eps))
        bar = keras.utils.Progbar(steps, verbose=1) if self.verbose else None
        values: dict[str, float] = {}
        if self.deepfool:
            res = deepfool_fn(self.model, z, y=y)
            values.update(deepfool=res.score, deepfool_correct=res.score_correct)
            if bar:
                bar.add(1)
        if self.lipschitz:
            lip = lipschitz_fn(self.model, z, y)
            values.update(lipschitz_max=lip.max, lipschitz_mean=lip.mean)
            if bar:
                bar.add(1)
        if self.pgd_eps:
            accs = pgd_accuracy(self.model, z, y, self.pgd_eps)
            values.update({f"pgd_accuracy_{e:g}": a for e, a in zip(self.pgd_eps, accs)})
            if bar:
                bar.add(1)
        return values
