"""Per-layer learning-rate multipliers: cost per step and effect on LPC (issue 6).

For the current KERAS_BACKEND, on the digits data (scikit-learn's embedded copy,
MLP 64-256-256-LatentPointCollapse(16)-10, AdamW 1e-3, batch 32):

* cost: epoch times of AdamW vs `with_lr_multipliers(AdamW, lpc_multipliers(model))`,
  interleaved (plain, wrapped, plain, ...) so machine load hits both alike;
* effect (``--effect``): one run per head factor (1, 10, 100) with gamma raised
  x1.25 per epoch from 1e-2 (past 1e3 near epoch 52), test accuracy and NC1 of
  the test latents at the end.

    for b in tensorflow jax torch; do KERAS_BACKEND=$b python benchmarks/lr_multipliers.py; done
    KERAS_BACKEND=jax python benchmarks/lr_multipliers.py --effect
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
from keras_lpc.optimizers import lpc_multipliers, with_lr_multipliers  # noqa: E402


def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def build(factor: float | None) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="silu"),
            keras.layers.Dense(256, activation="silu"),
            keras_lpc.LatentPointCollapse(dim=16, name="lpc"),
            keras.layers.Dense(10, name="head"),
        ]
    )
    opt = keras.optimizers.AdamW(1e-3, weight_decay=5e-4)
    if factor is not None:
        opt = with_lr_multipliers(opt, lpc_multipliers(model, factor))
    model.compile(
        opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


class GammaRamp(keras.callbacks.Callback):
    """gamma = min(1e6, 1e-2 * 1.25 ** epoch), set at each epoch start."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.get_layer("lpc").gamma.assign(min(1e6, 1e-2 * 1.25**epoch))


def cost(rounds: int, epochs: int) -> str:
    (x, y), _ = digits()
    times: dict[str, list[float]] = {"AdamW": [], "AdamW + multipliers": []}
    models = {"AdamW": build(None), "AdamW + multipliers": build(10.0)}
    for model in models.values():  # compile and warm up
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for _ in range(rounds):
        for label, model in models.items():
            timer = epoch_timer()
            model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[timer])
            times[label] += timer.times
    plain = statistics.median(times["AdamW"])
    rows = [[k, statistics.median(v) * 1e3, statistics.median(v) / plain] for k, v in times.items()]
    return table(["optimizer", "median epoch (ms, 44 steps)", "ratio to AdamW"], rows)


def effect(epochs: int) -> str:
    from keras_lpc.metrics import nc1

    (x, y), (xt, yt) = digits()
    rows = []
    for factor in (1.0, 10.0, 100.0):
        keras.utils.set_random_seed(0)
        model = build(factor)
        model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[GammaRamp()])
        logits = model.predict(xt, verbose=0)
        latent = keras.Model(model.inputs, model.get_layer("lpc").output)
        z = latent.predict(xt, verbose=0)
        gamma = float(keras.ops.convert_to_numpy(model.get_layer("lpc").gamma))
        acc = float(np.mean(logits.argmax(1) == yt))
        rows.append([f"{factor:g}x", f"{gamma:.3g}", f"{100 * acc:.1f} %", nc1(z, yt)])
        print(rows[-1], flush=True)
    return table(["head lr factor", "final gamma", "test acc", "NC1 (test, true labels)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--effect", action="store_true")
    parser.add_argument("--effect-epochs", type=int, default=70)
    args = parser.parse_args()
    backend = keras.backend.backend()
    note = f"Machine: {machine()}; shared with other jobs, so absolute times are noisy."
    if args.effect:
        body = (
            f"### LR multipliers: effect on LPC ({backend}), `benchmarks/lr_multipliers.py "
            f"--effect`\n\nDigits, 1 seed, {args.effect_epochs} epochs, gamma x1.25 per epoch "
            f"from 1e-2.\n\n{effect(args.effect_epochs)}\n\n{note}\n"
        )
        update_section(f"lr-multipliers-effect-{backend}", body)
    else:
        body = (
            f"### LR multipliers: cost per epoch ({backend}), `benchmarks/lr_multipliers.py`\n\n"
            f"{cost(args.rounds, args.epochs)}\n\n{note}\n"
        )
        update_section(f"lr-multipliers-cost-{backend}", body)
    print(body)


if __name__ == "__main__":
    main()
