"""keras_lpc.with_lpc: LPC inserted before the head of classifiers people already have."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import with_lpc


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _shared_snapshot(base, new):
    """The variables the new model shares with the original: same objects, and their values."""
    head = _head(base)
    base_vars = [v for la in base.layers if la is not head for v in la.weights]
    new_ids = {id(v) for v in new.weights}
    assert base_vars and all(id(v) in new_ids for v in base_vars)
    return base_vars, [_np(v).copy() for v in base_vars]


def _head(model):
    return [la for la in model.layers if la.weights][-1]


class _InsertedGamma(keras.callbacks.Callback):
    """Reads gamma of one given layer object after every train step."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.values = layer, []

    def on_train_batch_end(self, batch, logs=None):
        model = self.model  # on JAX this property syncs the trainer's state into the variables
        assert any(layer is self.layer for layer in model.layers)
        self.values.append(float(_np(self.layer.gamma)))


def _train_steps(model, lpc, x, y, from_logits, steps=3):
    """``steps`` full-batch steps under `GammaAnnealing` with gamma = 1, 2, 3 at steps 0, 1, 2."""
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
        # tracing MobileNetV2's train step takes minutes on TF; on JAX the compiled
        # step (8 s) is cheaper than eager dispatch of each op (32 s)
        run_eagerly=keras.backend.backend() != "jax",
    )
    schedule = keras_lpc.schedules.Linear(1.0, 1.0 + steps, steps=steps)  # 1 + step
    inserted = _InsertedGamma(lpc)
    history = model.fit(
        x,
        y,
        batch_size=len(x),
        epochs=steps,
        verbose=0,
        callbacks=[keras_lpc.GammaAnnealing(schedule), inserted],
    )
    assert np.all(np.isfinite(history.history["loss"]))
    # the annealer reached the inserted layer: its own variable followed the schedule
    # step by step (an annealer driving another layer, or none, would leave it at 0)
    expected = [1.0 + step for step in range(steps)]
    assert inserted.values == pytest.approx(expected)
    assert history.history["gamma"] == pytest.approx(expected)
    assert float(_np(lpc.gamma)) == pytest.approx(expected[-1])


def _check(base, new, x, y, classes, activation, from_logits):
    lpc = [la for la in new.layers if isinstance(la, keras_lpc.LatentPointCollapse)]
    assert len(lpc) == 1
    new_head = new.layers[new.layers.index(lpc[0]) + 1]
    old_head = _head(base)
    assert new_head is not old_head and new_head.name == old_head.name
    assert new_head.units == old_head.units == classes
    assert new_head.get_config()["activation"] == activation
    assert new_head.kernel.shape == (lpc[0].dim, classes)
    assert new.output_shape == base.output_shape == (None, classes)
    base_vars, before = _shared_snapshot(base, new)
    _train_steps(new, lpc[0], x, y, from_logits)
    # the steps moved the shared weights, and the original sees the same values (same objects)
    trainable = [v for v in base_vars if v.trainable]
    assert any(not np.allclose(_np(v), b) for v, b in zip(base_vars, before) if v.trainable)
    for v in trainable:
        assert any(v is w for w in new.trainable_weights)
    # predict follows compile(): eager on TensorFlow and PyTorch, one compiled forward
    # pass on JAX (calling the model eagerly would compile each of MobileNetV2's ops)
    out = new.predict(x, batch_size=len(x), verbose=0)
    assert out.shape == (len(x), classes)
    if activation == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
        assert (out >= 0).all()
    return new_head


def test_sequential_mlp_softmax(rng):
    base = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="body"),
            keras.layers.Dense(3, activation="softmax", name="head"),
        ],
        name="mlp",
    )
    new = with_lpc(base, dim=4, name="lpc")
    assert isinstance(new, keras.Sequential) and new.name == "mlp_lpc"
    assert [la.name for la in new.layers] == ["body", "lpc", "head"]
    assert new.layers[0] is base.layers[0] and new.layers[0].kernel is base.layers[0].kernel
    x = rng.normal(size=(8, 8)).astype("float32")
    y = np.arange(8) % 3
    _check(base, new, x, y, 3, "softmax", from_logits=False)
    # the original model still works, and computes with the updated shared body
    np.testing.assert_allclose(_np(base.layers[0](x)), _np(new.layers[0](x)), rtol=1e-6)


def test_functional_cnn_logits_and_trailing_activation_layer(rng):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    logits = keras.layers.Dense(5, name="logits")(h)
    base = keras.Model(inputs, logits, name="cnn")
    new = with_lpc(base, dim=3)
    assert not isinstance(new, keras.Sequential)
    assert new.get_layer("conv") is base.get_layer("conv")
    x = rng.normal(size=(10, 8, 8, 1)).astype("float32")
    y = np.arange(10) % 5
    _check(base, new, x, y, 5, "linear", from_logits=True)
    # a weightless layer after the head (here the softmax) is kept, the same object
    probs = keras.layers.Activation("softmax", name="probs")(logits)
    base2 = keras.Model(inputs, probs, name="cnn2")
    new2 = with_lpc(base2, dim=3)
    assert new2.layers[-1] is base2.get_layer("probs")
    out = _np(new2(x, training=False))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_applications_mobilenet_v2(rng):
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35
    )
    new = with_lpc(base, dim=8)
    assert new.get_layer("Conv1") is base.get_layer("Conv1")
    x = rng.uniform(-1, 1, size=(4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 3])
    head = _check(base, new, x, y, 10, "softmax", from_logits=False)
    assert head.name == "predictions"


