"""Overhead of LatentPointCollapse and of per-step GammaAnnealing (issue: foundation).

For the current KERAS_BACKEND, times training epochs of
  A: MLP 64-256-LatentPointCollapse(16)-10      (penalty on, gamma > 0)
  B: MLP 64-256-Dense(16)-10                      (plain linear bottleneck)
  C: model A with GammaAnnealing(unit="step") changing gamma every step
  D: model B with Keras' own activity_regularizer=L2 on the bottleneck (the
     reference cost of any layer loss in Keras' train step)
interleaved (A, B, C, D, A, B, ...) so that load on the machine hits all alike,
and writes the medians and ratios A/B, A/D and C/A into docs/benchmarks.md.

    for b in tensorflow jax torch; do KERAS_BACKEND=$b python benchmarks/overhead.py; done
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lpc  # noqa: E402
from benchmarks._report import epoch_timer, machine, table, update_section  # noqa: E402


def build(lpc: bool, activity_regularizer: bool = False) -> keras.Model:
    if lpc:
        bottleneck = keras_lpc.LatentPointCollapse(dim=16, gamma=1.0)
    elif activity_regularizer:
        bottleneck = keras.layers.Dense(16, activity_regularizer=keras.regularizers.L2(1e-3))
    else:
        bottleneck = keras.layers.Dense(16)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="silu"),
            bottleneck,
            keras.layers.Dense(10),
        ]
    )
    model.compile("adamw", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs-per-round", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 64)).astype("float32")
    y = rng.integers(0, 10, args.samples)
    steps = int(np.ceil(args.samples / args.batch_size))
    models = {"A": build(True), "B": build(False), "C": build(True), "D": build(False, True)}
    timers = {k: epoch_timer() for k in models}
    schedule = keras_lpc.schedules.Geometric(
        1e-4, 1e3, steps=args.rounds * args.epochs_per_round * steps
    )

    def fit(key: str, epochs: int) -> None:
        callbacks = [timers[key]]
        if key == "C":
            callbacks.append(
                keras_lpc.GammaAnnealing(schedule, unit="step", pace=False, hold_monitor=None)
            )
        models[key].fit(
            x, y, batch_size=args.batch_size, epochs=epochs, verbose=0, callbacks=callbacks
        )

    for key in models:  # warm-up: compile and first epoch
        fit(key, 1)
        timers[key].times.clear()
    for _ in range(args.rounds):
        for key in models:
            fit(key, args.epochs_per_round)
    med = {k: statistics.median(t.times) for k, t in timers.items()}
    per_step_ms = (med["C"] - med["A"]) / steps * 1e3
    backend = keras.backend.backend()
    rows = [
        [
            backend,
            med["A"] * 1e3,
            med["B"] * 1e3,
            med["A"] / med["B"],
            med["D"] * 1e3,
            med["A"] / med["D"],
            med["C"] * 1e3,
            med["C"] / med["A"],
            per_step_ms,
        ]
    ]
    header = [
        "backend",
        "LPC epoch (ms)",
        "Dense epoch (ms)",
        "ratio LPC/Dense",
        "Dense + activity_regularizer (ms)",
        "ratio LPC/activity_regularizer",
        "LPC + GammaAnnealing(step) epoch (ms)",
        "ratio annealed/LPC",
        "annealing cost per step (ms)",
    ]
    text = table(header, rows)
    print(text)
    if not args.no_write:
        body = (
            f"### Overhead: LatentPointCollapse and GammaAnnealing ({backend})\n\n"
            f"`benchmarks/overhead.py`: {args.samples} samples, batch {args.batch_size} ({steps} steps/epoch), "
            f"median of {args.rounds * args.epochs_per_round} epochs per model, models interleaved.\n"
            f"Machine: {machine()}.\n\n{text}\n\n"
            "`activity_regularizer` is Keras' own Dense(16) with an L2 activity penalty: the "
            "reference cost of any layer loss in Keras' train step. Per-step annealing on JAX "
            "pays for the trainer's state sync at every step (see the GammaAnnealing docs).\n"
        )
        update_section(f"overhead-{backend}", body)


if __name__ == "__main__":
    main()
