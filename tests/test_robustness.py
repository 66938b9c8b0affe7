"""DeepFool, Lipschitz proxy and FGSM/PGD against closed forms and a per-sample reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_lpc.backend import candidate_jacobian
from keras_lpc.robustness import deepfool, fgsm_accuracy, lipschitz, pgd_accuracy
from keras_lpc.robustness._scores import scores_function


def _linear(w, b, activation=None):
    model = keras.Sequential(
        [keras.Input((w.shape[0],)), keras.layers.Dense(w.shape[1], activation=activation)]
    )
    model.set_weights([w.astype("float32"), b.astype("float32")])
    return model


def _mlp(rng):
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
    )
    return model, rng.normal(size=(32, 6)).astype("float32")


def test_deepfool_linear_closed_form(rng):
    w, b = rng.normal(size=(5, 4)), rng.normal(size=4)
    x = rng.normal(size=(20, 5)).astype("float32")
    res = deepfool(_linear(w, b), x, overshoot=0.02)
    f = x.astype("float64") @ w + b
    k0 = f.argmax(1)
    dist = np.full(len(x), np.inf)
    for j in range(4):
        norm = np.linalg.norm(w[:, j][None] - w[:, k0].T, axis=1)
        gap = np.abs(f[:, j] - f[np.arange(len(x)), k0])
        d = np.divide(gap, norm, out=np.full(len(x), np.inf), where=norm > 0)
        dist = np.minimum(dist, d)
    expected = 1.02 * (dist + 1e-4) / np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(res.per_sample, expected, rtol=1e-5)
    assert res.fooled.all() and (res.iterations == 1).all()
    assert res.score == pytest.approx(expected.mean(), rel=1e-5)


def _reference_deepfool(model, x, overshoot=0.02, max_iter=50, candidates=10):
    """One input at a time, straight from the algorithm's description."""
    fn = scores_function(model)
    out = []
    for xi in x:
        f0 = np.asarray(keras.ops.convert_to_numpy(fn(xi[None])))[0]
        order = np.argsort(-f0, kind="stable")[:candidates]
        r_tot = np.zeros_like(xi, dtype="float64")
        for _ in range(max_iter):
            xa = (xi + (1 + overshoot) * r_tot).astype("float32")[None]
            s, jac = candidate_jacobian(fn, xa, order[None])
            if s[0].argmax() != order[0]:
                break
            best, w_best = np.inf, None
            for k in range(1, len(order)):
                w_k = jac[0, k].astype("float64") - jac[0, 0]
                d = abs(s[0, order[k]] - s[0, order[0]]) / np.linalg.norm(w_k)
                if d < best:
                    best, w_best = d, w_k
            r_tot = r_tot + (best + 1e-4) * w_best / np.linalg.norm(w_best)
        out.append((1 + overshoot) * r_tot)
    return np.array(out)


def test_deepfool_batched_matches_per_sample_reference(rng):
    model, x = _mlp(rng)
    res = deepfool(model, x, batch_size=13)
    ref = _reference_deepfool(model, x)
    np.testing.assert_allclose(res.perturbation, ref, rtol=1e-4, atol=1e-6)
    # A ReLU kink can make one input cycle for 50 steps; given more, all flip.
    assert res.fooled.mean() >= 0.95
    assert deepfool(model, x, max_iter=200).fooled.mean() >= 0.99


def test_deepfool_score_correct_and_clip(rng):
    model, x = _mlp(rng)
    pred = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    y = pred.copy()
    y[:8] = (pred[:8] + 1) % 4
    res = deepfool(model, x, y=y)
    assert res.score_correct == pytest.approx(res.per_sample[8:].mean(), rel=1e-6)
    clipped = deepfool(model, x, clip=(-0.5, 0.5))
    assert np.all(x + clipped.perturbation <= 0.5 + 1e-6)


def test_lipschitz_linear_is_weight_difference(rng):
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.integers(0, 3, size=16)
    res = lipschitz(_linear(w, b), x, y)
    f = x @ w + b
    f[np.arange(16), y] = -np.inf
    rival = f.argmax(1)
    expected = np.linalg.norm(w[:, y] - w[:, rival], axis=0)
    np.testing.assert_allclose(res.per_sample, expected, rtol=1e-5)
    assert res.max == pytest.approx(expected.max(), rel=1e-5)
    assert res.mean == pytest.approx(expected.mean(), rel=1e-5)


