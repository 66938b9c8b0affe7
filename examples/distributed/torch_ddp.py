"""LPC with `torch.nn.parallel.DistributedDataParallel` in two CPU processes (PyTorch).

    python examples/distributed/torch_ddp.py [--json result.json]

Keras' `fit` does not all-reduce gradients between torch processes, so,
as in Keras' guide to multi-GPU training with the torch backend, the Keras
model is wrapped in ``DistributedDataParallel`` and trained by a plain
torch loop (``torch.optim.Adam``, ``DistributedSampler``). The keras-lpc
callbacks still run: a `keras.callbacks.CallbackList` built on the DDP
wrapper calls their hooks (`keras.callbacks.Callback.model` unwraps DDP).

The script starts two processes with ``torch.multiprocessing.spawn``.
Rank 0 first trains `_common.build_model()` alone (one device, the same
loop without DDP); then both processes join a gloo group on localhost and
train it data-parallel, and rank 0 prints single-device vs distributed
loss, penalty, gamma and their largest differences. `GammaAnnealing` runs
in every process (the schedule is a pure function of the step, so all
agree; the script checks it), `CollapseMetrics` only on rank 0. On GPUs,
launch one process per GPU (``torchrun`` or ``spawn``), use the ``nccl``
backend and ``DistributedDataParallel(model, device_ids=[rank])``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile

os.environ["KERAS_BACKEND"] = "torch"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from torch.utils.data.distributed import DistributedSampler  # noqa: E402

# Keras and `_common` (which imports Keras) are imported by the worker
# processes only: the launcher stays light and starts them sooner.


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gather(value: torch.Tensor, world: int) -> list[torch.Tensor]:
    """``value`` from every process (a no-op list of one without DDP)."""
    if world == 1:
        return [value]
    out = [torch.zeros_like(value) for _ in range(world)]
    dist.all_gather(out, value.contiguous())
    return out


def mean_over_processes(value: torch.Tensor, world: int) -> float:
    """The mean of a scalar over processes: the global mean for equal shards."""
    value = value.detach().clone().reshape(1)
    if world > 1:
        dist.all_reduce(value)  # sum
    return float(value[0]) / world


def loader(x: np.ndarray, y: np.ndarray, batch: int, rank: int, world: int) -> DataLoader:
    """Shards by `DistributedSampler` (rank r takes samples r, r + world, ...).

    With ``shuffle=False`` the k-th batches of all ranks together are the
    k-th global batch of the single-device run.
    """
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y).long())
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)
    return DataLoader(data, batch_size=batch, sampler=sampler, shuffle=False)


def loss_on(net, model, cross_entropy, x: torch.Tensor, y: torch.Tensor) -> tuple:
    """``(CE + penalty, penalty)`` of one call of ``net`` (``model`` or its DDP wrapper).

    The penalty is the one ``LatentPointCollapse`` added with ``add_loss``
    during that call, read from the Keras model (DDP has no ``losses``).
    """
    logits = net(x)
    penalty = sum(model.losses)
    return cross_entropy(logits, y) + penalty, penalty


def worker(rank: int, world: int, port: int, json_path: str) -> None:
    """Process ``rank`` of ``world``: rank 0 first trains the single-device reference.

    Then every process joins the gloo group and trains its shard under DDP;
    rank 0 compares the two runs, prints them and writes ``json_path``.
    """
    import _common as common

    torch.set_num_threads(1)  # one core per process
    single = _train(0, 1) if rank == 0 else None  # the same loop without DDP
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        run = _train(rank, world)
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return
    common.finish(
        "torch",
        "torch DistributedDataParallel (gloo)",
        len(run["replica_gamma"][0]),
        ["cpu"] * world,
        single,
        run,
        {
            "metric_calls_per_process": run["metric_calls_per_process"],
            "process_weight_max_abs_diff": run["process_weight_max_abs_diff"],
        },
        json_path,
    )


def _train(rank: int, world: int) -> dict:
    """Train in this process as ``rank`` of ``world`` and return the run's numbers."""
    import _common as common
    import keras

    x, y, x_val, y_val = common.make_data()
    model = common.build_model()
    # DDP broadcasts rank 0's parameters (gamma too) when it wraps the model.
    net = DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.Adam([v.value for v in model.trainable_variables], common.LEARNING_RATE)
    cross_entropy = torch.nn.CrossEntropyLoss()

    def replica_gammas(layer) -> list[float]:
        return [float(g[0]) for g in gather(layer.gamma.value.detach().reshape(1), world)]

    recorder = common.StepRecorder(replica_gammas)
    metrics = common.CountingCollapseMetrics((x_val, y_val))
    keep = common.EpochLogs()
    callbacks = [common.make_annealing(), recorder] + ([metrics] if rank == 0 else []) + [keep]
    data = loader(x, y, common.BATCH // world, rank, world)
    steps = len(data)
    callback_list = keras.callbacks.CallbackList(
        callbacks, model=net, epochs=common.EPOCHS, steps=steps, verbose=0
    )
    callback_list.on_train_begin()
    for epoch in range(common.EPOCHS):
        callback_list.on_epoch_begin(epoch)
        step_losses = []
        for step, (xb, yb) in enumerate(data):
            callback_list.on_train_batch_begin(step)
            loss, _ = loss_on(net, model, cross_entropy, xb, yb)
            optimizer.zero_grad()
            loss.backward()  # DDP averages the gradients over processes here
            optimizer.step()
            step_losses.append(mean_over_processes(loss, world))
            callback_list.on_train_batch_end(step, {"loss": step_losses[-1]})
        callback_list.on_epoch_end(epoch, {"loss": float(np.mean(step_losses))})
    callback_list.on_train_end()

    # Loss and penalty on the whole training set: each process takes its
    # shard (32 of 64 samples), the mean over processes is the global mean.
    shard = next(iter(loader(x, y, len(x), rank, world)))
    with torch.no_grad():
        loss, penalty = loss_on(model, model, cross_entropy, *shard)
    final_loss = mean_over_processes(loss, world)
    penalty_value = mean_over_processes(penalty, world)
    weights = torch.from_numpy(common.flat_weights(model))
    weight_gap = max(float((w - weights).abs().max()) for w in gather(weights, world))
    calls = gather(torch.tensor([float(metrics.calls if rank == 0 else 0)]), world)
    run = common.summarize(
        model, keep.logs, recorder, metrics if rank == 0 else None, final_loss, penalty_value
    )
    run["metric_calls_per_process"] = [int(c[0]) for c in calls]
    run["process_weight_max_abs_diff"] = weight_gap
    return run


def main(json_path: str | None = None, processes: int = 2) -> dict:
    """Start ``processes`` workers and return rank 0's result (also written to ``json_path``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = json_path or os.path.join(tmp, "result.json")
        torch.multiprocessing.spawn(
            worker, args=(processes, free_port(), path), nprocs=processes, join=True
        )
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", default=None, help="write the result as JSON to this path")
    main(parser.parse_args().json)
