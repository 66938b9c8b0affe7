"""Input gradients (a persistent ``GradientTape``) and ``tf.function`` on TensorFlow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def vjp(
    fn: Callable[[Any], Any], x: Any, cotangent_fn: Callable[[Any, Any], Any], aux: Any
) -> tuple[Any, Any]:
    """Scores and K vector-Jacobian products (see `keras_lpc.backend.vjp`)."""
    import tensorflow as tf

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out = fn(x)
    cot = cotangent_fn(tf.stop_gradient(out), aux)
    count = int(cot.shape[0])
    grads = [tape.gradient(out, x, output_gradients=cot[k]) for k in range(count)]
    return out, tf.stack(grads)


def jit(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """``fn`` as one ``tf.function`` that generalises over batch sizes (variables by reference)."""
    import tensorflow as tf

    compiled = tf.function(fn, reduce_retracing=True)

    def call(*args: Any) -> Any:
        return compiled(*[tf.convert_to_tensor(a) for a in args])

    return call
