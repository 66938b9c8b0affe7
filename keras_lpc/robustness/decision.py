"""A decision-based minimum-norm attack: it sees only the model's predicted labels.

No gradient is ever computed, so gradient masking (zero, shattered or
obfuscated input gradients) cannot hide a close decision boundary from it.
The algorithm follows HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020):

1. **Start.** For each input, the candidates are the other inputs of the batch
   that the model classifies differently (adversarial by construction) and
   random points ``x + s u`` (``u`` Gaussian, ``s`` growing geometrically);
   each candidate is brought to the boundary by a binary search on the
   segment from ``x``, and the ``starts`` closest ones are walked from
   (several starts, because the walk can settle on the nearest point of a
   face of the decision region that is not the nearest face).
2. **Walk.** At the boundary point ``b`` (distance ``d`` from ``x``), the
   direction of the boundary's normal is estimated from label queries at
   ``b + delta u_i`` (``u_i`` uniform on the sphere, ``delta = d / sqrt(D)``):
   ``v = mean_i (phi_i - mean phi) u_i`` with ``phi_i = +1`` if adversarial
   and ``-1`` if not; then a geometric step ``b + xi v`` (``xi = d / sqrt(t)``,
   halved until adversarial) and a binary search back towards ``x``. For
   L-inf the step is ``sign(v)`` and the binary search moves on the L-inf ball
   (``x + clip(b - x, -e, e)``). The closest verified point over all starts
   and steps is returned.
"""

from __future__ import annotations

import numpy as np

from keras_lpc.robustness._minnorm import Scorer, column, flat, lp_norm, predict

_SPLIT = 3  # points queried per round of the boundary search
_ROUNDS = 7  # rounds: the bracket shrinks to 4**-7 = 6e-5 of the segment
_HALVINGS = 12  # geometric step sizes tried per iteration


