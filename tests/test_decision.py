"""The decision-based attack (`keras_lpc.robustness.decision`): its walk on the device."""

from __future__ import annotations

import _reference_attacks as reference  # the former host loops (tests/)
import numpy as np
import pytest
from _attack_models import linear
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness import Scorer, decision
from keras_lpc.robustness._core import bounds


@pytest.mark.parametrize("clip", [None, (-0.5, 0.5)])
def test_boundary_normal_estimate_on_the_device_matches_the_formula(rng, clip):
    # the walk's estimate v = mean_i (phi_i - mean phi) u_i, computed in the compiled loop
    # from directions drawn on the device, recomputed here from the same draws on the host
    w, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    model = linear(w, b)
    scorer = Scorer(model)
    best = rng.normal(size=(7, 5)).astype("float32")
    labels = rng.integers(0, 2, 7)
    radius = rng.uniform(0.2, 2.0, 7)
    seed = np.array([12345, 3])
    count = 30  # two passes of 20 probes, the last 10 weighted 0

    def estimate(seed):  # the walk's estimate alone, compiled as the walk compiles it
        def make(fn):
            def loop(best, labels, radius, count, seed, lo, hi):
                labels = ops.cast(labels, "int32")
                box = None if clip is None else (lo, hi)
                return (decision._normal_sum(fn, best, labels, radius, count, seed, box),)

            return loop

        (v,) = scorer.run(
            ("test-boundary-normal", clip is not None),
            make,
            [best, labels.astype("int32"), radius.astype("float32")],
            [np.asarray(count, "int32"), seed.astype("int32"), *bounds(clip, "float32")],
        )
        return v.astype("float64")

    v = estimate(seed)
    padded = backend.pad(best, backend.bucket(7))
    u = np.concatenate(
        [
            ops.convert_to_numpy(
                backend.normal(
                    ops.convert_to_tensor(padded),
                    20,
                    ops.convert_to_tensor(seed.astype("int32")),
                    i,
                )
            )
            for i in (0, 1)
        ]
    )[:count, :7].astype("float64")
    u /= np.linalg.norm(u, axis=2, keepdims=True)
    probes = best[None] + radius[None, :, None] * u
    if clip is not None:
        probes = np.clip(probes, *clip)
    pred = (probes.reshape(-1, 5) @ w + b).argmax(1).reshape(count, 7)
    phi = np.where(pred != labels[None], 1.0, -1.0)
    mean = phi.mean(axis=0)
    centred = np.where(np.abs(mean) == 1.0, phi, phi - mean)
    expected = np.einsum("km,kmd->md", centred, u) / count
    np.testing.assert_allclose(v, expected, rtol=1e-4, atol=1e-6)
    # a pure function of the seed: the same seed, the same estimate; another seed, another
    np.testing.assert_array_equal(v, estimate(seed))
    other = estimate(np.array([12345, 4]))
    assert not np.allclose(v, other)


@pytest.mark.parametrize(("norm", "tolerance"), [("l2", 1.01), ("linf", 1.01)])
def test_boundary_walk_on_the_device_reaches_the_closest_point(rng, norm, tolerance):
    # a linear two-class model: the closest other-class point lies |margin| / ||u||_dual
    # away (u = w_0 - w_1); the walk starts on the boundary far from it (along a random
    # direction) and must come within `tolerance` of it, every point still adversarial
    w, b = rng.normal(size=(8, 2)), rng.normal(size=2)
    model = linear(w, b)
    scorer = Scorer(model)
    x = rng.normal(size=(12, 8))
    labels = scorer.predict(x)
    u = w[:, 0] - w[:, 1]
    margin = x @ u + b[0] - b[1]
    exact = np.abs(margin) / np.linalg.norm(u, ord=2 if norm == "l2" else 1)
    r = rng.normal(size=x.shape)
    start = x + (-1.001 * margin / (r @ u))[:, None] * r  # just past the boundary along r
    assert (scorer.predict(start) != labels).all()
    size = reference.lp_norm(start - x, norm)
    assert (size > 1.5 * exact).all()  # far from the closest point
    oracle = decision._Oracle(scorer, None)
    walked = decision._walk(
        oracle, x, labels, start.copy(), norm, 40, 100, np.random.default_rng(0)
    )
    assert (scorer.predict(walked) != labels).all()
    ratio = reference.lp_norm(walked - x, norm) / exact
    assert ratio.min() >= 1 - 1e-4 and ratio.max() <= tolerance, ratio
    # queries counted per step: the probes, the step sizes and the boundary search
    counts = np.minimum(100, np.ceil(20 * np.sqrt(np.arange(1, 41))))
    assert oracle.queries == 12 * (counts.sum() + 40 * (12 + 3 * 7))


def test_the_attack_finds_the_linear_distance_from_labels_only(rng):
    # boundary_attack with its start and walk, queries in batches of query_batch_size
    w, b = rng.normal(size=(6, 3)), rng.normal(size=3)
    x = rng.normal(size=(10, 6))
    scorer = Scorer(linear(w, b), query_batch_size=64)
    labels = scorer.predict(x)
    f = x @ w + b
    gaps = f[np.arange(10), labels][:, None] - f
    norms = np.linalg.norm(w[:, labels].T[:, :, None] - w[None], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(gaps > 0, gaps / norms, np.inf).min(axis=1)
    r = decision.boundary_attack(
        scorer, x, labels, norm="l2", budget=20, clip=None, rng=np.random.default_rng(0)
    )
    assert (scorer.predict(x + r) != labels).all()
    ratio = np.linalg.norm(r, axis=1) / exact
    # verified, never inside the boundary; a walk may settle on a farther face (3 classes)
    assert ratio.min() >= 1 - 1e-4 and np.median(ratio) <= 1.02 and ratio.max() <= 1.5
