"""Datasets for LPC experiments: embedded digits, synthetic hypercube clusters, tfds loaders.

* `load_digits`: scikit-learn's embedded 8x8 digits (1797 images, offline),
  scaled to [0, 1], with a fixed stratified train/test split.
* `make_hypercube_clusters`: Gaussian clusters centred on distinct vertices
  of {-1, +1}^d, like the papers' Fig. 1.
* `load_tfds`: the papers' image sets (`cifar10`, `cifar100`,
  `svhn_cropped`, `mnist`) from tensorflow-datasets as a batched
  `tf.data.Dataset` (usable by `fit` under every Keras backend) or NumPy
  arrays, with per-channel normalisation and the papers' augmentation.

Importing this module imports neither TensorFlow nor tensorflow-datasets;
`load_tfds` imports them when called (extra: ``pip install keras-lpc[data]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from keras_lpc._validation import check_choice, check_float, check_int

__all__ = [
    "TFDS_DATASETS",
    "HypercubeClusters",
    "Split",
    "load_digits",
    "load_tfds",
    "make_hypercube_clusters",
]


class Split(NamedTuple):
    """A train/test split: ``x_*`` float32 features, ``y_*`` int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class HypercubeClusters(NamedTuple):
    """Synthetic samples ``x`` (N, d), labels ``y`` (N,) and class centres (C, d)."""

    x: np.ndarray
    y: np.ndarray
    centres: np.ndarray


def load_digits(test_size: float = 0.2, seed: int = 0, as_images: bool = False) -> Split:
    """Load scikit-learn's embedded 8x8 digits with a fixed stratified split.

    Pixels (integers 0..16) are divided by 16, so features lie in [0, 1]
    (float32); labels are int64 in 0..9. The split is stratified by class
    (each digit keeps its share in both parts) and depends only on
    ``test_size`` and ``seed``: the same arguments give the same arrays on
    every machine and backend. No download is needed.

    Args:
        test_size: fraction of the 1797 samples held out, in (0, 1).
        seed: seed of the split (scikit-learn ``random_state``).
        as_images: return ``x`` of shape (N, 8, 8, 1) for CNNs instead of (N, 64).

    Returns:
        `Split` ``(x_train, y_train, x_test, y_test)``.

    Raises:
        TypeError: if ``test_size`` is not a number or ``seed`` not an integer.
        ValueError: if ``test_size`` is not in (0, 1) or ``seed`` is negative.

    Example:

    >>> data = load_digits()
    >>> data.x_train.shape, data.x_test.shape, str(data.x_train.dtype)
    ((1437, 64), (360, 64), 'float32')
    >>> float(data.x_train.min()), float(data.x_train.max())
    (0.0, 1.0)
    >>> load_digits(as_images=True).x_test.shape
    (360, 8, 8, 1)
    """
    test_size = check_float("test_size", test_size, strictly_positive=True)
    if test_size >= 1:
        raise ValueError(f"`test_size` must be a number in (0, 1). Received: test_size={test_size}")
    seed = check_int("seed", seed, minimum=0)
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    if as_images:
        x_train = x_train.reshape(-1, 8, 8, 1)
        x_test = x_test.reshape(-1, 8, 8, 1)
    return Split(x_train, y_train, x_test, y_test)


def _vertices(rng: np.random.Generator, d: int, classes: int) -> np.ndarray:
    """``classes`` distinct rows of {-1, +1}^d drawn uniformly without replacement."""
    if d <= 30:
        codes = rng.choice(2**d, size=classes, replace=False)
        bits = (codes[:, None] >> np.arange(d)[None, :]) & 1
        return (2.0 * bits - 1.0).astype(np.float32)
    # 2**d is too large to enumerate: draw sign vectors, redraw duplicates
    # (a collision has probability below classes**2 / 2**31 per draw).
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=(classes, d))
    while True:
        _, first = np.unique(signs, axis=0, return_index=True)
        duplicate = np.setdiff1d(np.arange(classes), first)
        if duplicate.size == 0:
            return signs
        signs[duplicate] = rng.choice(np.array([-1.0, 1.0], np.float32), (duplicate.size, d))


