"""The minimum-norm attacks as they were before they ran on the device: test reference only.

FMN (`fmn_attack`), APGD (`apgd_run`) and PGD (`pgd_run`) with their state as
float64 NumPy arrays on the host and one compiled model call per step and
batch (`HostScorer.vjp`, an (N, D) gradient copied to NumPy every step). The
compiled attacks in `keras_lpc.robustness` must reproduce these loops
(`tests/test_fmn.py`, `tests/test_apgd.py`, `tests/test_attacks.py`), and
`benchmarks/minnorm_speed.py` times both.
Kept verbatim apart from the names; do not "fix" it: it is the yardstick.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from keras_lpc.robustness import Scorer

# The host loops' model calls (one compiled forward pass, or forward pass and loss
# gradient, per batch and step) are the library's `Scorer.forward` and `Scorer.vjp`.
HostScorer = Scorer


def flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1)


def column(v: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(v).reshape((-1,) + (1,) * (ndim - 1))


def lp_norm(a: np.ndarray, norm: str) -> np.ndarray:
    f = flat(a)
    if norm == "l2":
        return np.linalg.norm(f, axis=1)
    return np.max(np.abs(f), axis=1) if f.shape[1] else np.zeros(len(f))


def dual_norm(a: np.ndarray, norm: str) -> np.ndarray:
    f = flat(a)
    return np.linalg.norm(f, axis=1) if norm == "l2" else np.sum(np.abs(f), axis=1)


def steepest(g: np.ndarray, norm: str) -> np.ndarray:
    if norm == "linf":
        return np.sign(g)
    n = column(np.linalg.norm(flat(g), axis=1), g.ndim)
    return np.divide(g, n, out=np.zeros_like(g), where=n > 0)


def project(delta: np.ndarray, eps: np.ndarray, norm: str) -> np.ndarray:
    e = column(eps, delta.ndim)
    if norm == "linf":
        return np.clip(delta, -e, e)
    size = column(np.linalg.norm(flat(delta), axis=1), delta.ndim)
    scale = np.minimum(1.0, np.divide(e, size, out=np.ones_like(size), where=size > 0))
    return delta * scale


def clip_delta(x: np.ndarray, delta: np.ndarray, clip: tuple[float, float] | None) -> np.ndarray:
    return delta if clip is None else np.clip(x + delta, *clip) - x


def predict(scorer: HostScorer, points: np.ndarray) -> np.ndarray:
    return np.argmax(scorer.forward(points.astype(scorer.dtype)), axis=1)


def _other_max(scores: Any, onehot: Any) -> Any:
    return ops.argmax(ops.where(onehot > 0, -np.inf, scores), axis=1)


def _margin_cot(scores: Any, labels: Any) -> Any:
    c = ops.shape(scores)[1]
    onehot = ops.one_hot(labels, c, dtype=scores.dtype)
    other = ops.one_hot(_other_max(scores, onehot), c, dtype=scores.dtype)
    return ops.expand_dims(onehot - other, 0)


def _ce_cot(scores: Any, labels: Any) -> Any:
    onehot = ops.one_hot(labels, ops.shape(scores)[1], dtype=scores.dtype)
    return ops.expand_dims(ops.softmax(scores, axis=-1) - onehot, 0)


def _dlr_cot(scores: Any, labels: Any) -> Any:
    c = ops.shape(scores)[1]
    onehot = ops.one_hot(labels, c, dtype=scores.dtype)
    other = ops.one_hot(_other_max(scores, onehot), c, dtype=scores.dtype)
    if c < 3:
        return ops.expand_dims(other - onehot, 0)
    _, top = ops.top_k(scores, 3)
    p1 = ops.one_hot(top[:, 0], c, dtype=scores.dtype)
    p3 = ops.one_hot(top[:, 2], c, dtype=scores.dtype)
    a = ops.sum(scores * (onehot - other), axis=1, keepdims=True)
    d = ops.sum(scores * (p1 - p3), axis=1, keepdims=True) + 1e-12
    return ops.expand_dims(-(onehot - other) / d + a / (d * d) * (p1 - p3), 0)


def _soft_margin_cot(scores: Any, labels: Any) -> Any:
    onehot = ops.one_hot(labels, ops.shape(scores)[1], dtype=scores.dtype)
    soft = ops.softmax(ops.where(onehot > 0, -np.inf, scores), axis=-1)
    return ops.expand_dims(onehot - soft, 0)


COTANGENTS = {
    "soft-margin": _soft_margin_cot,
    "margin": _margin_cot,
    "ce": _ce_cot,
    "dlr": _dlr_cot,
}


def losses(scores: np.ndarray, labels: np.ndarray, kind: str) -> np.ndarray:
    rows = np.arange(len(scores))
    zy = scores[rows, labels]
    masked = scores.copy()
    masked[rows, labels] = -np.inf
    zm = masked.max(axis=1)
    if kind == "margin":
        return zy - zm
    if kind == "soft-margin":
        return zy - zm - np.log(np.sum(np.exp(masked - zm[:, None]), axis=1))
    if kind == "ce":
        top = scores.max(axis=1, keepdims=True)
        return np.log(np.sum(np.exp(scores - top), axis=1)) + top[:, 0] - zy
    if scores.shape[1] < 3:
        return zm - zy
    srt = np.sort(scores, axis=1)[:, ::-1]
    return -(zy - zm) / (srt[:, 0] - srt[:, 2] + 1e-12)


def loss_grad(
    scorer: HostScorer, x: np.ndarray, labels: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    scores, grads = scorer.vjp(x, COTANGENTS[kind], labels.astype("int32"))
    return scores, grads[0]


def _both_cot(scores: Any, labels: Any) -> Any:
    return ops.concatenate(
        [COTANGENTS["soft-margin"](scores, labels), COTANGENTS["margin"](scores, labels)]
    )


def _cosine(k: int, steps: int, start: float, end: float) -> float:
    return end + 0.5 * (start - end) * (1.0 + np.cos(np.pi * k / steps))


def fmn_attack(
    scorer: HostScorer,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    steps: int,
    clip: tuple[float, float] | None,
    gamma: tuple[float, float] = (0.05, 0.001),
    alpha: tuple[float, float] = (1.0, 0.01),
) -> np.ndarray:
    """FMN's smallest adversarial perturbation per input (N, ...), zeros where none."""
    x = x.astype("float64")
    n = len(x)
    delta = np.zeros_like(x)
    eps = np.zeros(n)
    best_norm = np.full(n, np.inf)
    best = np.zeros_like(x)
    found = np.zeros(n, dtype=bool)
    for k in range(steps):
        scores, g2 = scorer.vjp(x + delta, _both_cot, labels.astype("int32"))
        loss = losses(scores, labels, "margin")
        adv = np.argmax(scores, axis=1) != labels
        g = np.where(column(found | adv, x.ndim), g2[1], g2[0])
        size = lp_norm(delta, norm)
        better = adv & (size < best_norm)
        best_norm[better] = size[better]
        best[better] = delta[better]
        found |= adv
        gk = _cosine(k, steps, *gamma)
        gnorm = dual_norm(g, norm)
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = np.where(gnorm > 0, (size + loss / gnorm) * (1.0 + gk), eps)
        eps = np.where(
            adv, np.minimum(eps * (1.0 - gk), best_norm), np.where(found, eps * (1.0 + gk), guess)
        )
        if k == 0:
            scale = np.where(np.isfinite(guess) & (guess > 0), guess, 0.05 * lp_norm(x, norm))
        step = _cosine(k, steps, *alpha) * scale
        delta = delta - step.reshape((-1,) + (1,) * (x.ndim - 1)) * steepest(g, norm)
        delta = clip_delta(x, project(delta, eps, norm), clip)
    adv = predict(scorer, x + delta) != labels
    size = lp_norm(delta, norm)
    better = adv & (size < best_norm)
    best[better] = delta[better]
    return best


