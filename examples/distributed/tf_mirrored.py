"""LPC with `tf.distribute.MirroredStrategy` on two logical CPU devices (TensorFlow).

    python examples/distributed/tf_mirrored.py [--json result.json]

Trains `_common.build_model()` (Dense(32) -> LatentPointCollapse(4) ->
Dense(3)) with `GammaAnnealing` (a new gamma at every step) and
`CollapseMetrics`, first without a strategy (one device), then inside
``MirroredStrategy(["/cpu:0", "/cpu:1"])``, and prints single-device vs
distributed loss, penalty, gamma and their largest differences. The two
logical CPUs must be configured before TensorFlow initialises its devices:
this script does it first thing, so run it as its own process. On a
machine with several GPUs, ``MirroredStrategy()`` takes them all.

It also measures what happens to the penalty when a batch does not split
evenly between replicas (``uneven_*`` in the output, see
docs/distributed.md).
"""

from __future__ import annotations

import argparse
import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _CPU, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import _common as common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lpc  # noqa: E402


def make_replica_gammas(strategy: tf.distribute.Strategy):
    """``fn(layer)``: gamma read inside each replica of ``strategy``."""

    @tf.function  # traced once: an eager `strategy.run` is slow and warns
    def read(variable: tf.Variable):
        def in_replica():
            return tf.identity(variable)

        return strategy.run(in_replica)

    def replica_gammas(layer) -> list[float]:
        per_replica = read(layer.gamma.value)
        return [float(v) for v in strategy.experimental_local_results(per_replica)]

    return replica_gammas


def distributed_penalty(
    strategy: tf.distribute.Strategy, model: keras.Model, x: np.ndarray
) -> tuple[float, list[int], list[float]]:
    """The penalty as Keras' TF trainer adds it under ``strategy``.

    ``x`` is one global batch, split between the replicas by
    ``experimental_distribute_dataset``. Each replica computes
    ``gamma * mean(z_r ** 2)`` on its shard and Keras scales it by
    ``1 / replicas`` (``scale_loss_for_distribution``); the replicas' terms
    are summed. Returns that sum, the shard sizes and each replica's
    unscaled penalty ``gamma * mean(z_r ** 2)``.
    """
    layer, hidden = model.get_layer("lpc"), model.get_layer("hidden")
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(len(x))
    )
    batch = next(iter(dataset))

    def replica_fn(xr):
        context = tf.distribute.get_replica_context()
        value = keras_lpc.latent_penalty(layer(hidden(xr)), layer.gamma)
        return value / context.num_replicas_in_sync, tf.shape(xr)[0], value

    @tf.function
    def run(distributed_batch):
        return strategy.run(replica_fn, args=(distributed_batch,))

    terms, sizes, values = run(batch)
    total = strategy.reduce("SUM", terms, axis=None)
    shards = [int(s) for s in strategy.experimental_local_results(sizes)]
    per_replica = [float(v) for v in strategy.experimental_local_results(values)]
    return float(total), shards, per_replica


def train(x, y, x_val, y_val, strategy: tf.distribute.Strategy | None) -> tuple[dict, dict]:
    """One run; inside ``strategy.scope()`` when a strategy is given."""
    extra: dict = {}
    scope = strategy.scope() if strategy is not None else _null_scope()
    with scope:
        model = common.build_model()
        common.compile_model(model)
    if strategy is None:
        replica_gammas = lambda layer: [float(layer.gamma.value)]  # noqa: E731
    else:
        replica_gammas = make_replica_gammas(strategy)
    recorder = common.StepRecorder(replica_gammas)
    metrics = common.CountingCollapseMetrics((x_val, y_val))
    keep = common.EpochLogs()
    model.fit(
        x,
        y,
        batch_size=common.BATCH,
        epochs=common.EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[common.make_annealing(), recorder, metrics, keep],
    )
    final_loss = model.evaluate(x, y, batch_size=common.BATCH, verbose=0)[0]
    if strategy is None:
        penalty = common.penalty(model, x)
    else:
        penalty, shards, _ = distributed_penalty(strategy, model, x)
        extra["penalty_shards"] = shards
        # A batch of 63 splits 32 / 31: the replicas' mean of means is then
        # not the mean over the 63 samples.
        odd = x[: len(x) - 1]
        uneven, shards, per_replica = distributed_penalty(strategy, model, odd)
        extra["uneven_shards"] = shards
        extra["uneven_replica_penalties"] = per_replica
        extra["uneven_penalty_distributed"] = uneven
        extra["uneven_penalty_global"] = common.penalty(model, odd)
        extra["uneven_penalty_gap"] = abs(uneven - extra["uneven_penalty_global"])
    return common.summarize(model, keep.logs, recorder, metrics, final_loss, penalty), extra


class _null_scope:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args) -> None:
        return None


def main(json_path: str | None = None) -> dict:
    x, y, x_val, y_val = common.make_data()
    single, _ = train(x, y, x_val, y_val, None)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][: common.REPLICAS]
    strategy = tf.distribute.MirroredStrategy(devices)
    dist, extra = train(x, y, x_val, y_val, strategy)
    return common.finish(
        keras.backend.backend(),
        "tf.distribute.MirroredStrategy",
        strategy.num_replicas_in_sync,
        devices,
        single,
        dist,
        extra,
        json_path,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", default=None, help="write the result as JSON to this path")
    main(parser.parse_args().json)
