"""Does LPC offer guarantees? The bracket (certified <= true minimum <= found) per arm.

    KERAS_BACKEND=jax python benchmarks/certified_study.py --seeds 3 --json study_jax.json
    python benchmarks/certified_study.py --table study_jax.json study_torch.json

Each arm is the demo's MLP (`keras_lpc.demo.train` and `measure`: the demo's data,
optimizer, head learning-rate multiplier and measurements) with some settings
changed; ``augment_noise`` is 0 unless the arm says otherwise. Per arm and seed, on
the same ``--attack-samples`` test inputs: the test accuracy, the certified L2
radius by CROWN (or IBP, ``--certify ibp``, for models CROWN is too slow on) and by
the global Lipschitz bound, the verified attack ensemble's
distance (median of ``||r|| / ||x||``), their per-input ratio (median), and the
head's spectral norm. ``lpc, head MaxNorm`` bounds every column of the head's
kernel to norm ``--head-norm`` (`keras.constraints.MaxNorm`): LPC's latents shrink
like ``1/sqrt(gamma)``, so an unconstrained head grows to keep the margins, and with
it the Lipschitz constant that the certificates pay for. Writes section
``certified-study`` of docs/benchmarks.md (``--no-write``: print only).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lpc import demo, robustness  # noqa: E402
from keras_lpc.demo import training  # noqa: E402

ARMS: dict[str, tuple[str, dict]] = {
    "baseline": ("baseline", {}),
    "baseline, weight decay x10": ("baseline", {"weight_decay": 0.04}),
    "lpc": ("lpc", {}),
    "baseline, noise 0.1": ("baseline", {"augment_noise": 0.1}),
    "lpc, noise 0.1": ("lpc", {"augment_noise": 0.1}),
    "lpc, head MaxNorm": ("lpc", {"head_norm": True}),
}
KEYS = [
    ("test_accuracy", "accuracy", "{:.1%}"),
    ("crown", "certified CROWN (median)", "{:.3g}"),
    ("ibp", "certified IBP (median)", "{:.3g}"),
    ("lipschitz", "certified Lipschitz (median)", "{:.3g}"),
    ("found", "verified found (median)", "{:.3g}"),
    ("ratio", "certified / found (median)", "{:.3g}"),
    ("head_norm", "head spectral norm", "{:.3g}"),
    ("final_gamma", "final gamma", "{:.3g}"),
]


def _bounded_builder(limit: float):
    """`build_model` whose head kernel columns are held to norm ``limit``."""
    original = training.build_model

    def build(*args, **kwargs):
        model = original(*args, **kwargs)
        head = model.get_layer("head")
        head.kernel_constraint = keras.constraints.MaxNorm(limit, axis=0)
        head.kernel.constraint = head.kernel_constraint  # the optimizer reads the variable's
        return model

    return build


def run_arm(name: str, seed: int, data, args) -> dict:
    kind, changes = ARMS[name]
    changes = dict(changes)
    bounded = changes.pop("head_norm", False)
    settings = {
        "epochs": args.epochs,
        "augment_noise": 0.0,
        "attack_samples": args.attack_samples,
        "robustness_every": args.epochs,
        "verbose": 0,
        "architecture": args.architecture,
        "certify": args.certify,
    }
    config = demo.DemoConfig(**{**settings, **changes})
    original = training.build_model
    if bounded:
        training.build_model = _bounded_builder(args.head_norm)
    try:
        start = time.perf_counter()
        arm = training.train(kind, seed, data, config)
        trained = time.perf_counter() - start
    finally:
        training.build_model = original
    result = demo.measure(arm, data, config)  # the ensemble and CROWN (the demo's default)
    xa = data.x_test[arm.attack_idx]
    lip = robustness.certified_radius(arm.model, xa, method="lipschitz")
    head = keras.ops.convert_to_numpy(arm.model.get_layer("head").kernel)
    return {
        "arm": name,
        "seed": seed,
        "backend": keras.backend.backend(),
        "architecture": args.architecture,
        "test_accuracy": result.test_accuracy,
        args.certify: result.certified_radius_median,
        "lipschitz": float(np.median(lip.per_sample)),
        "found": result.min_perturbation_median,
        "ratio": result.bracket_ratio,
        "head_norm": float(np.linalg.norm(head, 2)),
        "final_gamma": result.final_gamma,
        "train_seconds": trained,
        f"{args.certify}_seconds": result.certified_result.seconds,
        "ensemble_seconds": float(sum(result.ensemble_result.seconds.values())),
    }


def summarize(rows: list[dict]) -> str:
    """The Markdown table: mean ± std over seeds per arm and backend, and LPC / baseline."""
    header = ["model", "arm", "backend", "seeds"] + [label for _, label, _ in KEYS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        key = (row.get("architecture", "mlp"), row["arm"], row["backend"])
        groups.setdefault(key, []).append(row)
    for (model, arm, backend), kept in groups.items():
        cells = [model, arm, backend, str(len(kept))]
        for key, _, fmt in KEYS:
            values = np.array([r.get(key, np.nan) for r in kept], dtype=float)
            if np.isnan(values).all():
                cells.append("–")
                continue
            cell = fmt.format(values.mean())
            if len(values) > 1:
                cell += " ± " + fmt.format(values.std())
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    ratios = []
    for model, backend in sorted({(r.get("architecture", "mlp"), r["backend"]) for r in rows}):
        same = [
            r for r in rows if r.get("architecture", "mlp") == model and r["backend"] == backend
        ]
        base = [r for r in same if r["arm"] == "baseline"]
        if not base:
            continue
        for arm in ARMS:
            kept = [r for r in same if r["arm"] == arm]
            if arm == "baseline" or not kept:
                continue
            parts = []
            for key in ("crown", "ibp", "lipschitz", "found", "test_accuracy"):
                if key not in base[0] or key not in kept[0]:
                    continue
                b = np.mean([r[key] for r in base])
                parts.append(f"{key} x{np.mean([r[key] for r in kept]) / b:.2f}")
            ratios.append(f"* {model}, {backend}, {arm} / baseline: " + ", ".join(parts))
    return "\n".join(lines) + "\n\n" + "\n".join(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--certify", default="crown", choices=["crown", "ibp"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--attack-samples", type=int, default=200)
    parser.add_argument("--head-norm", type=float, default=1.0)
    parser.add_argument("--architecture", default="mlp", choices=["mlp", "cnn", "resnet"])
    parser.add_argument("--only", nargs="*", default=None, choices=list(ARMS))
    parser.add_argument("--json", default=None, help="append the rows to this file")
    parser.add_argument("--table", nargs="*", default=None, help="tabulate these JSON files")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.table:
        rows = [row for f in args.table for row in json.loads(Path(f).read_text())]
    else:
        data = demo.load_data(demo.DemoConfig(architecture=args.architecture))
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name in args.only or ARMS:
                row = run_arm(name, seed, data, args)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps(rows, indent=1))
    body = summarize(rows)
    print(body)
    if not args.no_write:
        from benchmarks._report import machine, update_section

        note = (
            "`benchmarks/certified_study.py`: the demo's models on digits, "
            f"{args.epochs} epochs, {args.attack_samples} test inputs, L2; radii relative "
            f"to the input (`||r|| / ||x||`), medians over inputs, mean ± std over seeds. "
            f"{machine()}.\n\n"
        )
        update_section("certified-study", note + body)


if __name__ == "__main__":
    main()
