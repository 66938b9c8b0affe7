"""The verified attack ensemble on small digits models: time and distance of each attack.

Run per backend: ``KERAS_BACKEND=torch python benchmarks/robustness_ensemble.py [--n 100]``.
Trains the demo's MLP and CNN trunks (`keras_lpc.demo.build_model`, baseline arm:
gamma stays 0) on the embedded digits for a few epochs, then runs
`minimal_perturbation` with every built-in attack (L2) on ``--n`` test inputs and
reports, per attack, its wall time, the fraction of inputs it flipped, its mean
verified ``||r|| / ||x||`` (over the inputs it flipped), the mean of
``attack / best`` over all inputs it flipped, and how often it won. Writes the
section ``robustness-ensemble-<backend>`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._report import machine, table, update_section  # noqa: E402
from keras_lpc import datasets  # noqa: E402
from keras_lpc.demo import build_model  # noqa: E402
from keras_lpc.robustness import ATTACKS, minimal_perturbation  # noqa: E402


def train(architecture: str, epochs: int, seed: int = 0):
    keras.utils.set_random_seed(seed)
    split = datasets.load_digits(as_images=architecture == "cnn")
    model = build_model(split[0].shape[1:], 10, dim=16, lpc=False, architecture=architecture)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(split[0], split[1], epochs=epochs, batch_size=32, verbose=0)
    acc = float(model.evaluate(split[2], split[3], verbose=0)[1])
    return model, split[2], split[3], acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100, help="test inputs attacked per model")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = []
    notes = []
    for arch in args.models:
        t0 = time.perf_counter()
        model, x, y, acc = train(arch, args.epochs)
        fit = time.perf_counter() - t0
        x, y = x[: args.n], y[: args.n]
        minimal_perturbation(model, x, attacks=ATTACKS, budget=1, verbose=0)  # compile first
        res = minimal_perturbation(model, x, y, attacks=ATTACKS, verbose=0)
        attacked = res.best_attack != "misclassified"
        best = res.per_sample[attacked]
        for name in ATTACKS:
            d = res.by_attack[name][attacked]
            ok = np.isfinite(d)
            ratio = d[ok] / best[ok]
            rows.append(
                [
                    arch,
                    name,
                    round(res.seconds[name], 2),
                    f"{ok.mean():.0%}",
                    float(d[ok].mean()) if ok.any() else "-",
                    float(ratio.mean()) if ok.any() else "-",
                    f"{np.mean(res.best_attack[attacked] == name):.0%}",
                ]
            )
        rows.append(
            [
                arch,
                "**ensemble (best verified)**",
                round(sum(res.seconds.values()), 2),
                f"{np.isfinite(best).mean():.0%}",
                float(best[np.isfinite(best)].mean()),
                1.0,
                "",
            ]
        )
        notes.append(
            f"{arch}: test accuracy {acc:.3f} after {args.epochs} epochs ({fit:.0f} s); "
            f"{int(attacked.sum())} correctly classified inputs attacked; DeepFool / best "
            f"{res.deepfool_overestimate:.3f}, DeepFool > 1.5 x best on "
            f"{res.deepfool_overestimate_fraction:.1%} of them."
        )
        print(notes[-1], flush=True)
        report(args, rows, notes)  # after each model, so a partial run is kept


def report(args: argparse.Namespace, rows: list, notes: list[str]) -> None:
    header = [
        "model",
        "attack",
        "time (s)",
        "flipped",
        "mean ||r||/||x||",
        "mean attack/best",
        "won",
    ]
    body = (
        f"## Attack ensemble ({keras.backend.backend()})\n\n"
        f"`benchmarks/robustness_ensemble.py`, digits, the demo's trunks "
        f"(`build_model(..., lpc=False)`, Adam 1e-3, {args.epochs} epochs), the first "
        f"{args.n} test inputs, L2, unbounded (no clip), default budgets "
        "(DeepFool 50 steps, FMN 100, PGD / APGD 8 radii x 20 steps, boundary 40 walk "
        f"steps x 3 starts). {machine()}. The machine (2 cores) was shared with other jobs, "
        "so absolute times are noisy. foolbox was not run (not installed in the project "
        "environment; this section measures our attacks against each other).\n\n"
        + table(header, rows)
        + "\n\n"
        + "\n".join(f"* {n}" for n in notes)
    )
    print(body, flush=True)
    if not args.no_write:
        update_section(f"robustness-ensemble-{keras.backend.backend()}", body)


if __name__ == "__main__":
    main()
