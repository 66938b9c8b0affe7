"""NC2-NC4: the geometry of the class means and of the classifier (NumPy, float64).

Equal norms and equal angles of the centred class means (NC2), their
alignment with the classifier (NC3) and nearest-class-centre agreement
(NC4). Notation as in `keras_lpc.metrics.variability`: ``mu_c`` class
means, ``mu_G`` the mean of all samples, ``M`` the (C x d) matrix of centred
means ``mu_c - mu_G``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_lpc._validation import as_labels
from keras_lpc.metrics._stats import ClassStats, chunks, prepare, squared_distances


def _centred_cosines(stats: ClassStats) -> np.ndarray:
    m = stats.centred_means
    norms = np.linalg.norm(m, axis=1)
    unit = np.divide(m, norms[:, None], out=np.zeros_like(m), where=norms[:, None] > 0)
    return (unit @ unit.T)[np.triu_indices(len(m), k=1)]


def equinorm_from_stats(stats: ClassStats) -> float:
    """Equinorm (see `equinorm`) from class statistics."""
    norms = np.linalg.norm(stats.centred_means, axis=1)
    mean = norms.mean()
    return float(norms.std() / mean) if mean > 0 else float("nan")


def equinorm(z: Any, labels: Any) -> float:
    """NC2 (norms): coefficient of variation of the centred class-mean norms.

    ```
    equinorm = std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||
    ```

    Dimensionless (population std); 0 when all class means are equally far
    from the global mean.

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).

    Returns:
        The coefficient of variation.

    Raises:
        ValueError: as `nc1`.

    Example:

    >>> from keras_lpc.metrics import equinorm
    >>> print(round(equinorm([[0.0], [1.0], [5.0]], [0, 1, 2]), 4))  # norms 2, 1, 3
    0.4082
    """
    return equinorm_from_stats(prepare(z, labels)[2])


def equiangularity_from_stats(stats: ClassStats) -> float:
    """Equiangularity (see `equiangularity`) from class statistics."""
    return float(np.std(_centred_cosines(stats)))


def equiangularity(z: Any, labels: Any) -> float:
    """NC2 (angles): spread of the pairwise cosines between centred class means.

    ```
    cos_cc' = <mu_c - mu_G, mu_c' - mu_G> / (||mu_c - mu_G|| ||mu_c' - mu_G||)
    equiangularity = std_{c < c'} cos_cc'
    ```

    Dimensionless; 0 for equal angles (e.g. a simplex ETF). A zero centred
    mean has cosine 0 with every other.

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).

    Returns:
        The population std of the cosines (0 for two classes).

    Raises:
        ValueError: as `nc1`.

    Example:

    >>> from keras_lpc.metrics import equiangularity
    >>> print(round(equiangularity([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [0, 1, 2]), 4))
    0.3333
    """
    return equiangularity_from_stats(prepare(z, labels)[2])


def max_angle_deviation_from_stats(stats: ClassStats) -> float:
    """Max-angle deviation (see `max_angle_deviation`) from class statistics."""
    n_classes = len(stats.means)
    return float(np.mean(np.abs(_centred_cosines(stats) + 1.0 / (n_classes - 1))))


def max_angle_deviation(z: Any, labels: Any) -> float:
    """NC2 (ETF): mean distance of the pairwise cosines from the simplex value ``-1/(C-1)``.

    ```
    max_angle_deviation = mean_{c < c'} |cos_cc' + 1 / (C - 1)|
    ```

    Dimensionless; 0 exactly when the centred class means form a simplex
    equiangular tight frame (maximally separated directions).

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).

    Returns:
        The mean absolute deviation.

    Raises:
        ValueError: as `nc1`.

    Example:

    >>> from keras_lpc.metrics import max_angle_deviation
    >>> z = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]  # a square, not a simplex
    >>> print(round(max_angle_deviation(z, [0, 1, 2, 3]), 4))  # (4 * 1/3 + 2 * 2/3) / 6
    0.4444
    """
    return max_angle_deviation_from_stats(prepare(z, labels)[2])


def self_duality_from_stats(stats: ClassStats, classifier_kernel: Any) -> float:
    """Self-duality (see `self_duality`) from class statistics."""
    kernel = np.asarray(classifier_kernel, dtype=np.float64)
    dim = stats.means.shape[1]
    if kernel.ndim != 2 or kernel.shape[0] != dim or stats.classes.min() < 0:
        raise ValueError(
            f"`classifier_kernel` must have shape (d, K) = ({dim}, K) with K above every "
            f"class id. Received: classifier_kernel with shape {kernel.shape}"
        )
    if stats.classes.max() >= kernel.shape[1]:
        raise ValueError(
            f"`classifier_kernel` must have a column for every class id (largest "
            f"{int(stats.classes.max())}). Received: classifier_kernel with shape {kernel.shape}"
        )
    w = kernel[:, stats.classes].T
    m = stats.centred_means
    w_norm, m_norm = np.linalg.norm(w), np.linalg.norm(m)
    if w_norm == 0 or m_norm == 0:
        return float("nan")
    return float(np.sum((w / w_norm - m / m_norm) ** 2))


def self_duality(z: Any, labels: Any, classifier_kernel: Any) -> float:
    """NC3: distance between the normalised classifier and the normalised class means.

    With ``W`` the (C x d) classifier rows of the classes present (the
    columns of a Keras ``Dense`` kernel of shape ``(d, K)``, picked by class
    id) and ``M`` the centred class means:

    ```
    self_duality = || W / ||W||_F - M / ||M||_F ||_F^2
    ```

    Dimensionless, in ``[0, 4]``; 0 when classifier and class means align
    (the bias is ignored). NaN if ``W`` or ``M`` is zero.

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids in ``[0, K)``, shape ``(N,)``.
        classifier_kernel: the last layer's kernel, shape ``(d, K)``.

    Returns:
        The squared Frobenius distance.

    Raises:
        ValueError: as `nc1`, or a kernel of the wrong shape.

    Example:

    >>> from keras_lpc.metrics import self_duality
    >>> z = [[1.0, 0.0], [-1.0, 0.0]]
    >>> print(self_duality(z, [0, 1], [[2.0, -2.0], [0.0, 0.0]]))
    0.0
    """
    return self_duality_from_stats(prepare(z, labels)[2], classifier_kernel)


def nearest_class(z: np.ndarray, stats: ClassStats) -> np.ndarray:
    """Class id of the nearest class mean for every row of ``z`` (chunked)."""
    nearest = np.empty(len(z), dtype=np.int64)
    for part in chunks(len(z), len(stats.classes)):
        d2 = squared_distances(z[part], stats.means, stats.global_mean)
        nearest[part] = np.argmin(d2, axis=1)
    return stats.classes[nearest]


def ncc_agreement(z: Any, labels: Any, predictions: Any) -> float:
    """NC4: fraction of samples whose nearest class mean is the network's prediction.

    ```
    ncc_agreement = mean_i [ argmin_c ||z_i - mu_c|| == prediction_i ]
    ```

    The class means come from ``labels``. In ``[0, 1]``; 1 when the network
    acts as a nearest-class-centre classifier on ``z``.

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids defining the means, shape ``(N,)``.
        predictions: integer predicted class ids, shape ``(N,)``.

    Returns:
        The agreement fraction.

    Raises:
        ValueError: as `nc1`, or bad ``predictions``.

    Example:

    >>> from keras_lpc.metrics import ncc_agreement
    >>> z = [[0.0], [0.2], [1.0], [0.4]]
    >>> print(ncc_agreement(z, [0, 0, 1, 1], [0, 0, 1, 0]))  # means 0.1, 0.7
    0.75
    """
    arr, _, stats = prepare(z, labels)
    predictions = as_labels(predictions, len(arr), "predictions")
    return float(np.mean(nearest_class(arr, stats) == predictions))


__all__ = [
    "equiangularity",
    "equinorm",
    "max_angle_deviation",
    "ncc_agreement",
    "self_duality",
]
