"""Models as graphs of bound operations: `graph_nodes`, the layer conversion, the transposes.

The converted graph must compute the model's pre-softmax scores exactly, every
linear operation's ``transpose`` must be its adjoint (``<a, W x> = <W^T a,
x>``), and unsupported models must fail with a message naming the layer.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import layers, ops

import keras_lpc
from keras_lpc._models import graph_nodes
from keras_lpc.robustness import certified_radius
from keras_lpc.robustness.certify._convert import to_graph


def _values(model, x):
    graph = to_graph(model)
    return graph, ops.convert_to_numpy(graph.forward(ops.convert_to_tensor(x))[-1])


def test_graph_nodes_flattens_nested_models_in_order():
    inner = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="a"), layers.ReLU(name="b")])
    x = keras.Input((4,))
    h = inner(x)
    out = layers.Add(name="add")([h, layers.Dense(3, name="c")(h)])
    graph = graph_nodes(keras.Model(x, out))
    assert [n.layer.name for n in graph.nodes] == ["a", "b", "c", "add"]
    assert [n.inputs for n in graph.nodes] == [(0,), (1,), (2,), (2, 3)]
    assert graph.inputs == (0,) and graph.outputs == (4,)


def test_graph_nodes_refuses_subclassed_and_unbuilt_models():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="subclassed model has no layer graph"):
        graph_nodes(Net())
    with pytest.raises(ValueError, match="must be built with known inputs"):
        graph_nodes(keras.Sequential([layers.Dense(2)]))
    with pytest.raises(TypeError, match="must be a Keras model"):
        graph_nodes("model")
    x = keras.Input((3,))
    with pytest.raises(ValueError, match="a nested model 'net"):
        graph_nodes(keras.Model(x, Net()(x)))


def _randomise(model, rng):
    for v in model.variables:
        values = rng.normal(size=v.shape) * 0.3
        if "variance" in v.path or "gamma" in v.path:
            values = np.abs(values) + 0.5
        v.assign(values.astype("float32"))


def _zoo(rng):
    """Models covering every supported layer; each returns (model, x)."""
    img = keras.Input((7, 6, 3))
    h = layers.Rescaling(0.5, offset=-0.2)(img)
    h = layers.ZeroPadding2D(((1, 0), (0, 2)))(h)
    h = layers.Conv2D(4, 3, strides=2, padding="same", activation="silu")(h)
    h = layers.BatchNormalization()(h)
    skip = h
    h = layers.Conv2D(4, 2, padding="same", dilation_rate=2, activation="gelu")(h)
    h = layers.Add()([h, skip])
    h = layers.Subtract()([h, layers.Activation("tanh")(skip)])
    h = layers.MaxPooling2D(3, strides=2, padding="same")(h)
    h = layers.Cropping2D(((0, 0), (1, 0)))(h)
    h = layers.AveragePooling2D(2, strides=1, padding="same")(h)
    a = layers.GlobalMaxPooling2D()(h)
    b = layers.GlobalAveragePooling2D()(layers.LeakyReLU(0.1)(h))
    h = layers.Average()([a, b])
    h = layers.Dropout(0.5)(layers.Dense(6, activation="sigmoid")(h))
    h = keras_lpc.LatentPointCollapse(dim=3)(h)
    out = layers.Dense(4, activation="softmax")(h)
    images = keras.Model(img, out)
    seq = keras.Input((9, 2))
    s = layers.Conv1D(3, 3, padding="causal", activation="relu")(seq)
    s = layers.Conv1D(2, 2, strides=2, padding="valid", data_format="channels_first")(
        layers.Permute((2, 1))(s)
    )
    s = layers.ZeroPadding1D((1, 2))(layers.Permute((2, 1))(s))
    s = layers.MaxPooling1D(2)(s)
    s = layers.Reshape((-1,))(s)
    s = layers.Normalization(mean=0.1, variance=4.0)(s)
    s = keras_lpc.LatentPointCollapse(dim=None)(layers.ReLU()(s))
    s = layers.Softmax()(layers.Dense(3)(s))
    sequences = keras.Model(seq, s)
    flat = keras.Sequential(
        [
            keras.Input((2, 3, 4)),
            layers.Conv2D(2, 2, data_format="channels_first", padding="same"),
            layers.Flatten(data_format="channels_first"),
            layers.Dense(3),
        ]
    )
    out = []
    for model in (images, sequences, flat):
        _randomise(model, rng)
        out.append((model, rng.normal(size=(5, *model.inputs[0].shape[1:])).astype("float32")))
    return out


def test_graph_computes_the_logits_of_every_supported_layer(rng):
    for (model, x), softmax in zip(_zoo(rng), (True, True, False)):
        _, got = _values(model, x)
        want = ops.convert_to_numpy(model(x, training=False))
        if softmax:  # left out of the graph: softmax(graph) is the model
            got = np.exp(got - got.max(1, keepdims=True))
            got = got / got.sum(1, keepdims=True)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_transposes_are_adjoint_and_absolute_bounds_the_map(rng):
    for model, _ in _zoo(rng):
        graph = to_graph(model)
        for node in graph.nodes:
            if node.op.kind != "linear":
                continue
            xs = [rng.normal(size=(2, *graph.shapes[j])).astype("float32") for j in node.inputs]
            y = ops.convert_to_numpy(node.op.linear(*map(ops.convert_to_tensor, xs)))
            a = rng.normal(size=y.shape).astype("float32")
            back = node.op.transpose(ops.convert_to_tensor(a))
            lhs = np.sum(a.astype("float64") * y)
            rhs = sum(
                np.sum(ops.convert_to_numpy(b).astype("float64") * x) for b, x in zip(back, xs)
            )
            assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-4), type(node.op).__name__
            radius = [np.abs(x) for x in xs]
            bound = ops.convert_to_numpy(node.op.absolute(*map(ops.convert_to_tensor, radius)))
            assert np.all(np.abs(y) <= bound + 1e-4)


def test_batch_norm_is_folded_into_the_convolution(rng):
    model = keras.Sequential(
        [
            keras.Input((5, 5, 2)),
            layers.Conv2D(3, 3),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    _randomise(model, rng)
    x = rng.normal(size=(4, 5, 5, 2)).astype("float32")
    graph, got = _values(model, x)
    assert [type(n.op).__name__ for n in graph.nodes] == ["Conv", "Activation", "Reshape", "Dense"]
    np.testing.assert_allclose(got, ops.convert_to_numpy(model(x)), atol=1e-5)


def test_unsupported_layer_is_named_with_its_class():
    model = keras.Sequential(
        [keras.Input((4,)), layers.Dense(3), layers.LayerNormalization(), layers.Dense(2)]
    )
    msg = r"'layer_normalization' \(LayerNormalization\); the methods 'lipschitz', 'ibp', 'crown'"
    with pytest.raises(ValueError, match=msg):
        certified_radius(model, np.ones((1, 4)))
    elu = keras.Sequential(
        [keras.Input((4,)), layers.Dense(3, activation="elu", name="d"), layers.Dense(2)]
    )
    with pytest.raises(ValueError, match=r"'d' \(Dense, activation 'elu'\)"):
        certified_radius(elu, np.ones((1, 4)))
    softmax_inside = keras.Sequential(
        [keras.Input((4,)), layers.Dense(3, activation="softmax"), layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="activation 'softmax'"):
        certified_radius(softmax_inside, np.ones((1, 4)))


def test_prefix_and_sizes(rng):
    model, _ = _zoo(rng)[2]
    graph = to_graph(model)
    assert graph.prefix == set(range(len(graph.nodes) + 1))  # a linear model: all affine
    assert graph.classes == 3 and math.prod(graph.shapes[0]) == 24
