"""A decision-based minimum-norm attack: it sees only the model's predicted labels.

No gradient guides it, so gradient masking (zero, shattered or obfuscated
input gradients) cannot hide a close decision boundary from it. The walk
follows HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020):

1. **Start.** For each input, the candidates are the other inputs of the batch
   that the model classifies differently (adversarial by construction),
   random points ``x + s u`` (``u`` Gaussian, ``s`` growing geometrically),
   and a known adversarial point when one is given (``start``, e.g. the best
   of the gradient attacks); each is brought to the boundary by a search on
   the segment from ``x``, and the ``starts`` closest ones are walked from
   (several, because a walk can settle on the nearest point of a face of the
   decision region that is not the nearest face).
2. **Walk** (`walk`). At the boundary point ``b`` (distance ``d`` from ``x``),
   the boundary's normal is estimated from label queries at ``b + delta u_i``
   (``u_i`` uniform on the sphere, ``delta = d / sqrt(D)``): ``v = mean_i
   (phi_i - mean phi) u_i`` with ``phi_i = +1`` if adversarial and ``-1`` if
   not; then a geometric step ``b + xi v`` (``xi = d / sqrt(t)``, halved
   until adversarial) and a search back towards ``x``. For L-inf the step is
   ``sign(v)`` and the search moves on the L-inf ball
   (``x + clip(b - x, -e, e)``).
3. **Piecewise-constant models** (where the input gradient of the margin is
   exactly zero or not finite, `masked_gradients`: an input quantiser such as
   ``round(4 x) / 4``, a lookup, a hard threshold). Their decision regions are
   unions of boxes, whose faces a normal estimate cannot follow, so these
   inputs also get a greedy search on the class scores (`greedy`, see
   `keras_lpc.robustness._greedy`: one coordinate at a time, the move with
   the largest fall of the margin per unit of added distance), and a
   `coordinate_search` from its point and from the walk's: per sweep,
   coordinate by coordinate from the one farthest from ``x``, ``a_i`` moves to
   the point of the segment ``[x_i, a_i]`` closest to ``x_i`` (on a grid of 8,
   then 8 more between the two grid points around the answer) that keeps the
   label changed, then a search towards ``x``.

The closest point over all starts and searches is returned (the ensemble
verifies it by a forward pass). Walk, greedy and coordinate search run on the device, one compiled loop per batch
(`keras_lpc.robustness._boundary`); their probe directions are counter-based
(`keras_lpc.robustness._counter`), a pure function of the seed, the input's
row, the step and the probe: the same directions on every backend, drawn on
the device. The start (candidates and their searches, once per call) is
batched label queries from the host.
"""

from __future__ import annotations

import numpy as np

from keras_lpc.robustness import _boundary, _greedy
from keras_lpc.robustness._core import Scorer, bounds
from keras_lpc.robustness._losses import loss_grad
from keras_lpc.robustness._norms import Tracker, column, flat, lp_norm
from keras_lpc.robustness._starts import _Oracle, _starts

#: Sweeps of each coordinate search.
SWEEPS = 2
#: Coordinates moved per sweep (the farthest from ``x``), at most.
WIDTH = 256
#: A refinement walks ``budget // REFINE`` steps from the known point.
REFINE = 4
#: An input is searched fully where an own candidate lies within ``CHECK`` x the known point.
CHECK = 1.6


def walk(
    oracle: _Oracle,
    x: np.ndarray,
    labels: np.ndarray,
    best: np.ndarray,
    norm: str,
    iterations: int,
    probes: int,
    rng: np.random.Generator,
    keys: np.ndarray | None = None,
) -> np.ndarray:
    """HopSkipJump steps from the adversarial boundary points ``best``; the closest found.

    Per step ``t`` (1 to ``iterations``), at ``best`` (distance ``d`` from
    ``x``): the normal estimate from ``min(probes, ceil(20 sqrt(t)))`` probes,
    the geometric step ``best + xi v`` with ``xi`` halved ``HALVINGS`` times
    (the largest adversarial one kept), the boundary search back towards
    ``x``, and ``best`` replaced where the new point is closer. One compiled
    loop per batch runs all the steps on the device. The probe directions
    are a pure function of a seed drawn from ``rng``, the row's key (``keys``,
    default its index) and the probe: the same on every backend and batch size.
    """
    scorer = oracle.scorer
    dtype = scorer.dtype
    seed = int(rng.integers(0, 2**31 - 1))
    keys = np.arange(len(x)) if keys is None else keys
    counts = np.minimum(probes, np.ceil(20 * np.sqrt(np.arange(1, iterations + 1))))
    steps = iterations * (_boundary.HALVINGS + _boundary.SPLIT * _boundary.ROUNDS)
    oracle.queries += int(len(x) * (counts.sum() + steps))
    dim = flat(x).shape[1]
    clipped = oracle.clip is not None
    (walked,) = scorer.run(
        ("boundary-walk", norm, dim, clipped, _boundary.CHUNK, _boundary.HALVINGS),
        _boundary.walk_loop(norm, dim, clipped),
        [x.astype(dtype), best.astype(dtype), labels.astype("int32"), keys.astype("int32")],
        [
            np.asarray(iterations, "int32"),
            np.asarray(probes, "int32"),
            np.asarray(seed, "int32"),
            *bounds(oracle.clip, dtype),
        ],
        batch_size=scorer.query_batch_size,
    )
    return walked.astype("float64")


