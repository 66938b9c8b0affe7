"""Time `collapse_metrics` against a plain per-class NumPy version; stream 1M x 512.

Run: KERAS_BACKEND=jax .venv/bin/python benchmarks/collapse_metrics.py [--small]
Writes the ``collapse_metrics`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from benchmarks._report import machine, table, update_section
from keras_lpc.metrics import CollapseAccumulator, collapse_metrics


def plain(z: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Per-class loops, the textbook way: NC1 and the separation ratio."""
    z = z.astype(np.float64)
    classes = np.unique(y)
    c = len(classes)
    means = np.stack([z[y == k].mean(axis=0) for k in classes])
    mu_g = z.mean(axis=0)
    sigma_w = sum(np.cov(z[y == k].T, bias=True) for k in classes) / c
    m = means - mu_g
    nc1 = np.trace(sigma_w @ np.linalg.pinv(m.T @ m / c, rcond=1e-10, hermitian=True)) / c
    dist = np.stack([np.linalg.norm(z - means[k], axis=1) for k in range(c)], axis=1)
    own = dist[np.arange(len(z)), np.searchsorted(classes, y)]
    dist[np.arange(len(z)), np.searchsorted(classes, y)] = np.inf
    return {"nc1": float(nc1), "separation_ratio": float(np.mean(dist.min(axis=1) / own))}


def data(rng, n, d, c):
    y = rng.integers(0, c, n)
    centres = rng.normal(size=(c, d))
    return (centres[y] + 0.5 * rng.normal(size=(n, d))).astype(np.float32), y


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="100k x 512 instead of 1M x 512")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    z, y = data(rng, 50_000, 64, 10)
    t_fast, fast = best_of(lambda: collapse_metrics(z, y))
    t_plain, ref = best_of(lambda: plain(z, y))
    assert abs(fast["nc1"] - ref["nc1"]) < 1e-6 * ref["nc1"]
    rows = [
        ["collapse_metrics, 50k x 64, C=10", t_fast, "-"],
        ["plain per-class NumPy (NC1 + R only)", t_plain, "-"],
    ]

    n_total, d, c, batch = (100_000 if args.small else 1_000_000), 512, 100, 10_000
    centres = rng.normal(size=(c, d))

    def batches():
        gen = np.random.default_rng(1)
        for _ in range(n_total // batch):
            yb = gen.integers(0, c, batch)
            yield (centres[yb] + 0.5 * gen.normal(size=(batch, d))).astype(np.float32), yb

    tracemalloc.start()
    start = time.perf_counter()
    acc = CollapseAccumulator()
    for zb, yb in batches():
        acc.update(zb, yb)
    for zb, yb in batches():
        acc.update_samples(zb, yb)
    out = acc.result()
    t_stream = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rows.append(
        [
            f"CollapseAccumulator, {n_total:,} x 512, C=100, batch {batch}, 2 passes",
            t_stream,
            f"{peak:.0f} MiB",
        ]
    )
    body = (
        "## collapse_metrics (`benchmarks/collapse_metrics.py`)\n\n"
        f"Machine: {machine()}. **Shared** with other jobs at the time, so times are noisy; "
        "best of 3 for the 50k rows.\n\n"
        + table(["case", "seconds", "peak traced memory"], rows)
        + f"\n\nSpeed-up over the plain version at 50k x 64: {t_plain / t_fast:.1f}x "
        f"(and it computes 10 metrics, not 2). Streaming NC1 = {out['nc1']:.4g}. The data of the "
        f"streamed run would take {n_total * d * 4 / 2**20:.0f} MiB as float32; the accumulator "
        f"holds C d^2 float64 second moments ({c * d * d * 8 / 2**20:.0f} MiB) plus one batch."
    )
    update_section("collapse_metrics", body)
    print(body)


if __name__ == "__main__":
    main()
