"""Latent Point Collapse on CIFAR-10 / CIFAR-100 / SVHN with a ResNet: the papers' setting.

A CIFAR ResNet (3x3 stem, no max-pool, four stages of width ``w, 2w, 4w, 8w``,
SiLU, batch norm, global average pooling) ends in a linear
``LatentPointCollapse(dim)`` layer and a bias-free ``Dense(classes)`` head::

    images -> ResNet -> pool -> z = W h + b (dim units, penalty gamma * mean(z**2)) -> V z

Training follows docs/recipe.md: AdamW (weight decay 5e-4, batch 128) or SGD,
the head at ``--head-factor`` times the learning rate
(``with_lr_multipliers(opt, lpc_multipliers(model, factor))``), the learning
rate held then cosine-decayed to 1e-8 over the last part of the run,
`keras_lpc.GammaAnnealing` (our default: paced per-step quadratic ramp 0 -> 1e3,
lowered by `gamma_budget` only for runs far shorter than these;
``--schedule paper``: the authors' TwoPhaseExponential per epoch, 1e-4 x2
every 5 epochs to 1e3, then x1.25 every 5 epochs to 1e6), and the papers'
augmentation (zero-pad 4, random 32x32 crop, left-right flip except SVHN) in
the tf.data pipeline of `keras_lpc.datasets.load_tfds`, which feeds ``fit``
on every Keras backend. ``--baseline`` trains the same network with gamma
held at 0 (the papers' "linear penultimate layer, no penalty" arm).
`CollapseMetrics` and `RobustnessMetrics` run during training on test
subsamples; the final test accuracy, NC1, separation ratio, DeepFool score
and Lipschitz proxy are written to a JSON file and returned by `main`.

GPU run (the papers' CIFAR-10 setting: ResNet-18, LPC 8-d, AdamW, batch 128)::

    KERAS_BACKEND=jax python examples/cifar10_resnet.py --epochs 200
    KERAS_BACKEND=jax python examples/cifar10_resnet.py --epochs 200 --baseline
    KERAS_BACKEND=jax python examples/cifar10_resnet.py --dataset cifar100 --depth 50 --epochs 200
    KERAS_BACKEND=jax python examples/cifar10_resnet.py --dataset svhn_cropped --epochs 100

Runtime scale (an estimate, not a measurement: no GPU run has been made yet).
ResNet-18 at width 64 has 11,173,016 trainable parameters (with the 8-d LPC
layer and 10-class head) and costs 0.556 G multiply-adds per 32x32 image
forward, so one CIFAR-10 epoch (50,000 images, 391 steps) is about
2 * 3 * 0.556e9 * 5e4 = 1.7e14 floating-point operations of training: a few
seconds of an H100 at realistic utilisation, so expect roughly 5-15 s per
epoch with the tf.data input pipeline, under an hour for 200 epochs, plus the
DeepFool evaluations (1,000 test images, every 20 epochs). ResNet-50 (23.6 M
parameters, 1.30 G multiply-adds) costs about 2.3 times as much. The data
must be on disk or downloadable by tensorflow-datasets (``~/tensorflow_datasets``
or ``--data-dir``); ``KERAS_BACKEND=tensorflow`` or ``torch`` work too.

CPU smoke run (width-4 ResNet-6, tfds mock data, 2 epochs of 2 steps; 7-25 s
on a shared 2-core CPU, JAX the slowest because it compiles every function)::

    python examples/cifar10_resnet.py --smoke --out /tmp/cifar-smoke
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

import keras_lpc  # noqa: E402
from keras_lpc.datasets import TFDS_DATASETS, load_tfds  # noqa: E402
from keras_lpc.optimizers import lpc_multipliers, with_lr_multipliers  # noqa: E402

DATASETS = ("cifar10", "cifar100", "svhn_cropped")
# The papers' latent sizes: 8-d for CIFAR-10 and SVHN, 64-d for CIFAR-100.
DEFAULT_DIM = {"cifar10": 8, "cifar100": 64, "svhn_cropped": 8}
# depth -> (block kind, blocks per stage); depth = 2 + (2 or 3) * sum(blocks).
# Depth 6 (two stages of one block) is the smoke test's tiny network.
DEPTHS = {
    6: ("basic", (1, 1)),
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}
FULL = {"width": 64, "depth": 18, "epochs": 200, "batch_size": 128}
SMOKE = {"width": 4, "depth": 6, "epochs": 2, "batch_size": 8}
SMOKE_EXAMPLES = 16  # mock examples per split: 2 steps per epoch at batch 8


# ------------------------------------------------------------------ model


class NumpyNormal(keras.initializers.Initializer):
    """Weights ``N(0, scale / fan_in)`` drawn by NumPy: the same numbers on every backend.

    ``fan_in`` is the product of all kernel dimensions but the last (input
    channels times the kernel's area). ``scale=2`` is He initialisation, for
    layers followed by SiLU; ``scale=1`` keeps the variance through linear
    layers. Drawing with NumPy also spares JAX one compilation per weight
    shape, which dominated the CPU smoke run.

    >>> w = NumpyNormal(seed=0, scale=2.0)((3, 3, 64, 64))
    >>> round(float(np.std(w)) ** 2 * 3 * 3 * 64, 1)
    2.0
    """

    def __init__(self, seed: int, scale: float = 2.0) -> None:
        self.seed, self.scale = seed, scale

    def __call__(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else int(shape[0])
        rng = np.random.default_rng(self.seed)
        values = rng.normal(0.0, math.sqrt(self.scale / fan_in), size=shape)
        return ops.convert_to_tensor(values, dtype=dtype or "float32")

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed, "scale": self.scale}


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, seeds: Any) -> Any:
    init = NumpyNormal(next(seeds))
    x = layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=init,
        name=f"{name}_conv",
    )(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def _block(x: Any, filters: int, stride: int, kind: str, name: str, seeds: Any) -> Any:
    """A residual block; ``bottleneck`` blocks output ``4 * filters`` channels."""
    if kind == "basic":
        y = layers.Activation("silu")(_conv_bn(x, filters, 3, stride, f"{name}_a", seeds))
        y = _conv_bn(y, filters, 3, 1, f"{name}_b", seeds)
        out = filters
    else:
        y = layers.Activation("silu")(_conv_bn(x, filters, 1, 1, f"{name}_a", seeds))
        y = layers.Activation("silu")(_conv_bn(y, filters, 3, stride, f"{name}_b", seeds))
        y = _conv_bn(y, 4 * filters, 1, 1, f"{name}_c", seeds)
        out = 4 * filters
    shortcut = x
    if stride != 1:
        # x[:, ::stride, ::stride]: with the 1x1 convolution below this is the usual
        # strided 1x1 projection. (A strided 1x1 Conv2D crashes in the PyTorch
        # backward pass on CPU for Keras' channels-last inputs, torch 2.13.)
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}_subsample")(x)
    if stride != 1 or x.shape[-1] != out:
        shortcut = _conv_bn(shortcut, out, 1, 1, f"{name}_proj", seeds)
    return layers.Activation("silu", name=f"{name}_out")(layers.Add()([y, shortcut]))


def build_resnet(
    input_shape: tuple[int, ...],
    classes: int,
    dim: int,
    width: int = 64,
    depth: int = 18,
    seed: int = 0,
) -> keras.Model:
    """A CIFAR ResNet ending in ``LatentPointCollapse(dim)`` (name ``"lpc"``) and ``"head"``.

    Stem: 3x3 convolution with ``width`` filters, batch norm, SiLU (no
    max-pool, as for 32x32 images). Stages of widths ``width * (1, 2, 4, 8)``
    with strides ``(1, 2, 2, 2)``; ``depth`` picks the blocks (`DEPTHS`: 10,
    18, 34 basic blocks, 50 bottlenecks; 6 = two stages, for smoke tests).
    Then global average pooling, the linear LPC projection to ``dim`` units
    and a bias-free linear head giving ``classes`` logits. gamma starts at 0
    (a baseline keeps it there). Kernels are `NumpyNormal` draws from
    ``seed``, so a seed gives the same initial network on every backend.

    Example:

    >>> model = build_resnet((32, 32, 3), classes=10, dim=8, width=4, depth=6)
    >>> model.output_shape, model.get_layer("lpc").dim
    ((None, 10), 8)
    """
    if depth not in DEPTHS:
        raise ValueError(f"`depth` must be one of {sorted(DEPTHS)}. Received: depth={depth!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be an integer >= 1. Received: width={width!r}")
    kind, blocks = DEPTHS[depth]
    seeds = itertools.count(seed * 1000)
    inputs = keras.Input(input_shape, name="image")
    x = layers.Activation("silu")(_conv_bn(inputs, width, 3, 1, "stem", seeds))
    for stage, count in enumerate(blocks):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            x = _block(x, width * 2**stage, stride, kind, f"stage{stage + 1}_{i + 1}", seeds)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    lpc = keras_lpc.LatentPointCollapse(
        dim=dim, kernel_initializer=NumpyNormal(next(seeds), 1.0), name="lpc"
    )
    z = lpc(x)
    head = layers.Dense(
        classes, use_bias=False, kernel_initializer=NumpyNormal(next(seeds), 1.0), name="head"
    )
    return keras.Model(inputs, head(z), name=f"resnet{depth}_lpc{dim}")


# -------------------------------------------------------------- optimizer


class HoldThenCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Constant ``peak`` until step ``start``, then a half cosine down to ``final``.

    ``lr(step) = final + (peak - final) * (1 + cos(pi * t)) / 2`` with
    ``t = clip((step - start) / (total - start), 0, 1)``.

    >>> s = HoldThenCosine(1.0, total=100, start=50, final=0.0)
    >>> [round(float(s(k)), 3) for k in (0, 50, 75, 100)]
    [1.0, 1.0, 0.5, 0.0]
    """

    def __init__(self, peak: float, total: int, start: int, final: float = 1e-8) -> None:
        self.peak, self.total, self.start, self.final = peak, total, start, final

    def __call__(self, step: Any) -> Any:
        length = float(max(1, self.total - self.start))
        t = ops.clip((ops.cast(step, "float32") - self.start) / length, 0.0, 1.0)
        return self.final + (self.peak - self.final) * 0.5 * (1.0 + ops.cos(math.pi * t))

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "total": self.total, "start": self.start, "final": self.final}


