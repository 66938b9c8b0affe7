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

The walk runs on the device: one compiled loop per batch does every step
(the probe directions drawn there with `keras_lpc.backend.normal`, the
label queries, the estimate, the step and the boundary search), so between
steps nothing crosses to the host. The start (candidates and their boundary
searches, once per call) is batched label queries from the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness._core import Scorer, bounds
from keras_lpc.robustness._norms import column, flat, lp_norm, norm_of, per_row

_SPLIT = 3  # points queried per round of the boundary search
_ROUNDS = 7  # rounds: the bracket shrinks to 4**-7 = 6e-5 of the segment
_HALVINGS = 12  # geometric step sizes tried per iteration
_CHUNK = 20  # probe directions drawn and queried per pass of the estimate loop


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


def _normal_sum(fn, best, labels, radius, count, seed, clip):
    """The normal estimate ``v = mean_i (phi_i - mean phi) u_i`` per row, in ``keras.ops``.

    ``best`` (n, ...) boundary points, ``labels`` (n,) int32, probe radii
    ``radius`` (n,), ``count`` the probes per row, ``seed`` (2,) int32,
    ``clip`` ``(lo, hi)`` (the probes clipped to it) or None. Probes
    ``best + radius u_i``, ``u_i`` uniform on the unit sphere, ``phi_i = +1`` where the label changes and ``-1`` where not;
    ``_CHUNK`` probes per pass, the ones past ``count`` weighted 0; the mean
    is not subtracted where all ``phi_i`` agree (as in HopSkipJump).
    """
    total = ops.cast(count, best.dtype)
    tail = (1,) * (len(best.shape) - 1)
    axes = tuple(range(2, len(best.shape) + 1))

    def body(i, carry):
        s1, s0, p = carry
        u = backend.normal(best, _CHUNK, seed, i)  # (k, n, ...)
        u = u / ops.maximum(ops.sqrt(ops.sum(u * u, axis=axes, keepdims=True)), 1e-30)
        probes = best[None] + ops.reshape(radius, (1, -1, *tail)) * u
        pred = _labels_at(fn, probes, clip)
        k = ops.cast(i * _CHUNK + ops.arange(_CHUNK), best.dtype)
        weight = ops.cast(k < total, best.dtype)[:, None]  # (k, 1)
        phi = ops.where(pred != labels[None], 1.0, -1.0) * weight  # (k, n)
        wu = u * ops.reshape(weight, (_CHUNK, 1, *tail))
        s1 = s1 + ops.sum(ops.reshape(phi, (_CHUNK, -1, *tail)) * u, axis=0)
        return s1, s0 + ops.sum(wu, axis=0), p + ops.sum(phi, axis=0)

    zeros = ops.zeros_like(best)
    passes = (ops.cast(count, "int32") + _CHUNK - 1) // _CHUNK
    s1, s0, p = ops.fori_loop(0, passes, body, (zeros, zeros, ops.zeros_like(radius)))
    mean = p / total
    centre = ops.where(ops.abs(mean) == 1.0, 0.0, mean)
    return (s1 - per_row(centre, s0) * s0) / total


def _labels_at(fn, points, clip):
    """Predicted labels (k, n) int32 at points (k, n, ...), clipped to ``clip`` (or None)."""
    k = points.shape[0]
    if clip is not None:
        points = ops.clip(points, clip[0], clip[1])
    pred = ops.argmax(fn(ops.reshape(points, (-1, *points.shape[2:]))), axis=1)
    return ops.reshape(ops.cast(pred, "int32"), (k, -1))


def _blend_ops(x, target, t, norm: str):
    """`_blend` in ``keras.ops``: the point at parameter ``t`` (n,) between ``x`` and ``target``."""
    d = target - x
    if norm == "l2":
        return x + per_row(t, x) * d
    e = per_row(t * norm_of(d, "linf"), x)
    return x + ops.clip(d, -e, e)


def _search_ops(fn, x, target, labels, norm, clip):
    """`_to_boundary` in ``keras.ops``: ``_ROUNDS`` rounds of ``_SPLIT`` probes from ``target``."""
    lo = ops.zeros_like(labels, dtype=x.dtype)
    hi = ops.ones_like(lo)
    frac = ops.cast(ops.arange(1, _SPLIT + 1), x.dtype) / (_SPLIT + 1)
    split = ops.arange(_SPLIT)[:, None]

    def round_(_, bracket):  # a loop, not unrolled: the model is traced once
        lo, hi = bracket
        ts = lo[None] + frac[:, None] * (hi - lo)[None]  # (S, n)
        pts = ops.stack([_blend_ops(x, target, ts[j], norm) for j in range(_SPLIT)])
        adv = _labels_at(fn, pts, clip) != labels[None]  # (S, n)
        first = ops.where(ops.any(adv, axis=0), ops.argmax(ops.cast(adv, "int32"), axis=0), _SPLIT)
        at_first = ops.sum(ops.where(split == first[None], ts, 0.0), axis=0)
        before = ops.sum(ops.where(split == first[None] - 1, ts, 0.0), axis=0)
        return ops.where(first > 0, before, lo), ops.where(first < _SPLIT, at_first, hi)

    _, hi = ops.fori_loop(0, _ROUNDS, round_, (lo, hi))
    return _blend_ops(x, target, hi, norm)


