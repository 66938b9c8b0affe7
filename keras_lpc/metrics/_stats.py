"""Class statistics shared by the collapse-geometry and misclassification metrics.

Everything here is NumPy in float64. `ClassStats` holds what every
class-mean metric needs (counts, means, global mean, within-class
covariance); it is built in one shot by `prepare` or batch by batch by
`keras_lpc.metrics.CollapseAccumulator`, so both give the same numbers.
Input checks live in `keras_lpc._validation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_lpc._validation import as_labels, as_latents, precision_of

# Rows per chunk when an (N, C) array of distances is formed.
CHUNK_ELEMENTS = 1 << 22


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
        eps: machine epsilon of the type the latents arrived in (float32's
            for float32 latents); it sets the default pseudo-inverse
            tolerance of NC1.
    """

    classes: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    global_mean: np.ndarray
    sigma_w: np.ndarray
    variances: np.ndarray
    eps: float = float(np.finfo(np.float64).eps)

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


def class_means(z: np.ndarray, codes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, means)``: samples per class (C,) and class means (C, d) of ``z``."""
    counts = np.bincount(codes, minlength=n_classes)
    return counts, class_sums(z, codes, n_classes) / counts[:, None]


def prepare(z: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, ClassStats]:
    """Checked ``z`` (float64), class codes of each row, and the `ClassStats`."""
    eps = precision_of(z)
    z = as_latents(z)
    labels = as_labels(labels, len(z))
    classes, codes = encode(labels)
    n_classes = len(classes)
    counts, means = class_means(z, codes, n_classes)
    resid = z - means[codes]
    weights = 1.0 / counts[codes]
    sigma_w = (resid * weights[:, None]).T @ resid / n_classes
    variances = class_sums((resid * resid).sum(axis=1)[:, None], codes, n_classes)[:, 0] / counts
    stats = ClassStats(classes, counts, means, z.mean(axis=0), sigma_w, variances, eps)
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
    d2 = zc @ (-2.0 * mc).T
    d2 += np.einsum("ij,ij->i", zc, zc)[:, None]
    d2 += np.einsum("ij,ij->i", mc, mc)[None, :]
    return np.maximum(d2, 0.0, out=d2)


def index_of(classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each label into ``classes``; -1 where the label is not a class."""
    pos = np.searchsorted(classes, labels)
    pos = np.minimum(pos, len(classes) - 1)
    return np.where(classes[pos] == labels, pos, -1)
