"""A float64 NumPy CROWN for chain-shaped models: the cross-check of the compiled bounds.

Plain and independent of `keras_lpc.robustness.certify`'s passes: every linear
layer becomes a dense matrix (its outputs for the basis vectors), the passes run
one input at a time with dense matrix products, the intermediate bounds are
CROWN's intersected with interval arithmetic (as the library does), and the
radius is found by plain bisection. Only the graph conversion (layers to
operations, itself tested against the model's outputs) and the activations'
definitions (f, f', pieces) are shared. Relaxations: the same rule as the
library (candidate chord and tangents, each shifted by its exact largest
violation, least area wins), recomputed here in float64.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from keras_lpc.robustness.certify._activations import Leaky, Smooth
from keras_lpc.robustness.certify._convert import to_graph
from keras_lpc.robustness.certify._pooling import MaxPool
from keras_lpc.robustness.certify._relax import STEPS, TANGENTS


def layers_of(model) -> tuple[list[tuple], int]:
    """``[("affine", W, b) | ("act", spec) | ("pool", index (out, K))]`` and the input size."""
    graph = to_graph(model)
    out = []
    for i, node in enumerate(graph.nodes):
        assert node.inputs == (i,), "the reference handles chains only"
        shape, n = graph.shapes[i], math.prod(graph.shapes[i])
        if node.op.kind == "linear":
            basis = np.eye(n, dtype="float32").reshape(n, *shape)
            w = ops.convert_to_numpy(node.op.linear(ops.convert_to_tensor(basis)))
            b = ops.convert_to_numpy(node.op.forward(ops.zeros((1, *shape))))
            out.append(
                ("affine", w.reshape(n, -1).T.astype("float64"), b.reshape(-1).astype("float64"))
            )
        elif isinstance(node.op, MaxPool):
            index = np.arange(n, dtype="float32").reshape(1, *shape)
            win = ops.convert_to_numpy(node.op.windows.extract(ops.convert_to_tensor(index), -1.0))
            out.append(("pool", win.reshape(win.shape[1], -1).T.astype(int)))
        else:
            out.append(("act", node.op.spec))
    return out, math.prod(graph.shapes[0])


def _smooth(spec: Smooth, lo: np.ndarray, up: np.ndarray):
    f, df = spec.f64, spec.df64
    width = up - lo
    a = [df(lo + width * t) for t in TANGENTS]
    b = [f(lo + width * t) - df(lo + width * t) * (lo + width * t) for t in TANGENTS]
    chord = np.where(width > 0, (f(up) - f(lo)) / np.maximum(width, 1e-300), a[0])
    a, b = np.stack([*a, chord]), np.stack([*b, f(lo) - chord * lo])
    over = np.full(a.shape, -np.inf)
    under = np.full(a.shape, -np.inf)
    edges = (-np.inf, *spec.breaks, np.inf)
    for i, convex in enumerate(spec.convex):
        p, q = np.maximum(lo, edges[i]), np.minimum(up, edges[i + 1])
        empty = p > q
        q = np.maximum(p, q)
        for sign, interior in ((1.0, not convex), (-1.0, convex)):

            def h(z, sign=sign):
                return sign * (f(z) - a * z - b)

            def dh(z, sign=sign):
                return sign * (df(z) - a)

            top = np.maximum(h(p), h(q))
            if interior:
                left, right = p + 0 * a, q + 0 * a
                for _ in range(STEPS + 20):
                    mid = 0.5 * (left + right)
                    go = dh(mid) >= 0
                    left, right = np.where(go, mid, left), np.where(go, right, mid)
                top = np.maximum(top, h(left) + np.maximum(dh(left), 0) * (right - left))
            top = np.where(empty, -np.inf, top)
            if sign > 0:
                over = np.maximum(over, top)
            else:
                under = np.maximum(under, top)
    mid = 0.5 * (lo + up)
    b_up, b_low = b + np.maximum(over, 0), b - np.maximum(under, 0)
    iu, il = np.argmin(a * mid + b_up, axis=0), np.argmax(a * mid + b_low, axis=0)
    take = np.arange(len(lo))
    return a[il, take], b_low[il, take], a[iu, take], b_up[iu, take]


def _relax(spec, lo, up):
    if isinstance(spec, Smooth):
        return _smooth(spec, lo, up)
    s = spec.slope
    neg, pos = up <= 0, lo >= 0
    width = np.maximum(up - lo, 1e-300)
    chord = (spec.f64(up) - spec.f64(lo)) / width
    exact = np.where(neg, s, 1.0)
    slope = np.where(neg | pos, exact, np.where(up >= -lo, 1.0, s))
    ch_a = np.where(neg | pos, exact, chord)
    ch_b = np.where(neg | pos, 0.0, spec.f64(lo) - chord * lo)
    zero = np.zeros_like(lo)
    return (slope, zero, ch_a, ch_b) if s <= 1 else (ch_a, ch_b, slope, zero)


def _interval(spec, lo, up):
    fl, fu = spec.f64(lo), spec.f64(up)
    if isinstance(spec, Leaky) or spec.argmin is None:
        return np.minimum(fl, fu), np.maximum(fl, fu)
    inside = (lo < spec.argmin) & (up > spec.argmin)
    return np.where(inside, spec.f64(spec.argmin), np.minimum(fl, fu)), np.maximum(fl, fu)


def _pool_relax(index, lo, up):
    lw, uw = lo[index], up[index]  # (out, K)
    pick = np.zeros_like(lw)
    pick[np.arange(len(lw)), np.argmax(lw, axis=1)] = 1.0
    others = np.max(np.where(pick > 0, -np.inf, uw), axis=1)
    dominant = np.max(lw, axis=1) >= others
    return pick, pick * dominant[:, None], np.where(dominant, 0.0, np.max(uw, axis=1))


def lower_bounds(layers, x0: np.ndarray, spec: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """CROWN lower bounds of ``spec @ f(x)`` (S,) over the ball of radius ``eps`` around ``x0``."""
    relax: dict[int, tuple] = {}
    q = 2 if norm == "l2" else 1

    def back(k: int, lam: np.ndarray) -> np.ndarray:
        const = np.zeros(len(lam))
        for i in range(k - 1, -1, -1):
            layer = layers[i]
            if layer[0] == "affine":
                const += lam @ layer[2]
                lam = lam @ layer[1]
            elif layer[0] == "act":
                al, bl, au, bu = relax[i]
                pos, neg = np.maximum(lam, 0), np.minimum(lam, 0)
                const += pos @ bl + neg @ bu
                lam = pos * al + neg * au
            else:
                pick, upper, cst = relax[i]
                pos, neg = np.maximum(lam, 0), np.minimum(lam, 0)
                const += neg @ cst
                out = np.zeros((len(lam), int(layer[1].max()) + 1))
                for k2 in range(layer[1].shape[1]):
                    np.add.at(out.T, layer[1][:, k2], (pos * pick[:, k2] + neg * upper[:, k2]).T)
                lam = out
        return const + lam @ x0 - eps * np.linalg.norm(lam, ord=q, axis=1)

    w_total, b_total = np.eye(len(x0)), np.zeros(len(x0))
    prefix, lo, up = True, None, None
    for i, layer in enumerate(layers):
        if layer[0] == "affine":
            w, b = layer[1], layer[2]
            if prefix:
                w_total, b_total = w @ w_total, w @ b_total + b
            else:
                c, r = w @ (0.5 * (lo + up)) + b, np.abs(w) @ (0.5 * (up - lo))
                lo, up = c - r, c + r
            continue
        if prefix:  # the input's affine prefix: exact
            c = w_total @ x0 + b_total
            r = eps * np.linalg.norm(w_total, ord=q, axis=1)
            lo, up, prefix = c - r, c + r, False
        else:
            n = len(lo)
            crown = back(i, np.concatenate([np.eye(n), -np.eye(n)]))
            lo, up = np.maximum(lo, crown[:n]), np.minimum(up, -crown[n:])
        if layer[0] == "act":
            relax[i] = _relax(layer[1], lo, up)
            lo, up = _interval(layer[1], lo, up)
        else:
            relax[i] = _pool_relax(layer[1], lo, up)
            lo, up = np.max(lo[layer[1]], axis=1), np.max(up[layer[1]], axis=1)
    return back(len(layers), spec)


def radius(layers, x0: np.ndarray, label: int, classes: int, norm: str, steps: int = 20) -> float:
    """The certified radius of one input: doubling from ``1e-3 ||x0||`` until a pass fails,
    then ``steps`` bisection passes (``lower_bounds`` of every ``f_y - f_j`` positive)."""
    spec = np.delete(np.eye(classes)[label][None] - np.eye(classes), label, axis=0)

    def certified(eps: float) -> bool:
        return bool(np.min(lower_bounds(layers, x0, spec, eps, norm)) > 0)

    lo, eps = 0.0, 1e-3 * float(np.linalg.norm(x0) + 1e-12)
    while certified(eps):
        lo, eps = eps, 2.0 * eps
        if eps > 1e6:
            return lo
    hi = eps
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if certified(mid) else (lo, mid)
    return lo
