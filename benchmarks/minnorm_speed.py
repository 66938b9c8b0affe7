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
first-order radius of each input), PGD (L2, likewise) and the boundary attack
(L2, ``--steps / 4`` walk steps; its host loop is the same attack with the walk
as it was before, ``boundary_walk``, so the two draw different random directions
and find close, not equal, perturbations). Times are the best
of ``--repeats`` calls after a warm-up call (compilation excluded; the warm-up
time is shown apart). The result columns show that both find the same
perturbations: the mean L2 norm (FMN) and the fraction of inputs broken (APGD, PGD).
Each backend runs with ``OMP_NUM_THREADS=--threads`` (default 1: on a shared
2-core machine torch's second thread made its times erratic).
Prints the table and writes it into section ``minnorm-speed`` of
docs/benchmarks.md (``--no-write``: print only).

``--backend NAME`` runs one backend only and prints its rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
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
    from keras_lpc.robustness import Scorer, decision
    from keras_lpc.robustness.apgd import apgd_run
    from keras_lpc.robustness.attacks import pgd_run
    from keras_lpc.robustness.fmn import fmn_attack
    from keras_lpc.robustness.radius import first_order_radius

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

    def boundary(on_host: bool) -> np.ndarray:
        """The boundary attack, its walk on the device or (on_host) on the host."""
        saved = decision._walk
        if on_host:
            decision._walk = reference.boundary_walk
        try:
            return decision.boundary_attack(
                scorer, x, labels, norm="l2", budget=max(1, steps // 4), clip=None,
                rng=np.random.default_rng(0),
            )  # fmt: skip
        finally:
            decision._walk = saved

    cases = {
        "fmn l2": (
            lambda: fmn_attack(scorer, x, labels, norm="l2", budget=steps, clip=None),
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
        "boundary l2": (
            lambda: boundary(on_host=False),
            lambda: boundary(on_host=True),
            lambda r: f"mean L2 norm {np.mean(np.linalg.norm(r, axis=1)):.5g}",
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
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.backend:
        print("ROWS " + json.dumps(run_backend(args)))
        return
    from benchmarks._report import per_backend, table, update_section

    backends = args.backends.split(",")
    flags = ["--n", str(args.n), "--steps", str(args.steps), "--repeats", str(args.repeats)]
    rows, machines = [], []
    children = per_backend(
        __file__,
        backends,
        lambda name: ["--backend", name, *flags],
        env={"OMP_NUM_THREADS": args.threads},
    )
    for got in children:
        machines.append(got[-1]["machine"])
        rows += got[:-1]

    header = ["backend", "attack", "host loop (s)", "compiled (s)", "speed-up",
              "compiled warm-up (s)", "host loop result", "compiled result"]  # fmt: skip
    cells = [
        [r["backend"], r["attack"], round(r["host"], 3), round(r["compiled"], 3),
         f"{r['speedup']:.1f}x", round(r["warmup"], 2), r["host_result"], r["compiled_result"]]
        for r in rows
    ]  # fmt: skip
    text = table(header, cells)
    print(text)
    if args.no_write:
        return
    body = (
        "## Minimum-norm attacks: host loop against compiled loop\n\n"
        f"`benchmarks/minnorm_speed.py`: MLP 64-256-256-10 (untrained, seeded), {args.n} "
        f"random inputs, {args.steps} steps, batch size 256, best of {args.repeats} calls "
        f"after a warm-up call (its time in its own column), OMP_NUM_THREADS={args.threads}, "
        f"{len(os.sched_getaffinity(0))} of the machine's {os.cpu_count()} cores available to "
        "the run (`taskset`), the backends one after the other in one run. *Host loop*: the implementation the "
        "compiled attacks replaced (`tests/_reference_attacks.py`: float64 NumPy state, the "
        "gradient copied to the host every step); *compiled*: `keras_lpc.robustness` (one "
        "`jax.jit` / `tf.function` loop per batch; on PyTorch the same `keras.ops` loop runs "
        "eagerly on tensors, which cannot beat a host loop on a CPU: both pay the same "
        "forward and backward calls, and the loop avoids only the copies, which cost "
        "nothing without a GPU). Results: mean L2 norm found (FMN), fraction of inputs "
        "broken (APGD-CE at L-inf, PGD at L2, both at 1.5 times each input's first-order "
        "radius).\n\n" + "\n".join(f"* {m}" for m in machines) + "\n\n" + text + "\n"
    )
    update_section("minnorm-speed", body)


if __name__ == "__main__":
    main()
