"""The gradient-free attack (`keras_lpc.robustness.decision`): its directions, walk, greedy and
coordinate searches, on models whose closest adversarial point is known exactly."""

from __future__ import annotations

import _reference_attacks as reference  # the former host loops (tests/)
import keras
import numpy as np
import pytest
from _attack_models import linear, quantised
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness import Scorer, _boundary, _counter, decision
from keras_lpc.robustness._core import bounds

# _boundary.directions(12345, keys=[0, 7], step=3, first=5, count=2, like (2, 3)), recorded
# on JAX; TensorFlow and PyTorch gave the same numbers to 6e-8
RECORDED = np.array(
    [
        [[-0.90403235, -0.25703394, 0.34155384], [0.59742767, 0.66792911, 0.44379157]],
        [[-0.21195997, 0.11348192, -0.97066724], [0.21648294, -0.63252294, -0.74367326]],
    ]
)


def _directions(seed, keys, step, first, count, like):
    f = backend.jit(lambda s, k, z: _boundary.directions(s, k, step, first, count, z))
    seed, keys = np.asarray(seed, "int32"), np.asarray(keys, "int32")
    return ops.convert_to_numpy(f(seed, keys, np.zeros(like, "float32"))).astype("float64")


def test_directions_are_the_same_on_every_backend():
    # the counter-based generator: the recorded numbers on every backend, and its definition
    got = _directions(12345, [0, 7], 3, 5, 2, (2, 3))
    np.testing.assert_allclose(got, RECORDED, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got, reference.directions(12345, [0, 7], 3, 5, 2, 3), atol=1e-6)
    # the hash is lowbias32 on 32-bit integers, wrapped alike everywhere
    h = np.array([0, 1, 12345, -1, 2**31 - 1, -(2**31)], "int32")
    mixed = ops.convert_to_numpy(_counter.mix(ops.convert_to_tensor(h))).view("uint32")
    np.testing.assert_array_equal(mixed, reference._mix(h.view("uint32")))
    # a row's directions depend on its key, not on the batch around it
    alone = _directions(12345, [7], 3, 5, 2, (1, 3))
    np.testing.assert_allclose(alone[:, 0], got[:, 1], atol=1e-6)
    # unit vectors, uniform on the sphere: mean 0, covariance I / D
    many = _directions(1, np.arange(400), 1, 0, 20, (400, 4)).reshape(-1, 4)
    np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1.0, rtol=1e-5)
    assert np.abs(many.mean(axis=0)).max() < 0.03
    np.testing.assert_allclose(np.cov(many.T), np.eye(4) / 4, atol=0.015)


