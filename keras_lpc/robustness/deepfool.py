"""Batched multi-class DeepFool on any Keras model, on every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

from keras_lpc._validation import check_float, check_int
from keras_lpc.robustness._scores import Scorer, check_inputs, check_labels


@dataclass
class DeepFoolResult:
    """What `deepfool` found, per input and on average.

    Attributes:
        perturbation: the final perturbation ``r = (1 + overshoot) * sum_i r_i``,
            same shape as ``x`` (clipped inputs minus ``x`` when ``clip``).
        per_sample: ``||r_n||_2 / ||x_n||_2`` per input (dimensionless).
        score: mean of ``per_sample`` over all inputs (the DeepFool score).
        score_correct: mean of ``per_sample`` over correctly classified
            inputs when ``y`` was given (NaN if none is), else ``None``.
        fooled: whether the prediction at ``x + r`` differs from the clean one.
        iterations: number of DeepFool steps taken per input.
        predictions: the clean predicted class per input.
    """

    perturbation: np.ndarray
    per_sample: np.ndarray
    score: float
    score_correct: float | None
    fooled: np.ndarray
    iterations: np.ndarray
    predictions: np.ndarray


def _pair_cotangents(scores: Any, classes: Any) -> Any:
    # Rows e_{I_k} - e_{I_0}, k = 1..K-1: gradients of f_{I_k} - f_{I_0}.
    onehot = ops.one_hot(classes, ops.shape(scores)[1], dtype=scores.dtype)
    return ops.transpose(onehot[:, 1:] - onehot[:, :1], (1, 0, 2))


def _run(
    scorer: Scorer,
    x: np.ndarray,
    overshoot: float,
    max_iter: int,
    candidates: int,
    clip: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(x)
    scores = scorer.forward(x)
    k = min(candidates, scores.shape[1])
    # Stable sort of -scores: ties go to the lower class index, as np.argmax does.
    classes = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype("int32")
    label = classes[:, 0]
    r_tot = np.zeros(x.shape, dtype="float64")
    iterations = np.zeros(n, dtype="int64")
    fooled = np.zeros(n, dtype=bool)
    active = np.arange(n)
    flat = int(np.prod(x.shape[1:]))

    def perturbed(idx: np.ndarray) -> np.ndarray:
        xa = x[idx] + (1.0 + overshoot) * r_tot[idx]
        return (np.clip(xa, *clip) if clip is not None else xa).astype(x.dtype)

    for step in range(max_iter + 1):
        if active.size == 0:
            break
        if step == max_iter:  # only check whether the last step flipped them
            scores = scorer.forward(perturbed(active))
            fooled[active] = np.argmax(scores, axis=1) != label[active]
            break
        scores, grads = scorer.vjp(perturbed(active), _pair_cotangents, classes[active])
        still = np.argmax(scores, axis=1) == label[active]
        fooled[active[~still]] = True
        active, scores, grads = active[still], scores[still], grads[:, still]
        m = active.size
        if m == 0:
            break
        rows = np.arange(m)
        grads = grads.reshape(k - 1, m, flat)
        f_diff = (
            np.take_along_axis(scores, classes[active, 1:], axis=1)
            - scores[rows, label[active], None]
        )
        w_norm = np.linalg.norm(grads, axis=2).T  # (m, k - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(w_norm > 0, np.abs(f_diff) / w_norm, np.inf)
        best = np.argmin(dist, axis=1)
        d, norm = dist[rows, best], w_norm[rows, best]
        w = grads[best, rows]  # (m, flat)
        with np.errstate(divide="ignore", invalid="ignore"):
            r_i = ((d + 1e-4) / norm)[:, None] * w
        r_i[~np.isfinite(d)] = 0.0
        r_tot[active] += r_i.reshape((m, *x.shape[1:]))
        iterations[active] += 1
    r = (1.0 + overshoot) * r_tot
    if clip is not None:
        r = np.clip(x + r, *clip) - x
    return r.astype(x.dtype), fooled, iterations, label


def deepfool(
    model: Any,
    x: Any,
    *,
    overshoot: float = 0.02,
    max_iter: int = 50,
    candidates: int = 10,
    batch_size: int = 256,
    y: Any = None,
    clip: tuple[float, float] | None = None,
) -> DeepFoolResult:
    """Minimal L2 perturbations that change a model's prediction (multi-class DeepFool).

    For each input, with ``I_0`` the clean prediction and ``I_1..I_{K-1}``
    the next ``K - 1 = candidates - 1`` classes by clean score, every step
    linearises the pre-softmax scores ``f`` at ``x + (1 + overshoot) r``::

        w_k = grad f_{I_k} - grad f_{I_0},   f_k = f_{I_k} - f_{I_0}
        l = argmin_k |f_k| / ||w_k||_2
        r_i = (|f_l| / ||w_l||_2 + 1e-4) * w_l / ||w_l||_2,   r += r_i

    until the prediction changes or ``max_iter`` steps; the result is
    ``r = (1 + overshoot) * sum_i r_i``, and the score is the mean over
    inputs of ``||r_n||_2 / ||x_n||_2`` (unfooled inputs included). A whole
    batch runs at once: flipped inputs stop while the rest iterate; each
    step is one forward pass and ``K - 1`` vector-Jacobian products on the
    active inputs. No clipping to a pixel range unless ``clip`` is given.
    A final softmax layer is skipped (see `keras_lpc.robustness`).

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        overshoot: factor ``>= 0`` by which the accumulated step is enlarged.
        max_iter: maximum number of steps per input, ``>= 1``.
        candidates: number of top-scoring classes considered, ``>= 2``
            (capped at C).
        batch_size: inputs processed together.
        y: optional true labels (N,) to compute ``score_correct``.
        clip: optional ``(lo, hi)`` bounds for the perturbed inputs.

    Returns:
        A `DeepFoolResult`.

    Raises:
        ValueError: bad ``overshoot``, ``max_iter``, ``candidates``,
            ``batch_size``, ``clip`` or ``y``; ``x`` empty or not matching
            the model input; a model with fewer than 2 outputs or returning
            probabilities.
        TypeError: a non-numeric argument or a non-Keras ``model``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import deepfool
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> # f_0 - f_1 = 2 x_0: the boundary x_0 = 0 lies 3 away from (3, 4)
    >>> res = deepfool(model, np.array([[3.0, 4.0]]), overshoot=0.0)
    >>> print(np.round(res.perturbation, 3), round(res.score, 3), res.fooled)
    [[-3.  0.]] 0.6 [ True]
    """
    overshoot = check_float("overshoot", overshoot, minimum=0.0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    candidates = check_int("candidates", candidates, minimum=2)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if clip is not None:
        if not isinstance(clip, (tuple, list)) or len(clip) != 2:
            raise ValueError(f"`clip` must be a pair (lo, hi). Received: clip={clip!r}")
        lo = check_float("clip[0]", clip[0])
        hi = check_float("clip[1]", clip[1])
        if not lo < hi:
            raise ValueError(f"`clip` must satisfy lo < hi. Received: clip={clip!r}")
        clip = (lo, hi)
    x = check_inputs(model, x)
    scorer = Scorer(model, batch_size)
    parts = [
        _run(scorer, x[i : i + batch_size], overshoot, max_iter, candidates, clip)
        for i in range(0, len(x), batch_size)
    ]
    r, fooled, iterations, label = (np.concatenate(p) for p in zip(*parts))
    flat = len(x), -1
    with np.errstate(divide="ignore", invalid="ignore"):
        per_sample = np.linalg.norm(r.reshape(flat), axis=1) / np.linalg.norm(
            x.reshape(flat), axis=1
        )
    score_correct = None
    if y is not None:
        correct = check_labels(y, len(x), scorer.classes) == label
        score_correct = float(np.mean(per_sample[correct])) if correct.any() else float("nan")
    return DeepFoolResult(
        perturbation=r,
        per_sample=per_sample,
        score=float(np.mean(per_sample)),
        score_correct=score_correct,
        fooled=fooled,
        iterations=iterations,
        predictions=label,
    )