def make_hypercube_clusters(
    n: int, d: int, classes: int, noise: float, seed: int = 0
) -> HypercubeClusters:
    """Sample Gaussian clusters centred on distinct vertices of the hypercube {-1, +1}^d.

    Formula: ``x_i = c_{y_i} + noise * e_i`` with ``e_i ~ N(0, I_d)``, where
    the centres ``c_0 .. c_{C-1}`` are distinct vertices of {-1, +1}^d drawn
    uniformly without replacement. Guarantees:

    * class sizes differ by at most one (each is ``n // C`` or ``n // C + 1``),
      so every class has at least one sample;
    * centres are pairwise distinct, hence at least 2 apart (one flipped sign);
    * the rows are shuffled; the output depends only on the arguments
      (same ``seed``, same arrays);
    * ``noise=0`` puts every sample exactly on its centre.

    Args:
        n: number of samples, ``n >= classes``.
        d: dimension, ``d >= 1``.
        classes: number of classes C, ``1 <= C <= 2**d``.
        noise: standard deviation of the Gaussian noise, ``>= 0`` (same units
            as the centres' coordinates, which are +-1).
        seed: seed of NumPy's ``default_rng``.

    Returns:
        `HypercubeClusters` ``(x, y, centres)``: float32 (n, d), int64 (n,),
        float32 (C, d).

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``classes > 2**d``, ``n < classes`` or ``noise < 0``.

    Example:

    >>> data = make_hypercube_clusters(n=100, d=3, classes=4, noise=0.1)
    >>> data.x.shape, data.y.shape, data.centres.shape
    ((100, 3), (100,), (4, 3))
    >>> np.bincount(data.y).tolist()
    [25, 25, 25, 25]
    >>> sorted(set(np.abs(data.centres).ravel().tolist()))
    [1.0]
    """
    d = check_int("d", d, minimum=1)
    classes = check_int("classes", classes, minimum=1)
    n = check_int("n", n, minimum=1)
    noise = check_float("noise", noise, minimum=0.0)
    seed = check_int("seed", seed, minimum=0)
    if d < 63 and classes > 2**d:
        raise ValueError(
            f"`classes` must be <= 2**d = {2**d} (distinct hypercube vertices). "
            f"Received: classes={classes}"
        )
    if n < classes:
        raise ValueError(
            f"`n` must be >= classes = {classes} (one sample per class at least). Received: n={n}"
        )
    rng = np.random.default_rng(seed)
    centres = _vertices(rng, d, classes)
    y = rng.permutation(np.arange(n, dtype=np.int64) % classes)
    x = centres[y] + np.float32(noise) * rng.standard_normal((n, d), dtype=np.float32)
    return HypercubeClusters(x.astype(np.float32), y, centres)


# Per-channel mean and standard deviation of the training split, in [0, 1]
# pixel units; image shape; number of classes; whether a left-right flip is a
# valid augmentation (not for digits, whose mirror images are other symbols).
TFDS_DATASETS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
        "shape": (32, 32, 3),
        "classes": 10,
        "flip": True,
    },
    "cifar100": {
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
        "shape": (32, 32, 3),
        "classes": 100,
        "flip": True,
    },
    "svhn_cropped": {
        "mean": (0.4377, 0.4438, 0.4728),
        "std": (0.1980, 0.2010, 0.1970),
        "shape": (32, 32, 3),
        "classes": 10,
        "flip": False,
    },
    "mnist": {
        "mean": (0.1307,),
        "std": (0.3081,),
        "shape": (28, 28, 1),
        "classes": 10,
        "flip": False,
    },
}

_MISSING = (
    "Dataset {name!r} is not prepared in {where} and could not be downloaded ({reason}). "
    "On a machine with internet access run\n"
    "    import tensorflow_datasets as tfds; tfds.builder({name!r}).download_and_prepare()\n"
    "then copy ~/tensorflow_datasets/{name} to this machine (same path), or pass "
    "data_dir=<folder holding {name}/> to load_tfds."
)


_IMPORT_FAILED = (
    "tensorflow-datasets could not import the module {module!r} while {stage} {name!r} "
    "({error}). This is a missing package, not missing data: install it "
    "(`pip install {package}`) and retry."
)


def _import_failure(err: ImportError, name: str, stage: str) -> ImportError:
    """An `ImportError` naming the module tfds failed to import (it imports some lazily)."""
    module = err.name or str(err)
    package = (err.name or "").split(".")[0].replace("_", "-") or "<the missing package>"
    message = _IMPORT_FAILED.format(
        module=module, stage=stage, name=name, error=f"{type(err).__name__}: {err}", package=package
    )
    return ImportError(message, name=err.name)


def _builder(tfds: Any, name: str, data_dir: str | None, download: bool) -> Any:
    """A prepared tfds builder, or a `FileNotFoundError` / `ImportError` that says what to do.

    tensorflow-datasets imports some of its own dependencies (``importlib_resources``,
    ``termcolor``, ...) only when a builder is created or prepared; such an
    ``ImportError`` is reported as what it is, never as missing data.
    """
    where = data_dir or "~/tensorflow_datasets (the default data_dir)"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except ImportError as err:
        raise _import_failure(err, name, "opening") from err
    if prepared:
        return builder
    if not download:
        raise FileNotFoundError(_MISSING.format(name=name, where=where, reason="download=False"))
    try:
        builder.download_and_prepare()
    except ImportError as err:  # a missing package (lazily imported by tfds), not missing data
        raise _import_failure(err, name, "preparing") from err
    except Exception as err:  # offline: DNS, connection, checksum or disk errors
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise FileNotFoundError(_MISSING.format(name=name, where=where, reason=reason)) from err
    return builder


