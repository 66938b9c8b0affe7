"""Certified radii against known answers: closed forms, exact minima, sampling inside the ball.

* Linear classifiers: every method equals ``margin / ||w_y - w_j||`` (L2) or
  ``/ ||w_y - w_j||_1`` (L-inf), minimised over ``j``, to 1e-4.
* Small ReLU networks (2 inputs): the exact minimal distance by enumerating
  activation regions (each a polytope; the distance a QP, L2, or an LP, L-inf)
  satisfies ``certified <= exact <= found`` on every input, and CROWN is within
  the factor stated in `CROWN_FACTOR` of it.
* Soundness: no point sampled in a certified ball, and no PGD run confined to
  it, changes the label (convolutions, pooling, residuals, BatchNorm, every
  activation).
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from keras import layers, ops
from scipy import optimize

import keras_lpc
from keras_lpc import backend
from keras_lpc.robustness import certified_at, certified_radius, minimal_perturbation

METHODS = ("lipschitz", "ibp", "crown")
#: CROWN certifies at least this fraction of the exact minimal distance on every input of
#: the small ReLU networks below, and this median. Measured (L2 / L-inf, 12 inputs each):
#: worst 0.207 / 0.202 (one input whose linear region is small: relaxed ReLUs lose most of
#: the margin), median 0.92 / 0.99; five inputs in 24 are exact.
CROWN_FACTOR = 0.19
CROWN_MEDIAN = 0.85


def _dense_model(kernels, biases, activation="relu"):
    model = keras.Sequential([keras.Input((kernels[0].shape[0],))])
    for i, w in enumerate(kernels):
        last = i == len(kernels) - 1
        model.add(layers.Dense(w.shape[1], activation=None if last else activation))
    model.set_weights([a.astype("float32") for pair in zip(kernels, biases) for a in pair])
    return model


def _closed_form(w, b, x, norm):
    f = x.astype("float64") @ w + b
    y = f.argmax(1)
    out = np.full(len(x), np.inf)
    for j in range(w.shape[1]):
        diff = w[:, [j]] - w[:, y]
        size = np.linalg.norm(diff, ord=2 if norm == "l2" else 1, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(y == j, out, np.minimum(out, (f[np.arange(len(x)), y] - f[:, j]) / size))
    return out


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(5, 4)), rng.normal(size=4)
    x = rng.normal(size=(16, 5))
    return _dense_model([w], [b]), w, b, x


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("method", METHODS)
def test_linear_model_is_exact(linear, method, norm):
    model, w, b, x = linear
    res = certified_radius(model, x, norm=norm, method=method)
    np.testing.assert_allclose(res.distance, _closed_form(w, b, x, norm), rtol=1e-4)
    size = np.linalg.norm(x, ord=2 if norm == "l2" else np.inf, axis=1)
    np.testing.assert_allclose(res.per_sample, res.distance / size, rtol=1e-6)
    assert res.score == pytest.approx(np.mean(res.per_sample))
    assert (res.method, res.norm) == (method, norm) and res.seconds > 0


def test_two_linear_layers_and_a_softmax_are_still_exact(linear):
    x = linear[3]
    rng = np.random.default_rng(4)
    w1, b1, w, b = (
        rng.normal(size=(5, 3)),
        rng.normal(size=3),
        rng.normal(size=(3, 4)),
        rng.normal(size=4),
    )
    model = keras.Sequential(
        [keras.Input((5,)), layers.Dense(3), layers.Dense(4, activation="softmax")]
    )
    model.set_weights([a.astype("float32") for a in (w1, b1, w, b)])
    want = _closed_form(w1 @ w, b1 @ w + b, x, "l2")
    for method in METHODS:
        np.testing.assert_allclose(
            certified_radius(model, x, method=method).distance, want, rtol=1e-4
        )


def test_misclassified_inputs_get_zero(linear):
    model, w, b, x = linear
    y = (x @ w + b).argmax(1)
    y[:5] = (y[:5] + 1) % 4
    res = certified_radius(model, x, y, method="ibp")
    assert np.all(res.distance[:5] == 0) and np.all(res.distance[5:] > 0)
    np.testing.assert_array_equal(res.labels, y)
    assert not certified_at(model, x, y, eps=0.0, method="crown")[:5].any()


def _regions(kernels, biases):
    """Every activation pattern's (G, h, A, c): region ``G x <= h``, scores ``A x + c``."""
    d = kernels[0].shape[0]
    sizes = [w.shape[1] for w in kernels[:-1]]
    for pattern in itertools.product((0.0, 1.0), repeat=sum(sizes)):
        m, v, rows, rhs, start = np.eye(d), np.zeros(d), [], [], 0
        for w, b, n in zip(kernels, biases, sizes):
            p, q = w.T @ m, w.T @ v + b
            s = np.array(pattern[start : start + n])
            start += n
            sign = np.where(s > 0, -1.0, 1.0)[:, None]  # active: p x + q >= 0
            rows.append(sign * p)
            rhs.append(-sign[:, 0] * q)
            m, v = s[:, None] * p, s * q
        yield (
            np.vstack(rows),
            np.concatenate(rhs),
            kernels[-1].T @ m,
            kernels[-1].T @ v + biases[-1],
        )


