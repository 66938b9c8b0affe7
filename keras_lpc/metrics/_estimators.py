"""The k-NN and plug-in estimators behind `keras_lpc.metrics.information` (NumPy, float64).

Input checks shared by the information metrics, the k-th neighbour distance
and the within-radius counts (sorting for one feature, k-d trees from
`scipy.spatial.cKDTree` in 2-3 dimensions, tiled GEMM above), Ross's (2014)
mutual-information estimator over several column subsets in one search
(`keras_lpc.metrics._neighbours` for the wide ones) and the k-means plug-in
estimate. The public functions and their formulas are in
`keras_lpc.metrics.information`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

from keras_lpc._validation import as_labels, as_latents, check_choice, check_int, subsample
from keras_lpc._validation import standardize as standardize_features
from keras_lpc.metrics._neighbours import ross_counts, ross_counts_1d

METHODS = ("knn", "plugin")
TREE_MAX_DIM = 3
RTOL = 1e-9
ATOL = 1e-12


def flat_latents(z: Any) -> np.ndarray:
    return as_latents(z, flatten=True)


def label_codes(y: Any, n: int) -> np.ndarray:
    """Class labels as integer codes 0..C-1 (any values; one-hot rows are argmax-ed)."""
    arr = as_labels(y, n, "y", integer=False, one_hot=True)
    return np.unique(arr, return_inverse=True)[1].reshape(-1)


def subset_rows(z: np.ndarray, y: np.ndarray | None, max_samples: int | None, seed: int):
    rows = subsample(len(z), max_samples, seed)
    if rows is None:
        return z, y
    return z[rows], (None if y is None else y[rows])


def check_k(k: Any, n: int) -> int:
    k = check_int("k", k, minimum=1)
    if k >= n:
        raise ValueError(f"`k` must be smaller than the number of samples ({n}). Received: k={k}")
    return k


def check_max_samples(max_samples: Any) -> int | None:
    return None if max_samples is None else check_int("max_samples", max_samples, minimum=2)


def kth_distance(
    z: np.ndarray, k: int, queries: np.ndarray | None = None, chunk: int = 1024
) -> np.ndarray:
    """Euclidean distance from rows ``queries`` of ``z`` (all) to their k-th nearest other row."""
    if z.shape[1] <= TREE_MAX_DIM and queries is None:
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


def count_within(
    z: np.ndarray, radius: np.ndarray, queries: np.ndarray | None = None, chunk: int = 1024
) -> np.ndarray:
    """Rows of ``z`` within Euclidean ``radius`` of each row ``queries`` (itself included)."""
    if z.shape[1] <= TREE_MAX_DIM and queries is None:
        return cKDTree(z).query_ball_point(z, r=radius * (1 + RTOL), return_length=True)
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
        rhs = radius[part] ** 2 * (1 + RTOL) + ATOL - sq[rows]
        counts[part] = np.count_nonzero(lhs <= rhs[:, None], axis=1)
    return counts


def class_radius(z: np.ndarray, y: np.ndarray, k_i: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Distance from each of ``rows`` to its ``k_i``-th nearest neighbour of its own class."""
    radius = np.empty(len(rows))
    for c in np.unique(y[rows]):  # a loop over classes
        members = np.flatnonzero(y == c)
        mine = np.flatnonzero(y[rows] == c)
        local = np.searchsorted(members, rows[mine])
        full = len(mine) == len(members)
        radius[mine] = kth_distance(z[members], int(k_i[rows[mine[0]]]), None if full else local)
    return radius


def mi_knn(z: np.ndarray, y: np.ndarray, k: int) -> float:
    """Ross (2014) estimator of I(z; y), continuous z, integer-coded y."""
    return float(mi_knn_spaces(z, y, k, [np.arange(z.shape[1])])[0])


def mi_knn_spaces(z: np.ndarray, y: np.ndarray, k: int, spaces: list[np.ndarray]) -> np.ndarray:
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
    wide = [s for s, columns in enumerate(spaces) if len(columns) > TREE_MAX_DIM]
    for s, columns in enumerate(spaces):
        if len(columns) == 1:  # sorting
            m[s] = ross_counts_1d(z[:, columns[0]], y, k_i)
        elif len(columns) <= TREE_MAX_DIM:  # k-d trees
            x = np.ascontiguousarray(z[:, columns])
            radius = np.empty(n)
            for c in np.unique(y):  # a loop over classes
                idx = np.flatnonzero(y == c)
                radius[idx] = kth_distance(x[idx], int(k_i[idx[0]]))
            m[s] = count_within(x, radius) - 1
    if wide:
        # One filtered brute-force search per space, bounded by the radii of the union of
        # their columns; counts it cannot settle (ties, collapsed latents) are exact below.
        counts_wide, unsolved = ross_counts(z, y, k_i, [spaces[s] for s in wide])
        for row, s in enumerate(wide):
            m[s] = counts_wide[row]
            rest = np.flatnonzero(unsolved[row])
            if rest.size:
                x = np.ascontiguousarray(z[:, spaces[s]])
                radius = class_radius(x, y, k_i, rest)
                m[s, rest] = count_within(x, radius, rest) - 1
    # m_i: points of any class within the same radius, the point itself excluded;
    # at least the k_i neighbours of its own class (guards against rounding).
    m = np.maximum(m, k_i)
    base = digamma(n) - np.mean(digamma(n_y)) + np.mean(digamma(k_i))
    return base - np.mean(digamma(m), axis=1)


def mi_plugin(z: np.ndarray, y: np.ndarray, n_clusters: int | None, seed: int) -> float:
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


def estimate_mi(
    z: np.ndarray, y: np.ndarray, k: int, method: str, n_clusters: int | None, seed: int
) -> float:
    if method == "plugin":
        return mi_plugin(z, y, n_clusters, seed)
    return mi_knn(z, y, k)


def prepare(
    z: Any, y: Any, k: Any, method: Any, n_clusters: Any, max_samples: Any, seed: int
) -> tuple[np.ndarray, np.ndarray, int, str, int | None]:
    arr = flat_latents(z)
    labels = label_codes(y, len(arr))
    method = check_choice("method", method, METHODS)
    if n_clusters is not None:
        n_clusters = check_int("n_clusters", n_clusters, minimum=1)
    arr, labels = subset_rows(arr, labels, check_max_samples(max_samples), seed)
    labels = np.unique(labels, return_inverse=True)[1].reshape(-1)
    k = check_k(k, len(arr))
    return standardize_features(arr), labels, k, method, n_clusters
