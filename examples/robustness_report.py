"""Robustness report: baseline vs LPC on digits, every measure of `keras_lpc.robustness`.

    python examples/robustness_report.py [--epochs 60] [--attack-samples 300] [--out lpc-examples]

Trains the same MLP (64-256-256-`LatentPointCollapse(16)`-10, SiLU, AdamW
with the output layer at ``head_lr`` times the learning rate) on the
embedded digits twice, gamma held at 0 (baseline) and with `GammaAnnealing()`,
then measures on the test split:

* accuracy, clean and under FGSM and PGD (L-inf, 20 steps) at budgets
  ``eps`` in input units (pixels lie in [0, 1]; attacks clipped to it);
* the DeepFool score: mean over attacked inputs of ``||r|| / ||x||``, ``r``
  the minimal L2 perturbation found (`keras_lpc.robustness.deepfool`);
* the Lipschitz proxy: max and mean of ``||grad_x (f_y - max_{j != y} f_j)||``
  (`keras_lpc.robustness.lipschitz`), in logit units per input unit;
* misclassification AUROC of two confidence scores, the Mahalanobis score of
  the latents (class Gaussians fitted on correctly classified training
  latents) and the maximum softmax probability;
* NC1 and the class-separation ratio of the test latents (predicted classes).

It prints a Markdown table and writes ``robustness_report.json``.
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
from keras_lpc import datasets, metrics, optimizers, robustness  # noqa: E402

ROWS = [
    ("test_accuracy", "test accuracy", "{:.2%}"),
    ("attacked_accuracy", "accuracy on the attacked inputs", "{:.2%}"),
    ("deepfool", "DeepFool score (mean)", "{:.4f}"),
    ("deepfool_correct", "DeepFool score (correct inputs)", "{:.4f}"),
    ("lipschitz_max", "Lipschitz proxy (max)", "{:.3g}"),
    ("lipschitz_mean", "Lipschitz proxy (mean)", "{:.3g}"),
    ("auroc_mahalanobis", "AUROC Mahalanobis", "{:.3f}"),
    ("auroc_softmax", "AUROC softmax", "{:.3f}"),
    ("nc1", "NC1", "{:.3g}"),
    ("separation_ratio", "separation ratio", "{:.3g}"),
    ("gamma", "final gamma", "{:.3g}"),
]


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


def train(
    lpc: bool,
    data: datasets.Split,
    dim: int,
    width: int,
    epochs: int,
    head_lr: float,
    gamma_max: float | str,
    seed: int,
) -> keras.Model:
    """Train one model; ``lpc=False`` keeps gamma at 0 (the baseline).

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
    return model


def measure(
    model: keras.Model, data: datasets.Split, attack_idx: np.ndarray, eps: list[float]
) -> dict[str, Any]:
    """Every robustness and detection measure of one trained model (see the module doc)."""
    z_tr = keras_lpc.latents(model, data.x_train, batch_size=512)
    z_te = keras_lpc.latents(model, data.x_test, batch_size=512)
    logits_tr = model.predict(data.x_train, batch_size=512, verbose=0)
    logits_te = model.predict(data.x_test, batch_size=512, verbose=0)
    pred = logits_te.argmax(axis=1)
    correct = pred == data.y_test
    maha = metrics.mahalanobis_score(
        z_tr, data.y_train, z_te, predictions=pred, fit_predictions=logits_tr.argmax(axis=1)
    )
    xa, ya = data.x_test[attack_idx], data.y_test[attack_idx]
    df = robustness.deepfool(model, xa, y=ya)
    lip = robustness.lipschitz(model, xa, ya)
    fgsm = robustness.accuracy_curve("fgsm", model, xa, ya, eps, clip=(0.0, 1.0))
    pgd = robustness.accuracy_curve("pgd", model, xa, ya, eps, steps=20, clip=(0.0, 1.0))
    result = {
        "test_accuracy": float(correct.mean()),
        "attacked_accuracy": float(np.mean(correct[attack_idx])),
        "deepfool": df.score,
        "deepfool_correct": df.score_correct,
        "deepfool_never_flipped": int(np.sum(~df.fooled)),
        "lipschitz_max": lip.max,
        "lipschitz_mean": lip.mean,
        "auroc_mahalanobis": metrics.misclassification_auroc(maha, correct),
        "auroc_softmax": metrics.misclassification_auroc(
            metrics.max_softmax_score(logits_te), correct
        ),
        "nc1": metrics.nc1(z_te, pred),
        "separation_ratio": metrics.separation_ratio(z_te, pred),
        "gamma": float(keras.ops.convert_to_numpy(model.get_layer("lpc").gamma)),
    }
    for e, f, p in zip(eps, fgsm, pgd):
        result[f"fgsm_accuracy@{e:g}"] = float(f)
        result[f"pgd_accuracy@{e:g}"] = float(p)
    return result