def test_keras_hub_image_classifier(rng):
    keras_hub = pytest.importorskip(
        "keras_hub", reason="keras-hub is the optional [hub] extra: pip install 'keras-lpc[hub]'"
    )
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        image_shape=(32, 32, 3),
    )
    base = keras_hub.models.ImageClassifier(backbone=backbone, num_classes=4)  # logits
    new = with_lpc(base, dim=4)
    assert new.get_layer(backbone.name) is backbone
    x = rng.uniform(0, 1, size=(4, 32, 32, 3)).astype("float32")
    y = np.array([0, 1, 2, 3])
    _check(base, new, x, y, 4, "linear", from_logits=True)


def test_backbone_plus_head_sequential(rng):
    inputs = keras.Input((6, 6, 2))
    backbone = keras.Model(
        inputs, keras.layers.Conv2D(3, 3, name="bb_conv")(inputs), name="backbone"
    )
    base = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            backbone,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax", name="cls"),
        ]
    )
    new = with_lpc(base, dim=2)
    assert new.layers[0] is backbone
    x = rng.normal(size=(4, 6, 6, 2)).astype("float32")
    _check(base, new, x, np.array([0, 1, 0, 1]), 2, "softmax", from_logits=False)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def test_errors():
    with pytest.raises(TypeError, match=r"`model` must be a keras.Model classifier. Received"):
        with_lpc("model")
    sub = _Subclassed()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(TypeError) as info:
        with_lpc(sub)
    assert str(info.value) == (
        "`model` must be a Sequential or functional keras.Model: a subclassed model's call() "
        "cannot be rewired; add LatentPointCollapse in its call() before the head instead. "
        "Received: model='sub' (_Subclassed)"
    )
    unbuilt = keras.Sequential([keras.layers.Dense(2)], name="unbuilt")
    with pytest.raises(ValueError, match=r"`model` must be built with a known input shape.*"):
        with_lpc(unbuilt)
    inputs = keras.Input((3,))
    two = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(1)(inputs)])
    with pytest.raises(
        ValueError, match=r"`model` must be a classifier with one output.*2 outputs"
    ):
        with_lpc(two)
    conv_head = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1, name="conv_head")], name="c"
    )
    with pytest.raises(
        ValueError,
        match=r"must end in a keras.layers.Dense .*last layer with weights is 'conv_head' \(Conv2D\)",
    ):
        with_lpc(conv_head)
    has_lpc = keras.Sequential(
        [keras.Input((3,)), keras_lpc.LatentPointCollapse(2, name="z"), keras.layers.Dense(2)],
        name="has",
    )
    with pytest.raises(
        ValueError, match=r"must not already contain a LatentPointCollapse.*\['z'\]"
    ):
        with_lpc(has_lpc)
    no_weights = keras.Sequential([keras.Input((3,)), keras.layers.Activation("relu")], name="nw")
    with pytest.raises(ValueError, match=r"no layer with weights on the path to its output"):
        with_lpc(no_weights)


def test_example_script_shortened():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "with_lpc.py"
    spec = importlib.util.spec_from_file_location("with_lpc_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(epochs=1, lpc_epochs=1, max_train=64, verbose=0)
    # 5 layers shared (input, 2 conv, pooling, features), a new softmax head "classes"
    assert result["shared"] == 5 and result["head_activation"] == "softmax"
    assert 0.0 <= result["before"] <= 1.0 and 0.0 <= result["after"] <= 1.0
    assert result["gamma"] > 0.0
    # NC1 of a 1-epoch model may be undefined (NaN: a class predicted nowhere); else >= 0
    assert not result["val_nc1"] < 0.0


def test_export_serves_without_the_penalty(tmp_path, rng):
    """model.export() of an LPC model: the SavedModel's output is the model's, gamma > 0."""
    if keras.backend.backend() not in ("tensorflow", "jax"):
        pytest.skip("model.export(format='tf_saved_model') supports TensorFlow and JAX only")
    tf = pytest.importorskip("tensorflow", reason="export writes a TensorFlow SavedModel")
    base = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, name="body"), keras.layers.Dense(2, name="out")]
    )
    model = with_lpc(base, dim=3, gamma=5.0)
    x = rng.normal(size=(5, 4)).astype("float32")
    path = tmp_path / "exported"
    model.export(str(path), verbose=0)
    loaded = tf.saved_model.load(str(path))  # kept: its variables die with it
    served = loaded.serve(tf.constant(x)).numpy()
    # the layers by hand: out(projection(body(x))); the penalty does not enter the output
    lpc = model.layers[1]
    by_hand = _np(model.layers[2](lpc.projection(model.layers[0](x))))
    np.testing.assert_allclose(served, by_hand, rtol=1e-5, atol=1e-6)
