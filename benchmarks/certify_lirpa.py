"""auto_LiRPA's CROWN beside keras-lpc's on the same torch network: a yardstick for certify_speed.

Run by `benchmarks/certify_speed.py` (``--lirpa PYTHON``) as
``PYTHON benchmarks/certify_lirpa.py MODELS_DIR N`` with ``KERAS_BACKEND=torch``:
the interpreter must have auto_LiRPA (never a keras-lpc dependency; its 2022
release 0.3 needs small patches for current torch and NumPy, see
docs/certified.md) and keras-lpc's own dependencies. For the saved demo MLP and
CNN it builds the same network in torch, checks that both give the same
logits, and on the first ``N`` digits:

* one CROWN pass at a fixed radius (the median keras-lpc certifies): seconds,
  and how the lower bounds of ``f_y - f_j`` compare (SiLU: the relaxations
  differ; the MLP with ReLU instead of SiLU, same weights: they should agree);
* the certified radius by plain bisection (16 halvings of ``[0, 2 rho]``, ``rho``
  keras-lpc's radius, one input at a time) against `certified_radius`.

Prints one line ``LIRPA {json}``. `report` formats certify_speed's section.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(python: str, models: str, n: int) -> dict | None:
    """Run this script under ``python``; its results, or None (with the reason printed)."""
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT)
    out = subprocess.run(
        [python, os.path.abspath(__file__), models, str(n)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("LIRPA ")]
    if not lines:
        print("auto_LiRPA did not run:", out.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(lines[-1][len("LIRPA ") :])


def _torch_net(model, relu: bool = False):
    """The demo model as a torch ``nn.Sequential`` (NCHW inputs), same weights."""
    import keras
    import numpy as np
    import torch
    from torch import nn

    from keras_lpc import LatentPointCollapse
    from keras_lpc._models import graph_nodes

    def act(layer):
        name = getattr(layer.activation, "__name__", "linear")
        if name == "linear":
            return []
        return [nn.ReLU() if relu else nn.SiLU()]

    def tensor(v):
        return torch.tensor(np.asarray(keras.ops.convert_to_numpy(v)), dtype=torch.float32)

    parts = []
    for node in graph_nodes(model).nodes:
        layer = node.layer
        if isinstance(layer, LatentPointCollapse):
            layer = layer.projection
        if isinstance(layer, keras.layers.Flatten):
            parts.append(nn.Flatten())
        elif isinstance(layer, keras.layers.Dense):
            lin = nn.Linear(*layer.kernel.shape)
            lin.weight.data, lin.bias.data = tensor(layer.kernel).T.contiguous(), tensor(layer.bias)
            parts += [lin, *act(layer)]
        elif isinstance(layer, keras.layers.Conv2D):
            k = layer.kernel.shape
            conv = nn.Conv2d(k[2], k[3], k[0], padding=k[0] // 2)
            conv.weight.data = tensor(layer.kernel).permute(3, 2, 0, 1).contiguous()
            conv.bias.data = tensor(layer.bias)
            parts += [conv, *act(layer)]
        elif isinstance(layer, keras.layers.MaxPooling2D):
            parts.append(nn.MaxPool2d(layer.pool_size[0]))
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            parts += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            raise ValueError(f"no torch twin for {type(layer).__name__}")
    return nn.Sequential(*parts).eval()


def _ours_bounds(model, x, eps):
    """keras-lpc's CROWN lower bounds (C, N) of ``f_y - f_j`` at radius ``eps`` (one pass)."""
    import numpy as np
    from keras import ops

    from keras_lpc import backend
    from keras_lpc.robustness.certify import _setup

    setup = _setup.Setup(model, x, None, "l2", "crown", None, None)

    def bounds(x0, labels, radius, *radii):
        spec = _setup.spec(labels, setup.graph.classes)
        c, d = setup.passes(radius, spec, x0, setup.graph.forward(x0), dict(zip(setup.ids, radii)))
        return c - radius[None] * d

    run = backend.jit(bounds, model.variables)
    radii = [setup.radii[i] for i in setup.ids]
    args = (setup.x, setup.labels.astype("int32"), np.full(len(x), eps, "float32"))
    start = time.perf_counter()
    out = ops.convert_to_numpy(run(*args, *radii))
    return out, setup.labels, time.perf_counter() - start


