"""Shape of the latent cloud: class separation, norms, hypercube vertices, binarity.

Pure NumPy functions (float64). The class-separation ratio is computed in
chunks so that no (N, C) array larger than a few million entries is formed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from keras_lpc._validation import (
    as_latents,
    check_choice,
    check_float,
    check_int,
    standardize,
    subsample,
)
from keras_lpc.metrics._stats import (
    ClassStats,
    chunks,
    prepare,
)

REDUCTIONS = ("mean", "median", "none")


def sample_separation(z: np.ndarray, codes: np.ndarray, stats: ClassStats) -> np.ndarray:
    """Per-sample ratio ``r_i`` (see `separation_ratio`); NaN for one-sample classes."""
    return separation_and_nearest(z, codes, stats)[0]


def separation_and_nearest(
    z: np.ndarray, codes: np.ndarray, stats: ClassStats
) -> tuple[np.ndarray, np.ndarray]:
    """``(r_i, nearest_i)``: separation ratios and nearest-mean class indices from one pass.

    Both come from one ``(n, C)`` matrix of squared distances per chunk,
    ``|z_i - mu_c|^2 = |z_i|^2 - 2 z_i . mu_c + |mu_c|^2`` (one GEMM, both
    shifted by ``mu_G``). The own-class distance is taken from that matrix
    where it is well conditioned and recomputed as ``|z_i - mu_{y_i}|`` where
    the expansion would lose digits (a sample near its centroid, collapse).
    ``nearest_i`` indexes ``stats.classes``.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics._stats import prepare
    >>> z, codes, stats = prepare(np.array([[0.0], [2.0], [10.0], [12.0]]), [0, 0, 1, 1])
    >>> ratio, nearest = separation_and_nearest(z, codes, stats)  # means 1 and 11
    >>> print(ratio.tolist(), "nearest:", nearest.tolist())
    [11.0, 9.0, 9.0, 11.0] nearest: [0, 0, 1, 1]
    """
    n = len(z)
    own2 = np.empty(n)
    other = np.empty(n)
    nearest = np.empty(n, dtype=np.int64)
    mc = stats.means - stats.global_mean
    sq_m = np.einsum("ij,ij->i", mc, mc)
    for part in chunks(n, len(stats.classes)):
        zc = z[part] - stats.global_mean
        sq_z = np.einsum("ij,ij->i", zc, zc)
        d2 = zc @ (-2.0 * mc).T
        d2 += sq_z[:, None]
        d2 += sq_m[None, :]
        np.maximum(d2, 0.0, out=d2)
        nearest[part] = np.argmin(d2, axis=1)
        rows, own = np.arange(d2.shape[0]), codes[part]
        mine = d2[rows, own]
        # Rounding of the expansion is ~eps (|z|^2 + |mu|^2): exact where that is not small.
        coarse = np.flatnonzero(mine < 1e-3 * (sq_z + sq_m[own]))
        resid = zc[coarse] - mc[own[coarse]]
        mine[coarse] = np.einsum("ij,ij->i", resid, resid)
        own2[part] = mine
        d2[rows, own] = np.inf
        other[part] = np.sqrt(d2.min(axis=1))
    own = np.sqrt(own2)
    own[own <= 1e-12 * other] = 0.0  # on the centroid up to rounding of the mean
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = other / own
    ratio[(own == 0) & (other == 0)] = 1.0  # two classes share a mean and z sits on it
    ratio[stats.counts[codes] < 2] = np.nan
    return ratio, nearest


def reduce_ratio(ratio: np.ndarray, reduction: str) -> float:
    """Mean or median of the defined (non-NaN) ratios; NaN if there are none."""
    kept = ratio[~np.isnan(ratio)]
    if kept.size == 0:
        return float("nan")
    return float(np.mean(kept) if reduction == "mean" else np.median(kept))


def separation_ratio(z: Any, labels: Any, reduction: str = "mean") -> float:
    """Class-separation ratio ``R``: distance to the nearest other class over distance to one's own.

    For each sample ``i`` with label ``y_i`` and class means ``mu_c``:

    ```
    r_i = min_{c != y_i} ||z_i - mu_c|| / ||z_i - mu_{y_i}||
    R   = mean_i r_i
    ```

    Dimensionless and scale-invariant; ``R > 1`` means the sample is nearer
    its own class mean. Treatment of the edge cases:

    * a sample on its own centroid (distance below ``1e-12`` times the
      other distance, i.e. up to rounding of the mean) has ``r_i = +inf``, so ``R = inf``
      (perfect collapse); ``reduction="median"`` gives a finite summary while
      fewer than half the samples sit on their centroid;
    * if it is also exactly on another class's mean (two classes share a
      mean), ``r_i = 1``;
    * samples of a class with a single sample (always on its centroid) carry
      no information and are left out (``NaN`` in
      `separation_ratio_per_sample`); ``R`` is NaN when every class has one sample.

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).
        reduction: ``"mean"`` or ``"median"``. ``"none"`` is deprecated (it
            returned the per-sample array): use `separation_ratio_per_sample`.

    Returns:
        ``R`` as a float (always a float; the per-sample ratios come from
        `separation_ratio_per_sample`).

    Raises:
        ValueError: bad shapes, non-finite ``z``, non-integer labels, fewer
            than two classes, unknown ``reduction``.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import separation_ratio
    >>> z = np.array([[0.0], [2.0], [10.0], [12.0]])  # means 1 and 11
    >>> print(separation_ratio(z, [0, 0, 1, 1]), separation_ratio(z[[0, 0, 2, 2]], [0, 0, 1, 1]))
    10.0 inf
    """
    check_choice("reduction", reduction, REDUCTIONS)
    if reduction == "none":
        warnings.warn(
            'separation_ratio(reduction="none") is deprecated and will be removed; '
            "use separation_ratio_per_sample(z, labels) for the per-sample ratios.",
            DeprecationWarning,
            stacklevel=2,
        )
        return separation_ratio_per_sample(z, labels)  # type: ignore[return-value]
    arr, codes, stats = prepare(z, labels)
    return reduce_ratio(sample_separation(arr, codes, stats), reduction)


def separation_ratio_per_sample(z: Any, labels: Any) -> np.ndarray:
    """The per-sample class-separation ratios ``r_i`` of `separation_ratio`.

    ```
    r_i = min_{c != y_i} ||z_i - mu_c|| / ||z_i - mu_{y_i}||
    ```

    Dimensionless, with the edge cases of `separation_ratio`: ``+inf`` on
    one's own centroid, 1 on a mean shared by two classes, NaN for the
    sample of a one-sample class.

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).

    Returns:
        The ratios, a float64 array of shape ``(N,)``.

    Raises:
        ValueError: as `separation_ratio`.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import separation_ratio_per_sample
    >>> z = np.array([[0.0], [2.0], [10.0], [12.0]])  # means 1 and 11
    >>> separation_ratio_per_sample(z, [0, 0, 1, 1])
    array([11.,  9.,  9., 11.])
    """
    arr, codes, stats = prepare(z, labels)
    return sample_separation(arr, codes, stats)


def mean_norm(z: Any) -> float:
    """Mean Euclidean norm of the latents, ``mean_i ||z_i||`` (units of ``z``).

    The radius of the shell the latents sit on; in LPC it shrinks like
    ``1 / sqrt(gamma)``.

    Args:
        z: latents, shape ``(N, d)``.

    Returns:
        The mean norm.

    Raises:
        ValueError: ``z`` is not 2-D or not finite.

    Example:

    >>> from keras_lpc.metrics import mean_norm
    >>> print(mean_norm([[3.0, 4.0], [0.0, 1.0]]))
    3.0
    """
    return float(np.mean(np.linalg.norm(as_latents(z), axis=1)))


def norm_cv(z: Any) -> float:
    """Coefficient of variation of the latent norms, ``std_i ||z_i|| / mean_i ||z_i||``.

    Dimensionless (population std); 0 when every latent has the same norm.
    NaN when every latent is zero.

    Args:
        z: latents, shape ``(N, d)``.

    Returns:
        The coefficient of variation.

    Raises:
        ValueError: ``z`` is not 2-D or not finite.

    Example:

    >>> from keras_lpc.metrics import norm_cv
    >>> print(norm_cv([[3.0, 4.0], [0.0, 5.0]]), norm_cv([[1.0, 0.0], [3.0, 0.0]]))
    0.0 0.5
    """
    norms = np.linalg.norm(as_latents(z), axis=1)
    mean = norms.mean()
    return float(norms.std() / mean) if mean > 0 else float("nan")


def alignment_of_means(means: np.ndarray) -> float:
    """Mean over rows of ``||m||_1 / (sqrt(d) ||m||_2)`` (0 for a zero row)."""
    l2 = np.linalg.norm(means, axis=1)
    l1 = np.abs(means).sum(axis=1)
    cos = np.divide(l1, np.sqrt(means.shape[1]) * l2, out=np.zeros_like(l1), where=l2 > 0)
    return float(np.mean(cos))


def hypercube_alignment(z: Any, labels: Any, center: bool = False) -> float:
    """Mean cosine between each class point and its nearest hypercube vertex.

    The vertex of ``{-1, +1}^d`` with the largest cosine to a class mean
    ``mu_c`` is ``sign(mu_c)``, so

    ```
    a_c = cos(mu_c, sign(mu_c)) = ||mu_c||_1 / (sqrt(d) ||mu_c||_2)
    alignment = mean_c a_c
    ```

    Dimensionless, in ``[1/sqrt(d), 1]``; 1 when every class point is a
    (scaled) vertex. A zero class mean counts as 0.

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).
        center: measure ``mu_c - mu_G`` instead of ``mu_c``.

    Returns:
        The mean alignment.

    Raises:
        ValueError: bad shapes, non-finite ``z``, non-integer labels, fewer
            than two classes.

    Example:

    >>> from keras_lpc.metrics import hypercube_alignment
    >>> z = [[0.5, -0.5], [0.5, -0.5], [1.0, 0.0], [1.0, 0.0]]
    >>> print(round(hypercube_alignment(z, [0, 0, 1, 1]), 4))  # (1 + 1/sqrt(2)) / 2
    0.8536
    """
    stats = prepare(z, labels)[2]
    return alignment_of_means(stats.centred_means if center else stats.means)


def binarity(
    z: Any,
    max_samples: int | None = 10000,
    reg_covar: float = 1e-6,
    seed: int = 0,
) -> dict[str, float]:
    """How bimodal each latent dimension is: a 2-component Gaussian mixture per dimension.

    Each dimension ``k`` is standardised (zero mean, unit variance; a
    constant dimension is only centred) and fitted with a two-component 1-D
    Gaussian mixture (scikit-learn, variances floored by ``reg_covar``),
    giving means ``m1, m2`` and standard deviations ``s1, s2``. Averaged
    over dimensions:

    ```
    log_likelihood = mean per-sample log-likelihood of the mixture (nats)
    mean_std       = (s1 + s2) / 2                  (standardised units)
    peak_distance  = |m1 - m2| / ((s1 + s2) / 2)    (dimensionless)
    ```

    Binary codes ``+-1`` plus noise of std ``s`` in equal proportions give
    ``mean_std = s / sqrt(1 + s^2)`` and ``peak_distance = 2 / s``.

    Args:
        z: latents, shape ``(N, d)``, ``N >= 2``.
        max_samples: fit on a random subset of this many rows (``None``: all).
        reg_covar: variance floor of the mixture, ``> 0``.
        seed: seed of the subset and of the mixture's initialisation.

    Returns:
        A dict with keys ``log_likelihood``, ``mean_std``, ``peak_distance``.

    Raises:
        ValueError: ``z`` is not 2-D, not finite, or has fewer than 2 rows.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import binarity
    >>> rng = np.random.default_rng(0)
    >>> z = np.sign(rng.normal(size=(4000, 2))) + 0.1 * rng.normal(size=(4000, 2))
    >>> print(round(binarity(z)["peak_distance"]))  # 2 / 0.1
    20
    """
    from sklearn.mixture import GaussianMixture

    arr = as_latents(z)
    reg_covar = check_float("reg_covar", reg_covar, strictly_positive=True)
    if len(arr) < 2:
        raise ValueError(f"`z` must have at least 2 rows. Received: z with shape {arr.shape}")
    if max_samples is not None:
        max_samples = check_int("max_samples", max_samples, minimum=2)
    rows = subsample(len(arr), max_samples, seed)
    arr = standardize(arr if rows is None else arr[rows])
    loglik, mean_std, peak = [], [], []
    for k in range(arr.shape[1]):  # a loop over dimensions, not samples
        gmm = GaussianMixture(2, reg_covar=reg_covar, random_state=seed).fit(arr[:, k : k + 1])
        stds = np.sqrt(gmm.covariances_.reshape(-1))
        loglik.append(gmm.score(arr[:, k : k + 1]))
        mean_std.append(stds.mean())
        peak.append(abs(gmm.means_[0, 0] - gmm.means_[1, 0]) / stds.mean())
    return {
        "log_likelihood": float(np.mean(loglik)),
        "mean_std": float(np.mean(mean_std)),
        "peak_distance": float(np.mean(peak)),
    }