def load_tfds(
    name: str,
    split: str = "train",
    batch_size: int = 128,
    augment: bool | None = None,
    as_numpy: bool = False,
    data_dir: str | Path | None = None,
    *,
    shuffle: bool | None = None,
    seed: int = 0,
    download: bool = True,
) -> Any:
    """Load one of the papers' image datasets from tensorflow-datasets, normalised.

    Each channel ``k`` becomes ``(pixel / 255 - mean_k) / std_k`` with the
    training-set statistics in `TFDS_DATASETS` (so the training split has
    roughly zero mean and unit variance per channel); labels are int32.
    Augmentation (training only): zero-pad 4 pixels, random crop back to the
    image size, and for CIFAR a random left-right flip (no flip for SVHN and
    MNIST, where mirrored digits are different symbols).

    Args:
        name: one of ``"cifar10"``, ``"cifar100"``, ``"svhn_cropped"``, ``"mnist"``.
        split: a tfds split string, e.g. ``"train"``, ``"test"``, ``"train[:10%]"``.
        batch_size: examples per batch of the `tf.data.Dataset`.
        augment: apply augmentation; default: on for splits starting with
            ``"train"``. Must be off with ``as_numpy=True``.
        as_numpy: return ``(x, y)`` NumPy arrays of the whole split (float32
            (N, H, W, C), int32 (N,)) instead of a dataset.
        data_dir: tfds data folder (default ``~/tensorflow_datasets``).
        shuffle: shuffle the examples (reshuffled every epoch); default: on
            for splits starting with ``"train"`` unless ``as_numpy``.
        seed: seed of the shuffle and augmentation; same seed, same batches.
        download: try to download and prepare the data if it is not on disk.

    Returns:
        A batched `tf.data.Dataset` of ``(image, label)``, which `model.fit`
        accepts under every Keras backend, or ``(x, y)`` with ``as_numpy=True``.

    Raises:
        ValueError: unknown ``name``, bad ``batch_size`` or ``seed``, or
            ``augment=True`` with ``as_numpy=True``.
        ImportError: if tensorflow or tensorflow-datasets is missing (extra
            ``pip install keras-lpc[data]``), or a module tensorflow-datasets
            imports lazily (e.g. ``importlib_resources``) is missing; the
            message names it.
        FileNotFoundError: the data is neither on disk nor downloadable; the
            message says how to fetch it on another machine.

    Example (needs the prepared data; tfds' mock data stands in for it here):

    >>> import tensorflow_datasets as tfds
    >>> with tfds.testing.mock_data(num_examples=6):
    ...     ds = load_tfds("cifar10", batch_size=4)
    ...     x, y = next(iter(ds))
    ...     x_test, y_test = load_tfds("mnist", split="test", as_numpy=True)
    >>> tuple(x.shape), x.dtype.name, y.dtype.name
    ((4, 32, 32, 3), 'float32', 'int32')
    >>> x_test.shape, str(y_test.dtype)
    ((6, 28, 28, 1), 'int32')
    """
    name = check_choice("name", name, tuple(TFDS_DATASETS))
    if not isinstance(split, str) or not split:
        raise TypeError(f"`split` must be a non-empty string. Received: split={split!r}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    training = split.startswith("train")
    augment = training and not as_numpy if augment is None else bool(augment)
    shuffle = training and not as_numpy if shuffle is None else bool(shuffle)
    if augment and as_numpy:
        raise ValueError(
            "`augment` must be False with as_numpy=True (augmentation is redrawn every "
            "epoch; use the tf.data form for it). Received: augment=True"
        )
    from keras_lpc.backend import tf_data

    _, tfds = tf_data.require_tfds()
    spec = TFDS_DATASETS[name]
    builder = _builder(tfds, name, None if data_dir is None else str(data_dir), download)
    raw = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    ds = tf_data.pipeline(
        raw,
        mean=spec["mean"],
        std=spec["std"],
        batch_size=batch_size,
        augment=augment,
        flip=spec["flip"],
        pad=4,
        shuffle=shuffle,
        seed=seed,
    )
    if not as_numpy:
        return ds
    parts = list(tfds.as_numpy(ds))
    if not parts:
        shape = (0, *spec["shape"])
        return np.zeros(shape, np.float32), np.zeros((0,), np.int32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
