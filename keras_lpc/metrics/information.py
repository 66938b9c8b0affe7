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

import warnings
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from keras_lpc._validation import (
    as_labels,
    as_latents,
    check_choice,
    check_int,
    subsample,
)
from keras_lpc._validation import (
    standardize as standardize_features,
)
from keras_lpc.metrics._neighbours import ross_counts, ross_counts_1d

METHODS = ("knn", "plugin")
_TREE_MAX_DIM = 3
_RTOL = 1e-9
_ATOL = 1e-12


def _latents(z: Any) -> np.ndarray:
    return as_latents(z, flatten=True)


def _labels(y: Any, n: int) -> np.ndarray:
    """Class labels as integer codes 0..C-1 (any values; one-hot rows are argmax-ed)."""
    arr = as_labels(y, n, "y", integer=False, one_hot=True)
    return np.unique(arr, return_inverse=True)[1].reshape(-1)


def _subset(z: np.ndarray, y: np.ndarray | None, max_samples: int | None, seed: int):
    rows = subsample(len(z), max_samples, seed)
    if rows is None:
        return z, y
    return z[rows], (None if y is None else y[rows])


def _check_k(k: Any, n: int) -> int:
    k = check_int("k", k, minimum=1)
    if k >= n:
        raise ValueError(f"`k` must be smaller than the number of samples ({n}). Received: k={k}")
    return k


def _check_max_samples(max_samples: Any) -> int | None:
    return None if max_samples is None else check_int("max_samples", max_samples, minimum=2)


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
    arr = _latents(z)
    max_samples = _check_max_samples(max_samples)
    arr, _ = _subset(arr, None, max_samples, seed)
    n, d = arr.shape
    k = _check_k(k, n)
    if standardize:
        arr = standardize_features(arr)
    dist = _kth_distance(arr, k)
    log_volume = 0.5 * d * np.log(np.pi) - gammaln(0.5 * d + 1.0)
    with np.errstate(divide="ignore"):
        mean_log_r = float(np.mean(np.log(dist)))
    value = digamma(n) - digamma(k) + log_volume + d * mean_log_r
    return float(value / d if standardize else value)


def _kth_distance(
    z: np.ndarray, k: int, queries: np.ndarray | None = None, chunk: int = 1024
) -> np.ndarray:
    """Euclidean distance from rows ``queries`` of ``z`` (all) to their k-th nearest other row."""
    if z.shape[1] <= _TREE_MAX_DIM and queries is None:
        return cKDTree(z).query(z, k=k + 1)[0][:, -1]
    # k-d trees degrade to slow brute force in many dimensions: tiled GEMM instead.
    queries = np.arange(len(z)) if queries is None else queries
    sq = np.einsum("ij,ij->i", z, z)
    out = np.empty(len(queries))
    for start in range(0, len(queries), chunk):
        part = slice(start, start + chunk)
        rows = queries[part]
        d2 = z[rows] @ z.T
        d2 *= -2.0
        d2 += sq[None, :]
        d2 += sq[rows, None]
        d2[np.arange(len(rows)), rows] = np.inf  # not its own neighbour
        out[part] = np.partition(d2, k - 1, axis=1)[:, k - 1]
    return np.sqrt(np.maximum(out, 0.0))


def _count_within(
    z: np.ndarray, radius: np.ndarray, queries: np.ndarray | None = None, chunk: int = 1024
) -> np.ndarray:
    """Rows of ``z`` within Euclidean ``radius`` of each row ``queries`` (itself included)."""
    if z.shape[1] <= _TREE_MAX_DIM and queries is None:
        return cKDTree(z).query_ball_point(z, r=radius * (1 + _RTOL), return_length=True)
    queries = np.arange(len(z)) if queries is None else queries
    sq = np.einsum("ij,ij->i", z, z)
    counts = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        part = slice(start, start + chunk)
        rows = queries[part]
        # |a - b|^2 <= r^2  <=>  |b|^2 - 2 a.b <= r^2 - |a|^2, in tiles of `chunk` rows.
        lhs = z[rows] @ z.T
        lhs *= -2.0
        lhs += sq[None, :]
        rhs = radius[part] ** 2 * (1 + _RTOL) + _ATOL - sq[rows]
        counts[part] = np.count_nonzero(lhs <= rhs[:, None], axis=1)
    return counts


