"""A suite of tasks of different difficulty for the gamma pacing (issue 19, docs/recipe.md).

Every task trains the same network three or more ways, with a stock
``compile("adamw")`` at the task's learning rate and batch size:

* ``baseline``: the network with its `LatentPointCollapse` layer held at gamma = 0;
* ``clock``: the quadratic ramp paced by the clock (``GammaAnnealing`` before issue 19);
* ``default``: ``GammaAnnealing()`` of this checkout;
* prototype rules (``--arms``), defined below.

For every run it records the test accuracy, the final-epoch training
accuracy (the running mean Keras logs over the last epoch), NC1 of the
training latents (true labels) and of the test latents (predicted labels),
the final gamma and, with ``--deepfool``, the DeepFool score on 200 test
inputs. Runs are cached in a JSON file (``--cache``), so a rerun only trains
what is missing. The tasks are split into a tuning half (the rule was chosen
on it) and a held-out half (run once, after the choice).

    KERAS_BACKEND=jax python benchmarks/recipe_suite.py --half tuning --seeds 0
    KERAS_BACKEND=jax python benchmarks/recipe_suite.py --half heldout --seeds 0 1 2 --write
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's keras_lpc

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lpc  # noqa: E402
from keras_lpc import datasets  # noqa: E402
from keras_lpc import latents_and_outputs as collect  # noqa: E402
from keras_lpc.annealing import TrainingPace  # noqa: E402
from keras_lpc.metrics import nc1  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "recipe.md"
CACHE = ROOT / "benchmarks" / "recipe_suite.json"


# ---------------------------------------------------------------------- data
def shifted_motifs(
    n: int,
    classes: int,
    length: int = 64,
    motif: int = 8,
    amplitude: float = 1.0,
    noise: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """1-D signals: white noise plus the class's motif at a uniformly random position.

    ``x[i] = noise * e_i + amplitude * shift(m_{y_i}, p_i)`` with ``e ~ N(0, I)``,
    ``m_c`` a fixed unit-variance random motif of ``motif`` samples per class and
    ``p_i`` uniform in ``[0, length - motif]``. Only translation-invariant
    features solve it, so a convolution with global pooling beats an MLP.
    Returns float32 ``(n, length, 1)`` and int64 labels.
    """
    rng = np.random.default_rng(seed)
    motifs = rng.standard_normal((classes, motif)).astype(np.float32)
    motifs /= motifs.std(axis=1, keepdims=True)
    y = rng.permutation(np.arange(n) % classes).astype(np.int64)
    x = noise * rng.standard_normal((n, length)).astype(np.float32)
    pos = rng.integers(0, length - motif + 1, n)
    cols = pos[:, None] + np.arange(motif)[None, :]
    x[np.arange(n)[:, None], cols] += amplitude * motifs[y]
    return x[..., None], y


def clusters(n: int, d: int, classes: int, noise: float, label_noise: float, seed: int = 0):
    """Hypercube clusters (`keras_lpc.datasets`), a fraction of labels redrawn at random."""
    data = datasets.make_hypercube_clusters(n=n, d=d, classes=classes, noise=noise, seed=seed)
    y = data.y.copy()
    if label_noise > 0:
        rng = np.random.default_rng(seed + 1)
        flip = rng.random(n) < label_noise
        y[flip] = rng.integers(0, classes, int(flip.sum()))
    return data.x, y


def split(x, y, n_test, seed=0):
    order = np.random.default_rng(seed).permutation(len(x))
    te, tr = order[:n_test], order[n_test:]
    return datasets.Split(x[tr], y[tr], x[te], y[te])


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    half: str  # "tuning" or "heldout"
    data: str
    trunk: str  # "mlp", "cnn2d", "cnn1d"
    epochs: int
    batch_size: int
    lr: float
    dim: int = 16


TASKS = [
    Task("digits-mlp-50", "tuning", "digits", "mlp", 50, 32, 1e-3),
    Task("digits-mlp-100", "tuning", "digits", "mlp", 100, 32, 1e-3),  # the design card
    Task("digits-cnn-30", "tuning", "digits-images", "cnn2d", 30, 128, 1e-3),
    Task("motif-cnn-30", "tuning", "motif10", "cnn1d", 30, 32, 1e-3),
    Task("clusters-lowsnr-50", "tuning", "clusters-lowsnr", "mlp", 50, 128, 3e-4),
    Task("digits-mlp-15", "heldout", "digits", "mlp", 15, 128, 3e-4),
    Task("motif-cnn-b128-40", "heldout", "motif20", "cnn1d", 40, 128, 1e-3),
    Task("clusters-labelnoise-50", "heldout", "clusters-labelnoise", "mlp", 50, 32, 1e-3),
    Task("digits-cnn-15", "heldout", "digits-images", "cnn2d", 15, 32, 3e-4),
    Task("clusters-lowsnr-150", "heldout", "clusters-lowsnr", "mlp", 150, 32, 1e-3),
]


def load(name: str) -> datasets.Split:
    if name == "digits":
        return datasets.load_digits()
    if name == "digits-images":
        return datasets.load_digits(as_images=True)
    if name == "motif10":  # 10 classes, 4,000 training samples, as in issue 19
        x, y = shifted_motifs(5000, 10, amplitude=1.2, noise=1.0, seed=0)
        return split(x, y, 1000)
    if name == "motif20":
        x, y = shifted_motifs(4000, 20, amplitude=1.5, noise=1.0, seed=3)
        return split(x, y, 1000)
    if name == "clusters-lowsnr":  # 20 classes in 32-d, noise 1.2 (centres 2 apart at least)
        x, y = clusters(4000, 32, 20, 1.2, 0.0, seed=1)
        return split(x, y, 1000)
    if name == "clusters-labelnoise":  # 10 classes, 20 % of the labels redrawn
        x, y = clusters(3000, 16, 10, 0.6, 0.2, seed=2)
        return split(x, y, 1000)
    raise ValueError(name)


def build(task: Task, data: datasets.Split, classes: int) -> keras.Model:
    layers = keras.layers
    inputs = keras.Input(data.x_train.shape[1:])
    x = inputs
    if task.trunk == "mlp":
        x = layers.Flatten()(x) if len(x.shape) > 2 else x
        x = layers.Dense(256, activation="silu")(x)
        x = layers.Dense(256, activation="silu")(x)
    elif task.trunk == "cnn2d":  # the demo's CNN
        for filters in (32, 64):
            x = layers.Conv2D(filters, 3, padding="same", activation="silu")(x)
            x = layers.Conv2D(filters, 3, padding="same", activation="silu")(x)
            x = layers.MaxPooling2D(2)(x) if filters == 32 else x
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(256, activation="silu")(x)
    else:  # cnn1d: the same shape in 1-D, max-pooled so a motif anywhere is seen
        for filters in (32, 64):
            x = layers.Conv1D(filters, 5, padding="same", activation="silu")(x)
            x = layers.Conv1D(filters, 5, padding="same", activation="silu")(x)
            x = layers.MaxPooling1D(2)(x) if filters == 32 else x
        x = layers.GlobalMaxPooling1D()(x)
        x = layers.Dense(256, activation="silu")(x)
    z = keras_lpc.LatentPointCollapse(task.dim, name="lpc")(x)
    return keras.Model(inputs, layers.Dense(classes, name="head")(z))


# ---------------------------------------------------------------------- arms
# The prototypes were first run (the cached rows) as a subclass of the callback before
# issue 19, assigning gamma from Python per batch; they are the same rules on the
# library's TrainingPace now, without the Hold policy the library's default adds
# (the default combines both: the smaller rate).
def _prototype(pace: dict[str, float], **kwargs: Any) -> keras_lpc.GammaAnnealing:
    kwargs.setdefault("ramp_fraction", 0.7)
    return keras_lpc.GammaAnnealing(policy=TrainingPace(**pace), **kwargs)


PROTOTYPES: dict[str, dict[str, Any]] = {
    "trend": {"pace": {"fast": 0.2, "floor": 0.01}},
    "trend-1e3": {"pace": {"fast": 0.2, "floor": 0.01}, "max_gamma": 1e3},
    "slow": {"pace": {"fast": 0.05, "floor": 0.05}},
    "slow-r6": {"pace": {"fast": 0.05, "floor": 0.05}, "ramp_fraction": 0.6},
}


def arm_callback(arm: str) -> keras.callbacks.Callback | None:
    if arm == "baseline":
        return None
    if arm == "default":
        return keras_lpc.GammaAnnealing()
    if arm == "clock":  # the default before issue 19: the quadratic ramp paced by the clock
        return keras_lpc.GammaAnnealing(policy=keras_lpc.annealing.Hold())
    if arm in PROTOTYPES:
        return _prototype(**PROTOTYPES[arm])
    raise ValueError(f"unknown arm {arm!r}")


ARMS = ("baseline", "clock", "default")


# ---------------------------------------------------------------------- runs
class _Timer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.time() - self._t)


def run(task: Task, arm: str, seed: int, deepfool: bool, robust: int = 0) -> dict[str, Any]:
    data = load(task.data)
    classes = int(max(data.y_train.max(), data.y_test.max()) + 1)
    keras.utils.set_random_seed(seed)
    model = build(task, data, classes)
    model.compile(
        keras.optimizers.AdamW(task.lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callback = arm_callback(arm)
    t0 = time.time()
    timer = _Timer()
    history = model.fit(
        data.x_train,
        data.y_train,
        epochs=task.epochs,
        batch_size=task.batch_size,
        verbose=0,
        callbacks=[timer] if callback is None else [callback, timer],
    ).history
    seconds = time.time() - t0
    t1 = time.time()
    z_te, out_te = collect(model, data.x_test)
    z_tr, out_tr = collect(model, data.x_train)
    pred_te = out_te.argmax(1)
    row = {
        "task": task.name,
        "arm": arm,
        "seed": seed,
        "backend": keras.backend.backend(),
        "test_acc": float(np.mean(pred_te == data.y_test)),
        "train_acc": float(history["accuracy"][-1]),
        "train_acc_eval": float(np.mean(out_tr.argmax(1) == data.y_train)),
        "nc1_test": float(nc1(z_te, pred_te)),
        "nc1_train": float(nc1(z_tr, data.y_train)),
        "gamma": float(history.get("gamma", [0.0])[-1]),
        "gamma_trace": [float(g) for g in history.get("gamma", [])],
        "acc_trace": [round(float(a), 4) for a in history["accuracy"]],
        "rate_trace": [1.0 - float(h) for h in history.get("gamma_holding", [])],
        "seconds": seconds,
        "epoch_seconds": float(np.median(timer.times)),
        "measure_seconds": time.time() - t1,
    }
    if deepfool:
        from keras_lpc.robustness import deepfool as _deepfool

        res = _deepfool(model, data.x_test[:200], y=data.y_test[:200])
        row["deepfool"] = float(res.score)
    if robust:
        from keras_lpc.robustness import deepfool as _deepfool
        from keras_lpc.robustness import minimal_perturbation

        # the verified ensemble (DeepFool, FMN, PGD, the gradient-free boundary attack),
        # mean ||r|| / ||x|| over correctly classified test inputs (y given: the
        # misclassified ones count 0 and are left out here), DeepFool beside it
        xs, ys = data.x_test[:robust], data.y_test[:robust]
        t2 = time.time()
        df = _deepfool(model, xs)
        res = minimal_perturbation(model, xs, ys, verbose=0, deepfool_result=df)
        ok = res.per_sample > 0
        row["robust"] = float(np.mean(res.per_sample[ok & np.isfinite(res.per_sample)]))
        row["robust_deepfool"] = float(np.mean(df.per_sample[ok & df.fooled]))
        row["robust_n"] = int(ok.sum())
        row["robust_seconds"] = time.time() - t2
    return row


def key(row_or_task, arm=None, seed=None, backend=None) -> str:
    if isinstance(row_or_task, dict):
        r = row_or_task
        return f"{r['backend']}|{r['task']}|{r['arm']}|{r['seed']}"
    return f"{backend}|{row_or_task}|{arm}|{seed}"


def load_cache(path: Path) -> dict[str, dict]:
    if path.exists():
        return {key(r): r for r in json.loads(path.read_text())}
    return {}


def save_cache(path: Path, cache: dict[str, dict]) -> None:
    path.write_text(json.dumps(sorted(cache.values(), key=key), indent=0))


# ---------------------------------------------------------------------- report
def verdicts(lpc: dict, base: dict) -> dict[str, bool]:
    return {
        "test": lpc["test_acc"] >= base["test_acc"] - 0.005,
        "train": lpc["train_acc"] >= base["train_acc"] - 0.01,
        "nc1": lpc["nc1_test"] <= 0.3 * base["nc1_test"],
        "gamma": lpc["gamma"] >= 1e3 - 1e-6,
    }


def report(cache: dict[str, dict], arms: list[str]) -> str:
    rows = []
    for r in sorted(
        cache.values(),
        key=lambda r: (r["backend"], TASK_ORDER.get(r["task"], 99), r["seed"], r["arm"]),
    ):
        if r["arm"] == "baseline" or r["arm"] not in arms:
            continue
        base = cache.get(key(r["task"], "baseline", r["seed"], r["backend"]))
        if base is None:
            continue
        v = verdicts(r, base)
        half = TASKS_BY_NAME[r["task"]].half if r["task"] in TASKS_BY_NAME else "?"
        rows.append(
            "| {} | {} | {} | {} | {} | {:.1f} → {:.1f}{} | {:.1f} → {:.1f}{} | {:.3f} / {:.3f}{} "
            "| {:.3f} | {:.3g}{} | {:.3g} | {} |".format(
                half,
                r["task"],
                r["backend"],
                r["seed"],
                r["arm"],
                100 * base["test_acc"],
                100 * r["test_acc"],
                "" if v["test"] else " ✗",
                100 * base["train_acc"],
                100 * r["train_acc"],
                "" if v["train"] else " ✗",
                r["nc1_test"],
                base["nc1_test"],
                "" if v["nc1"] else " ✗",
                r["nc1_train"],
                r["gamma"],
                "" if v["gamma"] else " ✗",
                budget(TASKS_BY_NAME[r["task"]]) if r["task"] in TASKS_BY_NAME else math.nan,
                _df(r, base),
            )
        )
    header = (
        "| half | task | backend | seed | rule | test acc % (baseline → LPC) "
        "| final train acc % | test NC1 LPC / baseline | train NC1 | final gamma "
        "| budget | best verified ‖r‖/‖x‖ LPC / baseline (DeepFool) |"
        "\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    return summary(cache, arms) + "\n\n" + header + "\n" + "\n".join(rows)


def budget(task: Task) -> float:
    """The default's maximum for this run: 1e3 or `gamma_budget` when lower."""
    n_train = len(load(task.data).y_train)
    steps = math.ceil(n_train / task.batch_size) * task.epochs
    return min(1e3, keras_lpc.callbacks.gamma_budget(steps, task.lr))