def checkpoints(steps: int) -> set[int]:
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {int(np.ceil(q * steps)) for q in p[1:] if np.ceil(q * steps) < steps}


def draw_start(x: np.ndarray, eps: np.ndarray, norm: str, rng: np.random.Generator):
    e = column(eps, x.ndim)
    if norm == "linf":
        return rng.uniform(-1.0, 1.0, size=x.shape) * e
    u = rng.standard_normal(x.shape)
    u /= column(np.maximum(np.linalg.norm(flat(u), axis=1), 1e-30), x.ndim)
    return u * e * column(rng.uniform(size=len(x)) ** (1.0 / flat(x).shape[1]), x.ndim)


class Tracker:
    """The smallest-norm adversarial perturbation seen per input."""

    def __init__(self, x: np.ndarray, norm: str) -> None:
        self.norm = norm
        self.size = np.full(len(x), np.inf)
        self.delta = np.zeros_like(x)

    def see(self, delta: np.ndarray, adv: np.ndarray) -> None:
        size = lp_norm(delta, self.norm)
        better = adv & (size < self.size)
        self.size[better] = size[better]
        self.delta[better] = delta[better]

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.size)


def apgd_run(
    scorer: HostScorer,
    x: np.ndarray,
    labels: np.ndarray,
    eps: np.ndarray,
    *,
    norm: str,
    steps: int,
    loss: str,
    clip: tuple[float, float] | None,
    rng: np.random.Generator,
    rho: float = 0.75,
    momentum: float = 0.75,
    random_start: bool = False,
) -> Tracker:
    """Auto-PGD at per-sample radii ``eps`` (N,); every iterate is checked for a flip."""
    x = x.astype("float64")
    track = Tracker(x, norm)
    marks = checkpoints(steps)
    eta = 2.0 * eps
    delta = draw_start(x, eps, norm, rng) if random_start else np.zeros_like(x)
    delta = clip_delta(x, delta, clip)
    prev = delta
    f_best = np.full(len(x), -np.inf)
    d_best, g_best = delta.copy(), np.zeros_like(x)
    f_prev = None
    raised = np.zeros(len(x))
    last_mark, f_best_mark, eta_mark = 0, f_best.copy(), eta.copy()
    ball = lambda d: clip_delta(x, project(d, eps, norm), clip)  # noqa: E731
    for k in range(steps):
        scores, g = loss_grad(scorer, x + delta, labels, loss)
        f = losses(scores, labels, loss)
        track.see(delta, np.argmax(scores, axis=1) != labels)
        if f_prev is not None:
            raised += f > f_prev
        f_prev = f
        up = f > f_best
        f_best = np.where(up, f, f_best)
        d_best[up], g_best[up] = delta[up], g[up]
        if k in marks:
            halve = (raised < rho * (k - last_mark)) | ((eta == eta_mark) & (f_best <= f_best_mark))
            eta_mark, f_best_mark = eta.copy(), f_best.copy()
            eta = np.where(halve, eta / 2.0, eta)
            delta = np.where(column(halve, x.ndim), d_best, delta)
            g = np.where(column(halve, x.ndim), g_best, g)
            prev = np.where(column(halve, x.ndim), d_best, prev)
            raised[:] = 0
            last_mark = k
        z = ball(delta + column(eta, x.ndim) * steepest(g, norm))
        a = 1.0 if k == 0 else momentum
        delta, prev = ball(delta + a * (z - delta) + (1.0 - a) * (delta - prev)), delta
    track.see(delta, predict(scorer, x + delta) != labels)
    return track


