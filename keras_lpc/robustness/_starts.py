"""The gradient-free attack's start, from the host: label queries, boundary searches on
segments, and the candidate points (`keras_lpc.robustness.decision`).

Once per call: for each input, the candidates are a known adversarial point (if
given), the other inputs of the batch that the model classifies differently,
and random points ``x + s u`` (``u`` Gaussian, ``s`` growing geometrically);
each is brought to the boundary by a search on the segment from ``x``
(`_to_boundary`, the host twin of `keras_lpc.robustness._boundary.search`).
"""

from __future__ import annotations

import numpy as np

from keras_lpc.robustness import _boundary
from keras_lpc.robustness._core import Scorer
from keras_lpc.robustness._norms import column, flat, lp_norm


class _Oracle:
    """Label queries: ``adv(points, labels)`` is True where the prediction is not ``labels``."""

    def __init__(self, scorer: Scorer, clip: tuple[float, float] | None) -> None:
        self.scorer, self.clip = scorer, clip
        self.queries = 0

    def adv(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            points = np.clip(points, *self.clip)
        self.queries += len(points)
        return self.scorer.predict(points, batch_size=self.scorer.query_batch_size) != labels


def _blend(x: np.ndarray, target: np.ndarray, t: np.ndarray, norm: str) -> np.ndarray:
    """`keras_lpc.robustness._boundary.blend` in NumPy."""
    d = target - x
    if norm == "l2":
        return x + column(t, x.ndim) * d
    e = column(t * lp_norm(d, "linf"), x.ndim)
    return x + np.clip(d, -e, e)


def _to_boundary(
    oracle: _Oracle, x: np.ndarray, target: np.ndarray, labels: np.ndarray, norm: str
) -> np.ndarray:
    """`keras_lpc.robustness._boundary.search` from the host: an adversarial point near the
    boundary on the way from adversarial ``target`` to ``x``."""
    split, rounds = _boundary.SPLIT, _boundary.ROUNDS
    m = len(x)
    lo, hi = np.zeros(m), np.ones(m)
    frac = np.arange(1, split + 1) / (split + 1)
    for _ in range(rounds):
        ts = lo[None] + frac[:, None] * (hi - lo)[None]  # (S, m)
        pts = np.concatenate([_blend(x, target, t, norm) for t in ts])
        adv = oracle.adv(pts, np.tile(labels, split)).reshape(split, m)
        # the first adversarial probe (the bracket's new top), hi if none
        first = np.where(adv.any(axis=0), np.argmax(adv, axis=0), split)
        rows = np.arange(m)
        new_hi = np.where(first < split, ts[np.minimum(first, split - 1), rows], hi)
        lo = np.where(first > 0, ts[np.maximum(first - 1, 0), rows], lo)
        hi = new_hi
    return _blend(x, target, hi, norm)


def _unit(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Gaussian samples (K, N, ...) scaled to unit L2 norm per (k, n)."""
    u = rng.standard_normal(shape)
    size = np.linalg.norm(u.reshape(shape[0] * shape[1], -1), axis=1)
    return u / np.maximum(size, 1e-30).reshape(shape[:2] + (1,) * (len(shape) - 2))


def _starts(
    oracle: _Oracle,
    x: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    norm: str,
    rng: np.random.Generator,
    known: np.ndarray | None = None,
    n_classes: int = 10,
    n_random: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate boundary points (K, N, ...) and their distances (K, N) (inf: none).

    ``known`` (N, ...): adversarial points to start from (NaN rows: none).
    """
    n = len(x)
    idx = np.arange(n)
    cands = []
    if known is not None:
        ok = np.all(np.isfinite(flat(known)), axis=1)
        if ok.any():
            ok[ok] = oracle.adv(known[ok], labels[ok])
        cands.append((np.where(column(ok, x.ndim), known, x), ok))
    # (a) per predicted class, the nearest input of the batch with that prediction
    if n <= 4096:
        f = flat(x)
        sq = np.sum(f * f, axis=1)
        dist = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2.0 * (f @ f.T), 0.0))
        for c in np.unique(preds)[:n_classes]:
            dc = np.where((preds[None, :] == c) & (labels[:, None] != c), dist, np.inf)
            j = np.argmin(dc, axis=1)
            cands.append((x[j], np.isfinite(dc[idx, j])))
    # (b) random directions: along each, the smallest adversarial scale tried
    scale = column(np.maximum(lp_norm(x, "l2"), 1e-12), x.ndim)
    u = _unit((n_random, *x.shape), rng)
    first = np.full((n_random, n), np.inf)
    for s in (100.0, 10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01):
        pts = x[None] + s * scale[None] * u
        adv = oracle.adv(pts.reshape(n_random * n, *x.shape[1:]), np.tile(labels, n_random))
        first = np.where(adv.reshape(n_random, n), s, first)
    for k in range(n_random):
        ok = np.isfinite(first[k])
        cands.append((x + column(np.where(ok, first[k], 0.0), x.ndim) * scale * u[k], ok))
    points = np.repeat(x[None], len(cands), axis=0)
    dists = np.full((len(cands), n), np.inf)
    for k, (target, ok) in enumerate(cands):
        if ok.any():
            b = _to_boundary(oracle, x[ok], target[ok], labels[ok], norm)
            points[k, ok] = b
            dists[k, ok] = lp_norm(b - x[ok], norm)
    return points, dists