def _walk_loop(norm: str, dim: int, clipped: bool) -> Any:
    """The whole walk, one compiled loop per batch (see `_walk`)."""

    def make(fn: Any) -> Any:
        def loop(x, best, labels, iterations, probes, seed, lo, hi):
            clip = (lo, hi) if clipped else None
            labels = ops.cast(labels, "int32")
            tail = (1,) * (len(x.shape) - 1)
            halves = ops.reshape(0.5 ** ops.cast(ops.arange(_HALVINGS), x.dtype), (-1, 1, *tail))
            rows = ops.arange(_HALVINGS)[:, None]

            def body(t, best):
                tf_ = ops.cast(t, x.dtype)
                d = norm_of(best - x, norm)
                d2 = ops.maximum(norm_of(best - x, "l2"), 1e-12)
                count = ops.minimum(ops.cast(probes, x.dtype), ops.ceil(20.0 * ops.sqrt(tf_)))
                seed_t = ops.stack([seed[0], ops.cast(t, "int32")])
                v = _normal_sum(fn, best, labels, d2 / dim**0.5, count, seed_t, clip)
                if norm == "linf":
                    v, xi = ops.sign(v), d / ops.sqrt(tf_)
                else:
                    vn = per_row(norm_of(v, "l2"), v)
                    v = ops.where(vn > 0, v / ops.maximum(vn, 1e-30), 0.0)
                    xi = d2 / ops.sqrt(tf_)
                # geometric step b + xi v, xi halved until adversarial (all sizes at once)
                steps = best[None] + halves * per_row(xi, x)[None] * v[None]  # (H, n, ...)
                adv = _labels_at(fn, steps, clip) != labels[None]  # (H, n)
                found = ops.any(adv, axis=0)
                first = ops.argmax(ops.cast(adv, "int32"), axis=0)
                pick = ops.reshape(ops.cast(rows == first[None], x.dtype), (_HALVINGS, -1, *tail))
                target = ops.sum(pick * steps, axis=0)
                b = _search_ops(fn, x, target, labels, norm, clip)
                better = found & (norm_of(b - x, norm) < d)
                return ops.where(per_row(better, x), b, best)

            return (ops.fori_loop(1, ops.cast(iterations, "int32") + 1, body, best),)

        return loop

    return make


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
    """HopSkipJump steps from the adversarial boundary points ``best``; the closest found.

    Per step ``t`` (1 to ``iterations``), at ``best`` (distance ``d`` from
    ``x``): the normal estimate from ``min(probes, ceil(20 sqrt(t)))`` probes
    (`_normal_sum`, seeds ``(base, t)``), the geometric step ``best + xi v``
    with ``xi`` halved ``_HALVINGS`` times (the largest adversarial one kept),
    the boundary search back towards ``x``, and ``best`` replaced where the
    new point is closer. One compiled loop per batch runs all the steps on
    the device (inputs are independent), so nothing crosses to the host
    between steps.
    """
    scorer = oracle.scorer
    dtype = scorer.dtype
    base = int(rng.integers(0, 2**31 - 1))  # the device's probe directions: seeds (base, t)
    counts = np.minimum(probes, np.ceil(20 * np.sqrt(np.arange(1, iterations + 1))))
    oracle.queries += int(len(x) * (counts.sum() + iterations * (_HALVINGS + _SPLIT * _ROUNDS)))
    dim = flat(x).shape[1]
    clipped = oracle.clip is not None
    (walked,) = scorer.run(
        ("boundary-walk", norm, dim, clipped, _CHUNK, _HALVINGS, _SPLIT, _ROUNDS),
        _walk_loop(norm, dim, clipped),
        [x.astype(dtype), best.astype(dtype), labels.astype("int32")],
        [
            np.asarray(iterations, "int32"),
            np.asarray(probes, "int32"),
            np.asarray([base, 0], "int32"),
            *bounds(oracle.clip, dtype),
        ],
        batch_size=scorer.query_batch_size,
    )
    return walked.astype("float64")


def boundary_attack(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    budget: int,
    clip: tuple[float, float] | None,
    rng: np.random.Generator,
    probes: int = 100,
    starts: int = 3,
) -> np.ndarray:
    """Perturbations (N, ...) found from label queries only (zeros where none was found).

    The ensemble's ``"boundary"`` attack; its queries run in batches of
    ``scorer.query_batch_size``. The start costs ``21 (C + 8) + 64`` queries per
    input; each of the ``budget`` walk steps costs, per start, ``B_t = min(probes, 20 sqrt(t))``
    probe queries, ``_HALVINGS`` step-size queries and ``_SPLIT * _ROUNDS``
    boundary-search queries.
    """
    x = x.astype("float64")
    oracle = _Oracle(scorer, clip)
    n = len(x)
    preds = scorer.predict(x, batch_size=scorer.query_batch_size)
    points, dists = _starts(oracle, x, labels, preds, norm, rng)
    k = min(starts, len(points))
    order = np.argsort(dists, axis=0, kind="stable")[:k]  # (k, n)
    chosen = np.take_along_axis(dists, order, axis=0)
    ok = np.isfinite(chosen).reshape(-1)
    rows = np.tile(np.arange(n), k)[ok]
    start = points[order.reshape(-1)[ok], rows]
    walked = _walk(oracle, x[rows], labels[rows], start, norm, budget, probes, rng)
    size = lp_norm(walked - x[rows], norm)
    out = np.zeros_like(x)
    sel = np.lexsort((size, rows))  # by input, then by distance: keep each input's first
    first = np.ones(len(sel), dtype=bool)
    first[1:] = rows[sel][1:] != rows[sel][:-1]
    win = sel[first]
    out[rows[win]] = walked[win] - x[rows[win]]
    return out if clip is None else np.clip(x + out, *clip) - x