def make_optimizer(
    model: keras.Model,
    name: str,
    learning_rate: float,
    total_steps: int,
    head_factor: float,
    decay_start: float = 0.75,
    weight_decay: float = 5e-4,
) -> keras_lpc.optimizers.LRMultiplierOptimizer:
    """AdamW or SGD (momentum 0.9) with the held-then-cosine rate; the head at ``head_factor``x.

    The multiplier scales the head's whole step, so the head follows the same
    cosine at ``head_factor`` times the rate (the authors keep their output
    layer's rate constant; a single schedule with a factor is what
    `with_lr_multipliers` offers).
    """
    lr = HoldThenCosine(learning_rate, total_steps, int(decay_start * total_steps))
    if name == "adamw":
        inner = keras.optimizers.AdamW(lr, weight_decay=weight_decay)
    else:
        inner = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    return with_lr_multipliers(inner, lpc_multipliers(model, factor=head_factor))


# -------------------------------------------------------------------- data


def make_datasets(
    name: str, batch_size: int, seed: int = 0, data_dir: str | None = None, augment: bool = True
) -> tuple[Any, tuple[np.ndarray, np.ndarray]]:
    """Augmented, shuffled training batches (tf.data) and the test split as arrays."""
    train = load_tfds(
        name, "train", batch_size=batch_size, augment=augment, seed=seed, data_dir=data_dir
    )
    test = load_tfds(name, "test", batch_size=512, as_numpy=True, data_dir=data_dir)
    return train, test


