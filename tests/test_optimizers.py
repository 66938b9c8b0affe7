"""Per-layer learning-rate multipliers: exact one-step effects, serialization, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc.optimizers import (
    LRMultiplierOptimizer,
    lpc_multipliers,
    path_matches,
    with_lr_multipliers,
)


def _var(values, name):
    return keras.Variable(np.asarray(values, dtype="float32"), name=name)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _lpc_model(name="net"):
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, activation="tanh", name="backbone"),
            keras_lpc.LatentPointCollapse(dim=2, name="lpc"),
            keras.layers.Dense(3, name="head"),
        ],
        name=name,
    )


def test_path_matches_components_and_globs():
    assert path_matches("dense_1", "sequential/dense_1/kernel")
    assert path_matches("dense_1/kernel", "dense_1/kernel")
    assert not path_matches("dense_1", "dense_10/kernel")
    assert not path_matches("kern", "dense_1/kernel")
    assert path_matches("dense_2/*", "sequential/dense_2/bias")
    assert path_matches("*/bias", "a/b/bias")
    assert not path_matches("dense_2/*", "dense_3/kernel")


def test_sgd_step_is_k_times_the_plain_step():
    a, b = _var([1.0, -2.0, 3.0], "a"), _var([1.0, -2.0, 3.0], "b")
    opt = with_lr_multipliers(keras.optimizers.SGD(0.1), [(a, 4.0)])
    g = np.array([0.5, 1.0, -2.0], dtype="float32")
    opt.apply([keras.ops.convert_to_tensor(g)] * 2, [a, b])
    start = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(_np(b) - start, -0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(_np(a) - start, -4.0 * 0.1 * g, rtol=1e-6)


def test_sgd_momentum_equals_sgd_with_k_times_lr():
    # Two steps with momentum: the multiplied variable follows SGD at lr * k exactly.
    a, ref = _var([0.0, 0.0], "a"), _var([0.0, 0.0], "ref")
    wrapped = with_lr_multipliers(keras.optimizers.SGD(0.05, momentum=0.9), {"a": 3.0})
    plain = keras.optimizers.SGD(0.15, momentum=0.9)
    for g in ([1.0, -1.0], [0.5, 2.0]):
        grad = keras.ops.convert_to_tensor(np.asarray(g, "float32"))
        wrapped.apply([grad], [a])
        plain.apply([grad], [ref])
    # by hand: v1 = -0.15 g1, w1 = v1; v2 = 0.9 v1 - 0.15 g2, w2 = w1 + v2
    g1, g2 = np.array([1.0, -1.0]), np.array([0.5, 2.0])
    expected = -0.15 * g1 + 0.9 * (-0.15 * g1) - 0.15 * g2
    np.testing.assert_allclose(_np(a), expected, rtol=1e-5)
    np.testing.assert_allclose(_np(ref), expected, rtol=1e-5)


def test_adam_first_step_is_k_lr_times_sign(rng):
    g = rng.normal(size=(3, 4)).astype("float32")
    head, body = _var(np.ones((3, 4)), "head"), _var(np.ones((3, 4)), "body")
    opt = with_lr_multipliers(keras.optimizers.Adam(1e-3), {"head": 25.0})
    opt.apply([keras.ops.convert_to_tensor(g)] * 2, [head, body])
    np.testing.assert_allclose(_np(body) - 1.0, -1e-3 * np.sign(g), atol=1e-6)
    np.testing.assert_allclose(_np(head) - 1.0, -25e-3 * np.sign(g), atol=2e-5)


def test_adamw_weight_decay_scales_with_the_multiplier():
    # Zero gradient: Adam's step is 0, only decoupled decay acts: w -= k * lr * wd * w.
    head, body = _var([2.0, -4.0], "head"), _var([2.0, -4.0], "body")
    opt = with_lr_multipliers(keras.optimizers.AdamW(0.01, weight_decay=0.5), [(head, 10.0)])
    zero = keras.ops.zeros((2,))
    opt.apply([zero, zero], [head, body])
    np.testing.assert_allclose(_np(body), [2.0 * (1 - 0.005), -4.0 * (1 - 0.005)], rtol=1e-6)
    np.testing.assert_allclose(_np(head), [2.0 * (1 - 0.05), -4.0 * (1 - 0.05)], rtol=1e-6)


def test_schedule_learning_rate_is_respected():
    lr = keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.1, 0.01])  # steps 0, 1
    a, b = _var([0.0], "a"), _var([0.0], "b")
    opt = with_lr_multipliers(keras.optimizers.SGD(lr), {"a": 5.0})
    one = keras.ops.ones((1,))
    for _ in range(2):
        opt.apply([one, one], [a, b])
    assert int(_np(opt.iterations)) == 2
    np.testing.assert_allclose(_np(b), [-(0.1 + 0.01)], rtol=1e-6)
    np.testing.assert_allclose(_np(a), [-5.0 * (0.1 + 0.01)], rtol=1e-6)


def test_learning_rate_reads_and_writes_the_inner_optimizer():
    inner = keras.optimizers.Adam(1e-3)
    opt = with_lr_multipliers(inner, {"x": 2.0})
    opt.learning_rate = 0.25
    assert float(_np(inner.learning_rate)) == pytest.approx(0.25)
    assert float(_np(opt.learning_rate)) == pytest.approx(0.25)


def test_layer_and_variable_keys_become_paths():
    model = _lpc_model()
    head = model.get_layer("head")
    kernel = model.get_layer("backbone").kernel
    opt = with_lr_multipliers("sgd", [(head, 2.0), (kernel, 0.5)])
    assert opt.multipliers == {
        "net/head/kernel": 2.0,
        "net/head/bias": 2.0,
        "net/backbone/kernel": 0.5,
    }
    assert isinstance(opt.inner_optimizer, keras.optimizers.SGD)


def test_fit_applies_multiplier_in_compiled_step():
    # Linear model from zeros, MSE, one full batch: grad_w = -2/N X^T y, grad_b = -2/N sum y.
    x = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0], [-2.0, 1.0]], "float32")
    y = np.array([[1.0], [2.0], [-1.0], [0.5]], "float32")
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros", name="lin")]
    )
    model.compile(with_lr_multipliers(keras.optimizers.SGD(0.1), {"lin/bias": 7.0}), "mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    kernel, bias = (_np(w) for w in model.get_layer("lin").weights)
    np.testing.assert_allclose(kernel, 0.1 * 2 / 4 * x.T @ y, rtol=1e-5)
    np.testing.assert_allclose(bias, 7.0 * 0.1 * 2 / 4 * y.sum(0), rtol=1e-5)


def test_lpc_multipliers_head_moves_k_times_in_fit(rng):
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, size=16)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    deltas = {}
    for k in (1.0, 10.0):
        keras.utils.set_random_seed(7)
        model = _lpc_model()
        start = [_np(w) for w in model.trainable_weights]
        opt = with_lr_multipliers(keras.optimizers.SGD(0.01), lpc_multipliers(model, factor=k))
        model.compile(opt, loss)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        deltas[k] = [_np(w) - s for w, s in zip(model.trainable_weights, start)]
    for path_index, (d1, d10) in enumerate(zip(deltas[1.0], deltas[10.0])):
        factor = 10.0 if path_index >= 4 else 1.0  # head kernel and bias come last
        np.testing.assert_allclose(d10, factor * d1, rtol=1e-4, atol=1e-7)
    assert np.abs(deltas[1.0][4]).max() > 0


def test_save_load_round_trip_keeps_multipliers_and_state(tmp_path, rng):
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.integers(0, 3, size=8)
    model = _lpc_model()
    model.compile(
        with_lr_multipliers(keras.optimizers.Adam(1e-2), lpc_multipliers(model, 30.0)),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    opt = loaded.optimizer
    assert isinstance(opt, LRMultiplierOptimizer)
    assert opt.multipliers == {"head": 30.0}
    assert isinstance(opt.inner_optimizer, keras.optimizers.Adam)
    assert int(_np(opt.iterations)) == 1
    # One more step on each: identical weights only if the Adam moments were restored.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    opt = with_lr_multipliers(keras.optimizers.AdamW(3e-4, weight_decay=1e-3), {"h*": 10})
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(clone, LRMultiplierOptimizer)
    assert clone.multipliers == {"h*": 10.0}
    assert clone.inner_optimizer.weight_decay == pytest.approx(1e-3)
    assert float(_np(clone.learning_rate)) == pytest.approx(3e-4)


def test_lpc_multipliers_functional_skips_weightless_layers():
    inputs = keras.Input((6,))
    z = keras_lpc.LatentPointCollapse(dim=3, name="lpc")(keras.layers.Dense(4, name="body")(inputs))
    a = keras.layers.Dense(2, name="head_a")(keras.layers.Activation("relu", name="act")(z))
    b = keras.layers.Dense(1, name="head_b")(z)
    model = keras.Model(inputs, [a, b])
    assert lpc_multipliers(model, 100) == {"head_a": 100.0, "head_b": 100.0}


def test_lpc_multipliers_unbuilt_sequential():
    model = keras.Sequential(
        [
            keras.layers.Dense(4),
            keras_lpc.LatentPointCollapse(dim=2),
            keras.layers.Dense(3, name="out"),
        ]
    )
    assert lpc_multipliers(model) == {"out": 10.0}


@pytest.mark.parametrize(
    ("multipliers", "error", "match"),
    [
        ({"head": 0.0}, ValueError, r"`multipliers\['head'\]` must be a positive number. Received"),
        (
            {"head": -2},
            ValueError,
            r"must be a positive number. Received: multipliers\['head'\]=-2",
        ),
        ({"head": float("nan")}, ValueError, r"must be a finite number"),
        ({"head": "10"}, TypeError, r"must be a real number. Received"),
        ({3: 10.0}, TypeError, r"`multipliers` keys must be layers.*Received: multipliers key=3"),
        ({"": 10.0}, TypeError, r"Received: multipliers key=''"),
        (["head"], TypeError, r"`multipliers` must be a mapping.*Received: multipliers=\['head'\]"),
        ("head", TypeError, r"`multipliers` must be a mapping"),
        ({}, ValueError, r"`multipliers` must be a non-empty mapping. Received: multipliers=\{\}"),
    ],
)
def test_bad_multipliers(multipliers, error, match):
    with pytest.raises(error, match=match):
        with_lr_multipliers(keras.optimizers.SGD(), multipliers)


def test_unknown_layer_name_raises_on_build():
    model = _lpc_model()
    opt = with_lr_multipliers(keras.optimizers.SGD(), {"no_such_layer": 10.0})
    with pytest.raises(ValueError, match=r"select a trainable variable.*key='no_such_layer'"):
        opt.build(model.trainable_variables)


def test_conflicting_factors_raise_on_build():
    model = _lpc_model()
    opt = with_lr_multipliers(keras.optimizers.SGD(), {"head": 10.0, "*/bias": 2.0})
    with pytest.raises(ValueError, match=r"one factor.*'head' and '\*/bias'"):
        opt.build(model.trainable_variables)


def test_bad_inner_optimizer():
    wrapped = with_lr_multipliers(keras.optimizers.SGD(), {"a": 2.0})
    with pytest.raises(TypeError, match=r"`inner_optimizer` must be a plain"):
        with_lr_multipliers(wrapped, {"a": 2.0})
    with pytest.raises(ValueError, match=r"`inner_optimizer` must not use EMA"):
        with_lr_multipliers(keras.optimizers.Adam(use_ema=True), {"a": 2.0})
    with pytest.raises(TypeError, match=r"takes no base optimizer arguments"):
        LRMultiplierOptimizer(keras.optimizers.SGD(), {"a": 2.0}, clipnorm=1.0)


def test_lpc_multipliers_errors():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"`model` must contain a LatentPointCollapse"):
        lpc_multipliers(plain)
    with pytest.raises(TypeError, match=r"`model` must be a keras.Model. Received: model="):
        lpc_multipliers("model")
    with pytest.raises(ValueError, match=r"`factor` must be a positive number. Received: factor=0"):
        lpc_multipliers(_lpc_model(), factor=0)
    tail = keras.Sequential([keras.Input((3,)), keras_lpc.LatentPointCollapse(dim=2)])
    with pytest.raises(ValueError, match=r"must have a layer with weights after"):
        lpc_multipliers(tail)


class _Subclassed(keras.Model):
    """LPC inside a subclassed call(): no graph records which layer reads the latents."""

    def __init__(self):
        super().__init__(name="sub")
        self.body = keras.layers.Dense(4, name="body")
        self.lpc = keras_lpc.LatentPointCollapse(dim=2, name="lpc")
        self.out = keras.layers.Dense(3, name="out")

    def call(self, x):
        return self.out(self.lpc(self.body(x)))


def test_lpc_multipliers_subclassed_model_asks_for_the_head_then_uses_it():
    model = _Subclassed()
    model(np.zeros((1, 5), "float32"))
    with pytest.raises(ValueError) as info:
        lpc_multipliers(model)
    assert str(info.value) == (
        "`head` must be given for a subclassed model: its call() records no graph, so the "
        "layer that reads 'lpc' cannot be found; pass it, e.g. lpc_multipliers(model, factor, "
        "head='<layer name>'). Received: head=None for model='sub' with layers "
        "['body', 'lpc', 'out']"
    )
    assert lpc_multipliers(model, 5.0, head="out") == {"out": 5.0}
    assert lpc_multipliers(model, 5.0, head=model.out) == {"out": 5.0}
    # the named head's variables are the ones multiplied
    opt = with_lr_multipliers(keras.optimizers.SGD(), lpc_multipliers(model, 5.0, head="out"))
    opt.build(model.trainable_variables)
    multiplied = {
        v.path for v in model.trainable_variables if opt._factor_by_key.get(opt._var_key(v))
    }
    assert multiplied == {v.path for v in model.out.trainable_variables}


def _backbone(name="backbone"):
    inputs = keras.Input((6,))
    z = keras_lpc.LatentPointCollapse(dim=3, name="lpc")(keras.layers.Dense(4, name="body")(inputs))
    return keras.Model(inputs, z, name=name)


def test_lpc_multipliers_nested_backbone_then_head_sequential():
    model = keras.Sequential([keras.Input((6,)), _backbone(), keras.layers.Dense(2, name="head")])
    assert lpc_multipliers(model, 20.0) == {"head": 20.0}


def test_lpc_multipliers_nested_backbone_then_weightless_then_head_functional():
    inputs = keras.Input((6,))
    z = _backbone()(inputs)
    logits = keras.layers.Dense(2, name="head")(keras.layers.Dropout(0.1, name="drop")(z))
    model = keras.Model(inputs, logits)
    assert lpc_multipliers(model, 20.0) == {"head": 20.0}
    # two levels deep: the backbone inside a wrapper model, the head outside both
    wrapper = keras.Sequential([keras.Input((6,)), _backbone("inner")], name="wrapper")
    outer = keras.Sequential([keras.Input((6,)), wrapper, keras.layers.Dense(2, name="top")])
    assert lpc_multipliers(outer) == {"top": 10.0}


def test_lpc_multipliers_head_errors():
    model = _lpc_model()
    with pytest.raises(
        ValueError, match=r"`head` must name layers of the model .*Received: head='nope'"
    ):
        lpc_multipliers(model, head="nope")
    with pytest.raises(TypeError, match=r"`head` must be a layer, a layer name .*Received: head=3"):
        lpc_multipliers(model, head=3)
    with pytest.raises(
        ValueError, match=r"`head` must name at least one layer. Received: head=\[\]"
    ):
        lpc_multipliers(model, head=[])