def main() -> None:
    import keras
    import numpy as np
    import torch
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    import keras_lpc  # noqa: F401
    from benchmarks.certify_speed import _inputs
    from keras_lpc.robustness import certified_radius

    torch.set_grad_enabled(False)
    models, n = sys.argv[1], int(sys.argv[2])
    out = {}
    for arch in ("mlp", "cnn", "mlp-relu"):
        model = keras.models.load_model(os.path.join(models, f"{arch.split('-')[0]}.keras"))
        if arch == "mlp-relu":
            model = keras.models.clone_model(model, clone_function=_with_relu, call_function=None)
            model.set_weights(
                keras.models.load_model(os.path.join(models, "mlp.keras")).get_weights()
            )
        x, _ = _inputs(n)
        net = _torch_net(model, relu=arch == "mlp-relu")
        xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
        gap = float(np.max(np.abs(net(xt).numpy() - keras.ops.convert_to_numpy(model(x)))))
        ours = certified_radius(model, x, method="crown")
        eps = float(np.median(ours.distance[ours.distance > 0]))
        labels = ours.labels
        c = torch.eye(10)[labels][:, None, :] - torch.eye(10)[None]  # (N, C, C)
        bounded = BoundedModule(net, torch.zeros_like(xt[:1]))
        ptb = PerturbationLpNorm(norm=2, eps=eps)
        start = time.perf_counter()
        lower, _ = bounded.compute_bounds(x=(BoundedTensor(xt, ptb),), C=c, method="CROWN")
        lirpa_pass = time.perf_counter() - start
        mine, _, our_pass = _ours_bounds(model, x, eps)
        lower = lower.numpy().T  # (C, N)
        own = np.eye(10, dtype=bool)[labels].T
        diff = (mine - lower)[~own] / np.maximum(np.abs(lower[~own]), 1e-6)
        # the radius by bisection, one input at a time (a scalar radius per call)
        lo, hi = np.zeros(len(x)), np.maximum(2 * ours.distance, 1e-3)
        start = time.perf_counter()
        for i in range(len(x)):
            one = BoundedTensor(xt[i : i + 1], PerturbationLpNorm(norm=2, eps=1.0))
            for _ in range(16):
                mid = 0.5 * (lo[i] + hi[i])
                one.ptb.eps = float(mid)
                low, _ = bounded.compute_bounds(x=(one,), C=c[i : i + 1], method="CROWN")
                low = np.delete(low.numpy()[0], labels[i])
                lo[i], hi[i] = (mid, hi[i]) if low.min() > 0 else (lo[i], mid)
        lirpa_radius_time = time.perf_counter() - start
        keep = (lo > 0) & (ours.distance > 0)
        out[arch] = {
            "logit_gap": gap,
            "inputs": len(x),
            "eps": eps,
            "lirpa_pass_s": lirpa_pass,
            "ours_pass_s": our_pass,
            "bound_rel_diff_median": float(np.median(diff)),
            "bound_rel_diff_max_abs": float(np.max(np.abs(diff))),
            "lirpa_radius_s": lirpa_radius_time,
            "ours_radius_s": ours.seconds,
            "radius_ratio_median": float(np.median(ours.distance[keep] / lo[keep])),
        }
        print(json.dumps({arch: out[arch]}), file=sys.stderr, flush=True)
    print("LIRPA " + json.dumps(out))


def _with_relu(layer):

    config = layer.get_config()
    if config.get("activation") == "silu":
        config["activation"] = "relu"
    return layer.__class__.from_config(config)


def report(args, accuracy, rows, ref, lirpa, machine: str, table) -> str:
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
    if lirpa is None:
        lines.append("auto_LiRPA: not run (no `--lirpa` interpreter, or it failed).")
    else:
        lines += [
            "auto_LiRPA 0.3 (patched for torch 2.13 / NumPy 2; torch, CPU) on the same network:",
            "one CROWN pass at the median certified radius, and the radius by 16-pass bisection;",
            "`bound diff`: (library - auto_LiRPA) / |auto_LiRPA| of the lower bounds of",
            "f_y - f_j (positive: the library's are tighter).",
            "",
            table(
                [
                    "model",
                    "inputs",
                    "logit gap",
                    "auto_LiRPA pass s",
                    "library pass s",
                    "bound diff median",
                    "bound diff max |.|",
                    "auto_LiRPA radius s",
                    "library radius s",
                    "library / auto_LiRPA radius",
                ],
                [
                    [
                        k,
                        v["inputs"],
                        v["logit_gap"],
                        v["lirpa_pass_s"],
                        v["ours_pass_s"],
                        v["bound_rel_diff_median"],
                        v["bound_rel_diff_max_abs"],
                        v["lirpa_radius_s"],
                        v["ours_radius_s"],
                        v["radius_ratio_median"],
                    ]
                    for k, v in lirpa.items()
                ],
            ),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
