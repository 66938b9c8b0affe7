"""`with_lpc`: insert a `LatentPointCollapse` layer before the head of an existing classifier."""

from __future__ import annotations

from typing import Any

import keras

from keras_lpc._models import is_graph, iter_layers, producer
from keras_lpc._validation import require
from keras_lpc.layers import LatentPointCollapse

__all__ = ["require_keras_hub", "with_lpc"]


def require_keras_hub() -> Any:
    """Import keras_hub, or raise an ImportError naming the extra to install."""
    return require("keras_hub", "hub", "KerasHub models")


def _describe(model: Any) -> str:
    return f"{getattr(model, 'name', model)!r} ({type(model).__name__})"


def _head_of(model: keras.Model) -> tuple[keras.layers.Layer, Any, list[keras.layers.Layer]]:
    """The classification head, the tensor it reads and the weightless layers after it.

    Walks back from the model's single output through layers without
    weights (an ``Activation``, ``Softmax``, ``Dropout``...) to the last
    layer with weights, which must be a `keras.layers.Dense`.
    """
    if len(model.outputs) != 1:
        raise ValueError(
            "`model` must be a classifier with one output. Received: model="
            f"{_describe(model)} with {len(model.outputs)} outputs"
        )
    tensor = model.outputs[0]
    after: list[keras.layers.Layer] = []
    while True:
        layer, node = producer(tensor)
        if isinstance(layer, keras.layers.InputLayer):
            raise ValueError(
                "`model` must end in a Dense classification head. Received: model="
                f"{_describe(model)}, which has no layer with weights on the path to its output"
            )
        if layer.weights:
            break
        if len(node.input_tensors) != 1:
            raise ValueError(
                "`model` must end in a Dense classification head, possibly followed by layers "
                f"with one input and no weights. Received: model={_describe(model)} whose "
                f"layer {layer.name!r} has {len(node.input_tensors)} inputs"
            )
        after.append(layer)
        tensor = node.input_tensors[0]
    if not isinstance(layer, keras.layers.Dense) or isinstance(layer, keras.Model):
        raise ValueError(
            "`model` must end in a keras.layers.Dense classification head. Received: model="
            f"{_describe(model)} whose last layer with weights is {layer.name!r} "
            f"({type(layer).__name__})"
        )
    if len(node.input_tensors) != 1:
        raise ValueError(
            f"`model`'s head must have one input. Received: model={_describe(model)} whose head "
            f"{layer.name!r} has {len(node.input_tensors)}"
        )
    return layer, node.input_tensors[0], after[::-1]


def with_lpc(model: keras.Model, dim: int | None = 16, **layer_kwargs: Any) -> keras.Model:
    """An existing classifier with a `LatentPointCollapse` layer inserted before its head.

    For a classifier ``x -> features(x) -> Dense(k, activation)`` (optionally
    followed by weightless layers such as ``Activation("softmax")``) returns

    ```
    x -> features(x) -> LatentPointCollapse(dim) -> Dense(k, activation) [-> same layers]
    ```

    The feature extractor is *shared*: the new model uses the original's
    layer objects and weights up to the head (training one trains the other;
    `keras.models.clone_model` first to keep the original apart). The new
    head is a fresh `Dense` with the original head's configuration (same
    number of classes ``k``, same activation: softmax stays softmax, logits
    stay logits; same initializers, regularizers and dtype policy) and its
    name, with new weights, since it now reads ``dim`` latents. Works for
    `Sequential` and functional models, `keras.applications` classifiers
    (``include_top=True``), KerasHub ``ImageClassifier`` tasks (functional
    models whose preprocessor stays outside the returned plain
    `keras.Model`) and a backbone model followed by pooling and a `Dense` head.

    Args:
        model: a built Keras classifier (`Sequential` with an input shape, or
            functional) with one output, ending in a `Dense` head.
        dim: latent dimension of the inserted layer (``None``: no
            projection, the head reads the penalised features directly).
        **layer_kwargs: further `LatentPointCollapse` arguments (``gamma``,
            ``name``, ``kernel_initializer``...). The dtype policy defaults
            to the head's.

    Returns:
        A new model (a `Sequential` for a `Sequential`, a functional
        `keras.Model` otherwise) named ``<model.name>_lpc``, to compile and
        train with `keras_lpc.GammaAnnealing`.

    Raises:
        TypeError: ``model`` is not a Keras model, or is a subclassed model
            (its ``call`` cannot be rewired).
        ValueError: the model is not built, has several outputs, already
            contains a `LatentPointCollapse`, or does not end in a `Dense`
            head reading one tensor.

    Example:

    >>> import keras, keras_lpc
    >>> base = keras.Sequential([keras.Input((8,)),
    ...                          keras.layers.Dense(32, activation="relu", name="dense"),
    ...                          keras.layers.Dense(3, activation="softmax", name="head")])
    >>> model = keras_lpc.with_lpc(base, dim=4, name="lpc")
    >>> names = [layer.name for layer in model.layers]
    >>> names, model.layers[-1].get_config()["activation"]
    (['dense', 'lpc', 'head'], 'softmax')
    >>> model.layers[0] is base.layers[0], model.output_shape
    (True, (None, 3))
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model classifier. Received: model={model!r}")
    if any(isinstance(la, LatentPointCollapse) for la in iter_layers(model)):
        raise ValueError(
            "`model` must not already contain a LatentPointCollapse layer. Received: model="
            f"{_describe(model)} with "
            f"{[la.name for la in iter_layers(model) if isinstance(la, LatentPointCollapse)]}"
        )
    if not isinstance(model, keras.Sequential) and not is_graph(model):
        raise TypeError(
            "`model` must be a Sequential or functional keras.Model: a subclassed model's call() "
            "cannot be rewired; add LatentPointCollapse in its call() before the head instead. "
            f"Received: model={_describe(model)}"
        )
    if not model.built or not is_graph(model):
        raise ValueError(
            "`model` must be built with a known input shape (start a Sequential with "
            f"keras.Input, or call model.build(input_shape)). Received: model={_describe(model)}, "
            "not built"
        )
    head, features, after = _head_of(model)
    config = head.get_config()
    config.pop("quantization_config", None)
    new_head = type(head).from_config(config)
    layer_kwargs.setdefault("dtype", head.dtype_policy)
    lpc = LatentPointCollapse(dim=dim, **layer_kwargs)
    if isinstance(model, keras.Sequential):
        layers = model.layers
        index = next(i for i, la in enumerate(layers) if la is head)
        result = keras.Sequential(
            [keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)]
            + layers[:index]
            + [lpc, new_head]
            + layers[index + 1 :],
            name=f"{model.name}_lpc",
        )
        return result
    outputs = new_head(lpc(features))
    for layer in after:
        outputs = layer(outputs)
    return keras.Model(model.input, outputs, name=f"{model.name}_lpc")
