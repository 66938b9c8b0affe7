"""The metric callbacks' data: checked when a callback is built, materialised once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_lpc._validation import as_labels


def materialize(data: Any, max_samples: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Turn metric-callback ``data`` into ``(x, y)`` NumPy arrays, iterating it once.

    ``data`` is an ``(x, y)`` tuple of arrays, a ``tf.data.Dataset`` or a
    `keras.utils.PyDataset` yielding ``(x, y)`` (or ``(x, y, weights)``)
    batches. Each batch's ``x`` and ``y`` are kept together, so a shuffled
    dataset still gives matching pairs. At most ``max_samples`` rows are kept:
    a fixed random subset (seeded) of arrays, or the first batches of a
    dataset. A dataset of unknown or infinite length needs ``max_samples``.
    """
    if isinstance(data, (tuple, list)):
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if max_samples is not None and len(x) > max_samples:
            idx = np.sort(np.random.default_rng(seed).choice(len(x), max_samples, replace=False))
            x, y = x[idx], y[idx]
        return x, y
    xs, ys, count = [], [], 0
    for batch in _iterate(data, max_samples):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                f"`data` must yield (x, y) batches. Received a batch of type {type(batch).__name__}"
            )
        bx, by = np.asarray(batch[0]), np.asarray(batch[1])
        xs.append(bx)
        ys.append(by)
        count += len(bx)
        if max_samples is not None and count >= max_samples:
            break
    if not xs:
        raise ValueError("`data` must contain at least one sample. Received: an empty dataset")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]
    return x, y


def _iterate(data: Any, max_samples: int | None) -> Iterator[Any]:
    """Batches of a tf.data.Dataset or a PyDataset, refusing endless ones without a limit."""
    if hasattr(data, "as_numpy_iterator"):
        cardinality = int(data.cardinality()) if hasattr(data, "cardinality") else -2
        if cardinality == -1 and max_samples is None:  # tf.data.INFINITE_CARDINALITY
            raise ValueError(
                "`data` must be finite when `max_samples=None`: pass max_samples=<rows> or "
                "take() a finite part. Received: data, an infinite tf.data.Dataset"
            )
        return data.as_numpy_iterator()
    length = getattr(data, "num_batches", None)
    if length is None and max_samples is None:
        raise ValueError(
            "`data` must have a length (num_batches or __len__) when `max_samples=None`. "
            f"Received: data={type(data).__name__} of unknown length"
        )

    def gen() -> Iterator[Any]:
        i = 0
        while length is None or i < length:
            yield data[i]
            i += 1

    return gen()


def validate_data(data: Any) -> Any:
    """Check metric-callback ``data`` when a callback is constructed."""
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"`data` must be a pair (x, y). Received: data of length {len(data)}")
        x, y = data
        if not hasattr(x, "shape") or not hasattr(y, "shape"):
            x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(
                "`data` must hold as many labels as inputs. "
                f"Received: data with len(x)={len(x)} and len(y)={len(y)}"
            )
        if len(x) == 0:
            raise ValueError("`data` must contain at least one sample. Received: len(x)=0")
        return (x, y)
    if hasattr(data, "as_numpy_iterator") or isinstance(data, keras.utils.PyDataset):
        return data
    raise TypeError(
        "`data` must be a pair (x, y) of arrays, a tf.data.Dataset or a "
        f"keras.utils.PyDataset. Received: data of type {type(data).__name__}"
    )


def check_label_values(y: np.ndarray, classes: int | None = None) -> None:
    """Check metric labels ``y``: integer class indices (``(N,)`` or ``(N, 1)``), or
    one-hot / probability rows ``(N, C)``; in ``[0, classes)`` when ``classes`` is known
    (`keras_lpc._validation.as_labels`, its messages starting "`data`: ").

    Raises:
        ValueError: naming ``data`` and the values received; it suggests the
            ``(x, y)`` order when ``y`` looks like inputs.
    """
    if y.ndim == 2 and y.shape[1] > 1:
        finite = np.issubdtype(y.dtype, np.number) and np.all(np.isfinite(y))
        if not finite or y.min() < 0 or y.max() > 1:
            raise ValueError(
                "`data` must be (x, y) with y integer labels or one-hot rows in [0, 1] "
                "(is the pair in (y, x) order?). "
                f"Received: y with shape {y.shape} and values in "
                f"[{_fmt(np.nanmin(y) if finite else y.min())}, {_fmt(y.max())}]"
            )
    as_labels(
        y,
        len(y),
        "y",
        one_hot=True,
        of="x",
        classes=classes,
        nonnegative=True,
        context="`data`: ",
    )


def _fmt(v: Any) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:g}"


def check_inputs_fit(model: Any, x: np.ndarray, y: np.ndarray) -> None:
    """Check that ``x`` matches the model's input shape (when the model declares one)."""
    try:
        expected = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else None
    except (AttributeError, ValueError, IndexError, TypeError):
        expected = None
    if expected is None:
        return
    if len(expected) != x.ndim - 1 or any(
        e is not None and e != s for e, s in zip(expected, x.shape[1:])
    ):
        want = "(N, " + ", ".join(str(e) for e in expected) + ")"
        swapped = y.ndim - 1 == len(expected) and all(
            e is None or e == s for e, s in zip(expected, y.shape[1:])
        )
        hint = " (the pair looks like (y, x): pass (x, y))" if swapped else ""
        raise ValueError(
            f"`data` must be (x, y) with x of shape {want} to match the model's input{hint}. "
            f"Received: x with shape {x.shape} and y with shape {y.shape}"
        )