def markdown_table(report: dict[str, dict[str, Any]], eps: list[float]) -> str:
    """Baseline and LPC side by side, one row per measure, LPC / baseline ratio last."""
    rows = list(ROWS)
    for e in eps:
        rows.append((f"fgsm_accuracy@{e:g}", f"FGSM accuracy (eps {e:g})", "{:.2%}"))
        rows.append((f"pgd_accuracy@{e:g}", f"PGD-20 accuracy (eps {e:g})", "{:.2%}"))
    lines = ["| measure | baseline | LPC | LPC / baseline |", "|---|---|---|---|"]
    for key, name, fmt in rows:
        b, lpc = report["baseline"][key], report["lpc"][key]
        ratio = f"{lpc / b:.3g}" if b else "-"
        lines.append(f"| {name} | {fmt.format(b)} | {fmt.format(lpc)} | {ratio} |")
    return "\n".join(lines)


def main(
    epochs: int = 60,
    dim: int = 16,
    width: int = 256,
    head_lr: float = 10.0,
    gamma_max: float | str = "auto",
    attack_samples: int = 300,
    eps: tuple[float, ...] = (0.02, 0.05),
    seed: int = 0,
    out: str | Path = "lpc-examples",
    verbose: int = 0,
) -> dict[str, Any]:
    """Train baseline and LPC on digits, measure both, print the table, write the JSON.

    Args:
        epochs: training epochs of each model (45 steps of 32 per epoch).
        dim: LPC bottleneck units.
        width: hidden units of the two SiLU layers.
        head_lr: learning-rate multiplier of the output layer (both models).
        gamma_max: ``max_gamma`` of `GammaAnnealing`: ``"auto"`` (1e3 unless the
            run is too short for it) or a number (lower it for very short runs).
        attack_samples: test inputs attacked (DeepFool, Lipschitz, FGSM, PGD),
            drawn without replacement with ``seed``.
        eps: L-inf budgets of FGSM and PGD, in input units.
        seed: initialisation and sampling seed.
        out: folder for ``robustness_report.json``.
        verbose: 1 prints the table.

    Returns:
        ``{"baseline": {...}, "lpc": {...}, "table": markdown, "backend": name,
        "seconds": s}``; each model's dict has the keys of `ROWS`,
        ``deepfool_never_flipped`` and ``fgsm_accuracy@<eps>`` /
        ``pgd_accuracy@<eps>`` per budget.
    """
    start = time.perf_counter()
    eps = [float(e) for e in eps]
    data = datasets.load_digits()
    rng = np.random.default_rng(seed)
    n_attack = min(attack_samples, len(data.x_test))
    attack_idx = np.sort(rng.choice(len(data.x_test), n_attack, replace=False))
    report: dict[str, Any] = {}
    for name in ("baseline", "lpc"):
        model = train(name == "lpc", data, dim, width, epochs, head_lr, gamma_max, seed)
        report[name] = measure(model, data, attack_idx, eps)
    report["table"] = markdown_table(report, eps)
    report["attacked"] = n_attack
    report["backend"] = keras.backend.backend()
    report["seconds"] = time.perf_counter() - start
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness_report.json").write_text(json.dumps(report, indent=1))
    if verbose:
        print(report["table"])
        print(
            f"\n{n_attack} attacked test inputs; backend {report['backend']}; "
            f"{report['seconds']:.0f} s; JSON: {out / 'robustness_report.json'}"
        )
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--head-lr", type=float, default=10.0)
    parser.add_argument("--attack-samples", type=int, default=300)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="lpc-examples")
    args = parser.parse_args()
    main(
        epochs=args.epochs,
        dim=args.dim,
        head_lr=args.head_lr,
        attack_samples=args.attack_samples,
        eps=tuple(args.eps),
        seed=args.seed,
        out=args.out,
        verbose=1,
    )
