"""Information-theoretic metrics of latents: entropy, mutual information, synergy.

All quantities are in **nats** and computed with k-nearest-neighbour
estimators on NumPy float64 arrays (sorting for one feature, k-d trees from
`scipy.spatial.cKDTree` in 2-3 dimensions, tiled brute force above: for
the MI terms, a float32 GEMM filter and exact float64 distances of the pairs
it keeps, `keras_lpc.metrics._neighbours`), vectorised over samples; loops
run only over classes, features or tiles. The ``2 d + 1`` MI terms of
`interaction_information` share one search. Every function can subsample
(``max_samples``, with a fixed ``seed``) and is deterministic.

References:
    Kozachenko & Leonenko (1987), "Sample estimate of the entropy of a random
    vector". Kraskov, Stoegbauer & Grassberger (2004), "Estimating mutual
    information". Ross (2014), "Mutual information between discrete and
    continuous data sets", PLoS ONE 9(2). Westphal, Hailes & Musolesi (2025),
    "A Generalized Information Bottleneck Theory of Deep Learning".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import digamma, gammaln

from keras_lpc._validation import standardize as standardize_features
from keras_lpc.metrics._estimators import (
    METHODS,  # noqa: F401  (re-exported: callbacks.information_metrics reads it)
    check_k,
    check_max_samples,
    estimate_mi,
    flat_latents,
    kth_distance,
    label_codes,
    prepare,
    subset_rows,
)
from keras_lpc.metrics.synergy import (
    interaction_information,
    interaction_information_per_feature,
)

__all__ = [
    "information_metrics",
    "interaction_information",
    "interaction_information_per_feature",
    "kl_entropy",
    "mutual_information",
]


def kl_entropy(
    z: Any,
    k: int = 3,
    standardize: bool = False,
    max_samples: int | None = None,
    seed: int = 0,
) -> float:
    """Kozachenko-Leonenko k-NN estimate of the differential entropy of ``z``.

    With ``N`` samples in ``d`` dimensions and ``r_i`` the Euclidean distance
    from ``z_i`` to its k-th nearest neighbour:

    ```
    H(z) = psi(N) - psi(k) + log V_d + (d / N) * sum_i log r_i
    V_d  = pi ** (d / 2) / Gamma(d / 2 + 1)       # volume of the unit ball
    ```

    in nats. ``standardize=True`` gives the **LPC authors' variant**: each
    feature is first standardised (zero mean, unit variance) and the result
    is divided by ``d`` (nats per dimension; the authors use ``k=20``). It is
    invariant to the scale of ``z``, which shrinks like ``1/sqrt(gamma)``
    during an LPC run; the plain estimate falls by ``d * log(s)`` when ``z``
    is scaled by ``s``. Exactly coincident points (``r_i = 0``) give ``-inf``:
    the differential entropy of a collapsed distribution.

    Args:
        z: latents, shape ``(N, d)`` (trailing axes are flattened).
        k: neighbour order, an integer in ``[1, N)``.
        standardize: the authors' standardised, per-dimension variant.
        max_samples: estimate on a random subset of this size (``None``: all).
        seed: seed of the subset.

    Returns:
        The entropy in nats (nats per dimension when ``standardize=True``).

    Raises:
        TypeError: ``z`` is not numeric, ``k`` / ``max_samples`` not integers.
        ValueError: ``z`` is not 2-D or not finite, ``k >= N``.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import kl_entropy
    >>> z = np.random.default_rng(0).uniform(0.0, 2.0, size=(4000, 2))
    >>> print(round(kl_entropy(z), 2), round(2 * np.log(2.0), 2))  # box of side 2
    1.39 1.39
    """
    arr = flat_latents(z)
    max_samples = check_max_samples(max_samples)
    arr, _ = subset_rows(arr, None, max_samples, seed)
    n, d = arr.shape
    k = check_k(k, n)
    if standardize:
        arr = standardize_features(arr)
    dist = kth_distance(arr, k)
    log_volume = 0.5 * d * np.log(np.pi) - gammaln(0.5 * d + 1.0)
    with np.errstate(divide="ignore"):
        mean_log_r = float(np.mean(np.log(dist)))
    value = digamma(n) - digamma(k) + log_volume + d * mean_log_r
    return float(value / d if standardize else value)


def mutual_information(
    z: Any,
    y: Any,
    k: int = 3,
    method: str = "knn",
    n_clusters: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
) -> float:
    """Mutual information ``I(z; y)`` between continuous latents and discrete labels.

    ``method="knn"`` (default) is Ross's (2014) k-NN estimator for mixed
    continuous/discrete pairs. For each sample ``i`` of class ``y_i``, let
    ``d_i`` be the Euclidean distance to its k-th nearest neighbour among the
    ``N_{y_i}`` samples of its class, and ``m_i`` the number of samples of
    any class within ``d_i`` (``i`` itself excluded); then

    ```
    I(z; y) = psi(N) - <psi(N_{y_i})> + psi(k) - <psi(m_i)>
    ```

    in nats (``<.>``: mean over samples; classes seen once are dropped and
    ``k`` is capped at ``N_c - 1`` for small classes). Features are
    standardised first (an invertible per-feature map, which leaves the true
    MI unchanged). The estimate is not clipped, so it can be slightly
    negative when the true value is 0.

    ``method="plugin"`` suits latents that have collapsed to a few points:
    ``z`` is clustered with k-means into ``n_clusters`` clusters (default:
    the number of classes) and the plug-in estimate of the discrete MI is
    returned, ``sum_{c,y} p(c, y) log(p(c, y) / (p(c) p(y)))``.

    Args:
        z: latents, shape ``(N, d)``, any ``d >= 1`` (trailing axes flattened).
        y: labels, shape ``(N,)`` (any values) or one-hot ``(N, C)``.
        k: neighbour order, an integer in ``[1, N)``.
        method: ``"knn"`` or ``"plugin"``.
        n_clusters: clusters for ``method="plugin"`` (``None``: classes).
        max_samples: estimate on a random subset of this size (``None``: all).
        seed: seed of the subset and of k-means.

    Returns:
        ``I(z; y)`` in nats; at most ``log C`` in truth.

    Raises:
        TypeError: ``z`` is not numeric, or an integer argument is not one.
        ValueError: shapes disagree, ``z`` is not finite, ``k >= N``, or an
            unknown ``method``.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import mutual_information
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000)
    >>> z = y[:, None] + 0.01 * rng.normal(size=(2000, 3))  # z copies y
    >>> print(round(mutual_information(z, y), 2), round(np.log(2), 2))
    0.69 0.69
    >>> abs(mutual_information(rng.normal(size=(2000, 3)), y)) < 0.03  # independent
    True
    """
    arr, labels, k, method, n_clusters = prepare(z, y, k, method, n_clusters, max_samples, seed)
    return estimate_mi(arr, labels, k, method, n_clusters, seed)


def information_metrics(
    z: Any,
    y: Any,
    k: int = 3,
    standardize: bool = False,
    method: str = "knn",
    features: Any = None,
    max_samples: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Entropy, mutual information and synergy of ``z`` in one call (nats).

    ``{"entropy": kl_entropy(z, k, standardize), "mutual_information":
    mutual_information(z, y, k, method), "interaction_information":
    interaction_information(z, y, k, features, method=method)}``, all on the
    same subset. ``interaction_information`` is NaN when ``z`` has 1 feature.

    Args:
        z: latents, shape ``(N, d)``.
        y: labels, shape ``(N,)`` or one-hot ``(N, C)``.
        k: neighbour order.
        standardize: entropy in the authors' variant (nats per dimension);
            ``False`` (the default, as in `kl_entropy`): the plain estimate.
        method: ``"knn"`` or ``"plugin"`` for the MI terms.
        features: features to average the synergy over (``None``: all).
        max_samples: use a random subset of this size (``None``: all).
        seed: seed of the subset.

    Returns:
        A dict with keys ``entropy``, ``mutual_information`` and
        ``interaction_information``.

    Raises:
        TypeError, ValueError: as the three functions.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import information_metrics
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 1000)
    >>> out = information_metrics(y[:, None] + 0.01 * rng.normal(size=(1000, 2)), y)
    >>> print({name: round(v, 2) for name, v in out.items()})
    {'entropy': -5.71, 'mutual_information': 0.69, 'interaction_information': -0.69}
    """
    arr = flat_latents(z)
    labels = label_codes(y, len(arr))
    arr, labels = subset_rows(arr, labels, check_max_samples(max_samples), seed)
    synergy = (
        interaction_information(arr, labels, k, features, method=method, seed=seed)
        if arr.shape[1] >= 2
        else float("nan")
    )
    return {
        "entropy": kl_entropy(arr, k, standardize=standardize),
        "mutual_information": mutual_information(arr, labels, k, method=method, seed=seed),
        "interaction_information": synergy,
    }
