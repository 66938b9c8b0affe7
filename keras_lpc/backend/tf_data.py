"""tf.data input pipelines for the tensorflow-datasets loaders.

The only place where `keras_lpc.datasets` touches TensorFlow: it is imported
lazily by `keras_lpc.datasets.load_tfds`, so ``import keras_lpc`` never
imports TensorFlow. A `tf.data.Dataset` feeds `model.fit` under every Keras 3
backend (JAX and PyTorch included), so TensorFlow is needed here whatever
``KERAS_BACKEND`` is.
"""

from __future__ import annotations

from typing import Any

from keras_lpc._validation import require


def require_tfds() -> tuple[Any, Any]:
    """Import and return ``(tensorflow, tensorflow_datasets)``.

    Raises:
        ImportError: if either package is missing; the message names the extra.
    """
    purpose = "keras_lpc.datasets.load_tfds"
    return require("tensorflow", "data", purpose), require("tensorflow_datasets", "data", purpose)


def pipeline(
    ds: Any,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
    augment: bool,
    flip: bool,
    pad: int,
    shuffle: bool,
    seed: int,
) -> Any:
    """Shuffle, optionally augment, normalise and batch ``(image, label)`` pairs.

    Augmentation acts on the raw image scaled to [0, 1], as in the papers'
    torchvision pipeline (``RandomCrop(size, padding=pad)``, then
    ``RandomHorizontalFlip`` if ``flip``, then ``Normalize``): zero-pad
    ``pad`` pixels on every side, crop back to the original size at a random
    offset, mirror left-right with probability 1/2. Then each channel becomes
    ``(x / 255 - mean) / std`` (float32); labels become int32.

    Random draws come from ``tf.data.Dataset.random(seed)`` with
    re-randomisation on every pass: two pipelines built with the same seed
    yield the same batches, and each epoch sees fresh augmentations.
    """
    tf, _ = require_tfds()
    mean_t = tf.constant(mean, tf.float32)
    std_t = tf.constant(std, tf.float32)

    def prepare(image: Any, label: Any) -> tuple[Any, Any]:
        x = (tf.cast(image, tf.float32) / 255.0 - mean_t) / std_t
        return x, tf.cast(label, tf.int32)

    def jitter(pair: Any, draw: Any) -> tuple[Any, Any]:
        image, label = pair
        x = tf.cast(image, tf.float32)
        padded = tf.pad(x, [[pad, pad], [pad, pad], [0, 0]])
        x = tf.image.stateless_random_crop(padded, tf.shape(x), seed=draw)
        if flip:
            x = tf.image.stateless_random_flip_left_right(x, seed=draw[::-1])
        return prepare(x, label)

    if shuffle:
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    if augment:
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, draws)).map(jitter, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
