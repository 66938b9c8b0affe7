"""The one `Scorer`: a model's pre-softmax class scores, batched and compiled, on every backend.

Robustness is measured on the scores *before* a final softmax: DeepFool's
linearisation and the Lipschitz margin are defined on logits, and a softmax
output saturates, which makes its gradients vanish. With ``outputs="auto"``
a final softmax found in the model's graph (``Dense(...,
activation="softmax")``, ``Softmax`` or ``Activation("softmax")`` as the
output layer, or ``keras.ops.softmax`` as the functional graph's last
operation, `keras_lpc._models.output_operation`) is skipped by rebuilding the
model up to its input. Where the output values are the only evidence (every
row in [0, 1] summing to 1, e.g. a softmax inside a ``Lambda``), a warning
says how to state what the model returns: ``outputs="logits"`` (use the
outputs as they are) or ``outputs="probabilities"`` (use ``log p``, which has
the same class-score differences and gradients as the logits of a softmax).

Every model batch of `keras_lpc.robustness` goes through a `Scorer`: forward
passes, vector-Jacobian products and whole attack loops, each compiled once per
model (`keras_lpc.backend`) and run on batches padded to a few sizes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc._models import first_output, output_operation
from keras_lpc._validation import check_choice, check_int

OUTPUTS = ("auto", "logits", "probabilities")

_HOW = (
    "Pass outputs='probabilities' (scores = log p) or outputs='logits' (outputs used as they "
    "are) to say what the model returns, or build it with a linear last layer (logits)"
)


def _is_softmax(activation: Any) -> bool:
    return activation is keras.activations.softmax or (
        getattr(activation, "__name__", "") == "softmax"
    )


def _softmax_kind(last: Any) -> str | None:
    """``"input"`` if ``last`` is a softmax of its input, ``"dense"`` for a softmax Dense."""
    if last is None:
        return None
    if isinstance(last, keras.layers.Softmax) or type(last).__name__ == "Softmax":
        return "input"
    if _is_softmax(getattr(last, "activation", None)):
        if isinstance(last, keras.layers.Activation):
            return "input"
        if isinstance(last, keras.layers.Dense):
            return "dense"
        return "other"
    return None


def _float32(out: Any) -> Any:
    """``out`` in float32 where it is float16 or bfloat16 (a mixed-precision model): the
    attacks compute in float32, as the layer's penalty does."""
    if keras.backend.standardize_dtype(out.dtype) in ("float16", "bfloat16"):
        return ops.cast(out, "float32")
    return out


def _flat(out: Any) -> Any:
    out = _float32(first_output(out))
    if all(isinstance(d, int) for d in out.shape[1:]):
        # (-1, C) keeps the class count static where the batch axis is not (tf.function)
        return ops.reshape(out, (-1, int(np.prod(out.shape[1:]))))
    return ops.reshape(out, (ops.shape(out)[0], -1))


def _score_function(model: Any, outputs: str) -> tuple[Callable[[Any], Any], bool]:
    """The scores function and whether the scores are known to be logits (no value check)."""
    last = output_operation(model)
    kind = None if outputs == "logits" else _softmax_kind(last)
    if kind is None:
        if outputs == "probabilities":

            def log_probabilities(x: Any) -> Any:
                p = _flat(model(x, training=False))
                return ops.log(ops.maximum(p, ops.cast(1e-30, p.dtype)))

            return log_probabilities, True
        return (lambda x: _flat(model(x, training=False))), outputs == "logits"
    if kind == "other":
        raise ValueError(
            f"`model` ends with a {type(last).__name__} layer with a softmax activation, "
            f"which cannot be skipped. {_HOW}. Received: model={model.name!r}"
        )
    try:
        inner = keras.Model(model.inputs, last.input)
    except (AttributeError, ValueError, TypeError) as err:
        raise ValueError(
            f"`model` ends with a softmax that could not be skipped ({err}). {_HOW}. "
            f"Received: model={model.name!r}"
        ) from err
    if kind == "input":
        return (lambda x: _flat(inner(x, training=False))), True

    def dense_scores(x: Any) -> Any:
        h = _float32(first_output(inner(x, training=False)))
        kernel, bias, dtype = last.kernel, last.bias, keras.backend.standardize_dtype(h.dtype)
        if kernel.dtype != dtype:  # a mixed-precision model: float32 weights, float32 h
            kernel = ops.cast(kernel, dtype)
            bias = None if bias is None else ops.cast(bias, dtype)
        z = ops.matmul(h, kernel)
        return z + bias if last.use_bias else z

    return dense_scores, True


