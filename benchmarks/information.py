"""Speed and bias of the information estimators; writes the `information` section.

Run: ``KERAS_BACKEND=jax .venv/bin/python benchmarks/information.py`` (the
metrics are NumPy, so the backend does not matter). Times are the best of
``REPEATS`` runs; the machine may be shared, so compare ratios within a run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import machine, table, update_section  # noqa: E402
from keras_lpc.metrics import (  # noqa: E402
    interaction_information,
    kl_entropy,
    mutual_information,
)

REPEATS = 3
SIZES = (500, 1000, 2000, 5000, 10000)
SEEDS = 3


def best_time(fn, *args, **kwargs) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def former_mi_knn(z: np.ndarray, y: np.ndarray, k: int) -> float:
    """Ross's estimator as it was: one space per call, sklearn's brute k-NN above 3 dims."""
    from scipy.special import digamma
    from sklearn.neighbors import NearestNeighbors

    from keras_lpc.metrics import _estimators as est

    n_y = np.bincount(y)[y]
    keep = n_y > 1
    z, y, n_y = z[keep], y[keep], n_y[keep]
    n = len(z)
    k_i = np.minimum(k, n_y - 1).astype(np.float64)
    if z.shape[1] <= est.TREE_MAX_DIM:
        radius = np.empty(n)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            radius[idx] = est.kth_distance(z[idx], int(k_i[idx[0]]))
        m = est.count_within(z, radius) - 1
    else:
        width = min(n - 1, max(64, 4 * k))
        dist, ind = NearestNeighbors(n_neighbors=width, algorithm="brute").fit(z).kneighbors()
        same = np.cumsum(y[ind] == y[:, None], axis=1)
        found = same[:, -1] >= k_i
        radius = dist[np.arange(n), np.argmax(same >= k_i[:, None], axis=1)]
        limit = radius * (1 + est.RTOL) + est.ATOL
        m = np.count_nonzero(dist <= limit[:, None], axis=1)
        rest = np.flatnonzero(~(found & (dist[:, -1] > limit)))
        if rest.size:
            radius[rest] = est.class_radius(z, y, k_i, rest)
            m[rest] = est.count_within(z, radius[rest], rest) - 1
    m = np.maximum(m, k_i)
    return float(digamma(n) - np.mean(digamma(n_y)) + np.mean(digamma(k_i)) - np.mean(digamma(m)))


def former_interaction_information(z: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    """The former `interaction_information`: 2 d + 1 separate estimates."""
    from keras_lpc._validation import standardize

    arr = standardize(z)
    labels = np.unique(y, return_inverse=True)[1].reshape(-1)
    d = arr.shape[1]
    joint = former_mi_knn(arr, labels, k)
    values = [
        joint
        - former_mi_knn(arr[:, [j]], labels, k)
        - former_mi_knn(arr[:, np.delete(np.arange(d), j)], labels, k)
        for j in range(d)
    ]
    return float(np.mean(values))


def clocked(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def side_by_side(n: int = 10000, d: int = 16) -> list[list[object]]:
    """`interaction_information` now (BLAS threads 1 and 2) and as it was, on one data set."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    z = rng.normal(size=(n, d)) + np.eye(10, d)[y] * 2.0
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        wall, cpu, old = clocked(former_interaction_information, z, y)
    rows.append(["former: 33 separate estimates, sklearn brute k-NN", 1, wall, cpu, old])
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            wall, cpu, new = min(clocked(interaction_information, z, y) for _ in range(REPEATS))
        rows.append(
            ["now: one filtered search per 2 spaces, sorting in 1-d", threads, wall, cpu, new]
        )
        assert abs(new - old) < 1e-12, (new, old)
    return rows


def timing_rows() -> list[list[object]]:
    rng = np.random.default_rng(0)
    n, d = 10000, 16
    y = rng.integers(0, 10, n)
    z = rng.normal(size=(n, d)) + np.eye(10, d)[y] * 2.0
    rows: list[list[object]] = [
        ["kl_entropy(z)", n, best_time(kl_entropy, z)],
        ["mutual_information(z, y)", n, best_time(mutual_information, z, y)],
        [
            'mutual_information(z, y, method="plugin")',
            n,
            best_time(mutual_information, z, y, method="plugin"),
        ],
    ]
    for max_samples in (2000, 5000):
        rows.append(
            [
                f"interaction_information(z, y, max_samples={max_samples})",
                max_samples,
                best_time(interaction_information, z, y, max_samples=max_samples),
            ]
        )
    start = time.perf_counter()
    interaction_information(z, y)
    rows.append(["interaction_information(z, y) (1 run)", n, time.perf_counter() - start])
    return rows


