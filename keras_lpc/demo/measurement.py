"""Measuring a trained arm on the test split, into a typed `RunResult`."""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from keras_lpc.demo.config import DemoConfig
from keras_lpc.demo.training import TrainedArm
from keras_lpc.robustness.certify.bracket import median_bracket_ratio


@dataclasses.dataclass
class RunResult:
    """What one arm (model kind, seed) measured; the report's ``runs`` rows.

    The fields up to ``history`` are the report (`to_dict`, in this order,
    is what ``report.json`` holds for the run); the last five (latents, labels, attacked
    indices, the DeepFool and ensemble results) are kept for
    the figures and for further analysis and are not written.
    """

    model: str
    seed: int
    test_accuracy: float
    min_perturbation: float
    min_perturbation_median: float
    certified_radius: float
    certified_radius_median: float
    bracket_ratio: float
    certified_inputs: int
    deepfool_overestimate: float
    deepfool_overestimate_fraction: float
    deepfool: float
    deepfool_correct: float
    deepfool_median: float
    deepfool_never_flipped: int
    attacked: int
    pgd_accuracy: dict[str, float]
    lipschitz_max: float
    lipschitz_mean: float
    nc1: float
    separation_ratio: float
    hypercube_alignment: float
    binarity_peak_distance: float
    auroc_mahalanobis: float
    auroc_softmax: float
    final_gamma: float
    noise_latent_shift: float
    deepfool_latent_shift: float
    train_seconds: float
    history: dict[str, list[float]]
    z_test: np.ndarray = dataclasses.field(repr=False, metadata={"report": False})
    y_test: np.ndarray = dataclasses.field(repr=False, metadata={"report": False})
    attack_idx: np.ndarray = dataclasses.field(repr=False, metadata={"report": False})
    deepfool_result: Any = dataclasses.field(repr=False, metadata={"report": False})
    ensemble_result: Any = dataclasses.field(default=None, repr=False, metadata={"report": False})
    certified_result: Any = dataclasses.field(default=None, repr=False, metadata={"report": False})

    def to_dict(self) -> dict[str, Any]:
        """The reported fields as a dict (JSON-ready), in declaration order."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("report", True)
        }

    def __getitem__(self, key: str) -> Any:
        """``result["nc1"]``: the reported fields by name, as the former dict rows."""
        if key not in self.to_dict():
            raise KeyError(key)
        return getattr(self, key)


def measure(arm: TrainedArm, data: Any, config: DemoConfig) -> RunResult:
    """Accuracy, DeepFool, PGD, Lipschitz, collapse geometry and AUROC of a trained arm."""
    from keras_lpc import latents, metrics, robustness
    from keras_lpc.readout import outputs as model_outputs

    model, seed, attack_idx = arm.model, arm.seed, arm.attack_idx
    x_tr, y_tr, x_te, y_te = data.x_train, data.y_train, data.x_test, data.y_test
    z_te, z_tr = latents(model, x_te), latents(model, x_tr)
    # eager forward passes in batches, as `latents`: `model.predict` would trace a
    # new tf.function for every last-batch shape, and TensorFlow warns about it
    logits_te = model_outputs(model, x_te, batch_size=256)
    logits_tr = model_outputs(model, x_tr, batch_size=256)
    pred_te = logits_te.argmax(1)
    correct = pred_te == y_te
    # a barely trained model can predict one class only: its geometry is undefined
    geometry = (
        metrics.collapse_metrics(z_te, pred_te)
        if len(np.unique(pred_te)) >= 2
        else dict.fromkeys(("nc1", "separation_ratio", "hypercube_alignment"), float("nan"))
    )
    binary = metrics.binarity(z_te)
    maha = mahalanobis_confidence(z_tr, y_tr, logits_tr.argmax(1), z_te, pred_te)
    soft = metrics.max_softmax_score(logits_te)

    xa, ya = x_te[attack_idx], y_te[attack_idx]
    df = robustness.deepfool(model, xa, y=ya)
    # The robustness headline: the smallest perturbation any attack of the
    # verified ensemble (one of them gradient-free) finds, re-checked by a
    # forward pass; DeepFool is reported beside it as the papers' metric.
    best = robustness.minimal_perturbation(model, xa, seed=seed, verbose=0, deepfool_result=df)
    # its lower side: a radius proved safe, against the same clean predictions
    count = config.certify_count  # the first `count` attacked inputs (CROWN is costly)
    cert = robustness.certified_radius(model, xa[:count], method=config.certify)
    pgd = robustness.accuracy_curve("pgd", model, xa, ya, list(config.pgd_eps), steps=20)
    lip = robustness.lipschitz(model, xa, ya)
    shifts = latent_shifts(model, xa, df.perturbation, z_te, pred_te, seed)
    return RunResult(
        model=arm.kind,
        seed=seed,
        test_accuracy=float(correct.mean()),
        min_perturbation=float(best.score),
        min_perturbation_median=_finite_median(best.per_sample),
        certified_radius=float(cert.score),
        certified_radius_median=float(np.median(cert.per_sample)),
        bracket_ratio=median_bracket_ratio(cert.distance, best.distance[:count]),
        certified_inputs=int(count),
        deepfool_overestimate=_float_or_nan(best.deepfool_overestimate),
        deepfool_overestimate_fraction=_float_or_nan(best.deepfool_overestimate_fraction),
        deepfool=float(df.score),
        deepfool_correct=float(df.score_correct) if df.score_correct is not None else float("nan"),
        deepfool_median=_finite_median(df.per_sample),
        deepfool_never_flipped=int(np.sum(~df.fooled)),
        attacked=int(len(xa)),
        pgd_accuracy={f"{e:g}": float(a) for e, a in zip(config.pgd_eps, pgd)},
        lipschitz_max=float(lip.max),
        lipschitz_mean=float(lip.mean),
        nc1=float(geometry["nc1"]),
        separation_ratio=float(geometry["separation_ratio"]),
        hypercube_alignment=float(geometry["hypercube_alignment"]),
        binarity_peak_distance=float(binary["peak_distance"]),
        auroc_mahalanobis=auroc_or_nan(maha, correct),
        auroc_softmax=auroc_or_nan(soft, correct),
        final_gamma=float(keras.ops.convert_to_numpy(model.get_layer("lpc").gamma)),
        noise_latent_shift=shifts["noise_latent_shift"],
        deepfool_latent_shift=shifts["deepfool_latent_shift"],
        train_seconds=arm.train_seconds,
        history=arm.history,
        z_test=z_te,
        y_test=y_te,
        attack_idx=attack_idx,
        deepfool_result=df,
        ensemble_result=best,
        certified_result=cert,
    )


def _finite_median(values: np.ndarray) -> float:
    """Median of the finite values (inputs no attack flipped are inf), NaN if none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else float("nan")


