"""DeepFool, Lipschitz proxy and FGSM/PGD against closed forms and a per-sample reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_lpc import backend
from keras_lpc.robustness import deepfool, fgsm_accuracy, lipschitz, pgd_accuracy
from keras_lpc.robustness._scores import score_function


def _rows(scores, aux):
    onehot = keras.ops.one_hot(aux, keras.ops.shape(scores)[1], dtype=scores.dtype)
    return keras.ops.transpose(onehot, (1, 0, 2))


def candidate_jacobian(fn, x, classes):
    """Scores (N, C) and Jacobian rows (N, K, ...) of ``fn`` for ``classes`` (N, K)."""
    if fn not in _JIT:  # compiled once per score function
        _JIT[fn] = backend.jit(lambda x, c: backend.vjp(fn, x, _rows, c))
    n, size = len(x), backend.bucket(len(x))
    scores, grads = _JIT[fn](backend.pad(x, size), backend.pad(np.asarray(classes, "int32"), size))
    return (
        np.asarray(keras.ops.convert_to_numpy(scores))[:n],
        np.moveaxis(np.asarray(keras.ops.convert_to_numpy(grads)), 0, 1)[:n],
    )


_JIT = {}


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
    fn = score_function(model)
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


def _numpy_loop_deepfool(model, x, overshoot=0.02, max_iter=50, candidates=10, clip=None):
    """The previous implementation: batched, active set gathered on the host, float64 NumPy."""
    fn = score_function(model)
    x = np.asarray(x, "float32")
    scores = np.asarray(keras.ops.convert_to_numpy(fn(x)), "float64")
    k = min(candidates, scores.shape[1])
    classes = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype("int32")
    label = classes[:, 0]
    r_tot = np.zeros(x.shape)
    fooled = np.zeros(len(x), bool)
    active = np.arange(len(x))
    for step in range(max_iter + 1):
        if active.size == 0:
            break
        xa = x[active] + (1 + overshoot) * r_tot[active]
        xa = (np.clip(xa, *clip) if clip else xa).astype("float32")
        s, jac = candidate_jacobian(fn, xa, classes[active])
        s, jac = s.astype("float64"), jac.astype("float64")
        still = s.argmax(1) == label[active]
        fooled[active[~still]] = True
        if step == max_iter:
            break
        active, s, jac = active[still], s[still], jac[still]
        if active.size == 0:
            break
        rows = np.arange(active.size)
        w = (jac[:, 1:] - jac[:, :1]).reshape(active.size, k - 1, -1)
        f = np.take_along_axis(s, classes[active, 1:], 1) - s[rows, label[active], None]
        norm = np.linalg.norm(w, axis=2)
        dist = np.where(norm > 0, np.abs(f) / np.where(norm > 0, norm, 1), np.inf)
        best = dist.argmin(1)
        d, nb = dist[rows, best], norm[rows, best]
        r_i = np.where(np.isfinite(d), (d + 1e-4) / nb, 0.0)[:, None] * w[rows, best]
        r_tot[active] += r_i.reshape((active.size, *x.shape[1:]))
    r = (1 + overshoot) * r_tot
    return (np.clip(x + r, *clip) - x if clip else r), fooled


def test_compiled_deepfool_equals_the_numpy_loop(rng):
    model, x = _mlp(rng)
    for kwargs in ({}, {"clip": (-0.5, 0.5)}, {"candidates": 3, "max_iter": 3}):
        ref, ref_fooled = _numpy_loop_deepfool(model, x, **kwargs)
        res = deepfool(model, x, batch_size=16, **kwargs)
        np.testing.assert_allclose(res.perturbation, ref, rtol=1e-5, atol=1e-6)
        assert res.fooled.tolist() == ref_fooled.tolist()


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
    assert res.score_correct == pytest.approx(res.per_sample[8:][res.fooled[8:]].mean(), rel=1e-6)
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


def test_softmax_found_in_the_graph_or_stated(rng):
    """A graph softmax is skipped silently; values alone only warn; `outputs=` says what it is."""
    import warnings

    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(8, 5)).astype("float32")
    plain = deepfool(_linear(w, b), x)
    inp = keras.Input((5,))
    dense = keras.layers.Dense(3)
    graph = keras.Model(inp, keras.ops.softmax(dense(inp)))  # keras.ops.softmax as the last op
    dense.set_weights([w.astype("float32"), b.astype("float32")])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        found = deepfool(graph, x)
    np.testing.assert_allclose(found.per_sample, plain.per_sample, rtol=1e-5)
    opaque = keras.Model(inp, keras.layers.Lambda(lambda t: keras.ops.softmax(t))(dense(inp)))
    with pytest.warns(UserWarning, match="look like probabilities.*outputs='probabilities'"):
        deepfool(opaque, x)
    # log p has the logits' class differences and gradients: the same DeepFool
    stated = deepfool(opaque, x, outputs="probabilities")
    np.testing.assert_allclose(stated.per_sample, plain.per_sample, rtol=1e-4)
    lip = lipschitz(opaque, x, outputs="probabilities")
    np.testing.assert_allclose(lip.per_sample, lipschitz(_linear(w, b), x).per_sample, rtol=1e-4)


def test_logits_that_look_like_probabilities_are_measured(rng):
    """Logits rows such as [1, 0, 0] are no longer refused: a warning, or none with outputs=."""
    import warnings

    # f = (x_0, 1 - x_0, 0) on inputs x_0 in {0, 1}: every row is one-hot
    model = _linear(np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]), np.array([0.0, 1.0, 0.0]))
    x = np.array([[1.0, 2.0], [0.0, 2.0]], "float32")
    with pytest.warns(UserWarning, match="look like probabilities"):
        auto = deepfool(model, x, overshoot=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        said = deepfool(model, x, overshoot=0.0, outputs="logits")
    # f_0 - f_1 = 2 x_0 - 1: the boundary x_0 = 1/2 lies 1/2 away from both inputs
    expected = (0.5 + 1e-4) / np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(said.per_sample, expected, rtol=1e-5)
    np.testing.assert_allclose(auto.per_sample, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="`outputs` must be one of 'auto', 'logits'"):
        deepfool(model, x, outputs="softmax")


def _relu_gate():
    # h = relu(x_0); f = (h, 0.5): x_0 = 3 flips at x_0 = 0.5, x_0 = -3 has zero gradients
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(1, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    model.set_weights(
        [np.array([[1.0], [0.0]]), np.zeros(1), np.array([[1.0, 0.0]]), np.array([0.0, 0.5])]
    )
    return model


def test_deepfool_reports_unflipped_inputs_separately():
    model = _relu_gate()
    x = np.array([[3.0, 4.0], [-3.0, 4.0]], "float32")
    with pytest.warns(UserWarning, match="1 of 2 inputs did not flip within max_iter=50"):
        res = deepfool(model, x, y=[0, 1])
    flipped = 1.02 * (2.5 + 1e-4) / 5.0
    np.testing.assert_allclose(res.per_sample, [flipped, np.inf], rtol=1e-5)
    assert res.fooled.tolist() == [True, False]
    assert res.unflipped == 1 and res.flipped_fraction == 0.5
    assert res.score == pytest.approx(flipped, rel=1e-5)
    assert res.score_correct == pytest.approx(flipped, rel=1e-5)
    assert res.iterations.tolist() == [1, 50]  # steps taken, zero-gradient ones included
    np.testing.assert_allclose(res.perturbation[1], [0.0, 0.0])
    with pytest.warns(UserWarning):
        only_unflipped = deepfool(model, x[1:], y=[1])
    assert np.isnan(only_unflipped.score) and np.isnan(only_unflipped.score_correct)
    assert only_unflipped.unflipped == 1 and only_unflipped.flipped_fraction == 0.0


def test_compiled_attacks_follow_new_weights_and_batch_sizes(rng):
    """Compiled functions are cached per model but read the current weights at every call."""
    x = rng.normal(size=(19, 5)).astype("float32")
    model = _linear(rng.normal(size=(5, 4)), rng.normal(size=4))
    deepfool(model, x, batch_size=7)
    lipschitz(model, x)
    for _ in range(2):
        w, b = rng.normal(size=(5, 4)), rng.normal(size=4)
        model.set_weights([w.astype("float32"), b.astype("float32")])
        res = deepfool(model, x, overshoot=0.0, batch_size=7)
        f = x.astype("float64") @ w + b
        k0 = f.argmax(1)
        gap = f - f[np.arange(len(x)), k0][:, None]
        norm = np.linalg.norm(w.T[None, :, :] - w.T[k0][:, None, :], axis=2)  # (N, C)
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(norm > 0, np.abs(gap) / norm, np.inf).min(axis=1)
        np.testing.assert_allclose(
            res.per_sample, (dist + 1e-4) / np.linalg.norm(x, axis=1), rtol=1e-5
        )
        y = rng.integers(0, 4, size=len(x))
        f[np.arange(len(x)), y] = -np.inf
        margin = np.linalg.norm(w[:, y] - w[:, f.argmax(1)], axis=0)
        np.testing.assert_allclose(lipschitz(model, x, y).per_sample, margin, rtol=1e-5)


def test_y_positional_or_keyword_and_eps_return_types(rng):
    model, x = _mlp(rng)
    y = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    assert deepfool(model, x, y).score_correct == deepfool(model, x, y=y).score_correct
    assert lipschitz(model, x, y).mean == lipschitz(model, x=x, y=y).mean
    for attack in (fgsm_accuracy, pgd_accuracy):
        one = attack(model, x, y, 0.1)
        assert type(one) is float
        assert type(attack(model, x, y, np.float32(0.1))) is float
        assert attack(model, x, y=y, eps=0.1) == one == attack(model, x, None, 0.1)
        listed = attack(model, x, y, [0.1])
        assert isinstance(listed, np.ndarray) and listed.shape == (1,) and listed[0] == one
        both = attack(model, x, y, (0.0, 0.1))
        assert both.dtype == np.float64 and both.tolist() == [1.0, one]


def test_model_outputs_in_a_list_or_dict(rng):
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(8, 5)).astype("float32")
    inp = keras.Input((5,))
    dense = keras.layers.Dense(3)
    out = dense(inp)
    # a dict's first output is the first key in sorted order (Keras' flattening order)
    as_dict = keras.Model(inp, {"z_other": keras.layers.Dense(2)(inp), "logits": out})
    dense.set_weights([w.astype("float32"), b.astype("float32")])
    expected = lipschitz(_linear(w, b), x).per_sample
    np.testing.assert_allclose(lipschitz(as_dict, x).per_sample, expected, rtol=1e-5)
    as_list = keras.Model(inp, [out, out])
    np.testing.assert_allclose(lipschitz(as_list, x).per_sample, expected, rtol=1e-5)


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
    # gamma and the in-graph annealing state stay float32 variables by design (the
    # penalty is accumulated in float32)
    state = ("gamma", "annealing_")
    assert all(
        str(w.dtype) == "float64" for w in copy.weights if not any(k in w.path for k in state)
    )
    assert all(str(w.dtype) == "float32" for w in copy.weights if any(k in w.path for k in state))
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


def test_zero_cotangents_give_zero_products_and_deepfool_stops_its_backward_passes(monkeypatch):
    # f_0 - f_1 = 2 x_0: one DeepFool step flips (3, 4); the second step sees every input
    # flipped, its cotangents are zero, and an eager backend runs no backward pass for it
    model = _linear(np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2))
    fn = score_function(model)
    x = keras.ops.convert_to_tensor(np.array([[3.0, 4.0], [-1.0, 2.0]], "float32"))
    zero = lambda s, aux: keras.ops.zeros((2, *keras.ops.shape(s)))  # noqa: E731
    scores, grads = backend.vjp(fn, x, zero, None)
    assert keras.ops.convert_to_numpy(grads).shape == (2, 2, 2)
    assert not np.any(keras.ops.convert_to_numpy(grads))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores), [[3, -3], [-1, 1]])
    if keras.backend.backend() == "torch":
        import torch

        calls = []
        grad = torch.autograd.grad
        monkeypatch.setattr(
            torch.autograd, "grad", lambda *a, **k: calls.append(1) or grad(*a, **k)
        )
    res = deepfool(model, np.array([[3.0, 4.0]], "float32"), overshoot=0.0)
    np.testing.assert_allclose(res.perturbation, [[-3.0001, 0.0]], rtol=1e-6)
    assert res.iterations.tolist() == [1] and res.fooled.tolist() == [True]
    if keras.backend.backend() == "torch":
        assert len(calls) == 1, calls
