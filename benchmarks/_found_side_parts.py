"""The measurements of `benchmarks/found_side.py`, run in a child process with the keras_lpc
of one side (before or after) on ``sys.path``: each part returns a JSON-able dict."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP = (0.0, 1.0)


def _model(name: str, cache: str):
    """The digits model ``name`` (``mlp``, ``cnn``, ``mlp-lpc``, ``mlp-quantised``), its
    weights trained once and cached; ``(model, x_test, y_test)``."""
    import keras
    from keras import ops

    import keras_lpc
    from keras_lpc import datasets, optimizers
    from keras_lpc.demo import build_model

    arch = "cnn" if name == "cnn" else "mlp"
    lpc = name == "mlp-lpc"
    split = datasets.load_digits(as_images=arch == "cnn")
    model = build_model(
        split[0].shape[1:], 10, 16, lpc=lpc, architecture=arch, augment_noise=0.1 if lpc else 0.0
    )
    path = Path(cache) / f"{'mlp' if name == 'mlp-quantised' else name}.weights.h5"
    if path.exists():
        model.load_weights(path)
    else:
        keras.utils.set_random_seed(0)
        opt = keras.optimizers.AdamW(weight_decay=0.004)
        opt = optimizers.with_lr_multipliers(opt, optimizers.lpc_multipliers(model, 10.0))
        model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        callbacks = [keras_lpc.GammaAnnealing()] if lpc else []
        model.fit(split[0], split[1], epochs=60 if lpc else 15, batch_size=32, verbose=0,
                  callbacks=callbacks)  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(path)
    if name == "mlp-quantised":

        class Quantise(keras.layers.Layer):
            def call(self, x):
                return ops.stop_gradient(ops.round(4.0 * x) / 4.0) + 0.0 * x

        model = keras.Sequential([keras.Input((64,)), Quantise(), model])
    return model, split[2], split[3]


def _seeded_mlp():
    """A tanh/ReLU MLP with NumPy weights (the same on every backend) and 40 inputs in [0, 1]."""
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="tanh"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(6)])  # fmt: skip
    rng = np.random.default_rng(5)
    model.set_weights([
        (0.1 * rng.normal(size=w.shape) if w.ndim == 1 else rng.normal(size=w.shape) / np.sqrt(w.shape[0]))
        .astype("float32") for w in model.get_weights()
    ])  # fmt: skip
    return model, rng.uniform(0.0, 1.0, size=(40, 16)).astype("float32")


def _run(model, x, y=None, **kwargs):
    """`minimal_perturbation` (compiled once on a few inputs first): distances per attack
    (relative), the best, seconds."""
    import warnings

    import numpy as np

    from keras_lpc.robustness import minimal_perturbation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minimal_perturbation(model, x[:8], None if y is None else y[:8], verbose=0,
                             **{**kwargs, "budget": 2})  # fmt: skip
        start = time.perf_counter()
        res = minimal_perturbation(model, x, y, verbose=0, **kwargs)
    total = time.perf_counter() - start

    def floats(a):
        return np.asarray(a, dtype="float64").tolist()

    return {
        "by_attack": {k: floats(v) for k, v in res.by_attack.items()},
        "best": floats(res.per_sample),
        "seconds": dict(res.seconds),
        "total": total,
    }


def _white_box_levels(model, x, labels, restarts=8):
    """The best-known points of the quantised MLP: a greedy search over the levels of
    ``round(4 x) / 4`` on the inner model's scores (adds the level change with the largest
    margin drop per unit of squared distance until the label flips, then removes every
    change not needed), ``restarts`` times with randomised gains; relative L2 distances."""
    import numpy as np

    from keras_lpc.robustness import Scorer

    inner = Scorer(model.layers[-1])
    rng = np.random.default_rng(0)
    x = x.astype("float64")
    n, d = x.shape
    levels = np.arange(5) / 4.0

    def point(xi, lv):
        lvl = levels[lv]
        p = np.clip(xi, np.maximum(lvl - 0.125, 0) + 1e-5, np.minimum(lvl + 0.125, 1) - 1e-5)
        return np.where(lv == np.round(4 * xi), xi, p)

    def margin(pts, label):
        z = inner.forward(levels[np.clip(np.round(4 * pts), 0, 4).astype(int)])
        zy = z[:, label].copy()
        z[:, label] = -np.inf
        return zy - z.max(1)

    best = np.full(n, np.inf)
    for i in range(n):
        q0 = np.round(4 * x[i]).astype(int)
        for r in range(restarts):
            lv = q0.copy()
            for _ in range(4 * d):
                cand = np.repeat(lv[None], 2 * d, 0)
                cand[np.arange(d), np.arange(d)] = np.minimum(lv + 1, 4)
                cand[d + np.arange(d), np.arange(d)] = np.maximum(lv - 1, 0)
                pts = np.stack([point(x[i], c) for c in cand])
                m0, m = margin(point(x[i], lv)[None], labels[i])[0], margin(pts, labels[i])
                cost = np.sum((pts - x[i]) ** 2, 1) - np.sum((point(x[i], lv) - x[i]) ** 2)
                gain = np.where(cost > 1e-12, (m0 - m) / np.maximum(cost, 1e-12), -np.inf)
                if r:
                    gain = gain * rng.uniform(0.5, 1.5, size=gain.shape)
                j = int(np.argmax(gain))
                lv = cand[j]
                if m[j] < 0:
                    break
            if margin(point(x[i], lv)[None], labels[i])[0] >= 0:
                continue
            for k in np.argsort(-np.abs(point(x[i], lv) - x[i])):  # drop unneeded changes
                while lv[k] != q0[k]:
                    t = lv.copy()
                    t[k] += -1 if lv[k] > q0[k] else 1
                    if margin(point(x[i], t)[None], labels[i])[0] >= 0:
                        break
                    lv = t
            best[i] = min(best[i], np.linalg.norm(point(x[i], lv) - x[i]))
    return (best / np.linalg.norm(x, axis=1)).tolist()


def child(part: str, cache: str, after: bool) -> dict:
    """Measure ``part`` with the keras_lpc on ``sys.path``; a JSON-able dict."""
    import keras
    import numpy as np

    from keras_lpc.robustness import Scorer
    from keras_lpc.robustness.fmn import fmn_attack

    out: dict = {"backend": keras.backend.backend()}
    if part == "masking":
        model, x, y = _model("mlp-quantised", cache)
        x = x[:50]
        labels = Scorer(model).predict(x)
        out["run"] = _run(model, x, clip=CLIP)
        if after:
            out["white_box"] = _white_box_levels(model, x, labels)
    elif part in ("fmn", "pgd"):
        model, x, y = _model("mlp-lpc", cache)
        x, y = x[:60], y[:60]
        scorer = Scorer(model)
        xn = np.linalg.norm(x, axis=1)
        if part == "fmn":
            for budget in (100, 200, 300, 1000):
                start = time.perf_counter()
                r = fmn_attack(scorer, x, y, norm="l2", budget=budget, clip=CLIP)
                flipped = scorer.predict(np.clip(x + r, *CLIP)) != y
                d = np.where(flipped, np.linalg.norm(r, axis=1) / xn, np.inf)
                out[f"fmn-{budget}"] = {"d": d.tolist(), "s": time.perf_counter() - start}
            out["ensemble"] = _run(model, x, y, clip=CLIP)
            if after:
                out["ddn"] = _ddn(model, x, y)
        else:
            for seed in range(5):
                run = _run(model, x, y, clip=CLIP, attacks=["pgd"], seed=seed)
                out[f"pgd-{seed}"] = run["best"]
            if after:
                for seed in range(5):
                    out[f"pgd-x-{seed}"] = _pgd_from_x(scorer, x, y, seed)
    elif part == "linf":
        rng = np.random.default_rng(0)
        w, b = rng.normal(size=(20, 10)), 0.1 * rng.normal(size=10)
        model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(10)])
        model.set_weights([w.astype("float32"), b.astype("float32")])
        x = rng.normal(size=(200, 20)).astype("float32")
        f = x.astype("float64") @ w + b
        lab = f.argmax(1)
        gap = f[np.arange(200), lab][:, None] - f
        l1 = np.abs(w[:, lab].T[:, :, None] - w[None]).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(gap > 0, gap / l1, np.inf)
        out["exact"] = (dist.min(1) / np.abs(x).max(1)).tolist()
        second = np.argsort(-f, 1)[:, 1]
        out["not_runner_up"] = float(np.mean(dist.argmin(1) != second))
        out["run"] = _run(model, x, norm="linf")
    elif part == "backends":
        model, x = _seeded_mlp()
        for norm in ("l2", "linf"):
            out[norm] = _run(model, x, norm=norm, attacks=["boundary"], clip=CLIP)["best"]
    elif part == "cost":
        for name in ("mlp", "cnn"):
            model, x, y = _model(name, cache)
            out[name] = _run(model, x[:100], y[:100], clip=CLIP)
    return out


def _ddn(model, x, y):
    """foolbox DDN 1000 steps (relative distances), or None when foolbox does not load."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from benchmarks import _foolbox

    if _foolbox.available():
        return None
    from keras_lpc.robustness import Scorer

    fb = _foolbox.load()
    attack = _foolbox.attack(lambda b: fb.attacks.DDNAttack(steps=b), "ddn", Scorer(model).fn, CLIP)
    run = _run(model, x, y, clip=CLIP, attacks=[attack], budget={"ddn": 1000})
    return np.asarray(run["best"]).tolist()


def _pgd_from_x(scorer, x, y, seed):
    """The ``pgd`` attack's radius search with every PGD run started at ``x`` (the compiled
    PGD loop of `keras_lpc.robustness.attacks`, as ``pgd_run`` would with a zero start)."""
    import numpy as np

    from keras_lpc.robustness import radius
    from keras_lpc.robustness._norms import Tracker, lp_norm
    from keras_lpc.robustness.attacks import _pgd

    def run(xs, idx, eps):
        zeros = np.zeros(xs.shape)
        size, delta, _ = _pgd(scorer, xs, y[idx], eps, zeros, norm="l2", steps=20,
                              step_size=-1.0, clip=CLIP)  # fmt: skip
        return Tracker.of(size, delta, "l2")

    best = radius.search(scorer, x.astype("float64"), y, "l2", run)
    flipped = scorer.predict(np.clip(x + best, *CLIP)) != y
    return np.where(flipped, lp_norm(best, "l2") / np.linalg.norm(x, axis=1), np.inf).tolist()
