"""DeepFool speed: keras_lpc's compiled DeepFool against references, every backend in one run.

``python benchmarks/deepfool.py`` runs itself once per backend (a Keras backend
is fixed per process) and writes one table, section ``deepfool``, of
docs/benchmarks.md. Per backend and model, on the same random inputs:

* ``keras_lpc``: `keras_lpc.robustness.deepfool` (compiled loop on the device),
  timed after one warm-up call that compiles it;
* ``host loop``: the algorithm of the implementation this replaced (same VJPs), batched
  but with the active set and the Jacobians copied to NumPy every step;
* ``per-sample loop``: one input at a time, one Jacobian per step (timed on
  ``--n-loop`` inputs and scaled to ``--n``);
* ``fused jax.jit(vmap) + while_loop`` (JAX only): a hand-written single-input
  DeepFool, vmapped and jitted, the yardstick of issue 16;
* ``fused torch (hand-written loop)`` (torch only): the same algorithm in plain torch
  ops, active rows gathered, one ``is_grads_batched`` VJP per step (no ``keras.ops``);
* ``foolbox 3``: when it can be loaded (see benchmarks/_foolbox.py; never a dependency).

On torch every row runs with one intra-op thread (keras_lpc's policy inside its
loops, `keras_lpc.backend.set_torch_threads`), so the references are not slowed by
thread contention on a shared machine.

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

OVERSHOOT, MAX_ITER, CANDIDATES = 0.02, 50, 10


def models():
    import keras

    mlp = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="mlp",
    )
    cnn = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ],
        name="cnn",
    )
    return {"mlp": (mlp, (64,)), "cnn": (cnn, (16, 16, 3))}


def _jacobian_rows(fn):
    import keras
    import numpy as np

    from keras_lpc import backend

    def rows(scores, aux):
        onehot = keras.ops.one_hot(aux, keras.ops.shape(scores)[1], dtype=scores.dtype)
        return keras.ops.transpose(onehot, (1, 0, 2))

    def jac(x, classes):
        s, g = backend.vjp(
            fn, keras.ops.convert_to_tensor(x), rows, keras.ops.convert_to_tensor(classes)
        )
        return np.asarray(keras.ops.convert_to_numpy(s), "float64"), np.moveaxis(
            np.asarray(keras.ops.convert_to_numpy(g), "float64"), 0, 1
        )

    return jac


def per_sample_loop(model, x):
    """One input at a time, straight from the algorithm, eager Jacobians."""
    import keras
    import numpy as np

    from keras_lpc.robustness import Scorer

    fn = Scorer(model).fn
    jac = _jacobian_rows(fn)
    out = []
    for xi in x:
        s0 = np.asarray(keras.ops.convert_to_numpy(fn(xi[None])))[0]
        order = np.argsort(-s0, kind="stable")[:CANDIDATES][None].astype("int32")
        r_tot = np.zeros(xi.shape)
        for _ in range(MAX_ITER):
            s, j = jac((xi + (1 + OVERSHOOT) * r_tot).astype("float32")[None], order)
            if s[0].argmax() != order[0, 0]:
                break
            w = (j[0, 1:] - j[0, :1]).reshape(CANDIDATES - 1, -1)
            f = s[0, order[0, 1:]] - s[0, order[0, 0]]
            norms = np.linalg.norm(w, axis=1)
            k = np.argmin(np.abs(f) / norms)
            r_tot += ((abs(f[k]) / norms[k] + 1e-4) * w[k] / norms[k]).reshape(xi.shape)
        out.append((1 + OVERSHOOT) * r_tot)
    return np.array(out)


def host_loop(model, x, batch_size=256):
    """The previous keras_lpc DeepFool: batched, active set and Jacobians on the host."""
    import keras
    import numpy as np

    from keras_lpc import backend
    from keras_lpc.robustness import Scorer

    fn = Scorer(model).fn

    def pairs(scores, aux):
        onehot = keras.ops.one_hot(aux, keras.ops.shape(scores)[1], dtype=scores.dtype)
        return keras.ops.transpose(onehot[:, 1:] - onehot[:, :1], (1, 0, 2))

    step = backend.jit(lambda x, c: backend.vjp(fn, x, pairs, c), model.variables)

    def vjp(xa, classes):
        n, size = len(xa), backend.bucket(len(xa))
        s, g = step(backend.pad(xa, size), backend.pad(classes, size))
        return (
            np.asarray(keras.ops.convert_to_numpy(s), "float64")[:n],
            np.asarray(keras.ops.convert_to_numpy(g), "float64")[:, :n],
        )

    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        scores = np.asarray(keras.ops.convert_to_numpy(fn(xb)), "float64")
        classes = np.argsort(-scores, axis=1, kind="stable")[:, :CANDIDATES].astype("int32")
        label, r_tot, active = classes[:, 0], np.zeros(xb.shape), np.arange(len(xb))
        for _ in range(MAX_ITER):
            s, g = vjp(
                (xb[active] + (1 + OVERSHOOT) * r_tot[active]).astype("float32"), classes[active]
            )
            still = s.argmax(1) == label[active]
            active, s, g = active[still], s[still], g[:, still]
            if active.size == 0:
                break
            rows = np.arange(active.size)
            g = g.reshape(CANDIDATES - 1, active.size, -1)
            f = np.take_along_axis(s, classes[active, 1:], 1) - s[rows, label[active], None]
            norm = np.linalg.norm(g, axis=2).T
            dist = np.abs(f) / norm
            best = dist.argmin(1)
            r_i = ((dist[rows, best] + 1e-4) / norm[rows, best])[:, None] * g[best, rows]
            r_tot[active] += r_i.reshape((active.size, *xb.shape[1:]))
        out.append((1 + OVERSHOOT) * r_tot)
    return np.concatenate(out)


def fused_jax(model):
    """A hand-written DeepFool for one input, ``jax.jit(jax.vmap(...))`` with a while_loop."""
    import jax
    import jax.numpy as jnp

    def scores(tv, ntv, xi):
        out, _ = model.stateless_call(tv, ntv, xi[None], training=False)
        return out[0]

    def one(tv, ntv, xi):
        f = lambda v: scores(tv, ntv, v)  # noqa: E731
        s0 = f(xi)
        order = jnp.argsort(-s0, stable=True)[:CANDIDATES]
        eye = jax.nn.one_hot(order, s0.shape[0], dtype=s0.dtype)
        cot = eye[1:] - eye[:1]

        def cond(state):
            _, i, done = state
            return jnp.logical_and(~done, i < MAX_ITER)

        def body(state):
            r, i, _ = state
            s, pull = jax.vjp(f, xi + (1 + OVERSHOOT) * r)
            done = jnp.argmax(s) != order[0]
            w = jax.vmap(lambda c: pull(c)[0])(cot).reshape(CANDIDATES - 1, -1)
            fd = s[order[1:]] - s[order[0]]
            norms = jnp.linalg.norm(w, axis=1)
            k = jnp.argmin(jnp.abs(fd) / norms)
            r_i = ((jnp.abs(fd[k]) / norms[k] + 1e-4) / norms[k] * w[k]).reshape(xi.shape)
            return jnp.where(done, r, r + r_i), i + 1, done

        r, _, _ = jax.lax.while_loop(cond, body, (jnp.zeros_like(xi), 0, False))
        return (1 + OVERSHOOT) * r

    run = jax.jit(jax.vmap(one, in_axes=(None, None, 0)))
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    return lambda x: jax.block_until_ready(run(tv, ntv, x))


def fused_torch(model, batch_size=256):
    """A hand-written DeepFool in plain torch: active rows gathered, one batched VJP per step."""
    import numpy as np
    import torch

    from keras_lpc.robustness import Scorer

    fn = Scorer(model).fn

    def run(x):
        out = []
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i : i + batch_size])
            with torch.no_grad():
                s0 = fn(xb)
            classes = torch.argsort(-s0, dim=1, stable=True)[:, :CANDIDATES]
            eye = torch.nn.functional.one_hot(classes, s0.shape[1]).to(s0.dtype)
            cot = (eye[:, 1:] - eye[:, :1]).transpose(0, 1)  # (K - 1, n, C)
            r = torch.zeros_like(xb)
            rows = torch.arange(len(xb))
            for _ in range(MAX_ITER):
                xa = (xb[rows] + (1 + OVERSHOOT) * r[rows]).requires_grad_(True)
                with torch.enable_grad():
                    s = fn(xa)
                c = classes[rows]
                still = s.argmax(1) == c[:, 0]
                if not bool(still.any()):
                    break
                (g,) = torch.autograd.grad(s, xa, cot[:, rows], is_grads_batched=True)
                with torch.no_grad():
                    rows, s, g, c = rows[still], s[still], g[:, still].flatten(2), c[still]
                    picked = s.gather(1, c)
                    f = (picked[:, 1:] - picked[:, :1]).abs()
                    norm = g.norm(dim=2).T
                    dist = torch.where(norm > 0, f / norm, torch.inf)
                    d, best = dist.min(1)
                    n = torch.arange(len(rows))
                    w = g[best, n]
                    r[rows] += (((d + 1e-4) / norm[n, best])[:, None] * w).reshape(
                        (len(rows), *xb.shape[1:])
                    )
            out.append((1 + OVERSHOOT) * r.numpy())
        return np.concatenate(out)

    return run


def foolbox_run(model, x):
    import keras
    import numpy as np

    from benchmarks import _foolbox
    from keras_lpc.robustness import Scorer

    fb = _foolbox.load()
    name = keras.backend.backend()
    bounds = (float(x.min()) - 100.0, float(x.max()) + 100.0)
    fn = Scorer(model).fn
    fmodel = _foolbox.wrap(fn, bounds)
    xt = keras.ops.convert_to_tensor(x)
    labels = np.argmax(keras.ops.convert_to_numpy(fn(x)), axis=1)
    yt = keras.ops.convert_to_tensor(labels.astype("int64" if name == "torch" else "int32"))
    attack = fb.attacks.L2DeepFoolAttack(steps=MAX_ITER, candidates=CANDIDATES, overshoot=OVERSHOOT)
    attack(fmodel, xt[:8], yt[:8], epsilons=None)  # warm-up
    start = time.perf_counter()
    raw, _, _ = attack(fmodel, xt, yt, epsilons=None)
    elapsed = time.perf_counter() - start
    return elapsed, keras.ops.convert_to_numpy(raw) - x


def _score(r, x):
    import numpy as np

    flat = len(x), -1
    return float(
        np.mean(np.linalg.norm(r.reshape(flat), axis=1) / np.linalg.norm(x.reshape(flat), axis=1))
    )


def _timed(fn, *args, repeats: int = 1):
    """The best time of ``repeats`` calls of ``fn(*args)`` and the last output."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def run_backend(args) -> list[dict]:
    import keras
    import numpy as np

    from benchmarks import _foolbox
    from benchmarks._report import machine
    from keras_lpc.robustness import deepfool

    start_load = os.getloadavg()[0]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    rows = []
    name = keras.backend.backend()
    if name == "torch":
        import torch

        # every row with keras_lpc's thread policy (one intra-op thread), so that the
        # references are not slowed by thread contention on a shared machine
        torch.set_num_threads(1)
    for key in args.models.split(","):
        model, shape = models()[key]
        first = len(rows)
        x = rng.normal(size=(args.n, *shape)).astype("float32")
        deepfool(model, x)  # warm-up: compiles the loop for the batch shapes used below
        t_lib, res = _timed(deepfool, model, x, repeats=args.repeats)
        lib_score = float(np.mean(res.per_sample[res.fooled]))

        def row(method, seconds, r, note="", key=key, t_lib=t_lib, x=x):
            rows.append(
                {
                    "backend": name,
                    "model": key,
                    "method": method,
                    "seconds": seconds,
                    "ratio": seconds / t_lib,
                    "score": _score(r, x[: len(r)]),
                    "note": note,
                }
            )

        row("keras_lpc (compiled)", t_lib, res.perturbation, f"{res.unflipped} unflipped")
        rows[-1]["score"] = lib_score
        host_loop(model, x[:8])
        t_host, r_host = _timed(host_loop, model, x, repeats=args.repeats)
        diff = float(np.abs(r_host - res.perturbation).max())
        row(
            "host loop (Jacobians to NumPy each step)",
            t_host,
            r_host,
            f"max |r - r_lib| {diff:.1e}",
        )
        n_loop = min(args.n_loop, args.n)
        t_loop, r_loop = _timed(per_sample_loop, model, x[:n_loop])
        diff = float(np.abs(r_loop - res.perturbation[:n_loop]).max())
        row(
            f"per-sample loop (timed on {n_loop}, scaled)",
            t_loop * args.n / n_loop,
            r_loop,
            f"max |r - r_lib| {diff:.1e}",
        )
        if name == "jax":
            fused = fused_jax(model)
            fused(x)  # compile
            t_fused, r_fused = _timed(fused, x, repeats=args.repeats)
            r_fused = np.asarray(r_fused)
            diff = float(np.abs(r_fused - res.perturbation).max())
            row("fused jax.jit(vmap) + while_loop", t_fused, r_fused, f"max |r - r_lib| {diff:.1e}")
        if name == "torch":
            fused = fused_torch(model)
            fused(x[:8])  # warm-up
            t_fused, r_fused = _timed(fused, x, repeats=args.repeats)
            diff = float(np.abs(r_fused - res.perturbation).max())
            row("fused torch (hand-written loop)", t_fused, r_fused, f"max |r - r_lib| {diff:.1e}")
        try:
            t_fb, r_fb = foolbox_run(model, x)
            for _ in range(args.repeats - 1):  # the best of the calls, like the rows above
                t_fb = min(t_fb, foolbox_run(model, x)[0])
            row("foolbox 3 L2DeepFoolAttack", t_fb, r_fb)
        except Exception as err:  # noqa: BLE001 - report whatever stops foolbox
            rows.append(
                {
                    "backend": name,
                    "model": key,
                    "method": "foolbox 3 L2DeepFoolAttack",
                    "note": f"not run: {type(err).__name__}: {str(err)[:60]}",
                }
            )
        for r in rows[first:]:
            print(json.dumps(r), file=sys.stderr, flush=True)
    where = machine()
    try:
        where += f", foolbox {_foolbox.load().__version__} ({sys.prefix})"
    except ImportError:
        where += ", no foolbox"
    load = os.getloadavg()[0]
    rows.append({"machine": f"{where}; load (1 min) {start_load:.1f} before, {load:.1f} after"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-loop", type=int, default=20, help="inputs for the per-sample loop")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--backend", default=None, help="run one backend, print JSON rows")
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row (best kept)")
    args = parser.parse_args()
    if args.backend:
        print("ROWS " + json.dumps(run_backend(args)))
        return
    from benchmarks._report import per_backend, table, update_section

    flags = ["--n", str(args.n), "--n-loop", str(args.n_loop), "--models", args.models,
             "--repeats", str(args.repeats)]  # fmt: skip
    rows, machines = [], []
    for got in per_backend(__file__, args.backends.split(","), lambda n: ["--backend", n, *flags]):
        machines.append(got[-1]["machine"])
        rows += got[:-1]

    cells = [
        [
            r["backend"],
            r["model"],
            r["method"],
            round(r["seconds"], 3) if "seconds" in r else "n/a",
            f"{r['ratio']:.2f}x" if "ratio" in r else "",
            r.get("score", "n/a"),
            r["note"],
        ]
        for r in rows
    ]
    print(
        table(
            ["backend", "model", "method", "time (s)", "time / keras_lpc", "score", "note"], cells
        )
    )
    body = (
        f"## DeepFool, every backend ({args.models})\n\n`benchmarks/deepfool.py`, {args.n} random inputs, "
        "untrained models (MLP 64-256-256-10; CNN 16x16x3, two conv layers), overshoot 0.02, "
        "50 steps, 10 candidates, batch size 256; times after a warm-up call (compilation "
        f"excluded), the best of {args.repeats} calls (the per-sample loop: one), all rows of a backend measured in one process, the backends one after "
        "the other in one run. Score: mean ||r||/||x|| over flipped inputs for keras_lpc, "
        "over all inputs for the references (every input flips here). Per-sample loop: the "
        "algorithm one input at a time, one Jacobian per step. foolbox 3 (never a "
        "dependency) ran from its own virtual environment (every row of the run used that "
        "interpreter, keras-lpc from this checkout). On torch every row uses one intra-op "
        "thread. Load: the 1-minute load average of the 2-core machine, shared with other "
        "work, when each backend started and ended.\n\n"
        + "\n".join(f"* {m}" for m in machines)
        + "\n\n"
        + table(
            ["backend", "model", "method", "time (s)", "time / keras_lpc", "score", "note"], cells
        )
    )
    models_run = args.models.split(",")
    update_section(
        "deepfool" if models_run == ["mlp", "cnn"] else "deepfool-" + "-".join(models_run), body
    )


if __name__ == "__main__":
    main()
