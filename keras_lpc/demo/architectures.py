"""The demo's models: a trunk, then `LatentPointCollapse(dim)`, then a linear head."""

from __future__ import annotations

from typing import Any

import keras

from keras_lpc._validation import check_choice
from keras_lpc.demo.config import ARCHITECTURES


def _residual(x: Any, filters: int, name: str) -> Any:
    """``silu(x + BN(conv(silu(BN(conv(x))))))``, 3x3 convolutions, no bias."""
    layers = keras.layers
    h = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    h = layers.Activation("silu")(layers.BatchNormalization(name=f"{name}_bn1")(h))
    h = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(h)
    h = layers.BatchNormalization(name=f"{name}_bn2")(h)
    return layers.Activation("silu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, h]))


def _trunk(x: Any, architecture: str) -> Any:
    """The feature extractor in front of the LPC layer (SiLU everywhere)."""
    layers = keras.layers
    if architecture == "mlp":
        if len(x.shape) > 2:
            x = layers.Flatten()(x)
        x = layers.Dense(256, activation="silu")(x)
        return layers.Dense(256, activation="silu")(x)
    if architecture == "cnn":
        for filters in (32, 64):
            x = layers.Conv2D(filters, 3, padding="same", activation="silu")(x)
            x = layers.Conv2D(filters, 3, padding="same", activation="silu")(x)
            x = layers.MaxPooling2D(2)(x) if filters == 32 else x
        x = layers.GlobalAveragePooling2D()(x)
        return layers.Dense(256, activation="silu")(x)
    # resnet: a stem, two residual blocks at 32 channels, pool, widen, two at 64
    x = layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.Activation("silu")(layers.BatchNormalization(name="stem_bn")(x))
    x = _residual(_residual(x, 32, "block1"), 32, "block2")
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 1, use_bias=False, name="widen")(x)
    x = _residual(_residual(x, 64, "block3"), 64, "block4")
    return layers.GlobalAveragePooling2D()(x)


def build_model(
    input_shape: int | tuple[int, ...],
    n_classes: int,
    dim: int,
    lpc: bool = True,
    augment_noise: float = 0.0,
    architecture: str = "mlp",
) -> keras.Model:
    """The demo architecture: a trunk, then LatentPointCollapse(dim), then a linear head.

    Trunks (SiLU activations): ``"mlp"`` (flatten, Dense 256, Dense 256);
    ``"cnn"`` (two 3x3 convolutions at 32 channels, 2x2 max-pool, two at 64,
    global average pooling, Dense 256); ``"resnet"`` (a batch-normalised
    stem and four residual blocks with batch normalisation, 32 then 64
    channels with a 2x2 max-pool between, global average pooling). The
    convolutional trunks need image inputs ``(H, W, C)``. The baseline has
    the same layers; its gamma simply stays at 0. With ``augment_noise > 0``
    a `GaussianNoise` layer first adds N(0, sigma^2) noise to the inputs
    during training only (the same in both arms).

    Example:

    >>> model = build_model((8, 8, 1), 10, dim=16, architecture="cnn")
    >>> model.get_layer("lpc").output.shape, model.output.shape
    ((None, 16), (None, 10))
    """
    import keras_lpc

    check_choice("architecture", architecture, ARCHITECTURES)
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if architecture != "mlp" and len(shape) != 3:
        raise ValueError(
            f"`input_shape` must be (height, width, channels) for architecture "
            f"{architecture!r}. Received: input_shape={input_shape!r}"
        )
    inputs = keras.Input(shape)
    x = keras.layers.GaussianNoise(augment_noise)(inputs) if augment_noise > 0 else inputs
    z = keras_lpc.LatentPointCollapse(dim=dim, name="lpc")(_trunk(x, architecture))
    outputs = keras.layers.Dense(n_classes, name="head")(z)
    return keras.Model(inputs, outputs, name="lpc" if lpc else "baseline")