def _class_radius(z: np.ndarray, y: np.ndarray, k_i: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Distance from each of ``rows`` to its ``k_i``-th nearest neighbour of its own class."""
    radius = np.empty(len(rows))
    for c in np.unique(y[rows]):  # a loop over classes
        members = np.flatnonzero(y == c)
        mine = np.flatnonzero(y[rows] == c)
        local = np.searchsorted(members, rows[mine])
        full = len(mine) == len(members)
        radius[mine] = _kth_distance(z[members], int(k_i[rows[mine[0]]]), None if full else local)
    return radius


def _mi_knn(z: np.ndarray, y: np.ndarray, k: int) -> float:
    """Ross (2014) estimator of I(z; y), continuous z, integer-coded y."""
    return float(_mi_knn_spaces(z, y, k, [np.arange(z.shape[1])])[0])


def _mi_knn_spaces(z: np.ndarray, y: np.ndarray, k: int, spaces: list[np.ndarray]) -> np.ndarray:
    """Ross's I(z_s; y) for several column subsets ``s`` of ``z`` (one value each, nats)."""
    counts = np.bincount(y)
    n_y = counts[y]
    keep = n_y > 1  # a class seen once carries no neighbour information
    z, y, n_y = z[keep], y[keep], n_y[keep]
    n = len(z)
    if n < 2:
        return np.zeros(len(spaces))
    k_i = np.minimum(k, n_y - 1).astype(np.float64)
    m = np.empty((len(spaces), n))
    wide = [s for s, columns in enumerate(spaces) if len(columns) > _TREE_MAX_DIM]
    for s, columns in enumerate(spaces):
        if len(columns) == 1:  # sorting
            m[s] = ross_counts_1d(z[:, columns[0]], y, k_i)
        elif len(columns) <= _TREE_MAX_DIM:  # k-d trees
            x = np.ascontiguousarray(z[:, columns])
            radius = np.empty(n)
            for c in np.unique(y):  # a loop over classes
                idx = np.flatnonzero(y == c)
                radius[idx] = _kth_distance(x[idx], int(k_i[idx[0]]))
            m[s] = _count_within(x, radius) - 1
    if wide:
        # One filtered brute-force search per space, bounded by the radii of the union of
        # their columns; counts it cannot settle (ties, collapsed latents) are exact below.
        counts_wide, unsolved = ross_counts(z, y, k_i, [spaces[s] for s in wide])
        for row, s in enumerate(wide):
            m[s] = counts_wide[row]
            rest = np.flatnonzero(unsolved[row])
            if rest.size:
                x = np.ascontiguousarray(z[:, spaces[s]])
                radius = _class_radius(x, y, k_i, rest)
                m[s, rest] = _count_within(x, radius, rest) - 1
    # m_i: points of any class within the same radius, the point itself excluded;
    # at least the k_i neighbours of its own class (guards against rounding).
    m = np.maximum(m, k_i)
    base = digamma(n) - np.mean(digamma(n_y)) + np.mean(digamma(k_i))
    return base - np.mean(digamma(m), axis=1)


def _mi_plugin(z: np.ndarray, y: np.ndarray, n_clusters: int | None, seed: int) -> float:
    """Plug-in I(cluster(z); y) from the contingency table of k-means clusters."""
    from sklearn.cluster import KMeans

    if n_clusters is None:
        n_clusters = int(y.max()) + 1
    n_clusters = min(n_clusters, len(np.unique(z, axis=0)))
    if n_clusters > 1:
        cluster = KMeans(n_clusters, n_init=4, random_state=seed).fit_predict(z)
    else:
        cluster = np.zeros(len(z), dtype=np.int64)
    n_y = int(y.max()) + 1
    joint = np.bincount(cluster * n_y + y, minlength=n_clusters * n_y).reshape(n_clusters, n_y)
    p = joint / len(z)
    outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / outer[nz])))


def _mutual_information(
    z: np.ndarray, y: np.ndarray, k: int, method: str, n_clusters: int | None, seed: int
) -> float:
    if method == "plugin":
        return _mi_plugin(z, y, n_clusters, seed)
    return _mi_knn(z, y, k)


def _prepare(
    z: Any, y: Any, k: Any, method: Any, n_clusters: Any, max_samples: Any, seed: int
) -> tuple[np.ndarray, np.ndarray, int, str, int | None]:
    arr = _latents(z)
    labels = _labels(y, len(arr))
    method = check_choice("method", method, METHODS)
    if n_clusters is not None:
        n_clusters = check_int("n_clusters", n_clusters, minimum=1)
    arr, labels = _subset(arr, labels, _check_max_samples(max_samples), seed)
    labels = np.unique(labels, return_inverse=True)[1].reshape(-1)
    k = _check_k(k, len(arr))
    return standardize_features(arr), labels, k, method, n_clusters


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
    arr, labels, k, method, n_clusters = _prepare(z, y, k, method, n_clusters, max_samples, seed)
    return _mutual_information(arr, labels, k, method, n_clusters, seed)