def pgd_run(
    scorer: HostScorer,
    x: np.ndarray,
    labels: np.ndarray,
    eps: np.ndarray,
    *,
    norm: str,
    steps: int,
    clip: tuple[float, float] | None,
    rng: np.random.Generator,
) -> Tracker:
    """PGD on the cross-entropy at per-sample radii, every iterate checked for a flip."""
    x = x.astype("float64")
    track = Tracker(x, norm)
    a = column(2.5 * eps / steps, x.ndim)
    delta = clip_delta(x, draw_start(x, eps, norm, rng), clip)
    for _ in range(steps):
        scores, g = loss_grad(scorer, x + delta, labels, "ce")
        track.see(delta, np.argmax(scores, axis=1) != labels)
        delta = clip_delta(x, project(delta + a * steepest(g, norm), eps, norm), clip)
    track.see(delta, predict(scorer, x + delta) != labels)
    return track


def _mix(h: np.ndarray) -> np.ndarray:
    """lowbias32 on uint32 (the counter-based generator of keras_lpc.robustness._counter)."""
    h = np.asarray(h).astype(np.uint32)
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x7FEB352D)
        h = h ^ (h >> np.uint32(15))
        h = h * np.uint32(0x846CA68B)
        return h ^ (h >> np.uint32(16))


