"""Training one arm of the demo: the model, its optimizer and callbacks, and `fit`."""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import keras
import numpy as np

from keras_lpc.demo.architectures import build_model
from keras_lpc.demo.config import DemoConfig


class Progress(keras.callbacks.Callback):
    """One status line per run, rewritten every epoch."""

    def __init__(self, label: str, epochs: int) -> None:
        super().__init__()
        self.label, self.epochs = label, epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        done = int(20 * (epoch + 1) / self.epochs)
        bar = "#" * done + "." * (20 - done)
        extra = f" gamma={logs['gamma']:.3g}" if "gamma" in logs else ""
        sys.stdout.write(
            f"\r  {self.label:<22} [{bar}] epoch {epoch + 1}/{self.epochs}"
            f" acc={logs.get('accuracy', float('nan')):.3f}{extra}   "
        )
        sys.stdout.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        sys.stdout.write("\n")


@dataclasses.dataclass
class TrainedArm:
    """A fitted model of one arm and what the fit left behind."""

    kind: str
    seed: int
    model: keras.Model
    history: dict[str, list[float]]
    train_seconds: float
    attack_idx: np.ndarray  # test rows the attacks run on


def train(kind: str, seed: int, data: Any, config: DemoConfig) -> TrainedArm:
    """Build, compile and fit one arm (``kind`` is ``"baseline"`` or ``"lpc"``).

    Both arms: the same architecture, AdamW (the output layer at
    ``head_lr_multiplier`` times the learning rate), `CollapseMetrics` on the
    test split and `RobustnessMetrics` on 100 of the attacked test inputs;
    the LPC arm adds `GammaAnnealing(config.gamma_schedule)`.
    """
    import keras_lpc
    from keras_lpc import optimizers

    keras.utils.set_random_seed(seed)
    x_tr, y_tr, x_te, y_te = data.x_train, data.y_train, data.x_test, data.y_test
    n_classes = int(max(y_tr.max(), y_te.max()) + 1)
    model = build_model(
        x_tr.shape[1:],
        n_classes,
        config.dim,
        lpc=kind == "lpc",
        augment_noise=config.augment_noise,
        architecture=config.architecture,
    )
    optimizer = keras.optimizers.AdamW(weight_decay=config.weight_decay)
    if config.head_lr_multiplier != 1.0:
        # The recommended set-up (docs/recipe.md), in both arms alike.
        optimizer = optimizers.with_lr_multipliers(
            optimizer, optimizers.lpc_multipliers(model, config.head_lr_multiplier)
        )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(seed)
    attack_idx = np.sort(
        rng.choice(len(x_te), min(config.attack_samples, len(x_te)), replace=False)
    )
    callbacks: list[keras.callbacks.Callback] = [
        keras_lpc.CollapseMetrics((x_te, y_te), every=config.collapse_every),
        keras_lpc.RobustnessMetrics(
            (x_te[attack_idx[:100]], y_te[attack_idx[:100]]),
            every=config.robustness_every_run,
            max_samples=100,
        ),
    ]
    if kind == "lpc":
        callbacks.insert(0, keras_lpc.GammaAnnealing(config.gamma_schedule))
    if config.verbose:
        callbacks.append(Progress(f"{kind} (seed {seed})", config.epochs))
    start = time.perf_counter()
    history = model.fit(
        x_tr,
        y_tr,
        epochs=config.epochs,
        batch_size=config.batch_size,
        verbose=0,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - start
    logged = per_epoch(history.history, callbacks, len(history.history["loss"]))
    return TrainedArm(kind, seed, model, logged, seconds, attack_idx)


def per_epoch(
    history: dict[str, list[float]], callbacks: list[Any], epochs: int
) -> dict[str, list[float]]:
    """The history with one float per epoch for every key, NaN where nothing was measured.

    The metric callbacks with ``every > 1`` log NaN on the epochs they skip,
    or (where a key is logged only when measured) leave a shorter list; such a
    list is spread over the epochs the callback lists in ``computed_epochs``
    (0-based, from the start of this ``fit``), so every figure and the report
    place each value at the epoch it was measured.

    Example:

    >>> class Metric:
    ...     prefix, metric_names, computed_epochs = "val_", ("nc1",), [0, 2]
    >>> per_epoch({"loss": [3.0, 2.0, 1.0], "val_nc1": [0.9, 0.5]}, [Metric()], 3)
    {'loss': [3.0, 2.0, 1.0], 'val_nc1': [0.9, nan, 0.5]}
    """
    logged = {k: [float(v) for v in values] for k, values in history.items()}
    for callback in callbacks:
        done = list(getattr(callback, "computed_epochs", ()))
        for name in getattr(callback, "metric_names", ()):
            key = callback.prefix + name
            values = logged.get(key)
            if values is None or len(values) >= epochs or len(values) != len(done):
                continue
            spread = [float("nan")] * epochs
            for epoch, value in zip(done, values):
                if 0 <= epoch < epochs:
                    spread[epoch] = value
            logged[key] = spread
    return logged
