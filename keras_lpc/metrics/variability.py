"""NC1 and CDNV: within-class variability against between-class spread (NumPy, float64).

Notation: latents ``z_i`` (N x d), integer labels, ``C`` classes present,
``mu_c`` class means, ``mu_G`` the mean of all samples, ``M`` the (C x d)
matrix of centred means ``mu_c - mu_G``, ``Sigma_W`` the mean over classes
of the biased per-class covariances, ``Sigma_B = M^T M / C``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_lpc._validation import check_choice, check_float
from keras_lpc.metrics._stats import ClassStats, prepare

NC1_VARIANTS = ("papyan", "dim", "trace_ratio")


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


__all__ = ["cdnv", "nc1"]
