"""auto_LiRPA's CROWN beside keras-lpc's on the same torch network: a yardstick for certify_speed.

Run by `benchmarks/certify_speed.py` (``--lirpa PYTHON``) as
``PYTHON benchmarks/certify_lirpa.py MODELS_DIR N_MLP N_CNN`` with ``KERAS_BACKEND=torch``:
the interpreter must have auto_LiRPA (never a keras-lpc dependency; its 2022
release 0.3 needs small patches for current torch and NumPy, see
docs/certified.md) and keras-lpc's own dependencies. For the saved demo MLP and
CNN it builds the same network in torch, checks that both give the same
logits, and on the first ``N_MLP`` / ``N_CNN`` digits:

* one CROWN pass at a fixed radius (the median keras-lpc certifies): seconds,
  and how the lower bounds of ``f_y - f_j`` compare (SiLU: the relaxations
  differ; the MLP with ReLU instead of SiLU, same weights: they should agree up
  to the library's float32 rounding margins, and in float64 auto_LiRPA should
  equal the NumPy reference CROWN of tests/_certify_reference.py);
* the certified radius by plain bisection (16 halvings of ``[0, 2 rho]``, ``rho``
  keras-lpc's radius, one input at a time) against `certified_radius`.

Both run with one intra-op torch thread. Prints one line ``LIRPA {json}``.
`report_lirpa` formats section ``certify-lirpa`` of docs/benchmarks.md.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(python: str, models: str, n_mlp: int, n_cnn: int) -> dict | None:
    """Run this script under ``python``; its results, or None (with the reason printed)."""
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT)
    out = subprocess.run(
        [python, os.path.abspath(__file__), models, str(n_mlp), str(n_cnn)],
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
    """keras-lpc's CROWN lower bounds (C, N) of ``f_y - f_j`` at radius ``eps`` (one pass),
    and the seconds of a second call (the first compiles)."""
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
    run(*args, *radii)  # warm-up: traces / compiles
    start = time.perf_counter()
    out = ops.convert_to_numpy(run(*args, *radii))
    return out, time.perf_counter() - start


def _lirpa_bounds(bounded, xt, c, eps):
    """auto_LiRPA's CROWN lower bounds (C, N) of ``C f`` at the scalar radius ``eps`` (L2),
    and the seconds of a second call."""
    from auto_LiRPA import BoundedTensor, PerturbationLpNorm

    def call():
        ptb = PerturbationLpNorm(norm=2, eps=eps)
        lower, _ = bounded.compute_bounds(x=(BoundedTensor(xt, ptb),), C=c, method="CROWN")
        return lower

    call()
    start = time.perf_counter()
    lower = call()
    return lower.numpy().T, time.perf_counter() - start


def _lirpa_radius(bounded, xt, c, labels, hi):
    """The largest L2 radius auto_LiRPA's CROWN certifies, per input: 16 halvings of
    ``[0, hi]``, one input and one scalar radius per call."""
    import numpy as np
    from auto_LiRPA import BoundedTensor, PerturbationLpNorm

    lo, hi = np.zeros(len(xt)), np.array(hi, "float64")
    for i in range(len(xt)):
        one = BoundedTensor(xt[i : i + 1], PerturbationLpNorm(norm=2, eps=1.0))
        for _ in range(16):
            mid = 0.5 * (lo[i] + hi[i])
            one.ptb.eps = float(mid)
            low, _ = bounded.compute_bounds(x=(one,), C=c[i : i + 1], method="CROWN")
            low = np.delete(low.numpy()[0], labels[i])
            lo[i], hi[i] = (mid, hi[i]) if low.min() > 0 else (lo[i], mid)
    return lo


def _float64_check(model, net, x, labels, eps, count):
    """max |auto_LiRPA - NumPy reference| of the float64 CROWN lower bounds on ``count``
    inputs (the reference: tests/_certify_reference.py), and the largest |bound|."""
    import _certify_reference as reference
    import numpy as np
    import torch
    from auto_LiRPA import BoundedModule

    layers, _ = reference.layers_of(model)
    xt = torch.tensor(x[:count], dtype=torch.float64).permute(0, 3, 1, 2).contiguous()
    net64 = copy.deepcopy(net).double()
    c = (torch.eye(10)[labels[:count]][:, None, :] - torch.eye(10)[None]).double()
    bounded = BoundedModule(net64, torch.zeros_like(xt[:1]), bound_opts={"conv_mode": "matrix"})
    theirs, _ = _lirpa_bounds(bounded, xt, c, eps)
    ref = np.stack(
        [
            reference.lower_bounds(
                layers, x[i].reshape(-1).astype("float64"), c[i].numpy(), eps, "l2"
            )
            for i in range(count)
        ],
        axis=1,
    )
    return float(np.max(np.abs(ref - theirs))), float(np.max(np.abs(theirs)))


def main() -> None:
    import auto_LiRPA
    import keras
    import numpy as np
    import torch
    from auto_LiRPA import BoundedModule

    import keras_lpc  # noqa: F401
    from benchmarks._report import machine
    from benchmarks.certify_speed import _inputs
    from keras_lpc.robustness import certified_radius

    torch.set_grad_enabled(False)
    # one intra-op thread for both (keras-lpc's policy inside its loops on torch), so
    # neither is slowed by thread contention on a shared machine
    torch.set_num_threads(1)
    models, sizes = sys.argv[1], {"mlp": int(sys.argv[2]), "cnn": int(sys.argv[3])}
    out = {"versions": f"auto_LiRPA {auto_LiRPA.__version__}", "machine": machine()}
    load = os.getloadavg()[0]
    for arch in ("mlp", "mlp-relu", "cnn"):
        model = keras.models.load_model(os.path.join(models, f"{arch.split('-')[0]}.keras"))
        if arch == "mlp-relu":
            model = keras.models.clone_model(model, clone_function=_with_relu, call_function=None)
            model.set_weights(
                keras.models.load_model(os.path.join(models, "mlp.keras")).get_weights()
            )
        x, _ = _inputs(sizes[arch.split("-")[0]])
        net = _torch_net(model, relu=arch == "mlp-relu")
        xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
        gap = float(np.max(np.abs(net(xt).numpy() - keras.ops.convert_to_numpy(model(x)))))
        certified_radius(model, x, method="crown")  # warm-up: compiles
        ours = certified_radius(model, x, method="crown")
        eps = float(np.median(ours.distance[ours.distance > 0]))
        labels = ours.labels
        c = torch.eye(10)[labels][:, None, :] - torch.eye(10)[None]  # (N, C, C)
        # auto_LiRPA's default "patches" mode fails on the CNN's SiLU (a product x *
        # sigmoid(x) of two bounded tensors); dense matrices handle it
        bounded = BoundedModule(net, torch.zeros_like(xt[:1]), bound_opts={"conv_mode": "matrix"})
        lower, lirpa_pass = _lirpa_bounds(bounded, xt, c, eps)
        mine, our_pass = _ours_bounds(model, x, eps)
        other = ~np.eye(10, dtype=bool)[labels].T
        diff = (mine - lower)[other]
        scale = np.abs(lower[other])
        start = time.perf_counter()
        lo = _lirpa_radius(bounded, xt, c, labels, np.maximum(2 * ours.distance, 1e-3))
        lirpa_radius_time = time.perf_counter() - start
        keep = (lo > 0) & (ours.distance > 0)
        out[arch] = {
            "logit_gap": gap,
            "inputs": len(x),
            "eps": eps,
            "lirpa_pass_s": lirpa_pass,
            "ours_pass_s": our_pass,
            "bound_diff_max_abs": float(np.max(np.abs(diff))),
            "bound_scale_max": float(np.max(scale)),
            "bound_rel_diff_median": float(np.median(diff / np.maximum(scale, 1e-6))),
            "ours_tighter_share": float(np.mean(diff > 0)),
            "lirpa_radius_s": lirpa_radius_time,
            "ours_radius_s": ours.seconds,
            "passes": int(ours.passes),
            "radius_ratio_median": float(np.median(ours.distance[keep] / lo[keep])),
            "radius_ratio_min": float(np.min(ours.distance[keep] / lo[keep])),
            "radius_ratio_max": float(np.max(ours.distance[keep] / lo[keep])),
        }
        if arch == "mlp-relu":
            gap64, scale64 = _float64_check(model, net, x, labels, eps, min(len(x), 20))
            out[arch] |= {
                "float64_diff_max_abs": gap64,
                "float64_scale_max": scale64,
                "float64_inputs": min(len(x), 20),
            }
        print(json.dumps({arch: out[arch]}), file=sys.stderr, flush=True)
    out["load"] = f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print("LIRPA " + json.dumps(out))


def _with_relu(layer):

    config = layer.get_config()
    if config.get("activation") == "silu":
        config["activation"] = "relu"
    return layer.__class__.from_config(config)


def report_lirpa(accuracy, lirpa: dict, table) -> str:
    """The Markdown of section ``certify-lirpa``: auto_LiRPA's CROWN beside the library's."""
    rows = [(k, v) for k, v in lirpa.items() if isinstance(v, dict)]
    relu = lirpa.get("mlp-relu", {})
    lines = [
        "## auto_LiRPA beside the library's CROWN (`benchmarks/certify_speed.py --lirpa`)",
        "",
        f"Machine: {lirpa['machine']}; {lirpa['versions']} (a yardstick in its own virtual",
        "environment, never a dependency; release 0.3 patched for torch 2.13 and NumPy 2,",
        "see docs/certified.md). Measured while the machine was shared with other work",
        f"(load {lirpa.get('load', '?')} on its 2 cores), one intra-op torch thread for both:",
        "timings are upper bounds of what an idle machine gives, their ratios are the figure.",
        f"Models: certify-speed's demo MLP and CNN (SiLU; test accuracy {accuracy['mlp']:.3f} /",
        f"{accuracy['cnn']:.3f}), and `mlp-relu`: the MLP with ReLU in place of SiLU, same",
        "weights. The torch network is built from the Keras weights (`logit gap`: the",
        "largest difference of their logits). L2, the first test digits, the library on",
        'the torch backend, auto_LiRPA\'s `conv_mode="matrix"` (its default `patches`',
        "fails on the CNN's SiLU, which it bounds as the product `x * sigmoid(x)`).",
        "",
        "* One CROWN pass on all the inputs at the median certified radius, after a",
        "  warm-up pass: seconds; lower bounds of `f_y - f_j`: largest |library -",
        "  auto_LiRPA| against the largest |bound|, the median of (library - auto_LiRPA) /",
        "  |auto_LiRPA| and the share where the library's is tighter.",
        "* The certified radius: the library's `certified_radius` (default `rtol=1e-2`, all",
        "  inputs in one batch, after a warm-up call) against auto_LiRPA by bisection",
        "  (16 halvings of `[0, 2 r]`, one input and one scalar radius per call, as its",
        "  API takes one `eps`); library / auto_LiRPA radius per input.",
        "",
        table(
            [
                "model",
                "inputs",
                "logit gap",
                "auto_LiRPA pass s",
                "library pass s",
                "max abs bound diff",
                "max abs bound",
                "median rel diff",
                "library tighter",
                "auto_LiRPA radius s",
                "library radius s",
                "library passes",
                "radius ratio median",
                "radius ratio min",
                "radius ratio max",
            ],
            [
                [
                    k,
                    v["inputs"],
                    v["logit_gap"],
                    v["lirpa_pass_s"],
                    v["ours_pass_s"],
                    v["bound_diff_max_abs"],
                    v["bound_scale_max"],
                    v["bound_rel_diff_median"],
                    f"{100 * v['ours_tighter_share']:.0f}%",
                    v["lirpa_radius_s"],
                    v["ours_radius_s"],
                    v["passes"],
                    v["radius_ratio_median"],
                    v["radius_ratio_min"],
                    v["radius_ratio_max"],
                ]
                for k, v in rows
            ],
        ),
        "",
    ]
    if "float64_diff_max_abs" in relu:
        lines += [
            f"float64 (`mlp-relu`, first {relu['float64_inputs']} inputs, same radius): auto_LiRPA",
            "in float64 against the library's float64 NumPy reference CROWN",
            "(tests/_certify_reference.py): largest |difference| of the lower bounds "
            f"{relu['float64_diff_max_abs']:.2g}",
            f"for bounds up to {relu['float64_scale_max']:.3g}.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
