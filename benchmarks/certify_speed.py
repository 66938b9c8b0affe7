"""Certified radii on the demo MLP and CNN (digits): speed, tightness, every backend.

``python benchmarks/certify_speed.py`` trains the demo's baseline MLP and CNN
(`keras_lpc.demo.build_model`, SiLU, LPC layer at gamma 0) briefly on digits in
this process, saves them, then runs itself once per backend (a Keras backend is
fixed per process) on the same saved models:

* ``certified_radius`` with ``"lipschitz"``, ``"ibp"`` and ``"crown"`` (L2) on
  ``--n`` inputs (the 360 test digits, then training digits) for the MLP and
  ``--cnn-n`` for the CNN: wall time after a warm-up call on 8 inputs (which
  compiles), bound passes, estimated memory, median certified radius;
* the verified attack ensemble (`minimal_perturbation`, default attacks) on the
  first ``--bracket-n`` test inputs, and the median ratio certified / found of
  each method there (correctly classified inputs; the bracket).

Then the float64 NumPy reference CROWN (tests/_certify_reference.py: dense
matrices, one input at a time, plain bisection: doubling then 20 halvings) on
``--ref-n`` inputs, and, where ``--lirpa PYTHON`` names an interpreter with
auto_LiRPA (a yardstick only, never a dependency), its CROWN on the same torch
network: seconds per bound pass and per input, and the certified radius it
finds by bisection (on ``--lirpa-n`` MLP and ``--lirpa-cnn-n`` CNN inputs; section
``certify-lirpa``, ``--lirpa-only``: that section alone). Prints the tables and
writes section ``certify-speed`` of docs/benchmarks.md (``--no-write``: print only).
``--backend NAME`` runs one backend on ``--models DIR`` and prints its rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the NumPy reference CROWN
METHODS = ("lipschitz", "ibp", "crown")


def _inputs(n: int):
    import numpy as np

    from keras_lpc import datasets

    d = datasets.load_digits(as_images=True)
    x = np.concatenate([d.x_test, d.x_train])[:n]
    y = np.concatenate([d.y_test, d.y_train])[:n]
    return x.astype("float32"), y


def _stat(fn, values) -> float:
    return float(fn(values)) if len(values) else float("nan")


def train(directory: str, epochs: dict[str, int]) -> dict[str, float]:
    """Train and save the two models; their test accuracies."""
    import keras

    from keras_lpc import datasets
    from keras_lpc.demo import build_model

    d = datasets.load_digits(as_images=True)
    accuracy = {}
    for arch, count in epochs.items():
        keras.utils.set_random_seed(0)
        model = build_model((8, 8, 1), 10, 16, lpc=False, architecture=arch)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
        model.fit(d.x_train, d.y_train, epochs=count, batch_size=64, verbose=0)
        accuracy[arch] = float(model.evaluate(d.x_test, d.y_test, verbose=0)[1])
        model.save(os.path.join(directory, f"{arch}.keras"))
    return accuracy


def run_backend(args: argparse.Namespace) -> list[dict]:
    import keras
    import numpy as np

    import keras_lpc  # noqa: F401  (registers LatentPointCollapse)
    from keras_lpc.robustness import certified_radius, minimal_perturbation
    from keras_lpc.robustness.certify import _memory, _setup

    rows = []
    for arch in ("mlp", "cnn"):
        model = keras.models.load_model(os.path.join(args.models, f"{arch}.keras"))
        n = args.n if arch == "mlp" else args.cnn_n
        x, y = _inputs(n)
        k = min(args.bracket_n, n)
        start = time.perf_counter()
        found = minimal_perturbation(model, x[:k], y[:k], verbose=0)
        attack = time.perf_counter() - start
        for method in METHODS:
            # a warm-up call on one batch of the size the timed call uses (compiles)
            graph = _setup.bound_graph(model)
            size = min(n, _setup.BATCH[method])
            plan = _memory.plan(graph, method, size, _memory.default_max_memory())
            certified_radius(model, x[: plan.batch], y[: plan.batch], method=method)
            res = certified_radius(model, x, y, method=method)
            ok = (res.labels[:k] == res.predictions[:k]) & np.isfinite(found.distance)
            ratio = res.distance[:k][ok] / found.distance[ok]
            rows.append(
                {
                    "backend": keras.backend.backend(),
                    "model": arch,
                    "method": method,
                    "inputs": n,
                    "seconds": res.seconds,
                    "per_1000": 1000 * res.seconds / n,
                    "passes": res.passes,
                    "memory_gb": res.memory / 2**30,
                    "median_radius": _stat(np.median, res.per_sample[res.per_sample > 0]),
                    "ratio_median": _stat(np.median, ratio),
                    "ratio_p10": _stat(lambda a: np.percentile(a, 10), ratio),
                    "attack_per_1000": 1000 * attack / k,
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def reference_timing(args: argparse.Namespace) -> list[dict]:
    """The NumPy reference's seconds per input, and its radii against the library's."""
    import _certify_reference as reference
    import keras
    import numpy as np

    import keras_lpc  # noqa: F401
    from keras_lpc.robustness import certified_radius

    out = []
    for arch in ("mlp", "cnn"):
        model = keras.models.load_model(os.path.join(args.models, f"{arch}.keras"))
        x, y = _inputs(args.ref_n)
        layers, _ = reference.layers_of(model)
        ours = certified_radius(model, x, y, method="crown")
        start = time.perf_counter()
        radii = [
            reference.radius(layers, x[i].reshape(-1).astype("float64"), ours.labels[i], 10, "l2")
            if ours.labels[i] == ours.predictions[i]
            else 0.0
            for i in range(len(x))
        ]
        seconds = time.perf_counter() - start
        ok = np.asarray(radii) > 0
        out.append(
            {
                "model": arch,
                "inputs": len(x),
                "per_input": seconds / len(x),
                "per_1000": 1000 * seconds / len(x),
                "ours_over_reference": float(np.median(ours.distance[ok] / np.asarray(radii)[ok])),
            }
        )
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def report(args, accuracy, rows, ref, machine: str, table) -> str:
    """The Markdown of section ``certify-speed``."""
    lines = [
        "## Certified radii (`benchmarks/certify_speed.py`)",
        "",
        f"Machine: {machine}. Measured while the machine was shared (load 3-6 on its cores):",
        "timings are upper bounds of what an idle machine gives.",
        f"Models: the demo's baseline MLP and CNN (SiLU), trained {args.epochs_mlp} / "
        f"{args.epochs_cnn} epochs on digits (test accuracy {accuracy['mlp']:.3f} / "
        f"{accuracy['cnn']:.3f}); L2; `certified_radius` defaults (CROWN: `rtol=1e-2`).",
        "Time: one call on the inputs after a warm-up call on one batch (compiled then);",
        "`per 1000` scales it to 1000 inputs. Ratio: certified / found (verified attack",
        f"ensemble, default attacks) on the first {args.bracket_n} test digits.",
        "",
    ]
    header = [
        "backend",
        "model",
        "method",
        "inputs",
        "s",
        "s per 1000",
        "passes",
        "memory GB",
        "ratio median",
        "ratio p10",
        "attack s per 1000",
    ]
    body = [
        [
            r["backend"],
            r["model"],
            r["method"],
            r["inputs"],
            r["seconds"],
            r["per_1000"],
            r["passes"],
            r["memory_gb"],
            r["ratio_median"],
            r["ratio_p10"],
            r["attack_per_1000"],
        ]
        for r in rows
    ]
    lines += [table(header, body), ""]
    lines += [
        "NumPy float64 reference CROWN (tests/_certify_reference.py; dense matrices, one input",
        "at a time, doubling then 20 bisection passes), and its radius against the library's:",
        "",
        table(
            ["model", "inputs", "s per input", "s per 1000 (scaled)", "library / reference radius"],
            [
                [r["model"], r["inputs"], r["per_input"], r["per_1000"], r["ours_over_reference"]]
                for r in ref
            ],
        ),
        "",
    ]
    lines.append(
        "auto_LiRPA's CROWN on the same torch networks: the next section, "
        '"auto_LiRPA beside the library\'s CROWN".'
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default=None)
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--models", default=None)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--cnn-n", type=int, default=1000)
    parser.add_argument("--bracket-n", type=int, default=100)
    parser.add_argument("--ref-n", type=int, default=4)
    parser.add_argument("--epochs-mlp", type=int, default=30)
    parser.add_argument("--epochs-cnn", type=int, default=10)
    parser.add_argument("--lirpa", default=None, help="a Python with auto_LiRPA installed")
    parser.add_argument("--lirpa-n", type=int, default=128, help="MLP inputs for auto_LiRPA")
    parser.add_argument("--lirpa-cnn-n", type=int, default=8, help="CNN inputs for auto_LiRPA")
    parser.add_argument(
        "--lirpa-only", action="store_true", help="train, then only the auto_LiRPA section"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.backend:
        print("ROWS " + json.dumps(run_backend(args)))
        return
    from benchmarks import certify_lirpa
    from benchmarks._report import machine, per_backend, table, update_section

    directory = args.models or tempfile.mkdtemp(prefix="certify_models_")
    args.models = directory
    accuracy = train(directory, {"mlp": args.epochs_mlp, "cnn": args.epochs_cnn})
    if args.lirpa:
        lirpa = certify_lirpa.run(args.lirpa, directory, args.lirpa_n, args.lirpa_cnn_n)
        if lirpa is not None:
            body = certify_lirpa.report_lirpa(accuracy, lirpa, table)
            print(body)
            if not args.no_write:
                update_section("certify-lirpa", body)
    if args.lirpa_only:
        return
    rows = [
        row
        for part in per_backend(
            __file__,
            args.backends.split(","),
            lambda name: [
                "--backend",
                name,
                "--models",
                directory,
                "--n",
                str(args.n),
                "--cnn-n",
                str(args.cnn_n),
                "--bracket-n",
                str(args.bracket_n),
            ],
        )
        for row in part
    ]
    ref = reference_timing(args)
    body = report(args, accuracy, rows, ref, machine(), table)
    print(body)
    if not args.no_write:
        update_section("certify-speed", body)


if __name__ == "__main__":
    main()
