"""Binary encoding (the papers' Fig. 2): per-dimension latent histograms, baseline vs LPC.

    python examples/binary_encoding.py [--dim 4] [--epochs 60] [--out lpc-examples]

Trains the same MLP with a ``dim``-unit `LatentPointCollapse` bottleneck on
the embedded digits (`keras_lpc.datasets.load_digits`) twice: with gamma
held at 0 (baseline) and with `GammaAnnealing()`, both with a faster output
layer (`keras_lpc.optimizers.lpc_multipliers`). On the test latents ``z``
(N x d), grouped by predicted class ``c``, it reports:

* binarity (`keras_lpc.metrics.binarity`): per dimension, a two-component
  Gaussian mixture on the standardised values; ``peak_distance`` =
  ``|m1 - m2| / mean std`` (large = two sharp peaks), ``mean_std``;
* sign agreement: with ``p_ck`` the fraction of class ``c`` whose ``z_k`` is
  positive, ``mean_{c, k} max(p_ck, 1 - p_ck)`` (1 = every class has one
  sign per dimension, 0.5 = signs split evenly);
* code agreement: the fraction of samples whose whole sign vector
  ``sign(z_i)`` equals its class's majority code ``sign(p_c - 1/2)``;
* distinct codes: how many different majority codes the classes use
  (10 distinct codes = the sign pattern alone names the class).

It writes ``binary_encoding_baseline.png`` and ``binary_encoding_lpc.png``
(`keras_lpc.plotting.plot_latent_histograms`, stacked by class) and
``binary_encoding.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lpc  # noqa: E402
from keras_lpc import datasets, metrics, optimizers, plotting  # noqa: E402


def build_model(dim: int, width: int) -> keras.Model:
    """MLP ``64 -> width -> width -> LatentPointCollapse(dim) -> 10`` (SiLU)."""
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(width, activation="silu"),
            keras.layers.Dense(width, activation="silu"),
            keras_lpc.LatentPointCollapse(dim=dim, name="lpc"),
            keras.layers.Dense(10, name="head"),
        ]
    )


def sign_codes(z: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Within-class sign agreement, code agreement and number of distinct class codes.

    With ``p_ck = mean_{i in c} [z_ik > 0]`` and majority code
    ``b_ck = [p_ck > 1/2]``::

        sign_agreement = mean_{c, k} max(p_ck, 1 - p_ck)             in [0.5, 1]
        code_agreement = mean_i [ [z_i > 0] == b_{c_i} for every k ]  in [0, 1]
        distinct_codes = number of different rows b_c

    Example:

    >>> z = np.array([[1.0, -2.0], [2.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    >>> sign_codes(z, np.array([0, 0, 1, 1]))
    {'sign_agreement': 0.75, 'code_agreement': 1.0, 'distinct_codes': 2}
    """
    classes = np.unique(labels)
    positive = z > 0
    p = np.stack([positive[labels == c].mean(axis=0) for c in classes])
    codes = p > 0.5
    index = np.searchsorted(classes, labels)
    return {
        "sign_agreement": float(np.mean(np.maximum(p, 1.0 - p))),
        "code_agreement": float(np.mean(np.all(positive == codes[index], axis=1))),
        "distinct_codes": int(len(np.unique(codes, axis=0))),
    }


def train_and_encode(
    lpc: bool,
    data: datasets.Split,
    dim: int,
    epochs: int,
    width: int,
    head_lr: float,
    gamma_max: float | str,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Train one model (``lpc=False``: gamma stays 0); test latents, predictions, final gamma.

    LPC follows `GammaAnnealing`'s default ramp, ``Polynomial(0, gamma_max,
    power=2)`` per step, paced to end at 95 % of the run.
    """
    keras.utils.set_random_seed(seed)
    model = build_model(dim, width)
    optimizer = optimizers.with_lr_multipliers(
        keras.optimizers.AdamW(1e-3), optimizers.lpc_multipliers(model, head_lr)
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = [keras_lpc.GammaAnnealing(max_gamma=gamma_max)] if lpc else []
    model.fit(
        data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks
    )
    z = keras_lpc.latents(model, data.x_test, batch_size=512)
    logits = model.predict(data.x_test, batch_size=512, verbose=0)
    gamma = float(keras.ops.convert_to_numpy(model.get_layer("lpc").gamma))
    return np.asarray(z, np.float64), np.asarray(logits).argmax(axis=1), gamma


def main(
    dim: int = 4,
    epochs: int = 60,
    width: int = 256,
    head_lr: float = 100.0,
    gamma_max: float | str = "auto",
    seed: int = 0,
    out: str | Path = "lpc-examples",
    verbose: int = 0,
) -> dict[str, Any]:
    """Train baseline and LPC on digits; measure the binary code, draw the histograms.

    Args:
        dim: LPC bottleneck units (one histogram panel each, up to 16 drawn).
        epochs: training epochs of each model (45 steps of 32 per epoch).
        width: hidden units of the two SiLU layers.
        head_lr: learning-rate multiplier of the output layer (both models).
        gamma_max: ``max_gamma`` of `GammaAnnealing`: ``"auto"`` (1e3 unless the
            run is too short for it) or a number (lower it for very short runs).
        seed: initialisation seed.
        out: folder for the PNGs and ``binary_encoding.json``.
        verbose: 1 prints the table.

    Returns:
        ``{"baseline": {...}, "lpc": {...}, "figures": [paths], "seconds": s}``,
        each model's dict holding ``test_accuracy``, ``gamma``, the `binarity`
        keys and the `sign_codes` keys.
    """
    start = time.perf_counter()
    data = datasets.load_digits()
    out = Path(out)
    report: dict[str, Any] = {"figures": []}
    for name in ("baseline", "lpc"):
        z, pred, gamma = train_and_encode(
            name == "lpc", data, dim, epochs, width, head_lr, gamma_max, seed
        )
        entry = {"test_accuracy": float(np.mean(pred == data.y_test)), "gamma": gamma}
        entry.update(metrics.binarity(z))
        entry.update(sign_codes(z, pred))
        report[name] = entry
        path = out / f"binary_encoding_{name}.png"
        fig = plotting.plot_latent_histograms(z, pred)
        fig.suptitle(
            f"{name}: test latents per dimension, stacked by predicted class "
            f"(binarity peak distance {entry['peak_distance']:.2f})"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        report["figures"].append(str(path))
    report["seconds"] = time.perf_counter() - start
    (out / "binary_encoding.json").write_text(json.dumps(report, indent=1))
    if verbose:
        print("| metric | baseline | LPC |\n|---|---|---|")
        for key, value in report["baseline"].items():
            print(f"| {key} | {value:.4g} | {report['lpc'][key]:.4g} |")
        print(f"figures: {', '.join(report['figures'])}")
        print(f"({report['seconds']:.0f} s, backend {keras.backend.backend()})")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=4, help="LPC bottleneck units")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--head-lr", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="lpc-examples")
    args = parser.parse_args()
    main(args.dim, args.epochs, head_lr=args.head_lr, seed=args.seed, out=args.out, verbose=1)