# -------------------------------------------------------------------- run


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags; ``None`` defaults are resolved by `resolve`."""
    p = argparse.ArgumentParser(
        description="LPC ResNet on CIFAR-10/100 or SVHN (see the module docstring)."
    )
    p.add_argument("--dataset", choices=DATASETS, default="cifar10")
    p.add_argument("--epochs", type=int, default=None, help="default 200 (smoke: 2)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (smoke: 8)")
    p.add_argument("--width", type=int, default=None, help="stem filters, default 64 (smoke: 4)")
    p.add_argument("--depth", type=int, choices=sorted(DEPTHS), default=None, help="default 18")
    p.add_argument("--dim", type=int, default=None, help="LPC units (default 8; 64 on cifar100)")
    p.add_argument("--baseline", action="store_true", help="gamma held at 0 (no penalty)")
    p.add_argument("--schedule", choices=("default", "paper"), default="default")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--lr", type=float, default=None, help="default 5e-4 (AdamW) / 0.1 (SGD)")
    p.add_argument("--head-factor", type=float, default=10.0, help="head lr multiplier")
    p.add_argument("--decay-start", type=float, default=0.75, help="cosine from this fraction")
    p.add_argument("--collapse-every", type=int, default=None, help="epochs between NC1 logs")
    p.add_argument("--robustness-every", type=int, default=None, help="epochs between DeepFool")
    p.add_argument("--robustness-samples", type=int, default=None, help="default 1000 (smoke 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="tensorflow-datasets folder")
    p.add_argument("--smoke", action="store_true", help="tiny model on tfds mock data (CPU)")
    p.add_argument("--out", default="cifar-runs", help="folder of the JSON result")
    p.add_argument("--verbose", type=int, default=2, help="fit verbosity")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the ``None`` flags with the full or the smoke defaults and check them."""
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.dim is None:
        args.dim = DEFAULT_DIM[args.dataset]
    if args.lr is None:
        args.lr = 5e-4 if args.optimizer == "adamw" else 0.1
    if args.robustness_samples is None:
        args.robustness_samples = 4 if args.smoke else 1000
    if args.collapse_every is None:
        args.collapse_every = max(1, args.epochs // 50)
    if args.robustness_every is None:
        args.robustness_every = max(1, args.epochs // 10) if args.epochs >= 10 else args.epochs
    for key in ("epochs", "batch_size", "width", "dim", "collapse_every", "robustness_every"):
        if not isinstance(getattr(args, key), int) or getattr(args, key) < 1:
            raise ValueError(
                f"`{key}` must be an integer >= 1. Received: {key}={getattr(args, key)!r}"
            )
    return args


def gamma_annealing(schedule: str) -> keras_lpc.GammaAnnealing:
    """Our default (`GammaAnnealing()`) or the authors' per-epoch TwoPhaseExponential."""
    if schedule == "paper":
        return keras_lpc.GammaAnnealing(keras_lpc.schedules.TwoPhaseExponential(), unit="epoch")
    return keras_lpc.GammaAnnealing()


def make_callbacks(args: argparse.Namespace, test: tuple[np.ndarray, np.ndarray]) -> list[Any]:
    """``[GammaAnnealing (LPC arm only), CollapseMetrics, RobustnessMetrics]`` on test data."""
    # NC1 groups latents by their true labels (Papyan et al.'s definition): with
    # predicted labels, a model that predicts one class (early, or the smoke run's
    # tiny network) has an undefined NC1.
    collapse = keras_lpc.CollapseMetrics(test, every=args.collapse_every, labels="true")
    robust = keras_lpc.RobustnessMetrics(
        test, every=args.robustness_every, max_samples=args.robustness_samples
    )
    return ([] if args.baseline else [gamma_annealing(args.schedule)]) + [collapse, robust]


def _gamma_max(callback: Any) -> float:
    """The schedule's ceiling (after `GammaAnnealing` fitted it to the run); 0 for a baseline."""
    if not isinstance(callback, keras_lpc.GammaAnnealing):
        return 0.0
    schedule = callback.schedule  # Geometric (default) has `stop`, TwoPhaseExponential `maximum`
    return float(getattr(schedule, "stop", getattr(schedule, "maximum", math.nan)))


def _final(callback: Any, epochs: int) -> dict[str, float]:
    """The callback's values after the last epoch (computed now if it was not due)."""
    return callback.last if callback.due(epochs - 1) and callback.last else callback.evaluate()


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None, NumPy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


def train(args: argparse.Namespace) -> tuple[dict[str, Any], keras.Model]:
    """Train one arm as configured by resolved ``args``; return the result and the model."""
    keras.utils.set_random_seed(args.seed)
    spec = TFDS_DATASETS[args.dataset]
    if args.smoke:
        import tensorflow_datasets as tfds

        context: Any = tfds.testing.mock_data(num_examples=SMOKE_EXAMPLES)
    else:
        context = contextlib.nullcontext()
    with context:
        train_ds, (x_test, y_test) = make_datasets(
            args.dataset, args.batch_size, args.seed, args.data_dir
        )
    steps = int(train_ds.cardinality())
    model = build_resnet(
        spec["shape"], spec["classes"], args.dim, args.width, args.depth, args.seed
    )
    optimizer = make_optimizer(
        model, args.optimizer, args.lr, steps * args.epochs, args.head_factor, args.decay_start
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = make_callbacks(args, (x_test, y_test))
    collapse, robust = callbacks[-2:]
    start = time.perf_counter()
    history = model.fit(
        train_ds, epochs=args.epochs, verbose=args.verbose, callbacks=callbacks, shuffle=False
    )
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    geometry, robustness = _final(collapse, args.epochs), _final(robust, args.epochs)
    hist = history.history
    result = {
        "dataset": args.dataset,
        "arm": "baseline" if args.baseline else "lpc",
        "backend": keras.backend.backend(),
        "smoke": bool(args.smoke),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "steps_per_epoch": steps,
        "depth": args.depth,
        "width": args.width,
        "dim": args.dim,
        "parameters": model.count_params(),
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "head_lr_multiplier": args.head_factor,
        "schedule": "none" if args.baseline else args.schedule,
        "seed": args.seed,
        "gamma": float(keras.ops.convert_to_numpy(model.get_layer("lpc").gamma)),
        "gamma_max": _gamma_max(callbacks[0]),
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "nc1": geometry["nc1"],
        "separation_ratio": geometry["separation_ratio"],
        "deepfool": robustness["deepfool"],
        "deepfool_correct": robustness["deepfool_correct"],
        "lipschitz_max": robustness["lipschitz_max"],
        "robustness_samples": len(robust.arrays()[0]),
        "train_seconds": seconds,
        "history": {k: hist[k] for k in ("loss", "accuracy", "gamma", "val_nc1") if k in hist},
    }
    result = _clean(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arm = result["arm"] + ("_paper" if result["schedule"] == "paper" else "")
    name = f"{args.dataset}_{arm}_seed{args.seed}{'_smoke' if args.smoke else ''}.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")
    result["json"] = str(out / name)
    return result, model


def main(argv: Sequence[str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Parse ``argv`` (command-line flags), apply keyword ``overrides``, train, return the result.

    ``main(["--smoke", "--out", "/tmp/x"])`` and ``main(smoke=True, out="/tmp/x")``
    are the same run (keywords use the flags' names with ``_`` for ``-``).
    """
    args = build_parser().parse_args([] if argv is None else list(argv))
    unknown = sorted(set(overrides) - set(vars(args)))
    if unknown:
        raise TypeError(
            f"`overrides` must be flag names of {sorted(vars(args))}. Received: {unknown}"
        )
    for key, value in overrides.items():
        setattr(args, key, value)
    result, _ = train(resolve(args))
    if args.verbose:
        shown = ("gamma", "test_accuracy", "nc1", "deepfool", "train_seconds")
        print(", ".join(f"{k}={result[k]:.4g}" for k in shown if result[k] is not None))
        print(f"wrote {result['json']}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
