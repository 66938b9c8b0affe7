"""Speed and bias of the information estimators; writes the `information` section.

Run: ``KERAS_BACKEND=jax .venv/bin/python benchmarks/information.py`` (the
metrics are NumPy, so the backend does not matter). Times are the best of
``REPEATS`` runs; the machine may be shared, so compare ratios within a run.
"""

from __future__ import annotations

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


def brute_force_search(z, y, k_i):
    """The search before the shared k-NN one: every row left to per-class brute force."""
    n = len(z)
    return np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)


def side_by_side(n: int = 10000, d: int = 16) -> list[list[object]]:
    """`interaction_information` with the shared k-NN search and with the former brute force."""
    from keras_lpc.metrics import information

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    z = rng.normal(size=(n, d)) + np.eye(10, d)[y] * 2.0
    start = time.perf_counter()
    new = interaction_information(z, y)
    t_new = time.perf_counter() - start
    shared = information._shared_search
    information._shared_search = brute_force_search
    try:
        start = time.perf_counter()
        old = interaction_information(z, y)
        t_old = time.perf_counter() - start
    finally:
        information._shared_search = shared
    assert abs(new - old) < 1e-9, (new, old)
    return [
        [f"interaction_information, N = {n}, d = {d}: per-class brute force (before)", n, t_old],
        [f"interaction_information, N = {n}, d = {d}: shared k-NN search (now)", n, t_new],
        [f"speed-up (same value, {new:.6f} nats)", n, f"{t_old / t_new:.1f}x"],
    ]


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
    pair = side_by_side(args.n)
    timing = timing_rows()
    bias, names, exact = bias_rows()
    truth = ", ".join(f"{name} = {value:.4f}" for name, value in exact.items())
    body = "\n\n".join(
        [
            "## Information metrics (`benchmarks/information.py`)",
            f"Machine: {machine()}. **Shared** with other jobs while measuring: "
            "absolute times are noisy (best of 3); compare rows with each other.",
            "Before / after in one run (16 features, 10 classes; the former per-class "
            "brute force is the same code with the shared search switched off):",
            table(["call", "N", "seconds"], pair),
            "Time in seconds, N samples of d = 16 features, 10 classes:",
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