def test_fgsm_pgd_binary_linear_closed_form(rng):
    w, b = rng.normal(size=(4, 2)), np.zeros(2)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ w).argmax(1)
    model = _linear(w, b)
    margin = np.abs((x @ w) @ np.array([1.0, -1.0]))
    diff = w[:, 0] - w[:, 1]
    eps = [0.0, 0.1, 0.3, 0.6, 1.0]
    linf = np.array([np.mean(margin > e * np.abs(diff).sum()) for e in eps])
    l2 = np.array([np.mean(margin > e * np.linalg.norm(diff)) for e in eps])
    np.testing.assert_allclose(fgsm_accuracy(model, x, y, eps), linf)
    np.testing.assert_allclose(pgd_accuracy(model, x, y, eps, steps=5), linf)
    np.testing.assert_allclose(pgd_accuracy(model, x, y, eps, steps=5, norm="l2"), l2)
    assert np.all(np.diff(linf) <= 0) and linf[-1] < linf[0]


def test_pgd_mlp_monotone(rng):
    model, x = _mlp(rng)
    y = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    acc = pgd_accuracy(model, x, y, [0.0, 0.05, 0.2, 1.0], steps=10)
    assert acc[0] == 1.0
    assert np.all(np.diff(acc) <= 0) and acc[-1] < 0.5


def test_softmax_output_uses_logits(rng):
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(8, 5)).astype("float32")
    plain = deepfool(_linear(w, b), x)
    soft = deepfool(_linear(w, b, activation="softmax"), x)
    np.testing.assert_allclose(soft.per_sample, plain.per_sample, rtol=1e-5)
    layered = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3), keras.layers.Softmax()])
    layered.set_weights([w.astype("float32"), b.astype("float32")])
    lp = lipschitz(layered, x)
    assert lp.mean == pytest.approx(lipschitz(_linear(w, b), x).mean, rel=1e-5)


def test_probability_outputs_are_refused(rng):
    inp = keras.Input((5,))
    out = keras.layers.Lambda(lambda t: keras.ops.softmax(t))(keras.layers.Dense(3)(inp))
    model = keras.Model(inp, out)
    with pytest.raises(ValueError, match="look like probabilities.*from_logits=True"):
        deepfool(model, rng.normal(size=(4, 5)).astype("float32"))


def test_bad_inputs(rng):
    model, x = _mlp(rng)
    with pytest.raises(
        ValueError, match=r"`x` must have shape \(N, 6\).*Received: x with shape \(4, 3\)"
    ):
        deepfool(model, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="`x` must be a non-empty batch.*Received: x with shape"):
        deepfool(model, np.zeros((0, 6)))
    with pytest.raises(
        ValueError, match="`max_iter` must be an integer >= 1. Received: max_iter=0"
    ):
        deepfool(model, x, max_iter=0)
    with pytest.raises(
        ValueError, match="`overshoot` must be a number >= 0. Received: overshoot=-0.1"
    ):
        deepfool(model, x, overshoot=-0.1)
    with pytest.raises(
        ValueError, match="`candidates` must be an integer >= 2. Received: candidates=1"
    ):
        deepfool(model, x, candidates=1)
    with pytest.raises(ValueError, match="at least 2 class scores.*with 1 output"):
        deepfool(_linear(np.ones((6, 1)), np.zeros(1)), x)
    with pytest.raises(ValueError, match="`eps` must be a number >= 0. Received: eps=-1"):
        fgsm_accuracy(model, x, np.zeros(32, int), -1.0)
    with pytest.raises(ValueError, match="`norm` must be one of 'linf', 'l2'. Received: norm='l1'"):
        pgd_accuracy(model, x, np.zeros(32, int), 0.1, norm="l1")
    with pytest.raises(ValueError, match=r"`y` must hold labels in \[0, 4\)"):
        lipschitz(model, x, np.full(32, 7))