def interaction_information(
    z: Any,
    y: Any,
    k: int = 3,
    features: Any = None,
    max_samples: int | None = None,
    per_feature: bool = False,
    method: str = "knn",
    n_clusters: int | None = None,
    seed: int = 0,
) -> float:
    """Synergy of the Generalized Information Bottleneck: mean interaction information.

    For each latent feature ``z_k`` and the remaining features ``z_{-k}``:

    ```
    II(z_k; z_{-k}; y) = I(z_k, z_{-k}; y) - I(z_k; y) - I(z_{-k}; y)
    synergy            = mean over k of II(z_k; z_{-k}; y)
    ```

    in nats. Positive: information about ``y`` available only from the
    features jointly (synergy); negative: the same information held by
    ``z_k`` and by the rest (redundancy). ``I(z; y) = I(z_k, z_{-k}; y)`` is
    estimated once; each term uses `mutual_information` with the same
    ``k``/``method``, so ``2 d + 1`` estimates in all (``2 |features| + 1``).
    The per-feature values come from `interaction_information_per_feature`.

    Args:
        z: latents, shape ``(N, d)`` with ``d >= 2``.
        y: labels, shape ``(N,)`` or one-hot ``(N, C)``.
        k: neighbour order, an integer in ``[1, N)``.
        features: indices of the features to average over (``None``: all).
        max_samples: estimate on a random subset of this size (``None``: all).
        per_feature: deprecated; ``True`` returned ``(mean, values)``: use
            `interaction_information_per_feature` instead.
        method: ``"knn"`` or ``"plugin"`` (see `mutual_information`).
        n_clusters: clusters for ``method="plugin"``.
        seed: seed of the subset and of k-means.

    Returns:
        The mean interaction information in nats, always a float.

    Raises:
        TypeError: ``z`` is not numeric, or an integer argument is not one.
        ValueError: ``d < 2``, bad or repeated ``features``, shapes disagree,
            ``k >= N``, or an unknown ``method``.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import interaction_information
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 2))
    >>> y = (z[:, 0] > 0) ^ (z[:, 1] > 0)  # XOR: pure synergy, +ln 2
    >>> print(round(interaction_information(z, y), 1))  # k-NN blurs the XOR edges
    0.6
    """
    values = interaction_information_per_feature(
        z, y, k, features, max_samples, method=method, n_clusters=n_clusters, seed=seed
    )
    mean = float(np.mean(values))
    if per_feature:
        warnings.warn(
            "interaction_information(per_feature=True) is deprecated and will be removed; "
            "use interaction_information_per_feature(...) for the per-feature values.",
            DeprecationWarning,
            stacklevel=2,
        )
        return (mean, values)  # type: ignore[return-value]
    return mean


def interaction_information_per_feature(
    z: Any,
    y: Any,
    k: int = 3,
    features: Any = None,
    max_samples: int | None = None,
    *,
    method: str = "knn",
    n_clusters: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Interaction information ``II(z_k; z_{-k}; y)`` of each feature ``k`` (nats).

    ```
    II(z_k; z_{-k}; y) = I(z_k, z_{-k}; y) - I(z_k; y) - I(z_{-k}; y)
    ```

    The values whose mean is `interaction_information`, with the same
    arguments, estimators and edge cases.

    Args:
        z: latents, shape ``(N, d)`` with ``d >= 2``.
        y: labels, shape ``(N,)`` or one-hot ``(N, C)``.
        k: neighbour order, an integer in ``[1, N)``.
        features: indices of the features (``None``: all, in order).
        max_samples: estimate on a random subset of this size (``None``: all).
        method: ``"knn"`` or ``"plugin"`` (see `mutual_information`).
        n_clusters: clusters for ``method="plugin"``.
        seed: seed of the subset and of k-means.

    Returns:
        A float64 array of shape ``(len(features),)``, one value per feature.

    Raises:
        TypeError, ValueError: as `interaction_information`.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import interaction_information_per_feature
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000)        # both features copy y: -ln 2 each
    >>> z = y[:, None] + 0.01 * rng.normal(size=(2000, 2))
    >>> print(np.round(interaction_information_per_feature(z, y), 2))
    [-0.69 -0.69]
    """
    arr, labels, k, method, n_clusters = _prepare(z, y, k, method, n_clusters, max_samples, seed)
    d = arr.shape[1]
    if d < 2:
        raise ValueError(
            f"`z` must have at least 2 features for interaction information. "
            f"Received: z with {d} feature"
        )
    if features is None:
        index = np.arange(d)
    else:
        index = np.asarray(features).reshape(-1)
        if (
            index.size == 0
            or not np.issubdtype(index.dtype, np.integer)
            or index.min() < -d
            or index.max() >= d
            or len(np.unique(index % d)) != index.size
        ):
            raise ValueError(
                f"`features` must be distinct integer indices in [0, {d}). "
                f"Received: features={features!r}"
            )
        index = index % d

    spaces = [np.arange(d)]
    spaces += [np.array([j]) for j in index] + [np.delete(np.arange(d), j) for j in index]
    if method == "knn":  # every space in one call: one shared bound on the radii
        mi = _mi_knn_spaces(arr, labels, k, spaces)
    else:
        mi = np.array([_mi_plugin(arr[:, s], labels, n_clusters, seed) for s in spaces])
    joint, alone, rest = mi[0], mi[1 : 1 + len(index)], mi[1 + len(index) :]
    return joint - alone - rest


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
    arr = _latents(z)
    labels = _labels(y, len(arr))
    arr, labels = _subset(arr, labels, _check_max_samples(max_samples), seed)
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
