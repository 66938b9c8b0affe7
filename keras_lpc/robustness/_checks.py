"""The input checks of every robustness function, written once.

`check_inputs` (the batch ``x``), `check_labels` (``y``), `check_clip`, `check_eps`
(one budget, or the deprecated sequence of them) and `prepare`, which runs the
first three, builds the `Scorer` and takes the clean scores once.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from keras_lpc._validation import as_labels, check_float
from keras_lpc.robustness._core import Scorer, input_dtype


def check_inputs(model: Any, x: Any) -> np.ndarray:
    """``x`` as a float32 array (float64 for a float64 model) after checking it is a
    non-empty batch matching the model."""
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    x = np.asarray(keras.ops.convert_to_numpy(x))
    if not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)):
        raise TypeError(f"`x` must be a numeric array. Received: x with dtype {x.dtype}")
    x = x.astype(input_dtype(model), copy=False)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            "`x` must be a non-empty batch of inputs (N >= 1, at least 2 axes). "
            f"Received: x with shape {x.shape}"
        )
    try:
        expected = tuple(model.inputs[0].shape[1:])
    except (AttributeError, ValueError, IndexError, TypeError):
        expected = None
    if expected is not None and (
        len(expected) != x.ndim - 1
        or any(e is not None and e != s for e, s in zip(expected, x.shape[1:]))
    ):
        want = "(N, " + ", ".join(str(e) for e in expected) + ")"
        raise ValueError(
            f"`x` must have shape {want} to match the model input. Received: x with shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"`x` must be finite. Received: x with {int(np.sum(~np.isfinite(x)))} NaN or inf values"
        )
    return x


def check_labels(y: Any, n: int, classes: int) -> np.ndarray:
    """Integer labels ``y`` (N,) of ``x`` in ``[0, classes)``; one-hot rows become indices
    (`keras_lpc._validation.as_labels`, for backend tensors too)."""
    y = np.asarray(keras.ops.convert_to_numpy(y))
    return as_labels(y, n, "y", one_hot=True, of="x", classes=classes)


def check_clip(clip: Any, x: np.ndarray | None = None) -> tuple[float, float] | None:
    """``clip`` as ``(lo, hi)`` floats with ``lo < hi``, or ``None``: every attack's check.

    With the checked inputs ``x``, the box must also contain them: perturbed inputs are
    clipped to it, so a box that misses the inputs (raw pixels in [0, 16] with
    ``clip=(0, 1)``) would measure distances to points that are not perturbations of
    ``x`` at all.
    """
    if clip is None:
        return None
    if not isinstance(clip, (tuple, list)) or len(clip) != 2:
        raise ValueError(f"`clip` must be a pair (lo, hi). Received: clip={clip!r}")
    lo, hi = check_float("clip[0]", clip[0]), check_float("clip[1]", clip[1])
    if not lo < hi:
        raise ValueError(f"`clip` must satisfy lo < hi. Received: clip={clip!r}")
    if x is not None and x.size:
        low, high = float(np.min(x)), float(np.max(x))
        if low < lo or high > hi:
            raise ValueError(
                f"`clip` must contain the inputs: x lies in [{low:g}, {high:g}], outside the "
                f"box [{lo:g}, {hi:g}] that perturbed inputs are clipped to. Pass the range of "
                f"valid inputs in x's units, or rescale x. Received: clip=({lo:g}, {hi:g})"
            )
    return lo, hi


class Curve(list):
    """The budgets of `keras_lpc.robustness.accuracy_curve`: a sequence of eps that is not
    the deprecated form of an accuracy function (`check_eps` does not warn)."""


def check_eps(eps: Any, caller: str | None = None) -> tuple[list[float], bool]:
    """The budgets in ``eps`` (each a number ``>= 0``) and whether ``eps`` was one number.

    ``eps`` is a number (or a 0-d array) or a non-empty sequence of them. With
    ``caller`` (the name of an accuracy function), a sequence other than a `Curve`
    is the deprecated form of that function: a ``DeprecationWarning`` points to
    `accuracy_curve`.
    """
    scalar = np.ndim(eps) == 0
    values = [eps] if scalar else list(np.asarray(eps).reshape(-1))
    if not values:
        raise ValueError(f"`eps` must be a number or a non-empty list. Received: eps={eps!r}")
    if caller is not None and not scalar and not isinstance(eps, Curve):
        warnings.warn(
            f"{caller}(model, x, y, eps) with a sequence of eps is deprecated: pass one number "
            f"for one accuracy (a float), or call accuracy_curve({caller.split('_')[0]!r}, "
            "model, x, y, eps, ...) for one accuracy per eps (an array).",
            DeprecationWarning,
            stacklevel=3,
        )
    values = [
        check_float("eps", v.item() if hasattr(v, "item") else v, minimum=0.0) for v in values
    ]
    return values, scalar


def one_or_many(values: list[float], scalar: bool) -> float | np.ndarray:
    """An accuracy function's result: a float for one eps, else a float64 array."""
    return values[0] if scalar else np.asarray(values, dtype="float64")


def prepare(
    model: Any, x: Any, y: Any, batch_size: int, outputs: str, clip: Any = None
) -> tuple[Scorer, np.ndarray, np.ndarray, np.ndarray]:
    """``(scorer, x, labels, scores)``: the checked inputs, their int32 labels (``y``, or the
    clean predictions when ``y`` is None) and the clean scores (N, C) in float64; with
    ``clip``, the box is checked to contain ``x`` (`check_clip`)."""
    scorer = Scorer(model, batch_size, outputs)
    x = check_inputs(model, x)
    check_clip(clip, x)
    scores = scorer.forward(x)
    labels = np.argmax(scores, axis=1) if y is None else check_labels(y, len(x), scores.shape[1])
    return scorer, x, labels.astype("int32"), scores
