"""Batched multi-class DeepFool on any Keras model, on every backend."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc._validation import check_float, check_int
from keras_lpc.robustness._checks import check_clip, prepare
from keras_lpc.robustness._core import Scorer, bounds


@dataclass
class DeepFoolResult:
    """What `deepfool` found, per input and on average.

    Attributes:
        perturbation: the final perturbation ``r = (1 + overshoot) * sum_i r_i``,
            same shape as ``x`` (clipped inputs minus ``x`` when ``clip``); for an
            input that did not flip, the perturbation reached after ``max_iter`` steps.
        per_sample: ``||r_n||_2 / ||x_n||_2`` per input (dimensionless); ``inf``
            for an input whose prediction did not flip within ``max_iter`` steps
            (no perturbation found: at least that robust).
        score: mean of ``per_sample`` over the inputs that flipped (the DeepFool
            score); NaN when none did.
        score_correct: the same mean over flipped, correctly classified inputs
            when ``y`` was given (NaN if there is none), else ``None``.
        fooled: whether the prediction at ``x + r`` differs from the clean one.
        iterations: number of DeepFool steps taken per input.
        predictions: the clean predicted class per input.
        unflipped: number of inputs that did not flip (``sum(~fooled)``).
        flipped_fraction: fraction of inputs that flipped (``mean(fooled)``).
    """

    perturbation: np.ndarray
    per_sample: np.ndarray
    score: float
    score_correct: float | None
    fooled: np.ndarray
    iterations: np.ndarray
    predictions: np.ndarray
    unflipped: int = 0
    flipped_fraction: float = 1.0


def _pair_cotangents(scores: Any, classes: Any) -> Any:
    # Rows e_{I_k} - e_{I_0}, k = 1..K-1: gradients of f_{I_k} - f_{I_0}. One comparison
    # with arange(C) rather than ops.one_hot (several times slower on torch). Zero for
    # inputs that have already flipped (their step is not taken), so that an eager
    # backend skips the backward pass of a step where every input has flipped.
    hot = ops.transpose(classes)[:, :, None] == ops.arange(ops.shape(scores)[1])
    same = ops.argmax(scores, axis=1) == classes[:, 0]
    hot = ops.cast(hot & same[None, :, None], scores.dtype)
    return hot[1:] - hot[:1]  # (K - 1, n, C)


def _step(fn: Callable[[Any], Any], xa: Any, classes: Any, tiny: Any) -> tuple[Any, Any]:
    """One DeepFool step at ``xa``: (still at the clean class, the step ``r_i`` (n, flat)).

    On torch the loop runs eagerly and each ``keras.ops`` call costs tens of
    microseconds, so arithmetic, comparisons and indexing use Python operators
    (native on every backend) and the chosen candidate is picked with ``where``
    and a sum over exact zeros.
    """
    pairs = int(classes.shape[1]) - 1
    dtype = keras.backend.standardize_dtype(xa.dtype)
    scores, grads = backend.vjp(fn, xa, _pair_cotangents, classes)
    label = classes[:, 0]
    if keras.backend.standardize_dtype(label.dtype) != "int32":
        label = ops.cast(label, "int32")
    same = ops.argmax(scores, axis=1) == label
    picked = ops.take_along_axis(scores, classes, axis=1)  # (n, K)
    f_diff = ops.abs(ops.transpose(picked[:, 1:] - picked[:, :1]))  # (K - 1, n)
    g = grads
    if len(g.shape) != 3:
        g = ops.reshape(g, (pairs, -1, int(np.prod(xa.shape[1:]))))
    if keras.backend.standardize_dtype(g.dtype) != dtype:
        g, f_diff = ops.cast(g, dtype), ops.cast(f_diff, dtype)
    w_norm = ops.sqrt(ops.sum(g * g, axis=2))  # (K - 1, n)
    dist = ops.where(w_norm > 0, f_diff / w_norm, np.inf)
    best = ops.argmin(dist, axis=0)
    d = ops.min(dist, axis=0)
    pick = ops.arange(pairs, dtype=best.dtype)[:, None] == best  # (K - 1, n)
    norm = ops.sum(ops.where(pick, w_norm, 0.0), axis=0)
    w = ops.sum(ops.where(pick[:, :, None], g, 0.0), axis=0)  # (n, flat)
    coef = ops.where(same & ops.isfinite(d), (d + tiny) / norm, 0.0)
    return same, coef[:, None] * w


def _shrinking(step: Callable[..., tuple], x: Any, classes: Any, active: Any, max_iter: Any):
    """The masked loop on the host (torch), the rows that flipped leaving the batch.

    Where the active rows fit a smaller batch, they are gathered (with inactive rows
    up to the next `backend.bucket` size, ``fine``: at most a third is padding)
    and the next steps run on those only,
    each step one traced graph per batch size; ``(r, active, fooled, iterations)``
    come back in the original order. DeepFool flips most inputs within two or three
    steps, so the later steps cost a fraction of the first.
    """
    n = int(x.shape[0])
    step = backend.bind(step)
    full = [ops.zeros_like(x), active, ops.zeros_like(active), ops.zeros_like(classes[:, 0])]
    rows = ops.arange(n)
    part = [x, classes, *full]
    for _ in range(int(max_iter)):
        count = int(ops.sum(ops.cast(part[3], "int32")))
        if count == 0:
            break
        size = backend.bucket(count, fine=True)
        if size < int(rows.shape[0]):  # active rows first, then inactive ones as padding
            full = [ops.scatter_update(f, rows[:, None], p) for f, p in zip(full, part[2:])]
            keep = ops.argsort(ops.logical_not(part[3]))[:size]  # stable: active first
            rows = ops.take(rows, keep, axis=0)
            part = [ops.take(p, keep, axis=0) for p in part]
        part = [*part[:2], *step(*part)]
    return [ops.scatter_update(f, rows[:, None], p) for f, p in zip(full, part[2:])]


def _attack(fn: Callable[[Any], Any], clipped: bool) -> Callable[..., tuple[Any, Any, Any]]:
    """The DeepFool loop on backend tensors.

    ``(x, classes, valid, overshoot, max_iter, lo, hi) -> (r, fooled, iterations)``:
    all inputs iterate together, an input is frozen by a mask once its
    prediction flips, and padded rows (``valid`` False) never start; the loop
    stops when no input is active or after ``max_iter`` steps. The settings are
    tensors, so one compiled loop serves them all. On torch the loop runs on the
    host, each step one traced graph, and the rows that flipped leave the batch
    (`_shrinking`).
    """

    def run(
        x: Any, classes: Any, valid: Any, overshoot: Any, max_iter: Any, lo: Any, hi: Any
    ) -> tuple[Any, Any, Any]:
        def perturbed(x: Any, r: Any) -> Any:
            xa = x + (1.0 + overshoot) * r
            return ops.clip(xa, lo, hi) if clipped else xa

        label = classes[:, 0]
        dtype = keras.backend.standardize_dtype(x.dtype)
        tiny = ops.convert_to_tensor(np.asarray(1e-4, dtype=dtype))  # exact in float64

        def step(x: Any, classes: Any, r: Any, active: Any, fooled: Any, iterations: Any):
            same, r_i = _step(fn, perturbed(x, r), classes, tiny)
            still = active & same
            fooled = fooled | (active & ~same)
            r = r + ops.reshape(ops.where(ops.expand_dims(still, 1), r_i, 0.0), ops.shape(x))
            return r, still, fooled, iterations + ops.cast(still, "int32")

        active = ops.cast(valid, "bool")
        if backend.compiles():

            def cond(r: Any, active: Any, fooled: Any, iterations: Any, k: Any) -> Any:
                return ops.any(active) & (k < max_iter)

            def body(r: Any, active: Any, fooled: Any, iterations: Any, k: Any) -> tuple:
                return (*step(x, classes, r, active, fooled, iterations), k + 1)

            zeros = (ops.zeros_like(active), ops.zeros_like(label), ops.zeros_like(max_iter))
            state = (ops.zeros_like(x), active, *zeros)
            r, active, fooled, iterations, _ = ops.while_loop(cond, body, state)
        else:
            r, active, fooled, iterations = _shrinking(step, x, classes, active, max_iter)
        # inputs still active after max_iter steps: did the last step flip them?
        last = ops.argmax(fn(perturbed(x, r)), axis=1) != ops.cast(label, "int32")
        fooled = fooled | (active & last)
        r = (1.0 + overshoot) * r
        if clipped:
            r = ops.clip(x + r, lo, hi) - x
        return r, fooled, iterations

    return run


def deepfool(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    overshoot: float = 0.02,
    max_iter: int = 50,
    candidates: int = 10,
    batch_size: int = 256,
    clip: tuple[float, float] | None = None,
    outputs: str = "auto",
) -> DeepFoolResult:
    """Minimal L2 perturbations that change a model's prediction (multi-class DeepFool).

    For each input, with ``I_0`` the clean prediction and ``I_1..I_{K-1}``
    the next ``K - 1 = candidates - 1`` classes by clean score, every step
    linearises the pre-softmax scores ``f`` at ``x + (1 + overshoot) r``::

        w_k = grad f_{I_k} - grad f_{I_0},   f_k = f_{I_k} - f_{I_0}
        l = argmin_k |f_k| / ||w_k||_2
        r_i = (|f_l| / ||w_l||_2 + 1e-4) * w_l / ||w_l||_2,   r += r_i

    until the prediction changes or ``max_iter`` steps; the result is
    ``r = (1 + overshoot) * sum_i r_i``. The score is the mean of
    ``||r_n||_2 / ||x_n||_2`` over the inputs that flipped; an input that did
    not flip within ``max_iter`` steps has ``per_sample = inf``, is counted in
    ``unflipped`` and left out of ``score`` (a warning says how many). The
    loop runs on the device, compiled (``jax.jit`` / ``tf.function``; torch
    eagerly on tensors): a batch iterates together and a flipped input is
    frozen, each step one forward pass and ``K - 1`` vector-Jacobian
    products. No clipping to a pixel range unless ``clip`` is given. A final
    softmax is skipped (see `keras_lpc.robustness` and ``outputs``).

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        y: optional true labels (N,) or one-hot rows, for ``score_correct``
            (positional or keyword).
        overshoot: factor ``>= 0`` by which the accumulated step is enlarged.
        max_iter: maximum number of steps per input, ``>= 1``.
        candidates: number of top-scoring classes considered, ``>= 2``
            (capped at C).
        batch_size: inputs processed together (padded to a power of two).
        clip: optional ``(lo, hi)`` bounds for the perturbed inputs.
        outputs: ``"auto"`` (skip a softmax found in the graph; warn if the
            outputs look like probabilities anyway), ``"logits"`` (use the
            outputs as they are) or ``"probabilities"`` (use ``log p``).

    Returns:
        A `DeepFoolResult`.

    Raises:
        ValueError: bad ``overshoot``, ``max_iter``, ``candidates``,
            ``batch_size``, ``clip``, ``outputs`` or ``y``; ``x`` empty or not
            matching the model input; a model with fewer than 2 outputs.
        TypeError: a non-numeric argument or a non-Keras ``model``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import deepfool
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> # f_0 - f_1 = 2 x_0: the boundary x_0 = 0 lies 3 away from (3, 4)
    >>> res = deepfool(model, np.array([[3.0, 4.0]]), overshoot=0.0)
    >>> print(np.round(res.perturbation, 3), round(res.score, 3), res.fooled, res.unflipped)
    [[-3.  0.]] 0.6 [ True] 0
    """
    overshoot = check_float("overshoot", overshoot, minimum=0.0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    candidates = check_int("candidates", candidates, minimum=2)
    clip = check_clip(clip)
    scorer, x, true, scores = prepare(model, x, y, batch_size, outputs, clip)
    r, fooled, iterations, label = _run(scorer, x, scores, overshoot, max_iter, candidates, clip)
    flat = len(x), -1
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.linalg.norm(r.reshape(flat).astype("float64"), axis=1) / np.linalg.norm(
            x.reshape(flat).astype("float64"), axis=1
        )
    per_sample = np.where(fooled, ratio, np.inf)
    unflipped = int(np.sum(~fooled))
    if unflipped:
        warnings.warn(
            f"deepfool: {unflipped} of {len(x)} inputs did not flip within max_iter={max_iter} "
            "steps; their per_sample is inf and `score` averages the other "
            f"{len(x) - unflipped} (see DeepFoolResult.unflipped).",
            UserWarning,
            stacklevel=2,
        )
    score = float(np.mean(per_sample[fooled])) if unflipped < len(x) else float("nan")
    score_correct = None
    if y is not None:
        correct = (true == label) & fooled
        score_correct = float(np.mean(per_sample[correct])) if correct.any() else float("nan")
    return DeepFoolResult(
        perturbation=r,
        per_sample=per_sample,
        score=score,
        score_correct=score_correct,
        fooled=fooled.astype(bool),
        iterations=iterations.astype("int64"),
        predictions=label,
        unflipped=unflipped,
        flipped_fraction=float(np.mean(fooled)),
    )


def _run(
    scorer: Scorer,
    x: np.ndarray,
    scores: np.ndarray,
    overshoot: float,
    max_iter: int,
    candidates: int,
    clip: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The DeepFool loop on ``x`` with clean ``scores``: ``(r, fooled, iterations, label)``."""
    k = min(candidates, scores.shape[1])
    # Stable sort of -scores: ties go to the lower class index, as np.argmax does.
    classes = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype("int32")
    clipped = clip is not None
    r, fooled, iterations = scorer.run(
        ("deepfool", clipped),
        lambda fn: _attack(fn, clipped),
        (x, classes, np.ones(len(x), dtype=bool)),  # padded rows: False, never start
        (np.dtype(x.dtype).type(overshoot), np.int32(max_iter), *bounds(clip, x.dtype)),
    )
    return r.astype(x.dtype, copy=False), fooled, iterations, classes[:, 0].astype("int64")


def deepfool_attack(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    budget: int,
    clip: tuple[float, float] | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """The ensemble's ``"deepfool"`` attack: `deepfool`'s perturbations (N, ...) with its
    defaults (overshoot 0.02, 10 candidates) and ``max_iter=budget``.

    DeepFool moves away from the clean prediction (the ensemble attacks only inputs
    whose label is their prediction) with L2 steps whatever ``norm``; ``rng`` is not used.
    """
    x = np.asarray(x, dtype=scorer.dtype)
    return _run(scorer, x, scorer.forward(x), 0.02, budget, 10, clip)[0]
