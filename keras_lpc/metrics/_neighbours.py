"""k-NN radii and counts of Ross's estimator: one feature, or many column subsets at once.

`ross_counts` serves `keras_lpc.metrics.information`: for every point ``i``
and every subset ``s`` of the columns (a *space*), ``r_is`` is the Euclidean
distance to its ``k_i``-th nearest neighbour of its own class and ``m_is``
the number of points of any class within ``r_is`` (``i`` excluded). Pure
NumPy: brute force, but filtered.

The filter: a space's distances never exceed those of a space holding its
columns, so the radius ``u_i`` of the *parent* space (the union of the
columns) bounds every ``r_is``. A float32 GEMM per space and tile of rows
keeps the pairs with ``|z_i - z_j|_s^2 <= u_i^2`` (with a margin for float32
rounding): ~the dozen points each ball holds, not ``N``. Only those pairs get
exact float64 distances, from which ``r_is`` and ``m_is`` follow.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

# A ball holds points within r (1 + RTOL) + ATOL of its centre (ties at rounding count).
RTOL = 1e-9
ATOL = 1e-12
# Shape of the float32 tiles of squared distances (8 MiB).
TILE_ROWS, TILE_COLUMNS = 512, 4096
# A tile with more candidate pairs than this per row (collapsed latents, massive
# ties) is left to the caller's exact, chunked fallback.
MAX_CANDIDATES_PER_ROW = 256
# Threads over the groups of spaces (each runs single-threaded BLAS).
WORKERS = min(2, os.cpu_count() or 1)


def class_kth_distance(z: np.ndarray, y: np.ndarray, k_i: np.ndarray) -> np.ndarray:
    """Distance from each row of ``z`` to its ``k_i``-th nearest other row of its class.

    Brute force per class (a loop over classes): one ``(n_c, n_c)`` float64
    GEMM of ``|a|^2 + |b|^2 - 2 a.b`` per class, then a partition.
    """
    out = np.empty(len(z))
    for c in np.unique(y):  # a loop over classes
        idx = np.flatnonzero(y == c)
        x = z[idx]
        sq = np.einsum("ij,ij->i", x, x)
        kk = int(k_i[idx[0]])
        for start in range(0, len(idx), 1024):
            part = slice(start, start + 1024)
            d2 = x[part] @ x.T
            d2 *= -2.0
            d2 += sq[None, :]
            d2 += sq[part, None]
            rows = np.arange(d2.shape[0])
            d2[rows, rows + start] = np.inf  # not its own neighbour
            out[idx[part]] = np.partition(d2, kk - 1, axis=1)[:, kk - 1]
    return np.sqrt(np.maximum(out, 0.0))


def ross_counts_1d(x: np.ndarray, y: np.ndarray, k_i: np.ndarray) -> np.ndarray:
    """Ross's counts ``m_i`` of one feature ``x`` (N,), by sorting instead of trees.

    Within its class (sorted), the ``k_i`` nearest neighbours of a point are
    ``a`` on its left and ``k_i - a`` on its right for some ``a``, so

    ```
    r_i = min_a max(x_i - x_(p-a), x_(p+k_i-a) - x_i)      (p: i's rank in its class)
    m_i = #{j != i : |x_j - x_i| <= r_i (1 + RTOL)}          (two binary searches)
    ```

    ``O(N log N + N k)``, vectorised over samples (a loop over ``a`` only).

    Example:

    >>> import numpy as np
    >>> x, y = np.array([0.0, 1.0, 3.0, 1.5]), np.array([0, 0, 1, 1])
    >>> ross_counts_1d(x, y, np.ones(4)).tolist()  # radii 1, 1, 1.5, 1.5
    [1, 2, 1, 3]
    """
    n = len(x)
    order = np.lexsort((x, y))  # by class, then value
    s, cls, kk = x[order], y[order], k_i[order].astype(np.int64)
    rank = np.arange(n)
    best = np.full(n, np.inf)
    for a in range(int(kk.max()) + 1):  # a neighbours on the left, kk - a on the right
        left, right = rank - a, rank + kk - a
        ok = (a <= kk) & (left >= 0) & (right < n)
        left, right = np.where(ok, left, rank), np.where(ok, right, rank)
        ok &= (cls[left] == cls) & (cls[right] == cls)
        reach = np.maximum(s - s[left], s[right] - s)
        best = np.where(ok, np.minimum(best, reach), best)
    radius = np.empty(n)
    radius[order] = best
    reach = radius * (1 + RTOL)
    values = s if np.all(cls[1:] == cls[:-1]) else np.sort(x)
    inside = np.searchsorted(values, x + reach, "right") - np.searchsorted(
        values, x - reach, "left"
    )
    return inside - 1


def _groups(spaces: list[np.ndarray], size: int) -> list[list[int]]:
    """Consecutive spaces grouped (up to ``size`` each) while their common columns stay many.

    The common columns of a group filter all of its spaces at once, so they
    should keep most of the smallest space's columns (3/4 of them, and >= 4).
    """
    groups: list[list[int]] = []
    common: set[int] = set()
    for s, columns in enumerate(spaces):
        cols = set(columns.tolist())
        if groups:
            group = groups[-1]
            shared = common & cols
            smallest = min(len(cols), *(len(spaces[g]) for g in group))
            if len(group) < size and len(shared) >= max(4, 0.75 * smallest):
                group.append(s)
                common = shared
                continue
        groups.append([s])
        common = cols
    return groups


def _candidates(
    x: np.ndarray, filter_columns: np.ndarray, indicator: np.ndarray, bound2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i != j``, within ``sqrt(bound2_i)`` of ``i`` in some space of a group.

    ``x`` holds the parent columns; ``filter_columns`` (indices into them)
    are common to every space of the group, whose squared distances are
    ``(x_i - x_j)^2 @ indicator`` (``indicator``: parent columns x spaces, 0/1).
    Returns ``(rows, cols, d2, unsolved)``: the pairs, their exact float64
    squared distances in each space, shape (P, S), and a mask of rows whose
    tile held too many candidates to list (left to the caller).

    Each unordered pair is looked at once: with the points sorted by their
    bound, a tile of rows meets the columns from its own rows on, and the
    larger bound of a pair ``r < c`` is the column's.
    """
    n = len(x)
    f = x[:, filter_columns]
    sq = np.einsum("ij,ij->i", f, f)
    # float32 rounds |f_i - f_j|^2 = |f_i|^2 + |f_j|^2 - 2 f_i.f_j by ~1e-7 (|f_i|^2 + |f_j|^2).
    limit = bound2 * (1 + 1e-6) + 1e-4 * (sq + sq.max())
    perm = np.argsort(limit)
    fp, sqp, limit = f[perm], sq[perm, None], limit[perm].astype(np.float32)
    ones = np.ones((n, 1))
    left = np.hstack([fp, ones, sqp]).astype(np.float32)
    right = np.ascontiguousarray(np.hstack([-2.0 * fp, sqp, ones]).T.astype(np.float32))

    def band(a: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """The kept pairs (both directions) of rows a..a + TILE_ROWS, their exact d2."""
        b = min(n, a + TILE_ROWS)
        found_i, found_j, skipped = [], [], []
        for c0 in range(a, n, TILE_COLUMNS):
            c1 = min(n, c0 + TILE_COLUMNS)
            tile = left[a:b] @ right[:, c0:c1]  # float32 |f_i - f_j|^2
            flat = np.flatnonzero(tile <= limit[None, c0:c1])  # c > r: limit_c is the larger
            if len(flat) > MAX_CANDIDATES_PER_ROW * (b - a):
                skipped += [perm[a:b], perm[c0:c1]]
                continue
            r, c = np.divmod(flat, c1 - c0)
            r += a
            c += c0
            upper = c > r
            found_i.append(perm[r[upper]])
            found_j.append(perm[c[upper]])
        i = np.concatenate(found_i) if found_i else np.zeros(0, dtype=np.int64)
        j = np.concatenate(found_j) if found_j else np.zeros(0, dtype=np.int64)
        diff = x[i] - x[j]
        d2 = (diff * diff) @ indicator  # sums of squares: no cancellation
        to_j = np.any(d2 <= bound2[i, None], axis=1)  # j may lie in a ball around i
        to_i = np.any(d2 <= bound2[j, None], axis=1)
        rows = np.concatenate([i[to_j], j[to_i]])
        cols = np.concatenate([j[to_j], i[to_i]])
        return rows, cols, np.concatenate([d2[to_j], d2[to_i]]), skipped

    parts = [band(a) for a in range(0, n, TILE_ROWS)]
    unsolved = np.zeros(n, dtype=bool)
    for part in parts:
        for rows_skipped in part[3]:
            unsolved[rows_skipped] = True
    rows = np.concatenate([p[0] for p in parts])
    cols = np.concatenate([p[1] for p in parts])
    d2 = np.concatenate([p[2] for p in parts])
    return rows, cols, d2, unsolved


def ross_counts(
    z: np.ndarray, y: np.ndarray, k_i: np.ndarray, spaces: list[np.ndarray], group: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """``(m, unsolved)``: Ross's counts ``m_is`` per space, shape ``(S, N)``, and rows left over.

    ``spaces`` are arrays of column indices of ``z``; ``y`` integer class
    codes (every class seen at least twice), ``k_i`` each row's neighbour
    order (``<= N_{y_i} - 1``). ``unsolved[s, i]`` marks counts the filter
    could not settle (too many candidates, or fewer than ``k_i`` of the
    class within the bound after rounding): compute those exactly instead.
    Up to ``group`` spaces with most columns in common share one filter.

    ```
    r_is = k_i-th smallest |z_i - z_j|_s over j != i with y_j = y_i
    m_is = #{j != i : |z_i - z_j|_s <= r_is (1 + RTOL) + ATOL}
    ```

    Example:

    >>> import numpy as np
    >>> z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [1.5, 0.0]])
    >>> m, unsolved = ross_counts(z, np.array([0, 0, 1, 1]), np.ones(4), [np.array([0, 1])])
    >>> print(m[0].tolist(), unsolved.any())  # row 0: only its class-mate, at 1
    [1, 2, 3, 3] False
    """
    parent = np.unique(np.concatenate(spaces))
    x = np.ascontiguousarray(z[:, parent])
    # Every GEMM here is small (tiles of 512 x 4096 x ~17, classes of n_c x n_c x d): BLAS
    # threads gain little on them and, with other jobs on the cores, their spin-waits
    # made the whole search 4x slower. One thread, then, restored on return.
    with threadpool_limits(limits=1, user_api="blas"):
        return _ross_counts(x, y, k_i, [np.searchsorted(parent, s) for s in spaces], group)


def _ross_counts(
    x: np.ndarray, y: np.ndarray, k_i: np.ndarray, spaces: list[np.ndarray], group: int
) -> tuple[np.ndarray, np.ndarray]:
    """`ross_counts` on the parent columns ``x`` (``spaces`` index into them)."""
    n = len(x)
    parent = np.arange(x.shape[1])
    bound = class_kth_distance(x, y, k_i)
    # The GEMM form rounds |z_i - z_j|^2 by ~eps (|z_i|^2 + |z_j|^2): widen by far more.
    sq = np.einsum("ij,ij->i", x, x)
    bound2 = bound**2 * (1 + 1e-6) + 1e-10 * (sq + sq.max()) + 1e-300
    kk = k_i.astype(np.int64)
    m = np.zeros((len(spaces), n), dtype=np.int64)
    unsolved = np.zeros((len(spaces), n), dtype=bool)

    def count(members: list[int]) -> None:
        """Fill ``m[s]`` and ``unsolved[s]`` for the spaces of one group (disjoint rows)."""
        indicator = np.stack([np.isin(parent, spaces[s]) for s in members], axis=1)
        common = np.flatnonzero(indicator.all(axis=1))
        rows, cols, d2_all, skipped = _candidates(x, common, indicator.astype(float), bound2)
        same_all = y[rows] == y[cols]
        for g, s in enumerate(members):
            d2 = d2_all[:, g]
            # r_is^2: the k_i-th smallest same-class d2 of each row.
            same = same_all & (d2 <= bound2[rows])
            sr, sd = rows[same], d2[same]
            order = np.lexsort((sd, sr))
            sr, sd = sr[order], sd[order]
            first = np.searchsorted(sr, np.arange(n))
            found = np.bincount(sr, minlength=n) >= kk
            radius = np.full(n, np.inf)
            radius[found] = np.sqrt(sd[first[found] + kk[found] - 1])
            unsolved[s] = skipped | ~found
            reach = radius * (1 + RTOL) + ATOL
            inside = d2 <= reach[rows] ** 2
            m[s] = np.bincount(rows[inside], minlength=n)

    # Groups are independent and NumPy releases the GIL in the products, sorts and
    # comparisons: WORKERS threads use the cores (each group writes its own rows).
    groups = _groups(spaces, group)
    if WORKERS > 1 and len(groups) > 1:
        with ThreadPoolExecutor(min(WORKERS, len(groups))) as pool:
            list(pool.map(count, groups))
    else:
        for members in groups:
            count(members)
    return m, unsolved