def _float_or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def auroc_or_nan(score: np.ndarray | None, correct: np.ndarray) -> float:
    """Misclassification AUROC, NaN when undefined (no score, or no error / no success)."""
    from keras_lpc import metrics

    if score is None or correct.all() or not correct.any():
        return float("nan")
    return float(metrics.misclassification_auroc(score, correct))


def mahalanobis_confidence(
    z_tr: np.ndarray, y_tr: np.ndarray, pred_tr: np.ndarray, z_te: np.ndarray, pred_te: np.ndarray
) -> np.ndarray | None:
    """Mahalanobis confidence of the test latents, or None when it is undefined.

    The class Gaussians are fitted on the correctly classified training
    latents. A barely trained model (a very short run) can predict a test
    class that no training example of that class was classified as; the
    distance to the *predicted* class is then undefined and the score falls
    back to the nearest fitted class. Fewer than two fitted classes: None.
    """
    from keras_lpc import metrics

    fitted = np.unique(y_tr[pred_tr == y_tr])
    if len(fitted) < 2:
        return None
    known = bool(np.isin(pred_te, fitted).all())
    return metrics.mahalanobis_score(
        z_tr, y_tr, z_te, predictions=pred_te if known else None, fit_predictions=pred_tr
    )


def latent_shifts(
    model: keras.Model,
    x: np.ndarray,
    perturbation: np.ndarray,
    z_test: np.ndarray,
    predictions: np.ndarray,
    seed: int,
    sigma: float = 0.1,
) -> dict[str, float]:
    """How far the latents move, relative to the spacing of the class points.

    ``scale`` is the mean distance between the centroids of the test latents
    grouped by predicted class. ``noise_latent_shift`` is
    ``mean ||z(x + e) - z(x)|| / scale`` with ``e ~ N(0, sigma^2)`` (do noisy
    variants of one input land on the same latent point?), and
    ``deepfool_latent_shift`` is ``mean ||z(x + r) - z(x)|| / scale`` for the
    DeepFool perturbations ``r`` (how far z travels to change the class).
    """
    from keras_lpc import latents
    from keras_lpc.metrics._stats import class_means

    classes, codes = np.unique(predictions, return_inverse=True)
    centroids = class_means(z_test, codes.reshape(-1), len(classes))[1]
    if len(centroids) < 2:
        return {"noise_latent_shift": float("nan"), "deepfool_latent_shift": float("nan")}
    gaps = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    scale = float(gaps[np.triu_indices(len(centroids), 1)].mean())
    noise = np.random.default_rng(seed).normal(0.0, sigma, x.shape).astype(x.dtype)
    z0 = latents(model, x)
    zn = latents(model, x + noise)
    zd = latents(model, (x + perturbation).astype(x.dtype))
    return {
        "noise_latent_shift": float(np.linalg.norm(zn - z0, axis=1).mean() / scale),
        "deepfool_latent_shift": float(np.linalg.norm(zd - z0, axis=1).mean() / scale),
    }
