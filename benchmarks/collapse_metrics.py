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


class ChanPass1:
    """Pass 1 as it was: Chan et al.'s merge, one small product per class and batch."""

    def __init__(self, classes: int, dim: int) -> None:
        self.counts = np.zeros(classes, dtype=np.int64)
        self.means = np.zeros((classes, dim))
        self.m2 = np.zeros((classes, dim, dim))

    def update(self, z: np.ndarray, y: np.ndarray) -> None:
        z = z.astype(np.float64)
        order = np.argsort(y, kind="stable")
        present, starts = np.unique(y[order], return_index=True)
        for c, rows in zip(present, np.split(order, starts[1:])):
            block = z[rows]
            n_b, mean_b = len(rows), block.mean(axis=0)
            resid = block - mean_b
            n_a = self.counts[c]
            n = n_a + n_b
            delta = mean_b - self.means[c]
            self.m2[c] += resid.T @ resid + np.outer(delta, delta) * (n_a * n_b / n)
            self.means[c] += delta * (n_b / n)
            self.counts[c] = n

    def sigma_w(self) -> np.ndarray:
        return (self.m2 / self.counts[:, None, None]).mean(axis=0)


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

    start = time.perf_counter()
    chan = ChanPass1(c, d)
    for zb, yb in batches():
        chan.update(zb, yb)
    t_chan = time.perf_counter() - start
    start = time.perf_counter()
    acc = CollapseAccumulator()
    for zb, yb in batches():
        acc.update(zb, yb)
    sigma_w = acc.stats().sigma_w
    t_pass1 = time.perf_counter() - start
    assert np.allclose(sigma_w, chan.sigma_w(), rtol=1e-9, atol=1e-12)
    acc = CollapseAccumulator()
    tracemalloc.start()
    start = time.perf_counter()
    for zb, yb in batches():
        acc.update(zb, yb)
    for zb, yb in batches():
        acc.update_samples(zb, yb)
    out = acc.result()
    t_stream = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    label = f"{n_total:,} x 512, C=100, batch {batch}"
    rows += [
        [f"pass 1 as before (Chan merge per class and batch), {label}", t_chan, "-"],
        [f"pass 1 now (shifted sums, one GEMM per class per buffer), {label}", t_pass1, "-"],
        [f"CollapseAccumulator now, {label}, 2 passes", t_stream, f"{peak:.0f} MiB"],
    ]
    body = (
        "## collapse_metrics (`benchmarks/collapse_metrics.py`)\n\n"
        f"Machine: {machine()}. **Shared** with other jobs at the time, so times are noisy; "
        "best of 3 for the 50k rows. Run with `OPENBLAS_NUM_THREADS=1`: on a shared "
        "2-core machine OpenBLAS' own threads fight the other jobs and run 3-5x slower.\n\n"
        + table(["case", "seconds", "peak traced memory"], rows)
        + f"\n\nPass 1 now / before: {t_chan / t_pass1:.1f}x faster (same Sigma_W to 1e-9). "
        f"Speed-up over the plain version at 50k x 64: {t_plain / t_fast:.1f}x "
        f"(and it computes 10 metrics, not 2). Streaming NC1 = {out['nc1']:.4g}. The data of the "
        f"streamed run would take {n_total * d * 4 / 2**20:.0f} MiB as float32; the accumulator "
        f"holds C d^2 float64 second moments ({c * d * d * 8 / 2**20:.0f} MiB) plus one batch."
    )
    update_section("collapse_metrics", body)
    print(body)


if __name__ == "__main__":
    main()
