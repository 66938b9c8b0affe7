"""Finding `LatentPointCollapse` layers inside any Keras model."""

from __future__ import annotations

from typing import Any

import keras

from keras_lpc.layers import LatentPointCollapse


def first_output(out: Any) -> Any:
    """The first output of a model: ``out[0]`` of a list/tuple, of a dict the value of the
    first key in sorted order (Keras' flattening order, so ``model.outputs[0]``)."""
    while isinstance(out, (list, tuple, dict)):
        out = out[sorted(out)[0]] if isinstance(out, dict) else out[0]
    return out


def iter_layers(model: Any):
    """Yield every layer below ``model`` (nested models and sublayers), depth first."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if layer is not model:
            yield layer
        children = getattr(layer, "_layers", None) or getattr(layer, "layers", None) or []
        stack.extend(reversed(list(children)))


def find_lpc_layers(
    model: Any, layers: Any = None, arg: str = "layers"
) -> list[LatentPointCollapse]:
    """Return the `LatentPointCollapse` layers of ``model``.

    Args:
        model: a built or unbuilt Keras model or layer.
        layers: ``None`` for all of them, or a layer / layer name / list of
            those; each must be a `LatentPointCollapse` inside ``model``.
        arg: the caller's name for ``layers``, used in error messages.

    Raises:
        ValueError: the model has none, or a requested one is not in it.
        TypeError: a requested layer is not a `LatentPointCollapse`.
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"`model` must be a Keras model or layer. Received: model={model!r}")
    found = [lyr for lyr in iter_layers(model) if isinstance(lyr, LatentPointCollapse)]
    if isinstance(model, LatentPointCollapse):
        found.insert(0, model)
    if layers is None:
        if not found:
            raise ValueError(
                "`model` must contain at least one keras_lpc.LatentPointCollapse layer. "
                f"Received: model={getattr(model, 'name', model)!r} with none"
            )
        return found
    wanted = layers if isinstance(layers, (list, tuple)) else [layers]
    result = []
    for item in wanted:
        if isinstance(item, str):
            match = [lyr for lyr in found if lyr.name == item]
            if not match:
                names = [lyr.name for lyr in found]
                raise ValueError(
                    f"`{arg}` must name LatentPointCollapse layers of the model "
                    f"(available: {names}). Received: {arg}={item!r}"
                )
            result.extend(match)
        elif isinstance(item, LatentPointCollapse):
            if not any(item is lyr for lyr in found):
                raise ValueError(
                    f"`{arg}` must be layers of the model. Received: {arg}={item.name!r}, not in it"
                )
            result.append(item)
        else:
            raise TypeError(
                f"`{arg}` must be LatentPointCollapse layers or their names. "
                f"Received: {arg}={item!r}"
            )
    return result