#: Former name of `walk`.
_walk = walk


def coordinate_search(
    oracle: _Oracle, x: np.ndarray, labels: np.ndarray, best: np.ndarray, norm: str, sweeps: int
) -> np.ndarray:
    """``sweeps`` sweeps of single-coordinate moves towards ``x`` from the adversarial points
    ``best``, then a boundary search towards ``x``; adversarial points (N, ...).

    Per sweep, for the ``min(D, WIDTH)`` coordinates farthest from ``x`` (farthest
    first), ``a_i`` becomes the closest of ``x_i + (k / 8) (a_i - x_i)``, ``k = 0..7``,
    that keeps ``a`` adversarial (unchanged if none does): 8 queries per coordinate.
    """
    scorer = oracle.scorer
    dim = flat(x).shape[1]
    width = min(dim, WIDTH)
    clipped = oracle.clip is not None
    oracle.queries += int(len(x) * (sweeps * width * _boundary.NARROW * _boundary.FRACTIONS + 21))
    (moved,) = scorer.run(
        ("boundary-coordinates", norm, width, clipped, _boundary.FRACTIONS),
        _boundary.coordinate_loop(norm, width, clipped),
        [x.astype(scorer.dtype), best.astype(scorer.dtype), labels.astype("int32")],
        [np.asarray(sweeps, "int32"), *bounds(oracle.clip, scorer.dtype)],
        batch_size=max(1, scorer.query_batch_size // _boundary.FRACTIONS),
    )
    return moved.astype("float64")


def greedy(
    oracle: _Oracle,
    x: np.ndarray,
    labels: np.ndarray,
    norm: str,
    steps: int,
    rng: np.random.Generator,
    keys: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The score-based coordinate search of `keras_lpc.robustness._greedy` from ``x``:
    points (N, ...) and whether each is adversarial (N,)."""
    scorer = oracle.scorer
    dtype = scorer.dtype
    size = flat(x).shape[1]
    if oracle.clip is None:
        span = 2.0 * lp_norm(x, "linf")
    else:
        span = np.full(len(x), oracle.clip[1] - oracle.clip[0])
    keys = np.arange(len(x)) if keys is None else keys
    per = 2 * _greedy.SIZES * min(size, _greedy.WIDTH)
    oracle.queries += int(len(x) * (steps * per + 1))
    point, done = scorer.run(
        ("boundary-greedy", norm, size, oracle.clip is not None, _greedy.SIZES, _greedy.WIDTH),
        _greedy.greedy_loop(norm, size, oracle.clip is not None),
        [x.astype(dtype), labels.astype("int32"), keys.astype("int32"), span.astype(dtype)],
        [
            np.asarray(steps, "int32"),
            np.asarray(int(rng.integers(0, 2**31 - 1)), "int32"),
            *bounds(oracle.clip, dtype),
        ],
        batch_size=max(8, scorer.query_batch_size // (2 * _greedy.SIZES * _greedy.CHUNK)),
    )
    return point.astype("float64"), done.astype(bool)


def masked_gradients(scorer: Scorer, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether the input gradient of the margin ``z_y - max_{j != y} z_j`` is exactly zero or
    not finite, per input (N,): one forward and one backward pass."""
    _, g = loss_grad(scorer, x, labels, "margin")
    g = flat(g)
    return ~np.all(np.isfinite(g), axis=1) | np.all(g == 0.0, axis=1)


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
    start: np.ndarray | None = None,
    search: np.ndarray | None = None,
) -> np.ndarray:
    """Perturbations (N, ...) found without gradients (zeros where none was found).

    The ensemble's ``"boundary"`` attack; its queries run in batches of
    ``scorer.query_batch_size``; ``budget`` is the walk's steps. Per input:

    * a refinement, where ``search`` is False and ``start`` is adversarial: a walk
      of ``max(1, budget // REFINE)`` steps from ``start``;
    * a search, elsewhere: the ``starts`` closest candidates (the batch's other
      classes, 8 random directions, ``start``), each walked ``budget`` steps;
    * where the input gradient of the margin is zero or not finite
      (`masked_gradients`), also the score-based `greedy` search (at most
      ``budget`` steps) from ``x``, and a `coordinate_search` (`SWEEPS` sweeps)
      from its point and from the walk's; the closest point is kept.

    Queries per input: ``21 (C + 9) + 64`` for the start; per walk step
    ``min(probes, 20 sqrt(t))`` probes, 12 step sizes and 21 for the boundary
    search; per greedy step ``2 x 32 x min(D, 256)`` scores; per coordinate
    sweep 16 per coordinate (at most 256 coordinates).

    Args:
        start: optional (N, ...) perturbations believed adversarial (NaN rows:
            none); each is checked again before it is used.
        search: optional (N,) bool, False where a refinement of ``start``
            suffices (default: a search everywhere; always a search where
            ``start`` is missing or not adversarial, or the gradient is masked).
    """
    x = x.astype("float64")
    n = len(x)
    oracle = _Oracle(scorer, clip)
    known = np.full_like(x, np.nan) if start is None else x + np.asarray(start, dtype="float64")
    ok = np.all(np.isfinite(flat(known)), axis=1)
    if ok.any():
        ok[ok] = oracle.adv(known[ok], labels[ok])
    masked = masked_gradients(scorer, x, labels)
    full = np.ones(n, dtype=bool) if search is None else np.asarray(search, dtype=bool).copy()
    full |= masked | ~ok
    best = Tracker(x, norm)

    def keep(rows: np.ndarray, points: np.ndarray, adv: np.ndarray | bool = True) -> None:
        delta = np.zeros_like(x)
        delta[rows] = points - x[rows]
        hit = np.zeros(n, dtype=bool)
        hit[rows] = adv
        best.see(delta, hit)

    # candidates for every input: the known point (first, NaN where none), the batch's
    # other classes, random directions; each brought to the boundary
    preds = scorer.predict(x, batch_size=scorer.query_batch_size)
    given = np.where(column(ok, x.ndim), known, np.nan)
    points, dists = _starts(oracle, x, labels, preds, norm, rng, given)
    if start is not None:  # an own candidate close to the known point: search there too
        full |= np.min(dists[1:], axis=0) < CHECK * dists[0]
    light = np.flatnonzero(~full)
    if light.size:  # refinements: a short walk from the known point
        steps = max(1, budget // REFINE)
        b = points[0, light]
        keep(light, walk(oracle, x[light], labels[light], b, norm, steps, probes, rng, keys=light))
    rows = np.flatnonzero(full)
    if rows.size:  # searches: the closest starts, walked
        k = min(starts, len(points))
        order = np.argsort(dists[:, rows], axis=0, kind="stable")[:k]  # (k, m)
        good = np.isfinite(np.take_along_axis(dists[:, rows], order, axis=0)).reshape(-1)
        run = np.repeat(np.arange(k), len(rows))[good]
        sub = rows[np.tile(np.arange(len(rows)), k)[good]]
        first = points[order.reshape(-1)[good], sub]
        walked = walk(
            oracle, x[sub], labels[sub], first, norm, budget, probes, rng, keys=run * n + sub
        )
        for j in range(k):  # one start of each input at a time
            keep(sub[run == j], walked[run == j])
    deep = np.flatnonzero(masked)
    if deep.size:  # piecewise-constant scores: the greedy score search, then coordinate moves
        xs, ls = x[deep], labels[deep]
        point, done = greedy(oracle, xs, ls, norm, budget, rng, keys=deep)
        walked = best.found[deep]
        for origin, usable in ((point, done), (x[deep] + best.delta[deep], walked)):
            if usable.any():
                rows = deep[usable]
                moved = coordinate_search(
                    oracle, x[rows], labels[rows], origin[usable], norm, SWEEPS
                )
                keep(rows, moved)
    delta = best.delta
    return delta if clip is None else np.clip(x + delta, *clip) - x
