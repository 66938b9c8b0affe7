"""One call's set-up for the certified bounds: checks, graph, labels, memory plan, batches.

`Setup` gathers what `certified_radius` and `certified_at` share: the checked
arguments, the model's `BoundGraph` (built once per model), the clean scores
and labels, the row norms of the input's affine prefix, the memory `Plan`,
and runs a compiled ``keras.ops`` function batch by batch.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc._validation import check_choice, check_int
from keras_lpc.robustness._checks import check_inputs, check_labels
from keras_lpc.robustness.certify import _memory
from keras_lpc.robustness.certify._convert import METHODS, to_graph
from keras_lpc.robustness.certify._crown import probe
from keras_lpc.robustness.certify._norms import pair_constants, row_norms
from keras_lpc.robustness.certify._propagate import needs_interval
from keras_lpc.robustness.certify._search import BIG, crossing, search

NORMS = ("l2", "linf")
#: Default inputs per compiled call.
BATCH = {"lipschitz": 1024, "ibp": 256, "crown": 64}


def bound_graph(model: Any) -> Any:
    """The model as a `BoundGraph` (float32), built once per model."""
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
    return backend.cached(model, ("certify", "graph"), lambda: to_graph(model, "float32"))


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _forward(model: Any, graph: Any, x: np.ndarray, size: int) -> np.ndarray:
    run = backend.cached(
        model,
        ("certify", "forward"),
        lambda: backend.jit(lambda x: graph.forward(x)[-1], model.variables),
    )
    parts = [
        ops.convert_to_numpy(run(backend.pad(x[a:b], size)))[: b - a]
        for a, b in _batches(len(x), size)
    ]
    return np.concatenate(parts).astype("float64")


def spec(labels: Any, classes: int) -> Any:
    """``(C, B, C)``: row ``j`` of input ``n`` is ``e_{y_n} - e_j``."""
    onehot = ops.one_hot(labels, classes, dtype="float32")
    return onehot[None] - ops.eye(classes, dtype="float32")[:, None]


class Setup:
    """Checked arguments, the graph, labels and the per-call constants of one call."""

    def __init__(self, model, x, y, norm, method, batch_size, max_memory) -> None:
        self.norm = check_choice("norm", norm, NORMS)
        self.method = check_choice("method", method, METHODS)
        size = (
            BATCH[self.method]
            if batch_size is None
            else check_int("batch_size", batch_size, minimum=1)
        )
        if max_memory is None:
            max_memory = _memory.default_max_memory()
        max_memory = check_int("max_memory", max_memory, minimum=1)
        self.model, self.graph = model, bound_graph(model)
        self.x = check_inputs(model, x).astype("float32")
        # batches padded to a power of two (few compiled shapes, under 2x padding), never
        # past the memory plan's batch (`backend.bucket`'s floor of 8 rows cost one CNN
        # input 8x the work and the planned memory)
        rows = backend.bucket(len(self.x), minimum=1)
        self.plan = _memory.plan(self.graph, self.method, min(size, rows), max_memory)
        self.size = min(
            backend.bucket(min(self.plan.batch, len(self.x)), minimum=1), self.plan.batch
        )
        self.logits = _forward(model, self.graph, self.x, self.size)
        self.preds = np.argmax(self.logits, axis=1)
        self.labels = self.preds if y is None else check_labels(y, len(self.x), self.graph.classes)
        self.ids = sorted(needs_interval(self.graph) & self.graph.prefix)
        self.radii = (
            row_norms(self.graph, self.ids, self.norm) if self.method != "lipschitz" else {}
        )

    def compiled(self, key: tuple, fn: Any) -> Any:
        full = (
            "certify",
            self.method,
            self.norm,
            self.size,
            tuple(sorted(self.plan.chunks.items())),
            key,
        )
        return backend.cached(self.model, full, lambda: backend.jit(fn, self.model.variables))

    def passes(self, eps: Any, spec: Any, x0: Any, values: Any, radii: Any, point: bool = False):
        """``(c, d)`` of one bound pass (`keras_lpc.robustness.certify._crown.probe`)."""
        g, chunks = self.graph, self.plan.chunks
        return probe(g, self.method, self.norm, chunks, x0, values, radii, eps, spec, point)

    def run(self, compiled: Any, *per_input: np.ndarray) -> list[np.ndarray]:
        """``compiled(x, labels, *per_input, *radii)`` batch by batch; its (B,) outputs joined."""
        radii = [self.radii[i] for i in self.ids]
        outs = []
        for a, b in _batches(len(self.x), self.size):
            args = [self.x[a:b], self.labels[a:b].astype("int32"), *(v[a:b] for v in per_input)]
            res = compiled(*(backend.pad(v, self.size) for v in args), *radii)
            res = res if isinstance(res, (tuple, list)) else (res,)
            outs.append([np.asarray(ops.convert_to_numpy(r))[: b - a] for r in res])
        return [np.concatenate(parts) for parts in zip(*outs)]


def radius_fn(setup: Setup, rtol: float, steps: int):
    """``fn(x, labels, *radii) -> (radius, passes)``: the linearisation's pass, then the
    search (`keras_lpc.robustness.certify._search`), for one batch; to compile."""
    g, classes, ids = setup.graph, setup.graph.classes, setup.ids

    def fn(x0: Any, labels: Any, *radii_list: Any) -> Any:
        radii = dict(zip(ids, radii_list))
        values = g.forward(x0)
        rows = spec(labels, classes)
        zero = ops.zeros((ops.shape(x0)[0],), x0.dtype)
        c, d = setup.passes(zero, rows, x0, values, radii, point=True)
        first = crossing(c, d, labels, classes)

        def at(eps: Any) -> Any:
            return crossing(*setup.passes(eps, rows, x0, values, radii), labels, classes)

        radius, count = search(at, ops.where(first >= BIG, 1.0, first), rtol, steps)
        return radius, ops.broadcast_to(count, (ops.shape(x0)[0],))

    return fn


def lipschitz_radius(setup: Setup) -> np.ndarray:
    """``min_j (f_y - f_j) / K[y, j]`` per input (`keras_lpc.robustness.certify._norms`)."""
    pairs = pair_constants(setup.graph, setup.norm)
    rows = np.arange(len(setup.x))
    margins = setup.logits[rows, setup.labels][:, None] - setup.logits
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pairs[setup.labels] > 0, margins / pairs[setup.labels], np.inf)
    ratio[rows, setup.labels] = np.inf
    return np.maximum(np.min(ratio, axis=1), 0.0)