def directions(seed, keys, step, first, count, size):
    """The walk's probe directions (count, n, size) in float64 NumPy, from their definition:
    hash of (seed, key, step, probe), Box-Muller pairs of the hashes of (that, 2j) and
    (that, 2j + 1), each row scaled to unit L2 norm."""
    golden = np.uint32(0x9E3779B9)
    with np.errstate(over="ignore"):
        h = golden
        probe = (first + np.arange(count))[:, None]
        for c in (seed, np.asarray(keys)[None, :], step, probe):
            h = _mix(h + np.asarray(c).astype(np.int64).astype(np.uint32))
        pairs = (size + 1) // 2
        j = np.arange(pairs)
        u1 = ((_mix(h[..., None] + _mix(2 * j)) >> np.uint32(8)) + 0.5) * 2.0**-24
        u2 = ((_mix(h[..., None] + _mix(2 * j + 1)) >> np.uint32(8)) + 0.5) * 2.0**-24
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.stack([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=-1)
    z = z.reshape(*h.shape, 2 * pairs)[..., :size]
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def boundary_walk(oracle, x, labels, best, norm, iterations, probes, rng):
    """The boundary attack's walk as it was before it ran on the device.

    Same contract as `keras_lpc.robustness.decision.walk`: every step's
    probes drawn on the host (NumPy), each query a host array sent to the
    model, the estimate, the step and the boundary search in float64 NumPy.
    """
    from keras_lpc.robustness import _boundary, _starts

    m = len(x)
    dim = flat(x).shape[1]
    tail = (1,) * (x.ndim - 1)
    for t in range(1, iterations + 1):
        d = lp_norm(best - x, norm)
        d2 = np.maximum(lp_norm(best - x, "l2"), 1e-12)
        count = int(min(probes, np.ceil(20 * np.sqrt(t))))
        u = _starts._unit((count, *x.shape), rng)
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
        halves = 0.5 ** np.arange(_boundary.HALVINGS)
        steps = best[None] + halves.reshape(-1, 1, *tail) * column(xi, x.ndim)[None] * v[None]
        adv = oracle.adv(
            steps.reshape(_boundary.HALVINGS * m, *x.shape[1:]), np.tile(labels, _boundary.HALVINGS)
        ).reshape(_boundary.HALVINGS, m)
        first = np.argmax(adv, axis=0)
        keep = np.flatnonzero(adv[first, np.arange(m)])
        if keep.size == 0:
            continue
        b = _starts._to_boundary(oracle, x[keep], steps[first[keep], keep], labels[keep], norm)
        better = lp_norm(b - x[keep], norm) < d[keep]
        best[keep[better]] = b[better]
    return best


def assert_same_run(ours, theirs, host, x, labels, norm, *, rtol=1e-5, vectors=False, name=""):
    """A compiled fixed-radius run (`Tracker`) against the host loop's: the same inputs
    broken (neither all nor none), the same smallest norms, every kept perturbation
    adversarial and of the reported norm; with ``vectors`` the same perturbations.

    Every adversarial iterate on the sphere ``||delta|| = eps`` ties for the smallest norm up
    to rounding, so the vectors are compared only where the norm is exact (L-inf, no clip).
    """
    np.testing.assert_array_equal(ours.found, theirs.found, err_msg=name)
    assert 0 < ours.found.sum() < len(x), name
    np.testing.assert_allclose(ours.size, theirs.size, rtol=rtol, err_msg=name)
    assert ours.delta.dtype == np.float64 and ours.delta.shape == x.shape
    flipped = predict(host, x + ours.delta) != labels
    np.testing.assert_array_equal(flipped, ours.found, err_msg=name)
    size = lp_norm(ours.delta, norm)[ours.found]
    np.testing.assert_allclose(size, ours.size[ours.found], rtol=rtol, err_msg=name)
    if vectors:
        np.testing.assert_allclose(ours.delta, theirs.delta, atol=1e-5, err_msg=name)
