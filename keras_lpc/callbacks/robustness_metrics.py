"""`RobustnessMetrics`: DeepFool score, Lipschitz proxy, PGD accuracy, verified and certified
minimal perturbations during `fit`."""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from keras_lpc import robustness as robustness_module
from keras_lpc._validation import check_choice, check_float
from keras_lpc.callbacks._base import ModelMetricCallback, legacy_positional
from keras_lpc.robustness import deepfool as deepfool_fn
from keras_lpc.robustness import lipschitz as lipschitz_fn
from keras_lpc.robustness.certify.bracket import median_bracket_ratio

#: The bounds ``certify`` accepts (those of `keras_lpc.robustness.certified_radius`).
CERTIFY_METHODS = ("crown", "ibp", "lipschitz")


class RobustnessMetrics(ModelMetricCallback):
    """Log robustness metrics of the model every ``every`` epochs.

    Writes ``prefix + name`` into the epoch's ``logs`` for ``deepfool``
    (mean ``||r||/||x||``, see `keras_lpc.robustness.deepfool`),
    ``deepfool_correct`` (over correctly classified inputs),
    ``lipschitz_max`` / ``lipschitz_mean`` (see
    `keras_lpc.robustness.lipschitz`) and ``pgd_accuracy_<eps>`` for each
    L-inf budget in ``pgd_eps``. With ``attacks``, also ``min_perturbation``
    and ``deepfool_overestimate`` from
    `keras_lpc.robustness.minimal_perturbation` (the smallest verified
    perturbation over several attacks). With ``certify``, also
    ``certified_radius`` (mean certified L2 radius relative to the input, a
    lower bound of the true minimal perturbation, see
    `keras_lpc.robustness.certified_radius`) and ``certified_accuracy`` (the
    share of inputs classified correctly *and* certified at relative radius
    ``certify_eps``: ``mean(pred_n == y_n and rho_n / ||x_n|| >= eps)``); with
    both ``attacks`` and ``certify``, ``bracket_ratio`` too (the median over
    inputs of certified / found, 1 when the truth is pinned down). Per input,
    ``certified <= true minimum <= found``, so ``certified_radius <=
    min_perturbation`` always. Works on any classifier (no
    `LatentPointCollapse` layer needed): the maths is in
    `keras_lpc.robustness`; this class only wires it to ``fit``. As for
    every metric callback, the values are computed on the first epoch, every
    ``every``-th epoch and the last one, the keys hold NaN on the epochs
    between, and they reach every other callback whatever
    the order of the list (see `CollapseMetrics`). Under a mixed-precision
    policy the scores are read in float32.

    Args:
        data: ``(x, y)`` arrays, a ``tf.data.Dataset`` or a ``PyDataset``.
        every: compute every this many epochs (>= 1).
        max_samples: fixed random subset size (>= 1) or ``None`` for all.
        seed: seed of the subset (and of the attacks in ``attacks``).
        prefix: prepended to every log name.
        deepfool: log the DeepFool scores.
        lipschitz: log the Lipschitz proxy.
        pgd_eps: optional list of L-inf budgets for PGD accuracy.
        attacks: ``None`` (default): DeepFool only. ``"default"`` runs
            `keras_lpc.robustness.minimal_perturbation` with its default attacks
            (DeepFool, FMN, PGD with a radius search and a gradient-free
            boundary attack); a list of attack names runs those. Its
            ``score`` (the smallest verified perturbation, against the clean
            predictions as ``deepfool``) is logged as ``min_perturbation``, and
            ``deepfool_overestimate`` (mean DeepFool / smallest) beside it.
        certify: ``None`` (default) or the bound of `certified_radius`:
            ``"crown"`` (the tightest), ``"ibp"`` or ``"lipschitz"`` (the
            fastest, the loosest). Against the clean predictions, as
            ``min_perturbation``.
        certify_eps: the relative L2 radius ``||r|| / ||x||`` (> 0) at which
            ``certified_accuracy`` is read; default 0.05.
        verbose: 1 shows a Keras progress bar over the metrics and prints them.
        layer: deprecated and ignored (robustness reads the model's outputs).

    All arguments but ``data`` are keyword arguments (the old positional
    order still works, with a `DeprecationWarning`).

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

    @legacy_positional(
        "every", "max_samples", "prefix", "deepfool", "lipschitz", "pgd_eps", "verbose"
    )
    def __init__(
        self,
        data: Any,
        *,
        every: int = 10,
        max_samples: int | None = 1000,
        seed: int = 0,
        prefix: str = "val_",
        deepfool: bool = True,
        lipschitz: bool = True,
        pgd_eps: list[float] | None = None,
        attacks: Any = None,
        certify: str | None = None,
        certify_eps: float = 0.05,
        verbose: int = 0,
        layer: Any = None,
    ) -> None:
        if layer is not None:
            warnings.warn(
                "RobustnessMetrics: `layer` is deprecated and ignored (robustness is "
                "measured on the model's outputs).",
                DeprecationWarning,
                stacklevel=2,
            )
        super().__init__(
            data, every=every, max_samples=max_samples, seed=seed, prefix=prefix, verbose=verbose
        )
        self.deepfool = bool(deepfool)
        self.lipschitz = bool(lipschitz)
        self.pgd_eps = (
            []
            if pgd_eps is None
            else [check_float("pgd_eps", e, minimum=0.0) for e in np.ravel(pgd_eps).tolist()]
        )
        self.attacks = attacks
        if certify is not None:
            certify = check_choice("certify", certify, CERTIFY_METHODS)
        self.certify = certify
        self.certify_eps = check_float("certify_eps", certify_eps, strictly_positive=True)
        names = []
        if self.deepfool:
            names += ["deepfool", "deepfool_correct"]
        if self.lipschitz:
            names += ["lipschitz_max", "lipschitz_mean"]
        names += [f"pgd_accuracy_{e:g}" for e in self.pgd_eps]
        if self.attacks is not None:
            names += ["min_perturbation", "deepfool_overestimate"]
        if self.certify is not None:
            names += ["certified_radius", "certified_accuracy"]
            if self.attacks is not None:
                names.append("bracket_ratio")
        self.metric_names = tuple(names)

    def compute(self, model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """The metrics of ``model`` on inputs ``x`` with labels ``y``."""
        steps = (
            int(self.deepfool)
            + int(self.lipschitz)
            + int(bool(self.pgd_eps))
            + int(self.attacks is not None)
            + int(self.certify is not None)
        )
        bar = keras.utils.Progbar(steps, verbose=1) if self.verbose else None
        values: dict[str, float] = {}
        res = found = None
        if self.deepfool:
            res = deepfool_fn(model, x, y=y)
            values.update(deepfool=res.score, deepfool_correct=res.score_correct)
            if bar:
                bar.add(1)
        if self.lipschitz:
            lip = lipschitz_fn(model, x, y)
            values.update(lipschitz_max=lip.max, lipschitz_mean=lip.mean)
            if bar:
                bar.add(1)
        if self.pgd_eps:
            accs = robustness_module.accuracy_curve("pgd", model, x, y, self.pgd_eps)
            values.update({f"pgd_accuracy_{e:g}": a for e, a in zip(self.pgd_eps, accs)})
            if bar:
                bar.add(1)
        if self.attacks is not None:
            found = robustness_module.minimal_perturbation(
                model,
                x,
                attacks=None if self.attacks == "default" else self.attacks,
                seed=self.seed,
                verbose=0,
                deepfool_result=res,  # DeepFool ran above: not twice
            )
            values.update(
                min_perturbation=found.score,
                deepfool_overestimate=float("nan")
                if found.deepfool_overestimate is None
                else found.deepfool_overestimate,
            )
            if bar:
                bar.add(1)
        if self.certify is not None:
            values.update(self._certified(model, x, y, found))
            if bar:
                bar.add(1)
        return values

    def _certified(self, model: Any, x: np.ndarray, y: np.ndarray, found: Any) -> dict:
        """``certified_radius``, ``certified_accuracy`` and, after the attacks,
        ``bracket_ratio``."""
        cert = robustness_module.certified_radius(model, x, norm="l2", method=self.certify)
        correct = cert.predictions == np.asarray(y).reshape(-1)
        values = {
            "certified_radius": cert.score,
            "certified_accuracy": float(np.mean(correct & (cert.per_sample >= self.certify_eps))),
        }
        if found is not None:
            values["bracket_ratio"] = median_bracket_ratio(cert.distance, found.distance)
        return values
