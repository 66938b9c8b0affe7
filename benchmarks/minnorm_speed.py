"""Minimum-norm attacks: the former host loops against the compiled ones, every backend.

``python benchmarks/minnorm_speed.py`` runs itself once per backend (a Keras
backend is fixed per process) and prints one table. On the MLP 64-256-256-10
(untrained, seeded) and ``--n`` random inputs, side by side in one process:

* ``host loop``: the implementation this replaced (tests/_reference_attacks.py):
  float64 NumPy state on the host, one compiled VJP call per step and batch, the
  (N, D) gradient copied to NumPy every step;
* ``compiled``: `keras_lpc.robustness` today, the whole loop one compiled
  ``keras.ops`` loop per batch (``jax.jit``, ``tf.function``; torch eagerly on tensors).

for FMN (L2, ``--steps`` steps), APGD-CE (L-inf, ``--steps`` steps, at 1.5 times the
first-order radius of each input) and PGD (L2, likewise). Times are the best
of ``--repeats`` calls after a warm-up call (compilation excluded; the warm-up
time is shown apart). The result columns show that both find the same
perturbations: the mean L2 norm (FMN) and the fraction of inputs broken (APGD, PGD).
Each backend runs with ``OMP_NUM_THREADS=--threads`` (default 1: on a shared
2-core machine torch's second thread made its times erratic).
Prints only; docs/benchmarks.md is written by hand from its output.

``--backend NAME`` runs one backend only and prints its rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the former host loops: a test reference


def _timed(fn, repeats: int) -> tuple[float, float, object]:
    """(first call's seconds, best of ``repeats`` later calls, the last result)."""
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return first, best, out


def run_backend(args: argparse.Namespace) -> list[dict]:
    import _reference_attacks as reference
    import keras
    import numpy as np

    from benchmarks._report import machine
    from keras_lpc.robustness._minnorm import Scorer
    from keras_lpc.robustness._radius import first_order_radius, pgd_run
    from keras_lpc.robustness.apgd import apgd_run
    from keras_lpc.robustness.fmn import fmn_attack

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    x = np.random.default_rng(0).normal(size=(args.n, 64)).astype("float32")
    scorer, host = Scorer(model), reference.HostScorer(model)
    labels = np.argmax(scorer.forward(x), axis=1)
    eps = 1.5 * first_order_radius(scorer, x, labels, "l2")
    eps_inf = 1.5 * first_order_radius(scorer, x, labels, "linf")
    steps = args.steps
    cases = {
        "fmn l2": (
            lambda: fmn_attack(scorer, x, labels, norm="l2", steps=steps, clip=None),
            lambda: reference.fmn_attack(host, x, labels, norm="l2", steps=steps, clip=None),
            lambda r: f"mean L2 norm {np.mean(np.linalg.norm(r, axis=1)):.5g}",
        ),
        "apgd-ce linf": (
            lambda: apgd_run(
                scorer, x, labels, eps_inf, norm="linf", steps=steps, loss="ce", clip=None,
                rng=np.random.default_rng(0),
            ),
            lambda: reference.apgd_run(
                host, x, labels, eps_inf, norm="linf", steps=steps, loss="ce", clip=None,
                rng=np.random.default_rng(0),
            ),
            lambda t: f"broken {np.mean(t.found):.3f}",
        ),
        "pgd l2": (
            lambda: pgd_run(
                scorer, x, labels, eps, norm="l2", steps=steps, clip=None,
                rng=np.random.default_rng(0),
            ),
            lambda: reference.pgd_run(
                host, x, labels, eps, norm="l2", steps=steps, clip=None,
                rng=np.random.default_rng(0),
            ),
            lambda t: f"broken {np.mean(t.found):.3f}",
        ),
    }  # fmt: skip
    rows = []
    backend = keras.backend.backend()
    for name, (ours, theirs, summary) in cases.items():
        first_h, host_s, out_h = _timed(theirs, args.repeats)
        first_c, ours_s, out_c = _timed(ours, args.repeats)
        rows.append(
            {
                "backend": backend,
                "attack": name,
                "host": host_s,
                "compiled": ours_s,
                "speedup": host_s / ours_s,
                "warmup": first_c,
                "host_result": summary(out_h),
                "compiled_result": summary(out_c),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    rows.append({"machine": machine()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="random inputs")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default=None, help="run one backend, print JSON rows")
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--threads", default="1", help="OMP_NUM_THREADS of each backend")
    args = parser.parse_args()
    if args.backend:
        print("ROWS " + json.dumps(run_backend(args)))
        return
    rows, machines = [], []
    for name in args.backends.split(","):
        cmd = [sys.executable, __file__, "--backend", name, "--n", str(args.n)]
        cmd += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
        env = dict(os.environ, KERAS_BACKEND=name, OMP_NUM_THREADS=args.threads)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("ROWS ")]
        if not line:
            print(out.stderr[-3000:])
            raise SystemExit(f"{name} failed")
        got = json.loads(line[0][5:])
        machines.append(got[-1]["machine"])
        rows += got[:-1]
    from benchmarks._report import table

    header = ["backend", "attack", "host loop (s)", "compiled (s)", "speed-up",
              "compiled warm-up (s)", "host loop result", "compiled result"]  # fmt: skip
    cells = [
        [r["backend"], r["attack"], round(r["host"], 3), round(r["compiled"], 3),
         f"{r['speedup']:.1f}x", round(r["warmup"], 2), r["host_result"], r["compiled_result"]]
        for r in rows
    ]  # fmt: skip
    print(
        f"MLP 64-256-256-10, {args.n} random inputs, {args.steps} steps, batch size 256, "
        f"best of {args.repeats} after a warm-up call, OMP_NUM_THREADS={args.threads}\n"
    )
    print("\n".join(f"* {m}" for m in machines) + "\n")
    print(table(header, cells))


if __name__ == "__main__":
    main()
