"""Input gradients on the TensorFlow backend (a persistent GradientTape)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class Differentiator:
    """Forward passes and batched vector-Jacobian products of ``fn`` on TensorFlow."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        import tensorflow as tf

        self.fn = fn

        def vjp(x: Any, aux: Any, cotangent_fn: Callable) -> tuple[Any, Any]:
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                out = fn(x)
            cot = cotangent_fn(tf.stop_gradient(out), aux)
            grads = [
                tape.gradient(out, x, output_gradients=cot[k]) for k in range(int(cot.shape[0]))
            ]
            return out, tf.stack(grads)

        self._vjp = vjp

    def forward(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return np.asarray(self.fn(tf.convert_to_tensor(x)))

    def vjp(
        self, x: np.ndarray, cotangent_fn: Callable[[Any, Any], Any], aux: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        import tensorflow as tf

        out, grads = self._vjp(tf.convert_to_tensor(x), tf.convert_to_tensor(aux), cotangent_fn)
        return out.numpy(), grads.numpy()
