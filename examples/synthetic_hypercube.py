"""Latent point collapse onto hypercube vertices (the papers' Fig. 1), on synthetic data.

    python examples/synthetic_hypercube.py [--dim 2] [--epochs 40] [--out lpc-examples]

Samples Gaussian clusters (`keras_lpc.datasets.make_hypercube_clusters`),
trains the same MLP with a ``dim``-unit `LatentPointCollapse` bottleneck
twice, once with gamma held at 0 (baseline) and once with `GammaAnnealing()`,
both with a faster output layer (`keras_lpc.optimizers.lpc_multipliers`),
then measures on the test latents grouped by predicted class:

* NC1 (`keras_lpc.metrics.nc1`): within- over between-class scatter, 0 when
  every class sits on one point;
* hypercube alignment (`keras_lpc.metrics.hypercube_alignment`): mean cosine
  between each class mean and its nearest vertex of {-1, +1}^dim, 1 when the
  class points are (scaled) vertices, 1/sqrt(dim) at worst;
* binarity (`keras_lpc.metrics.binarity`): peak distance of a two-component
  Gaussian mixture per latent dimension (large = two sharp peaks);
* distinct vertices: how many different sign patterns ``sign(mu_c)`` the
  class means occupy (all classes on distinct vertices = a binary code).

It writes ``synthetic_hypercube.png``: the test latents (first two
dimensions) of both models side by side, with the LPC panel's vertices
``r * {-1, +1}^2`` (``r`` = mean ``|mu_c|``) marked.
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


def build_model(n_features: int, classes: int, dim: int, width: int) -> keras.Model:
    """MLP ``n_features -> width -> width -> LatentPointCollapse(dim) -> classes`` (SiLU)."""
    return keras.Sequential(
        [
            keras.Input((n_features,)),
            keras.layers.Dense(width, activation="silu"),
            keras.layers.Dense(width, activation="silu"),
            keras_lpc.LatentPointCollapse(dim=dim, name="lpc"),
            keras.layers.Dense(classes, name="head"),
        ]
    )


def train(
    lpc: bool,
    data: datasets.Split,
    classes: int,
    dim: int,
    epochs: int,
    batch_size: int,
    width: int,
    head_lr: float,
    gamma_max: float | str,
    seed: int,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train one model; ``lpc=False`` keeps gamma at 0 (the baseline).

    LPC follows `GammaAnnealing`'s default ramp, ``Polynomial(0, gamma_max,
    power=2)`` per step, paced to end at 95 % of the run.
    """
    keras.utils.set_random_seed(seed)
    model = build_model(data.x_train.shape[1], classes, dim, width)
    optimizer = optimizers.with_lr_multipliers(
        keras.optimizers.AdamW(1e-3), optimizers.lpc_multipliers(model, head_lr)
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = [keras_lpc.GammaAnnealing(max_gamma=gamma_max)] if lpc else []
    history = model.fit(
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=callbacks,
    )
    return model, history.history


def latents(model: keras.Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Test latents ``z`` (the LPC layer's output) and predicted classes."""
    z = keras_lpc.latents(model, x, batch_size=512)
    logits = model.predict(x, batch_size=512, verbose=0)
    return np.asarray(z, np.float64), np.asarray(logits).argmax(axis=1)


def measure(z: np.ndarray, pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and the collapse geometry of ``z`` grouped by predicted class."""
    means = np.stack([z[pred == c].mean(axis=0) for c in np.unique(pred)])
    return {
        "test_accuracy": float(np.mean(pred == y)),
        "nc1": metrics.nc1(z, pred),
        "hypercube_alignment": metrics.hypercube_alignment(z, pred),
        "binarity_peak_distance": metrics.binarity(z)["peak_distance"],
        "distinct_vertices": int(len(np.unique(np.sign(means), axis=0))),
        "mean_norm": metrics.mean_norm(z),
    }


def draw(results: dict[str, dict[str, Any]], y: np.ndarray, path: Path) -> None:
    """Both models' 2-d test latents side by side; LPC's hypercube vertices marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    for i, (name, result) in enumerate(results.items()):
        ax = fig.add_subplot(1, len(results), i + 1)
        z = result["z"][:, :2]
        plotting.plot_latents_2d(z, y, ax=ax)
        m = result["metrics"]
        ax.set_title(
            f"{name}: NC1 {m['nc1']:.3g}, alignment {m['hypercube_alignment']:.3f}", fontsize=10
        )
        if name == "lpc":
            pred = result["pred"]
            r = np.mean(np.abs([z[pred == c].mean(axis=0) for c in np.unique(pred)]))
            corners = r * np.array([[1, 1], [1, -1], [-1, -1], [-1, 1], [1, 1]])
            ax.plot(corners[:, 0], corners[:, 1], "k--", lw=0.8, label="r {-1, +1}^2")
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Test latents: baseline (gamma = 0) vs LPC (GammaAnnealing)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(
    dim: int = 2,
    classes: int | None = None,
    features: int = 8,
    n: int = 2000,
    noise: float = 0.6,
    epochs: int = 40,
    batch_size: int = 32,
    width: int = 64,
    head_lr: float = 100.0,
    gamma_max: float | str = "auto",
    seed: int = 0,
    out: str | Path = "lpc-examples",
    verbose: int = 0,
) -> dict[str, Any]:
    """Train baseline and LPC on hypercube clusters; measure, plot, return the numbers.

    Args:
        dim: LPC bottleneck units (2 or 3 for the picture; any >= 2 works).
        classes: number of classes, default ``2 ** dim`` (one per vertex).
        features: input dimension of the synthetic clusters.
        n: samples (80 % train, 20 % test, stratified).
        noise: cluster standard deviation (centres are at +-1 per coordinate).
        epochs, batch_size, width: training length, batch and hidden width.
        head_lr: learning-rate multiplier of the output layer (both models).
        gamma_max: ``max_gamma`` of `GammaAnnealing`: ``"auto"`` (1e3 unless the
            run is too short for it) or a number (lower it for very short runs).
        seed: data and initialisation seed.
        out: folder for ``synthetic_hypercube.png`` and ``synthetic_hypercube.json``.
        verbose: 1 prints the table.

    Returns:
        ``{"baseline": metrics, "lpc": metrics, "gamma": final gamma,
        "figure": path, "seconds": wall time}``; metrics as in `measure`.
    """
    from sklearn.model_selection import train_test_split

    start = time.perf_counter()
    classes = 2**dim if classes is None else classes
    clusters = datasets.make_hypercube_clusters(
        n=n, d=features, classes=classes, noise=noise, seed=seed
    )
    x_tr, x_te, y_tr, y_te = train_test_split(
        clusters.x, clusters.y, test_size=0.2, random_state=seed, stratify=clusters.y
    )
    data = datasets.Split(x_tr, y_tr, x_te, y_te)
    results: dict[str, dict[str, Any]] = {}
    gamma = 0.0
    for name in ("baseline", "lpc"):
        model, history = train(
            name == "lpc", data, classes, dim, epochs, batch_size, width, head_lr, gamma_max, seed
        )
        z, pred = latents(model, data.x_test)
        results[name] = {"z": z, "pred": pred, "metrics": measure(z, pred, data.y_test)}
        if name == "lpc":
            gamma = float(history["gamma"][-1])
    out = Path(out)
    figure = out / "synthetic_hypercube.png"
    draw(results, data.y_test, figure)
    report = {
        "baseline": results["baseline"]["metrics"],
        "lpc": results["lpc"]["metrics"],
        "gamma": gamma,
        "figure": str(figure),
        "seconds": time.perf_counter() - start,
    }
    (out / "synthetic_hypercube.json").write_text(json.dumps(report, indent=1))
    if verbose:
        print(f"| metric | baseline | LPC (gamma {gamma:.3g}) |\n|---|---|---|")
        for key, value in report["baseline"].items():
            print(f"| {key} | {value:.4g} | {report['lpc'][key]:.4g} |")
        print(f"figure: {figure} ({report['seconds']:.0f} s, {keras.backend.backend()})")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=2, help="LPC bottleneck units (2 or 3)")
    parser.add_argument("--classes", type=int, default=None, help="default: 2**dim")
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--head-lr", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="lpc-examples")
    args = parser.parse_args()
    main(
        dim=args.dim,
        classes=args.classes,
        noise=args.noise,
        epochs=args.epochs,
        head_lr=args.head_lr,
        seed=args.seed,
        out=args.out,
        verbose=1,
    )
