"""LPC with `keras.distribution.DataParallel` on two virtual CPU devices (JAX).

    python examples/distributed/jax_data_parallel.py [--json result.json]

Trains `_common.build_model()` (Dense(32) -> LatentPointCollapse(4) ->
Dense(3)) with `GammaAnnealing` (a new gamma at every step) and
`CollapseMetrics`, first on one device, then data-parallel over two
devices, and prints single-device vs distributed loss, penalty, gamma and
their largest differences. The two CPU devices come from
``XLA_FLAGS=--xla_force_host_platform_device_count=2``, which must be set
before JAX is imported: this script sets it itself, so run it as its own
process. On a machine with several GPUs, drop the flag: ``DataParallel()``
takes every accelerator by default.
"""

from __future__ import annotations

import argparse
import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_FLAG = f"--xla_force_host_platform_device_count={2}"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()

import _common as common  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def replica_gammas(layer) -> list[float]:
    """gamma held by each device: the shards of the replicated variable."""
    return [float(np.asarray(shard.data)) for shard in layer.gamma.value.addressable_shards]


def train(x, y, x_val, y_val, distributed: bool) -> tuple[dict, dict]:
    """One run; under ``distributed`` inside a `DataParallel` distribution."""
    extra: dict = {}
    if distributed:
        devices = keras.distribution.list_devices("cpu")[: common.REPLICAS]
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        model = common.build_model()
        common.compile_model(model)
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
        if distributed:
            # The penalty of a batch sharded over both devices: JAX computes
            # the mean over the global batch (XLA adds the cross-device sum).
            distribution = keras.distribution.distribution()
            xs = keras.distribution.distribute_tensor(x, distribution.get_data_layout(x.shape))
            extra["penalty_input_shards"] = len(xs.addressable_shards)
            penalty = common.penalty(model, xs)
        else:
            penalty = common.penalty(model, x)
        run = common.summarize(model, keep.logs, recorder, metrics, final_loss, penalty)
        return run, extra
    finally:
        if distributed:
            keras.distribution.set_distribution(None)


def main(json_path: str | None = None) -> dict:
    x, y, x_val, y_val = common.make_data()
    single, _ = train(x, y, x_val, y_val, distributed=False)
    dist, extra = train(x, y, x_val, y_val, distributed=True)
    return common.finish(
        keras.backend.backend(),
        "keras.distribution.DataParallel",
        len(dist["replica_gamma"][0]),
        [str(d) for d in jax.devices()],
        single,
        dist,
        extra,
        json_path,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", default=None, help="write the result as JSON to this path")
    main(parser.parse_args().json)
