"""Shared pieces of the distributed-training examples (any Keras backend).

Each script in this folder trains the same small model twice on the same
synthetic data, once on a single device and once data-parallel over two
replicas, and compares the two runs with `compare`. This module holds
everything that does not depend on the backend: data, model, initial
weights, callbacks, the single-device penalty and the report.

Import it only after the script has chosen its backend (``KERAS_BACKEND``)
and configured its devices.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

import keras_lpc

N_TRAIN = 64  # training samples: 4 global batches of 16
N_VAL = 48  # validation samples for CollapseMetrics
FEATURES = 8
CLASSES = 3
HIDDEN = 32
DIM = 4  # LatentPointCollapse(dim)
BATCH = 16  # global batch size: 8 per replica on 2 replicas
EPOCHS = 3
REPLICAS = 2
LEARNING_RATE = 1e-2


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed Gaussian blobs: ``(x_train, y_train, x_val, y_val)``, float32 / int32.

    Class ``c`` has mean ``2 * m_c`` (``m_c`` standard normal, fixed by
    ``seed``) and unit-variance noise, in ``FEATURES`` dimensions.
    """
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(CLASSES, FEATURES))
    n = N_TRAIN + N_VAL
    y = rng.integers(0, CLASSES, size=n).astype("int32")
    x = (centres[y] + rng.normal(size=(n, FEATURES))).astype("float32")
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def build_model() -> keras.Model:
    """``Dense(32, silu) -> LatentPointCollapse(dim=4) -> Dense(3)`` with fixed weights.

    The kernels are drawn from ``N(0, 1 / fan_in)`` by NumPy with a fixed
    seed and the biases are zero, so every run, backend and replica starts
    from the same weights whatever Keras' own random state is.
    """
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="silu", name="hidden"),
            keras_lpc.LatentPointCollapse(dim=DIM, name="lpc"),
            keras.layers.Dense(CLASSES, name="logits"),
        ]
    )
    rng = np.random.default_rng(1)
    for variable in model.trainable_variables:
        shape = tuple(variable.shape)
        if len(shape) == 2:
            value = rng.normal(scale=1.0 / math.sqrt(shape[0]), size=shape)
        else:
            value = np.zeros(shape)
        variable.assign(value.astype("float32"))
    return model


