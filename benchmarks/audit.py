"""The reproduction audit (docs/reproduction.md): every setting, several seeds, one backend.

    KERAS_BACKEND=torch python benchmarks/audit.py --seeds 3 --json audit_torch.json
    KERAS_BACKEND=jax python benchmarks/audit.py --seeds 3 --only baseline lpc --json audit_jax.json
    python benchmarks/audit.py --table audit_*.json      # the Markdown tables

Each setting is one arm of the demo (`keras_lpc.demo.train_and_measure`,
the demo's MLP, data and measurements) with some settings changed. The
DeepFool variants (top-3 candidates, on probabilities instead of logits,
only over correctly classified inputs, median, never-flipped inputs
counted out) are measured on the same models. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lpc import demo, robustness, schedules  # noqa: E402

SETTINGS: dict[str, tuple[str, dict]] = {
    "baseline": ("baseline", {}),
    "lpc": ("lpc", {}),
    "baseline, noise 0.1": ("baseline", {"augment_noise": 0.1}),
    "lpc, noise 0.1": ("lpc", {"augment_noise": 0.1}),
    "baseline, weight decay x10": ("baseline", {"weight_decay": 0.04}),
    "lpc, constant gamma 1": ("lpc", {"gamma_schedule": 1.0}),
    "lpc, max gamma 1e2": ("lpc", {"gamma_schedule": schedules.Geometric(1e-2, 1e2, 1000)}),
    "lpc, max gamma 1e4": ("lpc", {"gamma_schedule": schedules.Geometric(1e-2, 1e4, 1000)}),
    "lpc, stock AdamW (no head x10)": ("lpc", {"head_lr_multiplier": 1.0}),
    # hypotheses for the rest of the gap: convolutions, batch norm + residuals, more steps
    "baseline, cnn": ("baseline", {"architecture": "cnn"}),
    "lpc, cnn": ("lpc", {"architecture": "cnn"}),
    "baseline, cnn, noise 0.1": ("baseline", {"architecture": "cnn", "augment_noise": 0.1}),
    "lpc, cnn, noise 0.1": ("lpc", {"architecture": "cnn", "augment_noise": 0.1}),
    "baseline, resnet (BN)": ("baseline", {"architecture": "resnet"}),
    "lpc, resnet (BN)": ("lpc", {"architecture": "resnet"}),
    "baseline, resnet (BN), noise 0.1": (
        "baseline",
        {"architecture": "resnet", "augment_noise": 0.1},
    ),
    "lpc, resnet (BN), noise 0.1": ("lpc", {"architecture": "resnet", "augment_noise": 0.1}),
    "baseline, 300 epochs": ("baseline", {"epochs": 300}),
    "lpc, 300 epochs": ("lpc", {"epochs": 300}),
}

KEYS = [
    ("test_accuracy", "acc", "{:.1%}"),
    ("min_perturbation", "best verified", "{:.4f}"),
    ("deepfool", "DeepFool", "{:.4f}"),
    ("deepfool_overestimate", "DeepFool / best", "{:.2f}"),
    ("deepfool_overestimate_fraction", "DF > 1.5 x best", "{:.0%}"),
    ("pgd@0.02", "PGD acc eps 0.02", "{:.1%}"),
    ("pgd@0.05", "PGD acc eps 0.05", "{:.1%}"),
    ("apgd@0.02", "APGD-CE acc eps 0.02", "{:.1%}"),
    ("apgd@0.05", "APGD-CE acc eps 0.05", "{:.1%}"),
    ("nc1", "NC1", "{:.3f}"),
    ("separation_ratio", "separation ratio", "{:.2f}"),
    ("auroc_mahalanobis", "AUROC Maha", "{:.3f}"),
    ("noise_latent_shift", "z shift, noise", "{:.3f}"),
    ("deepfool_latent_shift", "z shift, DeepFool", "{:.3f}"),
]
VARIANTS = [
    ("deepfool", "logits, top-10, mean"),
    ("df_top3", "top-3"),
    ("df_probabilities", "softmax probabilities"),
    ("deepfool_correct", "correct inputs only"),
    ("deepfool_median", "median"),
    ("df_fooled_only", "never-flipped left out"),
    ("df_float64", "float64 (TensorFlow only)"),
]
#: Why DeepFool over-reads, measured along the best verified perturbation r*.
MECHANISM = [
    ("df_iterations", "DeepFool steps", "{:.1f}"),
    ("df_first_step", "first step / ||r*||", "{:.2f}"),
    ("df_cosine", "cos(DeepFool r, r*)", "{:.2f}"),
    ("margin_half", "margin at r*/2 / margin at x", "{:.2f}"),
    ("grad_at_boundary", "grad norm at r* / at x", "{:.2f}"),
]


class _Capture(keras.callbacks.Callback):
    """Keeps the trained model so that the DeepFool variants can run on it."""

    model_ref: keras.Model | None = None

    def on_train_end(self, logs=None):
        _Capture.model_ref = self.model


def _margin(model, x, labels):
    """``f_y - max_{j != y} f_j`` per input, on the scores the attacks use."""
    scores = robustness.Scorer(model).forward(x)
    rows = np.arange(len(x))
    own = scores[rows, labels]
    scores[rows, labels] = -np.inf
    return own - scores.max(axis=1)


def mechanism(model, xa, best, df) -> dict:
    """Along the best verified perturbation r*: DeepFool's steps, its first step and
    direction against r*, how the margin and the margin's gradient norm change."""
    ok = np.isfinite(best.per_sample) & (best.per_sample > 0) & df.fooled
    if not ok.any():
        return dict.fromkeys([k for k, *_ in MECHANISM], float("nan"))
    x, r, labels = xa[ok], best.perturbation[ok], best.labels[ok]
    flat = len(x), -1
    r_norm = np.linalg.norm(r.reshape(flat), axis=1)
    with warnings.catch_warnings():  # one step flips few inputs: expected here
        warnings.simplefilter("ignore")
        first = robustness.deepfool(model, x, max_iter=1, overshoot=0.0).perturbation
    r_df = df.perturbation[ok].reshape(flat).astype("float64")
    cos = np.sum(r_df * r.reshape(flat), axis=1) / (np.linalg.norm(r_df, axis=1) * r_norm + 1e-30)
    m0 = _margin(model, x, labels)
    half = _margin(model, (x + 0.5 * r).astype(x.dtype), labels)
    g0 = robustness.lipschitz(model, x, labels).per_sample
    g1 = robustness.lipschitz(model, (x + r).astype(x.dtype), labels).per_sample
    return {
        "df_iterations": float(df.iterations[ok].mean()),
        "df_first_step": float(np.median(np.linalg.norm(first.reshape(flat), axis=1) / r_norm)),
        "df_cosine": float(np.median(cos)),
        "margin_half": float(np.median(half / m0)),
        "grad_at_boundary": float(np.median(g1 / np.maximum(g0, 1e-30))),
    }


