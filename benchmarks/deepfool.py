"""DeepFool speed: batched keras_lpc vs a per-sample autograd loop vs foolbox 3.

Run per backend: ``KERAS_BACKEND=torch python benchmarks/deepfool.py [--n 1000]``.
foolbox is optional (``pip install --target /tmp/fb foolbox eagerpy``, then
``PYTHONPATH=/tmp/fb``); it is not a project dependency. Writes the section
``deepfool-<backend>`` of docs/benchmarks.md.
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
from keras_lpc.backend import candidate_jacobian  # noqa: E402
from keras_lpc.robustness import deepfool  # noqa: E402
from keras_lpc.robustness._scores import scores_function  # noqa: E402


def per_sample(model, x, overshoot=0.02, max_iter=50, candidates=10):
    """Reference style: one input at a time, one Jacobian per iteration."""
    fn = scores_function(model)
    out = []
    for xi in x:
        s0 = keras.ops.convert_to_numpy(fn(xi[None]))[0]
        order = np.argsort(-s0)[:candidates][None]
        r_tot = np.zeros_like(xi, dtype="float64")
        for _ in range(max_iter):
            s, jac = candidate_jacobian(
                fn, (xi + (1 + overshoot) * r_tot).astype("float32")[None], order
            )
            if s[0].argmax() != order[0, 0]:
                break
            w = jac[0, 1:].reshape(candidates - 1, -1) - jac[0, :1].reshape(1, -1)
            f = s[0, order[0, 1:]] - s[0, order[0, 0]]
            norms = np.linalg.norm(w, axis=1)
            k = np.argmin(np.abs(f) / norms)
            r_tot += ((abs(f[k]) / norms[k] + 1e-4) * w[k] / norms[k]).reshape(xi.shape)
        out.append(np.linalg.norm((1 + overshoot) * r_tot) / np.linalg.norm(xi))
    return float(np.mean(out))


def foolbox_score(model, x):
    import foolbox as fb

    backend = keras.backend.backend()
    bounds = (float(x.min()) - 100.0, float(x.max()) + 100.0)
    fn = scores_function(model)
    if backend == "torch":
        import torch

        class Wrapped(torch.nn.Module):
            def forward(self, t):
                return fn(t)

        fmodel = fb.PyTorchModel(Wrapped().eval(), bounds=bounds, device="cpu")
        xt = torch.as_tensor(x)
    elif backend == "tensorflow":
        import tensorflow as tf

        fmodel = fb.TensorFlowModel(fn, bounds=bounds)
        xt = tf.convert_to_tensor(x)
    else:
        import jax.numpy as jnp

        fmodel = fb.JAXModel(fn, bounds=bounds)
        xt = jnp.asarray(x)
    labels = np.argmax(keras.ops.convert_to_numpy(fn(x)), axis=1)
    yt = (
        keras.ops.convert_to_tensor(labels.astype("int64"))
        if backend != "jax"
        else jnp.asarray(labels)
    )
    attack = fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02)
    start = time.perf_counter()
    raw, _, _ = attack(fmodel, xt, yt, epsilons=None)
    elapsed = time.perf_counter() - start
    r = keras.ops.convert_to_numpy(raw) - x
    score = float(
        np.mean(
            np.linalg.norm(r.reshape(len(x), -1), axis=1)
            / np.linalg.norm(x.reshape(len(x), -1), axis=1)
        )
    )
    return elapsed, score


def models():
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
    return [(mlp, (64,)), (cnn, (16, 16, 3))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-loop", type=int, default=50, help="inputs for the per-sample loop")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    rows = []
    for model, shape in models():
        x = rng.normal(size=(args.n, *shape)).astype("float32")
        deepfool(model, x[:8])  # warm-up (compilation)
        start = time.perf_counter()
        res = deepfool(model, x)
        t_batched = time.perf_counter() - start
        sub_score = float(np.mean(res.per_sample[: args.n_loop]))
        start = time.perf_counter()
        loop_score = per_sample(model, x[: args.n_loop])
        t_loop = (time.perf_counter() - start) * args.n / args.n_loop
        rows.append([model.name, "keras_lpc batched", round(t_batched, 2), res.score, "1"])
        rows.append(
            [
                model.name,
                f"per-sample loop (timed on {args.n_loop}, x{args.n // args.n_loop})",
                round(t_loop, 2),
                loop_score,
                f"{t_loop / t_batched:.0f}x slower",
            ]
        )
        rows[-1].append(f"batched on same {args.n_loop}: {sub_score:.4g}")
        rows[-2].append("")
        try:
            t_fb, s_fb = foolbox_score(model, x)
            rows.append(
                [
                    model.name,
                    "foolbox 3 L2DeepFoolAttack",
                    round(t_fb, 2),
                    s_fb,
                    f"{t_fb / t_batched:.2f}x ours",
                    "",
                ]
            )
        except Exception as err:  # noqa: BLE001 - report whatever stops foolbox
            rows.append(
                [
                    model.name,
                    "foolbox 3 L2DeepFoolAttack",
                    "n/a",
                    "n/a",
                    f"could not run: {type(err).__name__}: {str(err)[:80]}",
                    "",
                ]
            )
        print(rows[-3:], flush=True)
    body = (
        f"## DeepFool ({keras.backend.backend()})\n\n`benchmarks/deepfool.py`, {args.n} random "
        f"inputs, untrained models (MLP 64-256-256-10, CNN 16x16x3 two conv layers), "
        f"overshoot 0.02, 50 steps, 10 candidates. {machine()}. The machine (2 cores) was "
        "shared with other jobs, so absolute times are noisy; ratios come from one run.\n\n"
        + table(["model", "method", "time (s)", "score", "ratio", "note"], rows)
    )
    update_section(f"deepfool-{keras.backend.backend()}", body)


if __name__ == "__main__":
    main()
