"""Add LPC to a classifier you already have: `keras_lpc.with_lpc` (CPU, about a minute).

    python examples/with_lpc.py [--epochs 10] [--lpc-epochs 20] [--dim 16] [--hub]

Trains an ordinary functional CNN (softmax head) on the embedded 8x8 digits,
then inserts `LatentPointCollapse(dim)` before its head with
``keras_lpc.with_lpc(model, dim)``: the new model shares the CNN's layers and
weights up to the head and ends in a new softmax head with the same ten
classes. It is fine-tuned with `GammaAnnealing()` (the output layer at 10x
the learning rate, `lpc_multipliers`) and `CollapseMetrics`, and the script
prints the accuracy before and after and the collapse (NC1) of the latents.
``--hub`` does the same to a KerasHub ``ImageClassifier`` built from a
preset-free config (random weights; needs ``pip install 'keras-lpc[hub]'``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lpc  # noqa: E402
from keras_lpc import optimizers, surgery  # noqa: E402


def existing_cnn() -> keras.Model:
    """The model "you already have": a small functional CNN for 8x8x1 images."""
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(64, activation="relu", name="features")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="classes")(h)
    return keras.Model(inputs, outputs, name="digits_cnn")


def hub_classifier() -> keras.Model:
    """A KerasHub ImageClassifier (ResNet backbone, random weights) for 8x8x1 images."""
    keras_hub = surgery.require_keras_hub()
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        image_shape=(8, 8, 1),
    )
    return keras_hub.models.ImageClassifier(backbone=backbone, num_classes=10, activation="softmax")


def main(
    epochs: int = 10,
    lpc_epochs: int = 20,
    dim: int = 16,
    head_lr: float = 10.0,
    hub: bool = False,
    max_train: int | None = None,
    seed: int = 0,
    verbose: int = 1,
) -> dict[str, Any]:
    """Train the existing classifier, add LPC with `with_lpc`, fine-tune, compare.

    Args:
        epochs: epochs of the existing classifier (batch 32, AdamW 1e-3).
        lpc_epochs: epochs of the LPC model (`GammaAnnealing()`).
        dim: latent dimension of the inserted layer.
        head_lr: learning-rate multiplier of the new head.
        hub: use a KerasHub ImageClassifier instead of the plain CNN.
        max_train: use at most this many training images (shortened runs).
        seed: seed of the weights and the shuffling.
        verbose: 1 prints the comparison.

    Returns:
        ``{"before": test accuracy of the existing model, "after": of the
        LPC model, "gamma": last gamma, "val_nc1": NC1 of the test latents,
        "shared": number of layers the two models share, "head_activation"}``.
    """
    keras.utils.set_random_seed(seed)
    data = keras_lpc.datasets.load_digits(as_images=True)
    x, y = data.x_train[:max_train], data.y_train[:max_train]
    base = hub_classifier() if hub else existing_cnn()
    loss = keras.losses.SparseCategoricalCrossentropy()
    base.compile(keras.optimizers.AdamW(1e-3), loss, metrics=["accuracy"])
    base.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    _, before = base.evaluate(data.x_test, data.y_test, verbose=0)

    model = keras_lpc.with_lpc(base, dim=dim)
    shared = sum(any(la is lb for lb in base.layers) for la in model.layers)
    optimizer = optimizers.with_lr_multipliers(
        keras.optimizers.AdamW(1e-3), optimizers.lpc_multipliers(model, head_lr)
    )
    model.compile(optimizer, loss, metrics=["accuracy"])
    history = model.fit(
        x,
        y,
        batch_size=32,
        epochs=lpc_epochs,
        verbose=0,
        callbacks=[
            keras_lpc.GammaAnnealing(),
            keras_lpc.CollapseMetrics((data.x_test, data.y_test), every=lpc_epochs),
        ],
    )
    _, after = model.evaluate(data.x_test, data.y_test, verbose=0)
    head = model.layers[-1]
    result = {
        "before": float(before),
        "after": float(after),
        "gamma": float(history.history["gamma"][-1]),
        "val_nc1": float(np.asarray(history.history["val_nc1"])[-1]),
        "shared": int(shared),
        "head_activation": head.get_config()["activation"],
    }
    if verbose:
        print(
            f"{base.name}: test accuracy {before:.4f}; with_lpc(dim={dim}) shares {shared} "
            f"layers, new head {head.name!r} ({result['head_activation']}); after "
            f"{lpc_epochs} epochs of GammaAnnealing (gamma {result['gamma']:.3g}): accuracy "
            f"{after:.4f}, test NC1 {result['val_nc1']:.3f}"
        )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lpc-epochs", type=int, default=20)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--hub", action="store_true")
    args = parser.parse_args()
    main(args.epochs, args.lpc_epochs, args.dim, hub=args.hub)