def test_robustness_metrics_callback_logs(rng):
    import keras_lpc

    w = np.array([[1.0, -1.0], [0.0, 0.0]])
    x = rng.normal(size=(16, 2)).astype("float32") + np.array([2.0, 0.0], "float32")
    y = np.zeros(16, int)
    model = _linear(w, np.zeros(2))
    model.trainable = False  # frozen weights: the logged values are known in closed form
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.RobustnessMetrics((x, y), every=2, pgd_eps=[0.0, 10.0])
    hist = model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    logs = hist.history
    # computed on the first and the last epoch; frozen weights: the same value twice
    assert logs["val_deepfool"][0] == pytest.approx(logs["val_deepfool"][1])
    res = deepfool(model, x, y=y)
    assert cb.last["deepfool"] == pytest.approx(res.score, rel=1e-5)
    assert cb.last["deepfool_correct"] == pytest.approx(res.score_correct, rel=1e-5)
    assert cb.last["lipschitz_max"] == pytest.approx(2.0, rel=1e-5)
    assert cb.last["lipschitz_mean"] == pytest.approx(2.0, rel=1e-5)
    assert cb.last["pgd_accuracy_0"] == pytest.approx(np.mean(x[:, 0] > 0))
    assert cb.last["pgd_accuracy_10"] == 0.0
    assert logs["val_lipschitz_max"][-1] == pytest.approx(2.0, rel=1e-5)


def _keras_computes_float64() -> bool:
    return keras.backend.result_type("float64", "float64") == "float64"


def test_cast_model_float64_keeps_weights_and_runs_deepfool_in_float64(rng):
    """The float64 copy predicts like the model; DeepFool on it is exact to float64 rounding."""
    if not _keras_computes_float64():
        pytest.skip("float64 runs on the TensorFlow backend only (see the next test)")
    from keras_lpc import LatentPointCollapse
    from keras_lpc.robustness import cast_model

    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="tanh"),
            LatentPointCollapse(dim=3, gamma=2.5),
            keras.layers.Dense(4),
        ]
    )
    x = rng.normal(size=(12, 5)).astype("float32")
    copy = cast_model(model)
    # gamma stays a float32 variable by design (the penalty is accumulated in float32)
    assert all(str(w.dtype) == "float64" for w in copy.weights if "gamma" not in w.path)
    assert all(str(w.dtype) == "float32" for w in model.weights)  # original untouched
    assert float(keras.ops.convert_to_numpy(copy.layers[1].gamma)) == 2.5
    np.testing.assert_allclose(
        copy.predict(x.astype("float64"), verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    # a linear model: DeepFool's closed form in float64 agrees to ~1e-12, float32 only to ~1e-7
    w, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    linear = cast_model(_linear(w, b))
    w64, b64 = linear.get_weights()
    res = deepfool(linear, x, overshoot=0.0)
    x64 = x.astype("float64")
    f = x64 @ w64 + b64
    wd = w64[:, 0] - w64[:, 1]
    expected = (np.abs(f[:, 0] - f[:, 1]) / np.linalg.norm(wd) + 1e-4) / np.linalg.norm(x64, axis=1)
    assert res.perturbation.dtype == np.float64
    np.testing.assert_allclose(res.per_sample, expected, rtol=1e-12)
    # the float32 original agrees only to float32 rounding
    float32_error = np.abs(deepfool(_linear(w64, b64), x, overshoot=0.0).per_sample / expected - 1)
    assert float32_error.max() > 1e-12
    assert pgd_accuracy(linear, x, f.argmax(1), 0.0) == 1.0


def test_cast_model_refuses_float64_where_keras_computes_float32():
    from keras_lpc.robustness import cast_model

    model = _linear(np.ones((2, 2)), np.zeros(2))
    assert str(cast_model(model, "float32").weights[0].dtype) == "float32"
    if _keras_computes_float64():
        pytest.skip("TensorFlow computes float64")
    with pytest.raises(ValueError, match="float64 needs the TensorFlow backend") as info:
        cast_model(model)
    assert f"on the {keras.backend.backend()} backend" in str(info.value)
