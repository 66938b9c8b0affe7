"""Input gradients for each Keras backend.

This package is the only place in keras_lpc that imports tensorflow, jax or
torch, and each framework is imported lazily inside its own module. The rest
of the library writes its maths in ``keras.ops`` / NumPy and asks this
package for input gradients through one small object:

``differentiator(fn)`` wraps ``fn``, a function from a batch of inputs
``x`` (N, ...) to scores (N, C) written in ``keras.ops``, and returns an
object with

* ``forward(x) -> scores``: scores as a NumPy array, no gradients;
* ``vjp(x, cotangent_fn, aux) -> (scores, grads)``: one forward pass and
  ``K`` vector-Jacobian products. ``cotangent_fn(scores, aux)`` is written
  in ``keras.ops`` and returns cotangents of shape (K, N, C) built from the
  (detached) scores and an auxiliary integer array ``aux`` (N, ...);
  ``grads[k, n] = sum_c cot[k, n, c] * d scores[n, c] / d x[n]``, so
  ``grads`` has shape (K, N, ...). The scores of different samples must
  not depend on each other (true in inference mode).

Candidate-class Jacobian rows (DeepFool), margin gradients (Lipschitz) and
cross-entropy gradients (FGSM/PGD) are all such products.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras


def differentiator(fn: Callable[[Any], Any]) -> Any:
    """Return the input-gradient helper of the current Keras backend for ``fn``."""
    name = keras.backend.backend()
    if name == "tensorflow":
        from keras_lpc.backend import _tensorflow as impl
    elif name == "jax":
        from keras_lpc.backend import _jax as impl
    elif name == "torch":
        from keras_lpc.backend import _torch as impl
    else:
        raise ValueError(
            "Input gradients need the tensorflow, jax or torch Keras backend. "
            f"Received: backend={name!r}"
        )
    return impl.Differentiator(fn)


def candidate_jacobian(fn: Callable[[Any], Any], x: Any, classes: Any) -> tuple[Any, Any]:
    """Scores (N, C) and Jacobian rows (N, K, ...) of ``fn`` for ``classes`` (N, K)."""
    import numpy as np
    from keras import ops

    def cot(scores: Any, aux: Any) -> Any:
        return ops.transpose(ops.one_hot(aux, ops.shape(scores)[1], dtype=scores.dtype), (1, 0, 2))

    scores, grads = differentiator(fn).vjp(x, cot, np.asarray(classes, dtype="int32"))
    return scores, np.moveaxis(grads, 0, 1)