class _Oracle:
    """Label queries: ``adv(points, labels)`` is True where the prediction is not ``labels``."""

    def __init__(self, scorer: Scorer, clip: tuple[float, float] | None) -> None:
        self.scorer, self.clip = scorer, clip
        self.queries = 0

    def adv(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        if self.clip is not None:
            points = np.clip(points, *self.clip)
        self.queries += len(points)
        return predict(self.scorer, points) != labels


def _blend(x: np.ndarray, target: np.ndarray, t: np.ndarray, norm: str) -> np.ndarray:
    """The point at parameter ``t`` in [0, 1] between ``x`` (t=0) and ``target`` (t=1).

    L2: on the segment. L-inf: ``x + clip(target - x, -e, e)`` with ``e = t ||target - x||_inf``.
    """
    d = target - x
    if norm == "l2":
        return x + column(t, x.ndim) * d
    e = column(t * lp_norm(d, "linf"), x.ndim)
    return x + np.clip(d, -e, e)


def _to_boundary(
    oracle: _Oracle, x: np.ndarray, target: np.ndarray, labels: np.ndarray, norm: str
) -> np.ndarray:
    """Search from adversarial ``target`` towards ``x``; returns an adversarial point.

    Each round queries ``_SPLIT`` evenly spaced points of the bracket at once and
    keeps the sub-interval where the label changes, so the bracket shrinks
    ``(_SPLIT + 1)``-fold per model call.
    """
    m = len(x)
    lo, hi = np.zeros(m), np.ones(m)
    frac = np.arange(1, _SPLIT + 1) / (_SPLIT + 1)
    for _ in range(_ROUNDS):
        ts = lo[None] + frac[:, None] * (hi - lo)[None]  # (S, m)
        pts = np.concatenate([_blend(x, target, t, norm) for t in ts])
        adv = oracle.adv(pts, np.tile(labels, _SPLIT)).reshape(_SPLIT, m)
        # the first adversarial probe (the bracket's new top), hi if none
        first = np.where(adv.any(axis=0), np.argmax(adv, axis=0), _SPLIT)
        rows = np.arange(m)
        new_hi = np.where(first < _SPLIT, ts[np.minimum(first, _SPLIT - 1), rows], hi)
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
    n_classes: int = 10,
    n_random: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate boundary points (K, N, ...) and their distances (K, N) (inf: none)."""
    n = len(x)
    idx = np.arange(n)
    cands = []
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


def _walk(
    oracle: _Oracle,
    x: np.ndarray,
    labels: np.ndarray,
    best: np.ndarray,
    norm: str,
    iterations: int,
    probes: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """HopSkipJump steps from the adversarial boundary points ``best``; the closest found."""
    m = len(x)
    dim = flat(x).shape[1]
    tail = (1,) * (x.ndim - 1)
    for t in range(1, iterations + 1):
        d = lp_norm(best - x, norm)
        d2 = np.maximum(lp_norm(best - x, "l2"), 1e-12)
        count = int(min(probes, np.ceil(20 * np.sqrt(t))))
        u = _unit((count, *x.shape), rng)
        pts = best[None] + (d2 / np.sqrt(dim)).reshape(1, m, *tail) * u
        phi = oracle.adv(pts.reshape(count * m, *x.shape[1:]), np.tile(labels, count))
        phi = np.where(phi.reshape(count, m), 1.0, -1.0)
        mean = phi.mean(axis=0)
        centred = np.where(np.abs(mean) == 1.0, phi, phi - mean)
        v = np.einsum("km,km...->m...", centred, u) / count
        if norm == "linf":
            v, xi = np.sign(v), d / np.sqrt(t)
        else:
            vn = column(np.linalg.norm(flat(v), axis=1), v.ndim)
            v, xi = np.divide(v, vn, out=np.zeros_like(v), where=vn > 0), d2 / np.sqrt(t)
        # geometric step b + xi v, xi halved until adversarial (all sizes in one query)
        halves = 0.5 ** np.arange(_HALVINGS)
        steps = best[None] + halves.reshape(-1, 1, *tail) * column(xi, x.ndim)[None] * v[None]
        adv = oracle.adv(steps.reshape(_HALVINGS * m, *x.shape[1:]), np.tile(labels, _HALVINGS))
        adv = adv.reshape(_HALVINGS, m)
        first = np.argmax(adv, axis=0)
        keep = np.flatnonzero(adv[first, np.arange(m)])
        if keep.size == 0:
            continue
        b = _to_boundary(oracle, x[keep], steps[first[keep], keep], labels[keep], norm)
        better = lp_norm(b - x[keep], norm) < d[keep]
        best[keep[better]] = b[better]
    return best


def boundary_attack(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    iterations: int,
    clip: tuple[float, float] | None,
    rng: np.random.Generator,
    probes: int = 100,
    starts: int = 3,
) -> np.ndarray:
    """Perturbations (N, ...) found from label queries only (zeros where none was found).

    The start costs ``21 (C + 8) + 64`` queries per input; each of
    ``iterations`` walk steps costs, per start, ``B_t = min(probes, 20 sqrt(t))``
    probe queries, ``_HALVINGS`` step-size queries and ``_SPLIT * _ROUNDS``
    boundary-search queries.
    """
    x = x.astype("float64")
    oracle = _Oracle(scorer, clip)
    n = len(x)
    points, dists = _starts(oracle, x, labels, predict(scorer, x), norm, rng)
    k = min(starts, len(points))
    order = np.argsort(dists, axis=0, kind="stable")[:k]  # (k, n)
    chosen = np.take_along_axis(dists, order, axis=0)
    ok = np.isfinite(chosen).reshape(-1)
    rows = np.tile(np.arange(n), k)[ok]
    start = points[order.reshape(-1)[ok], rows]
    walked = _walk(oracle, x[rows], labels[rows], start, norm, iterations, probes, rng)
    size = lp_norm(walked - x[rows], norm)
    out = np.zeros_like(x)
    sel = np.lexsort((size, rows))  # by input, then by distance: keep each input's first
    first = np.ones(len(sel), dtype=bool)
    first[1:] = rows[sel][1:] != rows[sel][:-1]
    win = sel[first]
    out[rows[win]] = walked[win] - x[rows[win]]
    return out if clip is None else np.clip(x + out, *clip) - x