def _qp(g, h, x0):
    """``min ||x - x0||_2`` subject to ``g x <= h`` (inf if infeasible), by SLSQP."""
    res = optimize.minimize(
        lambda z: 0.5 * np.sum((z - x0) ** 2),
        x0,
        jac=lambda z: z - x0,
        constraints=[{"type": "ineq", "fun": lambda z: h - g @ z, "jac": lambda z: -g}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    if res.success and np.max(g @ res.x - h) <= 1e-9:
        return float(np.linalg.norm(res.x - x0))
    return np.inf


def _exact(kernels, biases, x0, label, norm):
    best = np.inf
    for g, h, a, c in _regions(kernels, biases):
        for j in range(a.shape[0]):
            if j == label:
                continue
            gg = np.vstack([g, -(a[j] - a[label])])
            hh = np.concatenate([h, [c[j] - c[label]]])
            if norm == "l2":
                best = min(best, _qp(gg, hh, x0))
            else:
                n = len(x0)
                cost = np.r_[np.zeros(n), 1.0]
                box = np.block([[np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
                a_ub = np.vstack([np.hstack([gg, np.zeros((len(gg), 1))]), box])
                b_ub = np.r_[hh, x0, -x0]
                res = optimize.linprog(cost, a_ub, b_ub, bounds=[(None, None)] * n + [(0, None)])
                if res.status == 0:
                    best = min(best, float(res.fun))
    return best


@pytest.fixture(scope="module")
def relu_nets():
    """Two small ReLU networks, inputs and their exact minimal distances (L2, L-inf)."""
    rng = np.random.default_rng(7)
    nets = []
    for sizes in ((2, 5, 3), (2, 3, 2, 3)):
        kernels = [rng.normal(size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
        biases = [rng.normal(size=b) * 0.5 for b in sizes[1:]]
        model = _dense_model(kernels, biases)
        x = rng.normal(size=(6, 2))
        # the float32 model's labels: kernels rounded as the model holds them
        k32 = [k.astype("float32").astype("float64") for k in kernels]
        b32 = [b.astype("float32").astype("float64") for b in biases]
        labels = np.argmax(ops.convert_to_numpy(model(x.astype("float32"))), axis=1)
        exact = {
            norm: np.array([_exact(k32, b32, x[i], labels[i], norm) for i in range(len(x))])
            for norm in ("l2", "linf")
        }
        nets.append((model, x, exact))
    return nets


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_certified_below_exact_below_found_on_small_relu_networks(relu_nets, norm):
    for model, x, exact in relu_nets:
        found = minimal_perturbation(model, x, norm=norm, budget=20, verbose=0).distance
        assert np.all(exact[norm] <= found * (1 + 1e-5))
        for method in METHODS:
            certified = certified_radius(model, x, norm=norm, method=method).distance
            assert np.all(certified <= exact[norm] * (1 + 1e-5)), method
            if method == "crown":
                ratio = certified / exact[norm]
                assert np.all(ratio >= CROWN_FACTOR) and np.median(ratio) >= CROWN_MEDIAN


def _pgd_stays(model, x, labels, radius, norm, steps=40):
    """Whether a PGD run on ``max_j f_j - f_y`` inside each ball keeps every label."""

    def cotangent(scores, y):
        own = ops.one_hot(y, scores.shape[1])
        other = ops.one_hot(ops.argmax(scores - 1e9 * own, axis=1), scores.shape[1])
        return (other - own)[None]

    def fn(t):
        return model(t, training=False)

    # one compiled gradient step (eager on JAX, each of 40 steps would trace the model again)
    grad = backend.jit(lambda t, y: backend.vjp(fn, t, cotangent, y)[1][0], model.variables)
    r = radius.reshape(-1, *([1] * (x.ndim - 1))) * (1 - 1e-4)
    delta = np.zeros_like(x)
    for _ in range(steps):
        g = ops.convert_to_numpy(grad((x + delta).astype("float32"), labels)).astype("float64")
        if norm == "l2":
            size = np.linalg.norm(g.reshape(len(g), -1), axis=1).reshape(r.shape)
            delta = delta + r / 4 * g / np.maximum(size, 1e-12)
            scale = np.linalg.norm(delta.reshape(len(g), -1), axis=1).reshape(r.shape)
            delta = delta * np.minimum(1.0, r / np.maximum(scale, 1e-12))
        else:
            delta = np.clip(delta + r / 4 * np.sign(g), -r, r)
    preds = np.argmax(ops.convert_to_numpy(model((x + delta).astype("float32"))), axis=-1)
    return preds == labels


def _sample_stays(model, x, labels, radius, norm, rng, count=64):
    """Whether ``count`` random points per ball (half on its surface) keep every label."""
    shape = (count, *x.shape)
    direction = rng.normal(size=shape)
    if norm == "l2":
        direction /= np.linalg.norm(direction.reshape(count, len(x), -1), axis=2).reshape(
            count, len(x), *([1] * (x.ndim - 1))
        )
        scale = np.where(np.arange(count) < count // 2, 1.0, rng.random(count))
    else:
        direction = np.sign(direction) * np.where(rng.random(shape) < 0.5, 1.0, rng.random(shape))
        scale = np.ones(count)
    r = radius.reshape(1, -1, *([1] * (x.ndim - 1))) * (1 - 1e-4)
    points = (x[None] + scale.reshape(-1, *([1] * x.ndim)) * r * direction).astype("float32")
    preds = np.argmax(ops.convert_to_numpy(model(points.reshape(-1, *x.shape[1:]))), axis=-1)
    return np.all(preds.reshape(count, len(x)) == labels[None], axis=0)


def _soundness_models(rng):
    img = keras.Input((6, 6, 2))
    h = layers.Conv2D(4, 3, padding="same", activation="silu")(img)
    h = layers.BatchNormalization()(h)
    h = layers.Add()([h, layers.Conv2D(4, 1, activation="tanh")(img)])
    h = layers.MaxPooling2D(2)(h)
    h = layers.Conv2D(5, 2, activation="gelu")(h)
    h = layers.AveragePooling2D(2, strides=1)(layers.LeakyReLU(0.2)(h))
    h = layers.Dense(6, activation="sigmoid")(layers.Flatten()(h))
    cnn = keras.Model(img, layers.Dense(3)(keras_lpc.LatentPointCollapse(dim=4)(h)))
    mlp = keras.Sequential(
        [
            keras.Input((5,)),
            layers.Dense(8, activation="gelu"),
            layers.Dense(8, activation="relu"),
            layers.Dense(4),
        ]
    )
    for model in (cnn, mlp):
        for v in model.variables:
            if "variance" in v.path or "gamma" in v.path:
                value = np.abs(rng.normal(size=v.shape)) + 0.5
            else:
                value = rng.normal(size=v.shape) * (0.1 if "bias" in v.path else 0.8)
            v.assign(value.astype("float32"))
    return [(cnn, rng.normal(size=(6, 6, 6, 2))), (mlp, rng.normal(size=(10, 5)))]


@pytest.fixture(scope="module")
def soundness_models():
    return _soundness_models(np.random.default_rng(11))


@pytest.mark.parametrize(
    "index,method,norm",
    [
        (0, "crown", "l2"),
        (1, "crown", "linf"),
        (0, "ibp", "l2"),
        (0, "lipschitz", "l2"),
        (0, "lipschitz", "linf"),
        (1, "ibp", "linf"),
        (1, "lipschitz", "linf"),
    ],
)
def test_no_label_changes_inside_a_certified_ball(soundness_models, index, method, norm, rng):
    model, x = soundness_models[index]
    x = x.astype("float32")
    res = certified_radius(model, x, norm=norm, method=method)
    assert np.all(res.distance > 0)
    labels = res.labels
    assert np.all(_sample_stays(model, x, labels, res.distance, norm, rng))
    assert np.all(_pgd_stays(model, x, labels, res.distance, norm))
    # one pass at a fixed radius: certifies the search's radius on most inputs (CROWN's
    # relaxations change with the radius, so its bound need not be monotone in eps),
    # never beyond the found distance
    assert np.mean(certified_at(model, x, eps=0.98 * res.distance, norm=norm, method=method)) >= 0.8
    # gradient attacks only: the boundary attack fails on an empty walk here (decision.py)
    attacks = ("deepfool", "fmn", "pgd") if norm == "l2" else ("fmn", "apgd-ce")
    found = minimal_perturbation(
        model, x, norm=norm, attacks=attacks, budget=10, verbose=0
    ).distance
    assert np.all(res.distance <= found)
    hit = np.isfinite(found)
    assert hit.any() and not np.any(
        certified_at(model, x[hit], eps=1.001 * found[hit], norm=norm, method=method)
    )


def test_mixed_precision_model_is_certified_in_float32(linear):
    _, w, b, x = linear
    keras.config.set_dtype_policy("mixed_float16")
    model = _dense_model([w], [b])
    res = certified_radius(model, x, method="crown")
    np.testing.assert_allclose(res.distance, _closed_form(w, b, x, "l2"), rtol=1e-4)


def test_bad_arguments_are_named(linear):
    model, _, _, x = linear
    with pytest.raises(ValueError, match="`norm` must be one of 'l2', 'linf'. Received: norm='l1'"):
        certified_radius(model, x, norm="l1")
    with pytest.raises(ValueError, match="`method` must be one of 'lipschitz', 'ibp', 'crown'"):
        certified_radius(model, x, method="deeppoly")
    with pytest.raises(ValueError, match="`rtol` must be a positive number. Received: rtol=0"):
        certified_radius(model, x, rtol=0)
    with pytest.raises(TypeError, match="`steps` must be an integer >= 1"):
        certified_radius(model, x, steps=2.5)
    with pytest.raises(ValueError, match=r"`max_memory` must be at least [\d,]+ bytes"):
        certified_radius(model, x, max_memory=1000)
    with pytest.raises(ValueError, match="`eps` must be a number >= 0"):
        certified_at(model, x, eps=-1.0)
    with pytest.raises(ValueError, match="`eps` must be a number >= 0 or one finite value"):
        certified_at(model, x, eps=np.ones(3))
    with pytest.raises(TypeError, match="`model` must be a Keras model"):
        certified_radius("model", x)


def test_batches_are_padded_to_a_power_of_two_within_the_memory_plan(linear):
    from keras_lpc.robustness.certify._setup import Setup

    model, _, _, x = linear

    def size(rows, batch_size=None):
        return Setup(model, x[:rows], None, "l2", "crown", batch_size, None).size

    # one input is one row (it was padded to 8: 8x the work and the memory plan)
    assert size(1) == 1
    assert size(5) == 8 and size(16) == 16
    # never past the plan's batch, even when that is not a power of two
    assert size(16, batch_size=3) == 3 and size(16, batch_size=4) == 4