def compile_model(model: keras.Model) -> None:
    """Adam(1e-2) on sparse categorical cross-entropy from logits, with accuracy."""
    model.compile(
        keras.optimizers.Adam(LEARNING_RATE),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def make_annealing() -> keras_lpc.GammaAnnealing:
    """gamma = 0.1 * 1.5 ** step: a new value at every one of the 12 steps."""
    return keras_lpc.GammaAnnealing(
        keras_lpc.schedules.Exponential(initial=0.1, factor=1.5, every=1, maximum=1e3),
        unit="step",
    )


class CountingCollapseMetrics(keras_lpc.CollapseMetrics):
    """`CollapseMetrics` on true labels that counts how often it computes."""

    def __init__(self, data: Any) -> None:
        super().__init__(data, labels="true")
        self.calls = 0

    def evaluate(self) -> dict[str, float]:
        self.calls += 1
        return super().evaluate()


class StepRecorder(keras.callbacks.Callback):
    """Records, after every train step, the logged loss and gamma and the
    gamma value held by each replica.

    Args:
        replica_gammas: ``fn(layer) -> list[float]``, the value of
            ``layer.gamma`` as seen by each replica (backend specific).
    """

    def __init__(self, replica_gammas: Callable[[Any], list[float]]) -> None:
        super().__init__()
        self.replica_gammas = replica_gammas
        self.losses: list[float] = []
        self.gammas: list[float] = []
        self.per_replica: list[list[float]] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        # `self.model` syncs the JAX trainer's state into the variables.
        layer = self.model.get_layer("lpc")
        self.losses.append(float(logs["loss"]))
        self.gammas.append(float(keras.ops.convert_to_numpy(layer.gamma)))
        self.per_replica.append([float(v) for v in self.replica_gammas(layer)])


class EpochLogs(keras.callbacks.Callback):
    """Keeps a copy of the logs of every epoch end (after the callbacks before it wrote)."""

    def __init__(self) -> None:
        super().__init__()
        self.logs: list[dict[str, Any]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.logs.append(dict(logs or {}))


def penalty(model: keras.Model, x: Any) -> float:
    """``gamma * mean(z ** 2)`` of ``model`` on ``x`` in one eager call (one device)."""
    layer = model.get_layer("lpc")
    z = layer(model.get_layer("hidden")(x))
    return float(keras.ops.convert_to_numpy(keras_lpc.latent_penalty(z, layer.gamma)))


def flat_weights(model: keras.Model) -> np.ndarray:
    """All trainable weights of ``model`` in one float64 vector."""
    return np.concatenate(
        [np.ravel(keras.ops.convert_to_numpy(v.value)) for v in model.trainable_variables]
    ).astype("float64")


def summarize(
    model: keras.Model,
    epoch_logs: list[dict[str, float]],
    recorder: StepRecorder,
    metrics: CountingCollapseMetrics | None,
    final_loss: float,
    penalty_value: float,
) -> dict[str, Any]:
    """One run's numbers as a JSON-ready dict (``metrics=None``: a process without them)."""
    names = [f"val_{name}" for name in metrics.metric_names] if metrics is not None else []
    return {
        "step_loss": recorder.losses,
        "epoch_loss": [float(logs["loss"]) for logs in epoch_logs],
        "step_gamma": recorder.gammas,
        "replica_gamma": recorder.per_replica,
        "final_gamma": float(keras.ops.convert_to_numpy(model.get_layer("lpc").gamma.value)),
        "final_loss": float(final_loss),
        "penalty": float(penalty_value),
        "collapse": {name: [float(logs[name]) for logs in epoch_logs] for name in names},
        "collapse_is_scalar": all(
            np.ndim(logs[name]) == 0 for logs in epoch_logs for name in names
        ),
        "metric_calls": metrics.calls if metrics is not None else 0,
        "weights": flat_weights(model).tolist(),
    }


def _max_abs(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        return math.inf
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def compare(single: dict[str, Any], dist: dict[str, Any]) -> dict[str, Any]:
    """Parity figures between a single-device and a distributed run.

    Returns a dict with the maximum absolute differences ``|single - dist|``
    of the step and epoch losses, final loss, penalty, final gamma, step
    gammas and weights; the maximum relative difference of the collapse
    metrics (``|a - b| / max(1, |a|)``); and
    ``replica_gamma_max_abs_diff``, the largest gap between the gamma a
    replica held after a step and the gamma `GammaAnnealing` logged for it
    (rounded to float32, the variable's dtype).
    """
    rel = 0.0
    for name, values in single["collapse"].items():
        a = np.asarray(values, dtype="float64")
        b = np.asarray(dist["collapse"].get(name, []), dtype="float64")
        if a.shape != b.shape:
            rel = math.inf
            continue
        rel = max(rel, float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))))
    # The variable is float32: compare with the logged value rounded to it.
    gaps = [
        abs(g - float(np.float32(assigned)))
        for assigned, row in zip(dist["step_gamma"], dist["replica_gamma"], strict=True)
        for g in row
    ]
    return {
        "step_loss": _max_abs(single["step_loss"], dist["step_loss"]),
        "epoch_loss": _max_abs(single["epoch_loss"], dist["epoch_loss"]),
        "final_loss": abs(single["final_loss"] - dist["final_loss"]),
        "penalty": abs(single["penalty"] - dist["penalty"]),
        "final_gamma": abs(single["final_gamma"] - dist["final_gamma"]),
        "step_gamma": _max_abs(single["step_gamma"], dist["step_gamma"]),
        "weights": _max_abs(single["weights"], dist["weights"]),
        "collapse_rel": rel,
        "replica_gamma_max_abs_diff": max(gaps) if gaps else math.inf,
    }


def finish(
    backend: str,
    strategy: str,
    replicas: int,
    devices: list[str],
    single: dict[str, Any],
    distributed: dict[str, Any],
    extra: dict[str, Any],
    json_path: str | None,
) -> dict[str, Any]:
    """Put one script's two runs and their differences together, print and save them."""
    result = {
        "backend": backend,
        "strategy": strategy,
        "replicas": replicas,
        "devices": devices,
        "epochs": EPOCHS,
        "steps": EPOCHS * (N_TRAIN // BATCH),
        "single": single,
        "distributed": distributed,
        "max_abs_diff": compare(single, distributed),
        "extra": extra,
    }
    report(result, json_path)
    return result


def report(result: dict[str, Any], json_path: str | None) -> None:
    """Print the comparison and write ``result`` as JSON to ``json_path``."""
    single, dist, diff = result["single"], result["distributed"], result["max_abs_diff"]
    print(f"{result['backend']}: {result['strategy']} over {result['replicas']} replicas")
    print(f"  final loss   single {single['final_loss']:.8f}  distributed {dist['final_loss']:.8f}")
    print(f"  penalty      single {single['penalty']:.8f}  distributed {dist['penalty']:.8f}")
    print(
        f"  final gamma  single {single['final_gamma']:.6g}  distributed {dist['final_gamma']:.6g}"
    )
    print(f"  metric calls single {single['metric_calls']}  distributed {dist['metric_calls']}")
    print("  max abs diff: " + ", ".join(f"{k}={v:.3g}" for k, v in diff.items()))
    for key, value in result.get("extra", {}).items():
        print(f"  {key}: {value}")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