def run(name: str, seed: int, epochs: int, data, attack_samples: int = 300) -> dict:
    kind, overrides = SETTINGS[name]
    # the audit's reference arms train without augmentation (the demo's default has it)
    config = dataclasses.replace(
        demo.DemoConfig(epochs=epochs, verbose=0, attack_samples=attack_samples, augment_noise=0.0),
        **overrides,
    )
    # train_and_measure builds its own callbacks; fetch the model through a hook
    original = demo.training.Progress
    demo.training.Progress = lambda label, epochs: _Capture()  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        row = demo.train_and_measure(kind, seed, data, dataclasses.replace(config, verbose=1))
    finally:
        demo.training.Progress = original
    model = _Capture.model_ref
    # the inputs the demo attacked, and its DeepFool result on them
    idx, full = row.attack_idx, row.deepfool_result
    xa, ya = data.x_test[idx], data.y_test[idx]
    top3 = robustness.deepfool(model, xa, y=ya, candidates=3)
    apgd = robustness.accuracy_curve("apgd", model, xa, ya, [0.02, 0.05], steps=20)
    why = mechanism(model, xa, row.ensemble_result, full)
    # DeepFool is invariant to scaling all scores by one constant; 2 * softmax keeps the
    # library from skipping (or refusing) a plain softmax output.
    probs = keras.Sequential(
        [model, keras.layers.Activation(lambda t: 2.0 * keras.ops.softmax(t, axis=-1))]
    )
    on_probs = robustness.deepfool(probs, xa, y=ya)
    # float64: only where Keras computes it (TensorFlow); NaN elsewhere
    in_float64 = float("nan")
    if keras.backend.result_type("float64", "float64") == "float64":
        in_float64 = robustness.deepfool(robustness.cast_model(model, "float64"), xa, y=ya).score
    return {
        "setting": name,
        "seed": seed,
        "backend": keras.backend.backend(),
        **{k: v for k, v in row.to_dict().items() if k in {key for key, *_ in KEYS}},
        "pgd@0.02": row["pgd_accuracy"]["0.02"],
        "pgd@0.05": row["pgd_accuracy"]["0.05"],
        "apgd@0.02": float(apgd[0]),
        "apgd@0.05": float(apgd[1]),
        **why,
        "deepfool_correct": row["deepfool_correct"],
        "deepfool_median": row["deepfool_median"],
        "deepfool_never_flipped": row["deepfool_never_flipped"],
        "df_top3": top3.score,
        "df_probabilities": on_probs.score,
        "df_probabilities_never_flipped": int(np.sum(~on_probs.fooled)),
        "df_fooled_only": float(full.per_sample[full.fooled].mean()),
        "df_float64": in_float64,
        "final_gamma": row["final_gamma"],
        "seconds": time.perf_counter() - start,
    }


