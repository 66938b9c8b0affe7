"""Walking a Keras model's graph (`keras_lpc._models`)."""

from __future__ import annotations

import keras
import pytest

from keras_lpc import LatentPointCollapse
from keras_lpc._models import (
    consumers,
    find_lpc_layers,
    first_output,
    is_graph,
    iter_layers,
    named_layers,
    next_layers,
    output_operation,
    parents,
    producer,
)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def _functional():
    """x -> a -> (b, c) -> add -> softmax (keras.ops)."""
    inp = keras.Input((3,))
    a = keras.layers.Dense(4, name="a")(inp)
    b = keras.layers.Dense(4, name="b")(a)
    c = keras.layers.Dense(4, name="c")(a)
    out = keras.ops.softmax(keras.layers.Add(name="add")([b, c]))
    return keras.Model(inp, out, name="f")


def test_is_graph_and_the_output_operation():
    model = _functional()
    seq = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="last")])
    assert is_graph(model) and is_graph(seq)
    assert not is_graph(keras.Sequential([keras.layers.Dense(2)]))  # unbuilt
    assert not is_graph(_Subclassed()) and not is_graph("model")
    # the keras.ops.softmax call is the output's operation; its input is the Add's output
    last = output_operation(model)
    assert type(last).__name__ == "Softmax" and producer(last.input)[0].name == "add"
    assert output_operation(seq).name == "last"
    sub = _Subclassed()
    sub(keras.ops.zeros((1, 3)))
    assert output_operation(sub) is sub.dense  # no graph: the last layer
    assert output_operation(keras.layers.Layer()) is None


def test_producer_and_consumers():
    model = _functional()
    layer, node = producer(model.get_layer("add").output)
    assert layer.name == "add" and len(node.input_tensors) == 2
    assert [la.name for la in consumers(model.get_layer("a"), model)] == ["b", "c"]
    assert [la.name for la in consumers(model.get_layer("b"), model)] == ["add"]


def test_next_layers_through_nested_models():
    # the LPC layer closes a nested backbone: its readers are found in the outer model
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), LatentPointCollapse(2, name="lpc")],
        name="backbone",
    )
    inp = keras.Input((3,))
    outer = keras.Model(inp, keras.layers.Dense(5, name="head")(inner(inp)), name="outer")
    found = parents(outer)
    lpc = outer.get_layer("backbone").get_layer("lpc")
    assert [m.name for m in found[id(lpc)]] == ["backbone"]
    assert [m.name for m in found[id(inner)]] == ["outer"]
    unknown = []
    nexts = next_layers(lpc, inner, outer, found, unknown)
    assert [la.name for la in nexts] == ["head"] and unknown == []
    sub = _Subclassed()
    assert next_layers(sub.dense, sub, sub, {}, unknown) == [] and unknown == [sub.name]
    assert find_lpc_layers(outer) == [lpc]
    walked = list(iter_layers(outer))  # depth first, nested models included
    assert walked.index(inner) < walked.index(lpc) < walked.index(outer.get_layer("head"))


def test_named_layers_and_first_output():
    model = _functional()
    assert [la.name for la in named_layers(model, ["c", model.get_layer("a")], "head")] == [
        "c",
        "a",
    ]
    with pytest.raises(ValueError, match=r"`head` must name layers of the model \(available"):
        named_layers(model, "nope", "head")
    with pytest.raises(TypeError, match="`head` must be a layer, a layer name or a list"):
        named_layers(model, 3, "head")
    with pytest.raises(ValueError, match="`head` must name at least one layer"):
        named_layers(model, [], "head")
    assert first_output({"z": 1, "a": 2}) == 2 and first_output([[3, 4], 5]) == 3
