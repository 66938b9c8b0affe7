"""Overhead of LatentPointCollapse and of GammaAnnealing, per backend.

For a backend, times training epochs of
  A: MLP 64-256-LatentPointCollapse(16)-10, no callback (penalty on, gamma 1)
  B: MLP 64-256-Dense(16)-10                 (plain linear bottleneck)
  D: model B with Keras' own activity_regularizer=L2 on the bottleneck (the
     reference cost of any layer loss in Keras' train step)
  G: model A with the default ``GammaAnnealing()`` (paced quadratic ramp,
     hold on accuracy), gamma computed inside the train step
  P: model A with a plain Python callable as schedule (the per-step Python
     assignment every schedule used before the in-graph schedule)
interleaved (A, B, D, G, P, A, ...) so that load on the machine hits all
alike, and reports the medians and the ratios A/B, A/D, G/A (the target:
<= 1.05) and P/A. Every model is compiled with ``metrics=["accuracy"]`` (the
default hold's monitor).

    python benchmarks/overhead.py                      # the three backends, one table
    KERAS_BACKEND=jax python benchmarks/overhead.py --child   # one backend, prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKENDS = ("tensorflow", "jax", "torch")
HEADER = [
    "backend",
    "LPC, no callback (ms)",
    "Dense (ms)",
    "ratio LPC/Dense",
    "Dense + activity_regularizer (ms)",
    "ratio LPC/activity_regularizer",
    "LPC + GammaAnnealing() (ms)",
    "ratio GammaAnnealing()/no callback",
    "LPC + Python schedule per step (ms)",
    "ratio Python per step/no callback",
]


def build(kind: str):
    import keras

    import keras_lpc

    if kind == "lpc":
        bottleneck = keras_lpc.LatentPointCollapse(dim=16, gamma=1.0)
    elif kind == "activity":
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
    model.compile(
        "adamw",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def measure(args: argparse.Namespace) -> dict:
    """Median epoch times (s) of the five models on the current backend."""
    import keras
    import numpy as np

    import keras_lpc
    from benchmarks._report import epoch_timer, machine

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 64)).astype("float32")
    y = rng.integers(0, 10, args.samples)
    steps = int(np.ceil(args.samples / args.batch_size))
    kinds = {"A": "lpc", "B": "dense", "D": "activity", "G": "lpc", "P": "lpc"}
    models = {key: build(kind) for key, kind in kinds.items()}
    timers = {key: epoch_timer() for key in models}
    ramp = keras_lpc.schedules.default_schedule()

    def python_schedule(count: float) -> float:  # a callable the step cannot run
        return ramp(count)

    def callbacks(key: str) -> list:
        if key == "G":
            return [keras_lpc.GammaAnnealing()]
        if key == "P":
            return [keras_lpc.GammaAnnealing(python_schedule)]
        return []

    def fit(key: str, epochs: int) -> None:
        models[key].fit(
            x,
            y,
            batch_size=args.batch_size,
            epochs=epochs,
            verbose=0,
            callbacks=[timers[key], *callbacks(key)],
        )

    for key in models:  # warm-up: compile and first epoch
        fit(key, 1)
        timers[key].times.clear()
    for _ in range(args.rounds):
        for key in models:
            fit(key, args.epochs_per_round)
    median = {key: statistics.median(t.times) for key, t in timers.items()}
    return {"backend": keras.backend.backend(), "steps": steps, "machine": machine(), **median}


def row(m: dict) -> list:
    a = m["A"]
    return [
        m["backend"],
        a * 1e3,
        m["B"] * 1e3,
        a / m["B"],
        m["D"] * 1e3,
        a / m["D"],
        m["G"] * 1e3,
        m["G"] / a,
        m["P"] * 1e3,
        m["P"] / a,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs-per-round", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--child", action="store_true", help="measure KERAS_BACKEND, print JSON")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(measure(args)))
        return

    from benchmarks._report import per_backend, table, update_section

    flags = [
        f"--samples={args.samples}",
        f"--batch-size={args.batch_size}",
        f"--rounds={args.rounds}",
        f"--epochs-per-round={args.epochs_per_round}",
    ]
    # each backend in its own process (a backend is chosen before keras is imported)
    results = per_backend(__file__, args.backends, lambda _: ["--child", *flags], marker="RESULT ")
    text = table(HEADER, [row(m) for m in results])
    print(text)
    if args.no_write:
        return
    steps = results[0]["steps"]
    machines = "\n".join(f"* {m['machine']}" for m in results)
    body = (
        "### Overhead: LatentPointCollapse and GammaAnnealing\n\n"
        f"`benchmarks/overhead.py`: MLP 64-256-16-10, {args.samples} samples, batch "
        f"{args.batch_size} ({steps} steps/epoch), median of "
        f"{args.rounds * args.epochs_per_round} epochs per model, the five models "
        "interleaved within each backend's process (one process per backend, run one after "
        "the other). The machine (2 cores) was shared with other jobs: absolute times are "
        "noisy, the ratios are side by side.\n\n"
        f"{machines}\n\n{text}\n\n"
        "`GammaAnnealing()` is the default callback (paced quadratic ramp, hold on "
        "accuracy): gamma is computed inside the compiled train step and the callback "
        'touches the model once per epoch. "Python schedule per step" passes a plain '
        "callable, which the step cannot run, so gamma is assigned from Python before "
        "every step: what every schedule cost before (on JAX each assignment forces the "
        "trainer's state sync). `activity_regularizer` is Keras' own Dense(16) with an L2 "
        "activity penalty: the reference cost of any layer loss in Keras' train step.\n"
    )
    update_section("overhead", body)


if __name__ == "__main__":
    main()
