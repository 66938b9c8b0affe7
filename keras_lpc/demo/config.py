"""Settings of the demo and the data it trains on."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import check_choice, check_float, check_int
from keras_lpc.datasets import TFDS_DATASETS

DATASETS = ("digits", "synthetic", *TFDS_DATASETS)
ARCHITECTURES = ("mlp", "cnn", "resnet")
MODELS = ("baseline", "lpc")
CERTIFY_METHODS = ("crown", "ibp", "lipschitz")


@dataclasses.dataclass
class DemoConfig:
    """Settings of `run_demo` (the defaults are `keras-lpc demo`'s)."""

    dataset: str = "digits"
    epochs: int = 60
    seeds: int = 2
    dim: int = 16
    batch_size: int = 32
    out: str = "lpc-demo"
    attack_samples: int = 300
    pgd_eps: tuple[float, float] = (0.02, 0.05)
    metrics_every: int = 5
    robustness_every: int = 20
    head_lr_multiplier: float = 10.0
    augment_noise: float = 0.1
    weight_decay: float = 0.004
    gamma_schedule: Any = None
    architecture: str = "mlp"
    certify: str = "crown"
    certify_samples: int | None = None
    data_dir: str | None = None
    max_train: int | None = None
    max_test: int | None = None
    verbose: int = 1

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("certify", self.certify, CERTIFY_METHODS)
        if self.dataset == "synthetic" and self.architecture != "mlp":
            raise ValueError(
                "`architecture` must be 'mlp' for the synthetic clusters (they are not images). "
                f"Received: architecture={self.architecture!r} with dataset='synthetic'"
            )
        for name in ("max_train", "max_test"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=10)
        check_int("epochs", self.epochs, minimum=1)
        check_int("seeds", self.seeds, minimum=1)
        check_int("dim", self.dim, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("attack_samples", self.attack_samples, minimum=2)
        if self.certify_samples is not None:
            check_int("certify_samples", self.certify_samples, minimum=1)
        check_float("augment_noise", self.augment_noise, minimum=0.0)
        check_float("weight_decay", self.weight_decay, minimum=0.0)

    @property
    def certify_count(self) -> int:
        """How many of the attacked inputs get a certified radius: ``certify_samples``, or
        by default all of them for the MLP and 20 for the convolutional trunks (CROWN
        takes about 10 s per input on the demo CNN on two CPU cores; IBP and the
        Lipschitz bound cost little)."""
        if self.certify_samples is not None:
            return min(self.certify_samples, self.attack_samples)
        if self.architecture == "mlp" or self.certify != "crown":
            return self.attack_samples
        return min(20, self.attack_samples)

    @property
    def collapse_every(self) -> int:
        """Epochs between two `CollapseMetrics` values (at most the run's length)."""
        return min(self.metrics_every, self.epochs)

    @property
    def robustness_every_run(self) -> int:
        """Epochs between two `RobustnessMetrics` values (at most the run's length)."""
        return min(self.robustness_every, self.epochs)


def output_folder(out: str | os.PathLike) -> Path:
    """Create the demo's output folder ``out`` (and its parents) and return it.

    Raises:
        ValueError: ``out``, or a folder above it, is an existing file, or the
            folder cannot be created (the message names the path and the reason).

    Example:

    >>> import tempfile
    >>> base = Path(tempfile.mkdtemp())
    >>> output_folder(base / "runs" / "jax").is_dir()
    True
    >>> _ = (base / "notes.txt").write_text("x")
    >>> output_folder(base / "notes.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `out` must be a folder (created if missing), but '...notes.txt' is an existing file. Received: out='...notes.txt'
    """
    path = Path(out)
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(
            f"`out` must be a folder (created if missing), but {str(blocking)!r} is an existing "
            f"file. Received: out={str(out)!r}"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"`out` must be a folder that can be created or written to, but creating "
            f"{str(err.filename or path)!r} failed: {err.strerror}. Received: out={str(out)!r}"
        ) from None
    return path


def _first(x: np.ndarray, y: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of ``limit`` examples (seed 0, original order), or all of them."""
    from keras_lpc._validation import subsample

    rows = subsample(len(x), limit, 0)
    return (x, y) if rows is None else (x[rows], y[rows])


def load_data(config: DemoConfig):
    """The `keras_lpc.datasets.Split` the demo trains and tests on, as ``config`` says.

    ``digits`` (flat or 8 x 8 images for the convolutional trunks), the
    ``synthetic`` hypercube clusters (2,000 points, 16 features, 10 classes,
    a stratified 80/20 split) or a tensorflow-datasets set, then
    ``max_train`` / ``max_test`` examples of a fixed random subset.

    Example:

    >>> data = load_data(DemoConfig(max_train=100, max_test=50))
    >>> data.x_train.shape, data.x_test.shape
    ((100, 64), (50, 64))
    """
    from keras_lpc import datasets

    images = config.architecture != "mlp"
    if config.dataset == "digits":
        data = datasets.load_digits(as_images=images)
    elif config.dataset == "synthetic":
        from sklearn.model_selection import train_test_split

        clusters = datasets.make_hypercube_clusters(n=2000, d=16, classes=10, noise=0.6, seed=0)
        x_tr, x_te, y_tr, y_te = train_test_split(
            clusters.x, clusters.y, test_size=0.2, random_state=0, stratify=clusters.y
        )
        data = datasets.Split(x_tr, y_tr, x_te, y_te)
    else:
        x_tr, y_tr = datasets.load_tfds(
            config.dataset, "train", as_numpy=True, data_dir=config.data_dir
        )
        x_te, y_te = datasets.load_tfds(
            config.dataset, "test", as_numpy=True, data_dir=config.data_dir
        )
        data = datasets.Split(x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64))
    x_tr, y_tr = _first(data.x_train, data.y_train, config.max_train)
    x_te, y_te = _first(data.x_test, data.y_test, config.max_test)
    return datasets.Split(x_tr, y_tr, x_te, y_te)
