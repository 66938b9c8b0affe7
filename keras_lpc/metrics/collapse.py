"""Neural-collapse metrics NC1-NC4 and `collapse_metrics`, on arrays (NumPy, float64).

Notation: latents ``z_i`` (N x d), integer labels, ``C`` classes present,
``mu_c`` class means, ``mu_G`` the mean of all samples, ``M`` the (C x d)
matrix of centred means ``mu_c - mu_G``, ``Sigma_W`` the mean over classes
of the biased per-class covariances, ``Sigma_B = M^T M / C``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_lpc._validation import as_labels, check_choice, check_float
from keras_lpc.metrics import geometry
from keras_lpc.metrics._stats import (
    ClassStats,
    chunks,
    prepare,
    squared_distances,
)

NC1_VARIANTS = ("papyan", "dim", "trace_ratio")
DEFAULT_METRICS = (
    "nc1",
    "nc1_trace_ratio",
    "cdnv",
    "equinorm",
    "equiangularity",
    "max_angle_deviation",
    "separation_ratio",
    "norm_cv",
    "mean_norm",
    "hypercube_alignment",
)
OPTIONAL_METRICS = ("nc1_dim", "ncc_agreement", "self_duality", "binarity")
BINARITY_NAMES = ("binarity_log_likelihood", "binarity_mean_std", "binarity_peak_distance")


def _degenerate(numerator: float) -> float:
    return float("inf") if numerator > 0 else float("nan")


def nc1_from_stats(stats: ClassStats, variant: str = "papyan", rtol: float | None = None) -> float:
    """NC1 (see `nc1`) from precomputed class statistics."""
    if variant == "trace_ratio":
        between = float(np.trace(stats.sigma_b))
        within = float(np.trace(stats.sigma_w))
        return within / between if between > 0 else _degenerate(within)
    m = stats.centred_means
    n_classes, dim = m.shape
    if rtol is None:
        rtol = max(n_classes, dim) * stats.eps
    # Sigma_B = M^T M / C = V diag(s^2 / C) V^T: its eigenvalues are s^2 / C, and pinv keeps
    # those above rtol times the largest, as scipy.linalg.pinv / torch.linalg.pinv do.
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    eig = s * s
    keep = eig > eig.max(initial=0.0) * rtol
    if not np.any(keep):
        return _degenerate(float(np.trace(stats.sigma_w)))
    v = vt[keep]
    # tr(Sigma_W pinv(Sigma_B)) = sum_k C / s_k^2 v_k' Sigma_W v_k.
    projected = np.einsum("kd,de,ke->k", v, stats.sigma_w, v)
    value = float(np.sum(n_classes / eig[keep] * projected))
    return value / (n_classes if variant == "papyan" else n_classes * dim)


def nc1(z: Any, labels: Any, variant: str = "papyan", *, rtol: float | None = None) -> float:
    """NC1, within-class variability relative to between-class spread (0 at collapse).

    ```
    papyan      : tr(Sigma_W pinv(Sigma_B)) / C      (Papyan, Han & Donoho 2020)
    dim         : tr(Sigma_W pinv(Sigma_B)) / (C d)  (the LPC authors' "weighted" form)
    trace_ratio : tr(Sigma_W) / tr(Sigma_B)
    ```

    Dimensionless and invariant to translating, rotating and scaling ``z``,
    to the order of samples and to renaming classes; ``papyan`` and ``dim``
    are also invariant to any invertible linear map of ``z`` when the class
    means span the latent space (rank ``Sigma_B = d``, so ``d <= C - 1``),
    but not otherwise, as the pseudo-inverse then depends on the basis.
    Classes with one sample contribute a zero covariance to ``Sigma_W``.
    When all class means coincide (``Sigma_B = 0``) the value is ``inf``
    (or NaN if ``Sigma_W = 0`` too). The between-class matrix is
    ``M^T M / C`` with ``mu_G`` the mean of all samples.

    The pseudo-inverse keeps the eigenvalues of ``Sigma_B`` above ``rtol``
    times the largest, as ``scipy.linalg.pinv`` and ``torch.linalg.pinv``
    do. The default follows the precision the latents arrived in:
    ``rtol = max(C, d) * eps`` with ``eps`` the machine epsilon of their
    dtype (1.2e-7 for float32, as Keras models return them; 2.2e-16 for
    float64). A between-class direction below that is rounding noise of
    the latents, and inverting it would blow NC1 up by ``1 / eigenvalue``.

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).
        variant: ``"papyan"``, ``"dim"`` or ``"trace_ratio"``.
        rtol: relative cut-off of the pseudo-inverse (``None``: from the
            dtype of ``z`` as above); unused by ``"trace_ratio"``.

    Returns:
        NC1 as a float.

    Raises:
        ValueError: bad shapes, non-finite ``z``, non-integer labels, fewer
            than two classes, unknown ``variant``.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import nc1
    >>> z = np.array([[-1.1], [-0.9], [0.9], [1.1]])  # Sigma_W = 0.01, Sigma_B = 1
    >>> print(round(nc1(z, [0, 0, 1, 1]), 6), round(nc1(z, [0, 0, 1, 1], "trace_ratio"), 6))
    0.005 0.01
    """
    check_choice("variant", variant, NC1_VARIANTS)
    if rtol is not None:
        rtol = check_float("rtol", rtol, minimum=0.0)
    return nc1_from_stats(prepare(z, labels)[2], variant, rtol)


def cdnv_from_stats(stats: ClassStats) -> float:
    """Class-distance normalised variance (see `cdnv`) from class statistics."""
    diff = stats.means[:, None, :] - stats.means[None, :, :]
    dist2 = (diff * diff).sum(axis=-1)
    var = stats.variances[:, None] + stats.variances[None, :]
    upper = np.triu_indices(len(stats.means), k=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pair = var[upper] / (2.0 * dist2[upper])
    pair[(var[upper] == 0) & (dist2[upper] == 0)] = np.nan
    return float(np.nanmean(pair)) if np.any(~np.isnan(pair)) else float("nan")


def cdnv(z: Any, labels: Any) -> float:
    """Class-distance normalised variance (Galanti et al. 2022), a pairwise NC1.

    With ``V_c = tr(Cov_c)`` the total (biased) variance of class ``c``:

    ```
    CDNV = mean_{c < c'} (V_c + V_c') / (2 ||mu_c - mu_c'||^2)
    ```

    Dimensionless, scale-invariant, 0 at collapse; ``inf`` for a pair of
    distinct classes with the same mean (pairs with zero variance and zero
    distance are left out).

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).

    Returns:
        CDNV as a float.

    Raises:
        ValueError: as `nc1`.

    Example:

    >>> from keras_lpc.metrics import cdnv
    >>> print(round(cdnv([[-1.1], [-0.9], [0.9], [1.1]], [0, 0, 1, 1]), 6))  # 0.02 / 8
    0.0025
    """
    return cdnv_from_stats(prepare(z, labels)[2])


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


def _check_include(include: Any, optional_given: set[str]) -> list[str]:
    if include is None:
        return list(DEFAULT_METRICS) + sorted(optional_given)
    names = [include] if isinstance(include, str) else list(include)
    allowed = DEFAULT_METRICS + OPTIONAL_METRICS
    for name in names:
        check_choice("include", name, allowed)
    return names


def metrics_from_stats(
    stats: ClassStats,
    names: list[str],
    ratio: np.ndarray | None = None,
    norms: tuple[float, float] | None = None,
    agreement: float | None = None,
    classifier_kernel: Any = None,
) -> dict[str, float]:
    """The dict of `collapse_metrics` from statistics and per-sample results."""
    table = {
        "nc1": lambda: nc1_from_stats(stats, "papyan"),
        "nc1_dim": lambda: nc1_from_stats(stats, "dim"),
        "nc1_trace_ratio": lambda: nc1_from_stats(stats, "trace_ratio"),
        "cdnv": lambda: cdnv_from_stats(stats),
        "equinorm": lambda: equinorm_from_stats(stats),
        "equiangularity": lambda: equiangularity_from_stats(stats),
        "max_angle_deviation": lambda: max_angle_deviation_from_stats(stats),
        "separation_ratio": lambda: geometry.reduce_ratio(ratio, "mean"),
        "mean_norm": lambda: norms[0],
        "norm_cv": lambda: norms[1],
        "hypercube_alignment": lambda: geometry.alignment_of_means(stats.means),
        "ncc_agreement": lambda: agreement,
        "self_duality": lambda: self_duality_from_stats(stats, classifier_kernel),
    }
    return {name: float(table[name]()) for name in names if name != "binarity"}


def collapse_metrics(
    z: Any,
    labels: Any,
    *,
    include: Any = None,
    predictions: Any = None,
    classifier_kernel: Any = None,
) -> dict[str, float]:
    """All cheap collapse-geometry metrics of ``z`` in one pass over the data.

    Computes the class statistics once and returns ``{name: value}`` for
    ``nc1``, ``nc1_trace_ratio``, ``cdnv``, ``equinorm``,
    ``equiangularity``, ``max_angle_deviation``, ``separation_ratio``,
    ``norm_cv``, ``mean_norm`` and ``hypercube_alignment`` (each as its own
    function documents), plus ``ncc_agreement`` when ``predictions`` is
    given and ``self_duality`` when ``classifier_kernel`` is given. Opt-in
    through ``include``: ``nc1_dim`` and ``binarity`` (the three
    ``binarity_*`` values of `binarity`, a mixture fit per dimension).

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).
        include: names to compute (``None``: the defaults above).
        predictions: predicted class ids for ``ncc_agreement``.
        classifier_kernel: ``(d, K)`` kernel for ``self_duality``.

    Returns:
        A dict of floats.

    Raises:
        ValueError: as `nc1`; an unknown name in ``include``; a name that
            needs ``predictions`` / ``classifier_kernel`` without it.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import collapse_metrics
    >>> z = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])
    >>> out = collapse_metrics(z, [0, 0, 1, 1])
    >>> print(out["nc1"], out["separation_ratio"], round(out["hypercube_alignment"], 6))
    0.0 inf 1.0
    """
    given = set()
    if predictions is not None:
        given.add("ncc_agreement")
    if classifier_kernel is not None:
        given.add("self_duality")
    names = _check_include(include, given)
    for name, needed in (("ncc_agreement", predictions), ("self_duality", classifier_kernel)):
        if name in names and needed is None:
            arg = "predictions" if name == "ncc_agreement" else "classifier_kernel"
            raise ValueError(f"`{arg}` must be given to compute {name!r}. Received: {arg}=None")
    arr, codes, stats = prepare(z, labels)
    ratio = geometry.sample_separation(arr, codes, stats) if "separation_ratio" in names else None
    norms = None
    if "mean_norm" in names or "norm_cv" in names:
        lengths = np.linalg.norm(arr, axis=1)
        mean = float(lengths.mean())
        norms = (mean, float(lengths.std() / mean) if mean > 0 else float("nan"))
    agreement = None
    if "ncc_agreement" in names:
        preds = as_labels(predictions, len(arr), "predictions")
        agreement = float(np.mean(nearest_class(arr, stats) == preds))
    out = metrics_from_stats(stats, names, ratio, norms, agreement, classifier_kernel)
    if "binarity" in names:
        values = geometry.binarity(arr)
        out.update({f"binarity_{key}": value for key, value in values.items()})
    return out


__all__ = [
    "cdnv",
    "collapse_metrics",
    "equiangularity",
    "equinorm",
    "max_angle_deviation",
    "nc1",
    "ncc_agreement",
    "self_duality",
]