def input_dtype(model: Any) -> str:
    """``"float64"`` for a model whose inputs are float64 (see `cast_model`), else ``"float32"``."""
    try:
        dtype = str(model.inputs[0].dtype)
    except (AttributeError, ValueError, IndexError, TypeError):
        dtype = str(getattr(model, "compute_dtype", "float32"))
    return "float64" if dtype == "float64" else "float32"


def batches(n: int, batch_size: int) -> list[tuple[int, int, int]]:
    """``(start, stop, padded size)`` of each batch: sizes rounded up by `backend.bucket`."""
    return [
        (i, min(i + batch_size, n), backend.bucket(min(batch_size, n - i)))
        for i in range(0, n, batch_size)
    ]


def bounds(clip: tuple[float, float] | None, dtype: Any) -> tuple[Any, Any]:
    """The settings ``(lo, hi)`` of a compiled loop in ``dtype`` (zeros without ``clip``)."""
    kind = np.dtype(dtype).type
    return (kind(0.0), kind(0.0)) if clip is None else (kind(clip[0]), kind(clip[1]))


def per_input(
    scorer: Scorer, x: np.ndarray, labels: np.ndarray, *floats: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Per-input rows of a loop in the dtypes it takes: ``x`` and ``floats`` (radii, starts)
    in the model's input dtype, ``labels`` int32."""
    cast = tuple(np.asarray(a, dtype=scorer.dtype) for a in floats)
    return (np.asarray(x, dtype=scorer.dtype), np.asarray(labels, dtype="int32"), *cast)


class Scorer:
    """A model's pre-softmax scores, batched and compiled: every model batch of the attacks.

    ``forward`` and ``predict`` are one compiled forward pass per batch, ``vjp``
    one forward pass plus vector-Jacobian products (`keras_lpc.backend.vjp`),
    ``run`` a whole attack loop written in ``keras.ops`` and compiled once per
    model and setting. Compiled functions are cached on the model (keyed by
    ``outputs`` and the caller's key) and read its current weights at every
    call. Inputs are cast to the model's input dtype (``dtype``: float32, or
    float64 for a `cast_model` copy); batches are padded to powers of two.

    This is what an attack receives: every attack of `minimal_perturbation`,
    built-in or registered with `register_attack`, is called as
    ``attack(scorer, x, labels, *, norm, budget, clip, rng)``.

    Args:
        model: a Keras classifier returning class scores (N, C).
        batch_size: inputs per forward or backward pass.
        outputs: ``"auto"``, ``"logits"`` or ``"probabilities"``: what the model
            returns (see `keras_lpc.robustness.deepfool`).
        query_batch_size: inputs per pass of the label queries of a
            decision-based attack (forward passes only, so larger); default
            ``16 * batch_size``.

    Attributes:
        fn: the scores as a ``keras.ops`` function of a batch of backend tensors,
            ``(n, ...) -> (n, C)`` (traceable: usable inside a compiled loop).
        dtype: ``"float32"`` or ``"float64"``, the model's input dtype.
        classes: C, set by the first `forward` (0 before).

    Raises:
        TypeError: ``model`` is not a Keras model; a non-integer batch size.
        ValueError: a batch size below 1, an unknown ``outputs``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import Scorer
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> scorer = Scorer(model)  # the softmax is skipped: logits (x_0, -x_0)
    >>> print(scorer.forward(np.array([[3.0, 4.0]])))
    [[ 3. -3.]]
    >>> scorer.predict(np.array([[-1.0, 0.0], [2.0, 0.0]])).tolist()
    [1, 0]
    """

    def __init__(
        self,
        model: Any,
        batch_size: int = 256,
        outputs: str = "auto",
        *,
        query_batch_size: int | None = None,
    ) -> None:
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.outputs = check_choice("outputs", outputs, OUTPUTS)
        self.query_batch_size = (
            16 * self.batch_size
            if query_batch_size is None
            else check_int("query_batch_size", query_batch_size, minimum=1)
        )
        self.model = model

        def build() -> tuple[Callable[[Any], Any], bool]:
            fn, known = _score_function(model, outputs)
            return backend.traceable(fn, model.variables), known

        self.fn, self._known = backend.cached(model, ("scores", outputs), build)
        self.dtype = input_dtype(model)
        self.classes = 0

    def _compiled(self, key: Hashable, make: Callable[[Callable[[Any], Any]], Any]) -> Any:
        fn, variables = self.fn, self.model.variables
        full = ("scorer", self.outputs, key)
        return backend.cached(self.model, full, lambda: backend.jit(make(fn), variables))

    def forward(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Scores (N, C) as float64.

        Raises ``ValueError`` for fewer than 2 classes; warns when
        ``outputs="auto"`` found no softmax in the graph but the values look
        like probabilities.
        """
        x = np.asarray(x).astype(self.dtype, copy=False)
        run = self._compiled("forward", lambda fn: fn)
        parts = [
            ops.convert_to_numpy(run(backend.pad(x[a:b], size)))[: b - a]
            for a, b, size in batches(len(x), batch_size or self.batch_size)
        ]
        scores = np.concatenate(parts).astype("float64")
        name = getattr(self.model, "name", repr(self.model))
        if scores.shape[1] < 2:
            raise ValueError(
                "`model` must output at least 2 class scores. "
                f"Received: model={name!r} with {scores.shape[1]} output"
            )
        if (
            not self._known
            and np.all(scores >= 0)
            and np.all(scores <= 1)
            and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
        ):
            warnings.warn(
                f"`model` {name!r} has no softmax in its graph but its outputs look like "
                "probabilities (rows in [0, 1] summing to 1); they are used as class scores "
                f"(logits). {_HOW}.",
                UserWarning,
                stacklevel=3,
            )
        self.classes = scores.shape[1]
        return scores

    def predict(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Predicted classes (N,) at ``x``: ``argmax`` of `forward`."""
        return np.argmax(self.forward(x, batch_size=batch_size), axis=1)

    def vjp(self, x: np.ndarray, cotangent_fn: Any, aux: np.ndarray) -> tuple[Any, Any]:
        """Scores (N, C) and products (K, N, ...) as float64 (see `keras_lpc.backend.vjp`)."""

        def make(fn: Callable[[Any], Any]) -> Callable[[Any, Any], tuple[Any, Any]]:
            return lambda x, aux: backend.vjp(fn, x, cotangent_fn, aux)

        run = self._compiled(("vjp", cotangent_fn), make)
        x = np.asarray(x).astype(self.dtype)
        scores, grads = [], []
        for a, b, size in batches(len(x), self.batch_size):
            s, g = run(backend.pad(x[a:b], size), backend.pad(aux[a:b], size))
            scores.append(ops.convert_to_numpy(s)[: b - a])
            grads.append(ops.convert_to_numpy(g)[:, : b - a])
        return (
            np.concatenate(scores).astype("float64"),
            np.concatenate(grads, axis=1).astype("float64"),
        )

    def run(
        self,
        key: Hashable,
        make: Callable[[Callable[[Any], Any]], Callable[..., tuple[Any, ...]]],
        rows: Sequence[np.ndarray],
        settings: Sequence[Any],
        *,
        batch_size: int | None = None,
    ) -> list[np.ndarray]:
        """A compiled attack loop, once per batch; its outputs (N, ...) as NumPy.

        ``make(fn)`` (``fn`` the score function) returns the loop, a
        ``keras.ops`` function of backend tensors ``(*rows, *settings) ->
        tuple of (n, ...) tensors``; it is compiled once per model, ``outputs``
        and ``key`` (which must hold every static setting). ``rows`` are
        per-input arrays (N, ...), cut into batches of ``batch_size`` (default
        the scorer's) padded to `backend.bucket` sizes with zeros; ``settings``
        are arrays passed whole (so their values never retrace). Inputs are
        independent in the loops, so padded rows are computed and cut off.
        """
        loop = self._compiled(key, make)
        parts = []
        for a, b, size in batches(len(rows[0]), batch_size or self.batch_size):
            out = loop(*(backend.pad(r[a:b], size) for r in rows), *settings)
            parts.append([np.asarray(ops.convert_to_numpy(t))[: b - a] for t in out])
        return [np.concatenate(p) for p in zip(*parts)]
