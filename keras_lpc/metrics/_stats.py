"""Input checks and class statistics shared by the collapse-geometry metrics.

Everything here is NumPy in float64. `ClassStats` holds what every
class-mean metric needs (counts, means, global mean, within-class
covariance); it is built in one shot by `class_stats` or batch by batch by
`keras_lpc.metrics.CollapseAccumulator`, so both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Rows per chunk when an (N, C) array of distances is formed.
CHUNK_ELEMENTS = 1 << 22


def check_latents(z: Any, name: str = "z") -> np.ndarray:
    """``z`` as a finite float64 array of shape (N, d), N >= 1."""
    try:
        arr = np.asarray(z)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a numeric array. Received: {name}={z!r}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(
            f"`{name}` must be a numeric array. Received: {name} with dtype {arr.dtype}"
        )
    if arr.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (N, d). Received: {name} with shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"`{name}` must hold at least one sample and one feature. "
            f"Received: {name} with shape {arr.shape}"
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"`{name}` must be finite. Received: {name} with "
            f"{int(np.sum(~np.isfinite(arr)))} NaN or inf values"
        )
    return arr


def check_labels(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """``labels`` as an int64 array of shape (n,); integral floats are accepted."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"`{name}` must be a 1-D array with one label per row of `z` ({n}). "
            f"Received: {name} with shape {arr.shape}"
        )
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64, copy=False)
    if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)):
        if np.all(arr == np.round(arr)):
            return arr.astype(np.int64)
    raise ValueError(
        f"`{name}` must hold integer class ids. Received: {name} with dtype {arr.dtype}"
        + (f" (first values {arr[:3].tolist()})" if arr.dtype != object else "")
    )


def encode(labels: np.ndarray, minimum: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, codes)``: the sorted class ids present and each row's index into them."""
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < minimum:
        raise ValueError(
            f"`labels` must contain at least {minimum} classes. "
            f"Received: labels with {len(classes)} class(es) {classes.tolist()}"
        )
    return classes, codes.reshape(-1)


@dataclass
class ClassStats:
    """Per-class summary of latents: everything the class-mean metrics need.

    Attributes:
        classes: class ids present, shape (C,).
        counts: samples per class, shape (C,).
        means: class means ``mu_c``, shape (C, d).
        global_mean: ``mu_G``, the mean of all samples, shape (d,).
        sigma_w: ``Sigma_W``, the mean over classes of the biased per-class
            covariance matrices, shape (d, d).
        variances: ``tr(Cov_c)``, the total biased variance of each class, (C,).
    """

    classes: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    global_mean: np.ndarray
    sigma_w: np.ndarray
    variances: np.ndarray

    @property
    def centred_means(self) -> np.ndarray:
        """``M``: rows ``mu_c - mu_G``, shape (C, d)."""
        return self.means - self.global_mean

    @property
    def sigma_b(self) -> np.ndarray:
        """``Sigma_B = mean_c (mu_c - mu_G)(mu_c - mu_G)^T``, shape (d, d)."""
        m = self.centred_means
        return m.T @ m / len(m)


def class_sums(z: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class sums of the rows of ``z`` (a sparse C x N product, no loop)."""
    from scipy import sparse

    n = len(z)
    onehot = sparse.csr_matrix(
        (np.ones(n), (codes, np.arange(n))), shape=(n_classes, n), dtype=np.float64
    )
    return np.asarray(onehot @ z)


def class_stats(z: Any, labels: Any) -> ClassStats:
    """Class counts, means and within-class covariance of ``z`` in one pass.

    ``Sigma_W = (1/C) sum_c (1/n_c) sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T``,
    computed from the centred residuals (no cancellation when collapsed).
    A class with one sample contributes a zero covariance.
    """
    return prepare(z, labels)[2]


def prepare(z: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, ClassStats]:
    """Checked ``z`` (float64), class codes of each row, and the `ClassStats`."""
    z = check_latents(z)
    labels = check_labels(labels, len(z))
    classes, codes = encode(labels)
    n_classes = len(classes)
    counts = np.bincount(codes, minlength=n_classes)
    means = class_sums(z, codes, n_classes) / counts[:, None]
    resid = z - means[codes]
    weights = 1.0 / counts[codes]
    sigma_w = (resid * weights[:, None]).T @ resid / n_classes
    variances = class_sums((resid * resid).sum(axis=1)[:, None], codes, n_classes)[:, 0] / counts
    stats = ClassStats(classes, counts, means, z.mean(axis=0), sigma_w, variances)
    return z, codes, stats


def chunks(n: int, width: int):
    """Slices of ``range(n)`` small enough that ``rows * width`` stays bounded."""
    step = max(1, CHUNK_ELEMENTS // max(1, width))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def squared_distances(z: np.ndarray, means: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``||z_i - mu_c||^2`` for one chunk, shape (n, C), with both shifted by ``origin``."""
    zc = z - origin
    mc = means - origin
    d2 = (zc * zc).sum(axis=1)[:, None] - 2.0 * zc @ mc.T + (mc * mc).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0)


def index_of(classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each label into ``classes``; -1 where the label is not a class."""
    pos = np.searchsorted(classes, labels)
    pos = np.minimum(pos, len(classes) - 1)
    return np.where(classes[pos] == labels, pos, -1)