def mixture_mi() -> float:
    """Exact I(z; y) for z = y + N(0, 1), y fair in {0, 1} (numerical integral)."""
    grid = np.linspace(-10, 11, 40001)
    pdf = 0.5 * (np.exp(-0.5 * grid**2) + np.exp(-0.5 * (grid - 1) ** 2)) / np.sqrt(2 * np.pi)
    return float(-np.sum(pdf * np.log(pdf)) * (grid[1] - grid[0]) - 0.5 * np.log(2 * np.pi * np.e))


def bias_rows() -> tuple[list[list[object]], list[str], dict[str, float]]:
    cov3 = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]])
    a = np.random.default_rng(1).normal(size=(16, 16))
    cov16 = a @ a.T / 16 + 0.1 * np.eye(16)

    def h_gauss(cov: np.ndarray) -> float:
        return float(0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1])

    exact = {
        "H, Gaussian d=3": h_gauss(cov3),
        "H, Gaussian d=16": h_gauss(cov16),
        "I(z; y), z=y+N(0,1) d=1": mixture_mi(),
        "II, XOR of 2 Gaussians": float(np.log(2)),
        "II, 2 noisy copies of y": float(-np.log(2)),
    }
    rows = []
    for n in SIZES:
        errors: dict[str, list[float]] = {name: [] for name in exact}
        for seed in range(SEEDS):
            rng = np.random.default_rng(100 + seed)
            y = rng.integers(0, 2, n)
            g = rng.normal(size=(n, 2))
            copies = y[:, None] + 0.01 * rng.normal(size=(n, 2))
            est = {
                "H, Gaussian d=3": kl_entropy(rng.multivariate_normal(np.zeros(3), cov3, n)),
                "H, Gaussian d=16": kl_entropy(rng.multivariate_normal(np.zeros(16), cov16, n)),
                "I(z; y), z=y+N(0,1) d=1": mutual_information((y + rng.normal(size=n))[:, None], y),
                "II, XOR of 2 Gaussians": interaction_information(g, (g[:, 0] > 0) ^ (g[:, 1] > 0)),
                "II, 2 noisy copies of y": interaction_information(copies, y),
            }
            for name, value in est.items():
                errors[name].append(value - exact[name])
        rows.append([n] + [f"{np.mean(e):+.3f} ± {np.std(e):.3f}" for e in errors.values()])
    return rows, list(exact), exact


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10000, help="samples of the side-by-side run")
    args = parser.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    pair = side_by_side(args.n)
    timing = timing_rows()
    bias, names, exact = bias_rows()
    truth = ", ".join(f"{name} = {value:.4f}" for name, value in exact.items())
    body = "\n\n".join(
        [
            "## Information metrics (`benchmarks/information.py`)",
            f"Machine: {machine()}. Load average (`uptime`) at the start: {load} (above about "
            "1 other jobs were running: wall times are noisy, CPU seconds less so). The "
            "search runs its groups of spaces on two threads, so CPU exceeds wall time.",
            f"`interaction_information` on N = {args.n}, d = 16, 10 classes, k = 3: the former "
            "code (rebuilt in this script) and now (best of 3), BLAS threads set with "
            "threadpoolctl:",
            table(["code", "BLAS threads", "wall (s)", "CPU (s)", "value (nats)"], pair),
            "Time in seconds (best of 3, default BLAS threads), N samples of d = 16 "
            "features, 10 classes:",
            table(["call", "N", "seconds"], timing),
            "Bias (estimate − exact, nats; mean ± std over "
            f"{SEEDS} seeds, k = 3) as N grows. Exact values: {truth}.",
            table(["N"] + names, bias),
        ]
    )
    update_section("information", body)
    print(body)


if __name__ == "__main__":
    main()