@pytest.mark.parametrize("clip", [None, (-0.5, 0.5)])
def test_boundary_normal_estimate_matches_the_formula(rng, clip):
    # the walk's estimate v = mean_i (phi_i - mean phi) u_i, computed in the compiled loop,
    # recomputed here on the host from the directions' definition
    w, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    scorer = Scorer(linear(w, b))
    best = rng.normal(size=(7, 5)).astype("float32")
    labels = rng.integers(0, 2, 7)
    radius = rng.uniform(0.2, 2.0, 7)
    keys = np.arange(7) * 3 + 1
    count, step = 30, 4  # two passes of 20 probes, the last 10 weighted 0

    def estimate(seed):
        def make(fn):
            def loop(best, labels, keys, radius, count, seed, lo, hi):
                box = None if clip is None else (lo, hi)
                labels, keys = ops.cast(labels, "int32"), ops.cast(keys, "int32")
                return (
                    _boundary.normal_sum(fn, best, labels, keys, radius, count, seed, step, box),
                )

            return loop

        (v,) = scorer.run(
            ("test-boundary-normal", clip is not None),
            make,
            [best, labels.astype("int32"), keys.astype("int32"), radius.astype("float32")],
            [np.asarray(count, "int32"), np.asarray(seed, "int32"), *bounds(clip, "float32")],
        )
        return v.astype("float64")

    v = estimate(12345)
    u = reference.directions(12345, keys, step, 0, count, 5)  # (count, 7, 5)
    probes = best[None] + radius[None, :, None] * u
    if clip is not None:
        probes = np.clip(probes, *clip)
    pred = (probes.reshape(-1, 5) @ w + b).argmax(1).reshape(count, 7)
    phi = np.where(pred != labels[None], 1.0, -1.0)
    mean = phi.mean(axis=0)
    centred = np.where(np.abs(mean) == 1.0, phi, phi - mean)
    expected = np.einsum("km,kmd->md", centred, u) / count
    np.testing.assert_allclose(v, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(v, estimate(12345))  # a pure function of the seed
    assert not np.allclose(v, estimate(12346))


@pytest.mark.parametrize(("norm", "tolerance"), [("l2", 1.01), ("linf", 1.01)])
def test_walk_reaches_the_closest_point(rng, norm, tolerance):
    # a linear two-class model: the closest other-class point lies |margin| / ||u||_dual
    # away (u = w_0 - w_1); the walk starts on the boundary far from it (along a random
    # direction) and must come within `tolerance` of it, every point still adversarial
    w, b = rng.normal(size=(8, 2)), rng.normal(size=2)
    scorer = Scorer(linear(w, b))
    x = rng.normal(size=(12, 8))
    labels = scorer.predict(x)
    u = w[:, 0] - w[:, 1]
    margin = x @ u + b[0] - b[1]
    exact = np.abs(margin) / np.linalg.norm(u, ord=2 if norm == "l2" else 1)
    r = rng.normal(size=x.shape)
    start = x + (-1.001 * margin / (r @ u))[:, None] * r  # just past the boundary along r
    assert (scorer.predict(start) != labels).all()
    assert (reference.lp_norm(start - x, norm) > 1.5 * exact).all()  # far from the closest point
    oracle = decision._Oracle(scorer, None)
    walked = decision.walk(oracle, x, labels, start.copy(), norm, 40, 100, np.random.default_rng(0))
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
    # a refinement (search=False) walks a few steps from the start it is given
    far = 1.3 * r
    refined = decision.boundary_attack(
        scorer, x, labels, norm="l2", budget=20, clip=None, rng=np.random.default_rng(0),
        start=far, search=np.zeros(10, bool),
    )  # fmt: skip
    assert (scorer.predict(x + refined) != labels).all()
    size = np.linalg.norm(refined, axis=1)
    assert (size <= 1.3 * np.linalg.norm(r, axis=1) + 1e-6).all() and (size >= exact - 1e-4).all()
    assert np.median(size / exact) <= 1.05


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_a_quantised_model_is_searched_coordinate_by_coordinate(rng, norm):
    # zero gradients everywhere: the greedy score search and the coordinate search find
    # the closest box of another class
    model, x, labels, exact = quantised(rng)
    scorer = Scorer(model)
    assert decision.masked_gradients(scorer, x, labels).all()
    np.testing.assert_array_equal(scorer.predict(x), labels)
    r = decision.boundary_attack(
        scorer, x, labels, norm=norm, budget=10, clip=(0.0, 1.0), rng=np.random.default_rng(0)
    )
    assert (scorer.predict(np.clip(x + r, 0, 1)) != labels).all()
    ratio = reference.lp_norm(r, norm) / exact[norm]
    assert ratio.min() >= 1 - 1e-4, ratio  # never inside a box of the same class
    assert np.median(ratio) <= 1.02 and ratio.max() <= 1.3, np.sort(ratio)


def test_coordinate_search_reaches_the_corner_of_a_box(rng):
    # one class inside the box [0.3, 0.6]^3 (1 inside, 0 outside): from a point inside, the
    # closest point of the box to x (x outside) is clip(x, 0.3, 0.6)
    class Box(keras.layers.Layer):
        def call(self, x):
            inside = ops.all((x >= 0.3) & (x <= 0.6), axis=1, keepdims=True)
            f = ops.cast(inside, x.dtype)
            return ops.concatenate([1.0 - f, f], axis=1)

    model = keras.Sequential([keras.Input((3,)), Box()])
    scorer = Scorer(model, outputs="logits")
    x = rng.uniform(-0.5, 1.5, size=(10, 3))
    x = x[scorer.predict(x) == 0]
    labels = np.zeros(len(x), "int64")
    start = np.full_like(x, 0.45)  # the box's centre, adversarial
    oracle = decision._Oracle(scorer, None)
    moved = decision.coordinate_search(oracle, x, labels, start, "l2", 2)
    assert (scorer.predict(moved) != labels).all()
    np.testing.assert_allclose(moved, np.clip(x, 0.3, 0.6), atol=2e-3)