def table(paths: list[str]) -> str:
    rows = [r for p in paths for r in json.loads(Path(p).read_text())["rows"]]
    out = []
    for backend in sorted({r["backend"] for r in rows}):
        sub = [r for r in rows if r["backend"] == backend]
        names = [n for n in SETTINGS if any(r["setting"] == n for r in sub)]
        for keys, title in (
            (KEYS, "setting"),
            (VARIANTS, "DeepFool variant ->"),
            (MECHANISM, "along r* ->"),
        ):
            head = [label for _, label, *_ in keys]
            out += [f"\n**{backend}**\n", f"| {title} | seeds | " + " | ".join(head) + " |"]
            out.append("|---" * (len(head) + 2) + "|")
            for name in names:
                rs = [r for r in sub if r["setting"] == name]
                cells = []
                for key, *rest in keys:
                    fmt = rest[1] if len(rest) > 1 else "{:.4f}"
                    v = np.array([r.get(key, np.nan) for r in rs], float)
                    cells.append(f"{fmt.format(v.mean())} ± {fmt.format(v.std())}")
                out.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
        out.append(correlations(sub))
    return "\n".join(out)


def correlations(rows: list[dict]) -> str:
    """Pearson r between the separation ratio (and NC1) and DeepFool across the runs."""
    have = [r for r in rows if np.isfinite(r.get("separation_ratio", np.nan))]
    if len(have) < 3:
        return ""
    df = np.array([r["deepfool"] for r in have])
    lines = [f"\nAcross the {len(have)} runs above (every setting and seed):\n"]
    for key, label in (("separation_ratio", "separation ratio"), ("nc1", "NC1")):
        x = np.array([r[key] for r in have])
        lines.append(f"* Pearson r({label}, DeepFool) = {np.corrcoef(x, df)[0, 1]:+.2f}")
    lpc = [r for r in have if r["setting"].startswith("lpc")]
    if len(lpc) >= 3:
        x = np.array([r["separation_ratio"] for r in lpc])
        y = np.array([r["deepfool"] for r in lpc])
        lines.append(
            f"* LPC runs only ({len(lpc)}): Pearson r(separation ratio, DeepFool) = "
            f"{np.corrcoef(x, y)[0, 1]:+.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--attack-samples", type=int, default=300)
    parser.add_argument("--json", default=None)
    parser.add_argument("--table", nargs="*", default=None)
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    data = {arch: demo.load_data(demo.DemoConfig(architecture=arch)) for arch in demo.ARCHITECTURES}
    rows = []
    # seeds outermost, so that an interrupted audit still covers every setting
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in SETTINGS:
            if args.only and name not in args.only:
                continue
            arch = SETTINGS[name][1].get("architecture", "mlp")
            rows.append(run(name, seed, args.epochs, data[arch], args.attack_samples))
            print(json.dumps(rows[-1]), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