def summary(cache: dict[str, dict], arms: list[str]) -> str:
    """Per half, rule and backend: how many runs meet each target of issue 19."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r in cache.values():
        base = cache.get(key(r["task"], "baseline", r["seed"], r["backend"]))
        if r["arm"] == "baseline" or r["arm"] not in arms or base is None:
            continue
        half = TASKS_BY_NAME[r["task"]].half if r["task"] in TASKS_BY_NAME else "?"
        c = counts.setdefault(
            (half, r["arm"], r["backend"]),
            dict.fromkeys(("runs", "test", "train", "nc1", "gamma", "allowed"), 0),
        )
        c["runs"] += 1
        for name, ok in verdicts(r, base).items():
            c[name] += int(ok)
        c["allowed"] += int(budget(TASKS_BY_NAME[r["task"]]) >= 1e3 - 1e-6)
    lines = [
        "| half | rule | backend | runs | test acc >= baseline - 0.5 pp | final train acc >= baseline - 1 pp "
        "| test NC1 <= 0.3 x baseline | gamma >= 1e3 (runs whose budget allows 1e3) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {"jax": 0, "torch": 1, "tensorflow": 2}
    for (half, arm, name), c in sorted(
        counts.items(), key=lambda kv: (kv[0][0] != "tuning", kv[0][1], order.get(kv[0][2], 3))
    ):
        lines.append(
            f"| {half} | {arm} | {name} | {c['runs']} | {c['test']} | {c['train']} | {c['nc1']} "
            f"| {c['gamma']} ({c['allowed']}) |"
        )
    return "\n".join(lines)


def _df(r, base):
    if "robust" in r and "robust" in base:
        return (
            f"{r['robust']:.3f} / {base['robust']:.3f} (DeepFool "
            f"{r['robust_deepfool']:.3f} / {base['robust_deepfool']:.3f})"
        )
    if "deepfool" in r and "deepfool" in base:
        return f"{r['deepfool']:.3f} / {base['deepfool']:.3f}"
    return ""


TASK_ORDER = {t.name: i for i, t in enumerate(TASKS)}
TASKS_BY_NAME = {t.name: t for t in TASKS}
BEGIN, END = "<!-- BEGIN recipe_suite -->", "<!-- END recipe_suite -->"


def write_doc(body: str) -> None:
    text = DOC.read_text()
    block = f"{BEGIN}\n{body.strip()}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        marker = "\n## Per-layer learning rates"
        text = text.replace(marker, "\n" + block + "\n" + marker, 1)
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=None, help="task names (default: all)")
    parser.add_argument("--half", choices=("tuning", "heldout", "all"), default="all")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--arms", nargs="*", default=list(ARMS))
    parser.add_argument("--deepfool", action="store_true")
    parser.add_argument(
        "--robust",
        type=int,
        default=0,
        help="test inputs for the verified attack ensemble (0: off); reruns cached rows without it",
    )
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--write", action="store_true", help="write the table into docs/recipe.md")
    parser.add_argument("--dry", action="store_true", help="only print the cached table")
    args = parser.parse_args()
    cache_path = Path(args.cache)
    cache = load_cache(cache_path)
    backend = keras.backend.backend()
    tasks = [
        t
        for t in TASKS
        if (args.tasks is None or t.name in args.tasks)
        and (args.half == "all" or t.half == args.half)
    ]
    for task in tasks if not args.dry else []:
        for seed in args.seeds:
            for arm in ["baseline", *[a for a in args.arms if a != "baseline"]]:
                cached = cache.get(key(task.name, arm, seed, backend))
                if cached is not None and (not args.robust or "robust" in cached):
                    continue
                row = run(task, arm, seed, args.deepfool, args.robust)
                cache[key(row)] = row
                save_cache(cache_path, cache)
                print(
                    f"{task.name:24s} {arm:10s} s{seed} test {row['test_acc']:.3f} "
                    f"train {row['train_acc']:.3f} nc1 {row['nc1_test']:.3f}/"
                    f"{row['nc1_train']:.3f} gamma {row['gamma']:.4g} {row['seconds']:.0f}s",
                    flush=True,
                )
    table = report(cache, args.arms)
    print(table)
    if args.write:
        write_doc(table)


if __name__ == "__main__":
    main()
