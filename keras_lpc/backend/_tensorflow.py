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
    """``fn`` as ``tf.function``s with the batch axis left free (variables read by reference).

    One graph per dtypes and non-batch shapes of the arguments: every batch
    size reuses it, while other axes (candidate counts, image sizes) stay
    static inside the graph.
    """
    import tensorflow as tf

    graphs: dict[tuple, Any] = {}

    def call(*args: Any) -> Any:
        tensors = [tf.convert_to_tensor(a) for a in args]
        key = tuple((t.dtype, tuple(t.shape)[1:] if t.shape.rank else None) for t in tensors)
        if key not in graphs:
            signature = [
                tf.TensorSpec([None, *t.shape[1:]] if t.shape.rank else [], t.dtype)
                for t in tensors
            ]
            graphs[key] = tf.function(fn, input_signature=signature)
        return graphs[key](*tensors)

    return call
