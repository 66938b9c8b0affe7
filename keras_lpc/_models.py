"""Walking a Keras model: its layers, its recorded graph, its `LatentPointCollapse` layers.

The one place that reads Keras' graph records (``_keras_history``, ``_inbound_nodes``):
which layer produced a tensor (`producer`), which layers read a layer's output
(`consumers`, `next_layers` through nested models), the operation behind a model's
output (`output_operation`). Callers (`keras_lpc.optimizers`, `keras_lpc.surgery`,
`keras_lpc.robustness`) keep only their own policy.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


def is_graph(model: Any) -> bool:
    """Whether ``model`` records a graph of its layers (a functional model, or a built
    `Sequential`): its outputs are symbolic tensors that know the layer producing them.

    A subclassed model's ``call`` records none, nor does an unbuilt `Sequential`.
    """
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return False
    return (
        isinstance(outputs, (list, tuple))
        and bool(outputs)
        and all(hasattr(t, "_keras_history") for t in outputs)
    )


def producer(tensor: Any) -> tuple[Any, Any]:
    """The layer (operation) that produced the symbolic ``tensor`` and the node of that call
    (whose ``input_tensors`` are what the layer read)."""
    history = tensor._keras_history
    layer = history.operation
    return layer, layer._inbound_nodes[history.node_index]


def output_operation(model: Any) -> Any:
    """The operation producing ``model``'s first output (`first_output`): a layer, or the
    Keras operation of a ``keras.ops`` call such as ``keras.ops.softmax``; the last layer
    of a model that records no graph; ``None`` for a model without layers."""
    if is_graph(model):
        return producer(first_output(model.outputs))[0]
    layers = getattr(model, "layers", None)
    return layers[-1] if layers else None


def consumers(layer: Any, container: Any) -> list[Any]:
    """The layers of the graph model ``container`` that read ``layer``'s output."""
    return [
        candidate
        for candidate in container.layers
        if any(
            any(parent.operation is layer for parent in node.parent_nodes)
            for node in getattr(candidate, "_inbound_nodes", [])
        )
    ]


def parents(model: Any) -> dict[int, list[keras.Model]]:
    """``{id(layer): [models whose .layers hold it]}`` for every model nested in ``model``."""
    found: dict[int, list[keras.Model]] = {}
    for container in [model, *iter_layers(model)]:
        if isinstance(container, keras.Model):
            for child in container.layers:
                found.setdefault(id(child), []).append(container)
    return found


def next_layers(
    layer: Any,
    container: keras.Model,
    root: keras.Model,
    parent_map: dict[int, list[keras.Model]],
    unknown: list[str],
) -> list[Any]:
    """The layers fed by ``layer``'s output inside ``container``, then above it.

    A `Sequential` container gives the next layer; a graph model every layer
    whose recorded input is ``layer``'s output (`consumers`). When ``layer``
    is the container's output (a layer closing a nested backbone), the search
    continues with the layers that consume the container in its own parents
    (``parent_map``, from `parents`), up to ``root``. A subclassed container
    records no graph: its name goes into ``unknown``.
    """
    if isinstance(container, keras.Sequential):
        layers = container.layers
        index = next(i for i, la in enumerate(layers) if la is layer)
        nexts = layers[index + 1 : index + 2]
        is_output = index == len(layers) - 1
    elif is_graph(container):
        nexts = consumers(layer, container)
        is_output = any(producer(t)[0] is layer for t in container.outputs)
    else:
        unknown.append(container.name)
        return []
    if is_output and container is not root:
        for parent in parent_map.get(id(container), []):
            nexts = nexts + next_layers(container, parent, root, parent_map, unknown)
    return nexts


def named_layers(model: Any, wanted: Any, arg: str) -> list[Any]:
    """Resolve ``wanted`` (a layer, a layer name or a list of them) to layers inside ``model``.

    Raises:
        ValueError: an empty list, or a name / layer that is not in ``model``.
        TypeError: an item that is neither a layer nor a name.
    """
    inside = [la for la in iter_layers(model) if not isinstance(la, keras.layers.InputLayer)]
    items = wanted if isinstance(wanted, (list, tuple)) else [wanted]
    if not items:
        raise ValueError(f"`{arg}` must name at least one layer. Received: {arg}={wanted!r}")
    found = []
    for item in items:
        if isinstance(item, str):
            match = [la for la in inside if la.name == item]
        elif isinstance(item, keras.layers.Layer):
            match = [la for la in inside if la is item]
        else:
            raise TypeError(
                f"`{arg}` must be a layer, a layer name or a list of them. Received: {arg}={item!r}"
            )
        if not match:
            raise ValueError(
                f"`{arg}` must name layers of the model (available: {[la.name for la in inside]}). "
                f"Received: {arg}={getattr(item, 'name', item)!r}"
            )
        found.append(match[0])
    return found


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


class GraphNode(NamedTuple):
    """One layer call of a flattened model: ``layer`` maps the tensors ``inputs`` to ``output``."""

    layer: Any
    inputs: tuple[int, ...]
    output: int


class LayerGraph(NamedTuple):
    """A model flattened into layer calls (`graph_nodes`).

    ``nodes`` are in topological order (every node comes after the nodes that
    produce its inputs); tensors are numbered ``0, 1, ...``: the model's inputs
    are ``inputs`` (the first ids), ``outputs`` the ids of its outputs.
    """

    nodes: list[GraphNode]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _is_graph_model(layer: Any) -> bool:
    """A model whose layers `graph_nodes` expands: one with a graph (`is_graph`), or a
    `Sequential` (an unbuilt one is refused by name there)."""
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, keras.Model) and is_graph(layer)
    )


def _expand(model: Any, in_ids: tuple[int, ...], nodes: list[GraphNode], count: list[int]):
    if isinstance(model, keras.Sequential):
        current = in_ids
        for layer in model.layers:
            current = _call(layer, current, nodes, count)
        return current
    ids = {id(t): i for t, i in zip(model.inputs, in_ids)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or isinstance(node.operation, keras.layers.InputLayer):
                continue
            if any(id(t) not in ids for t in node.input_tensors):
                continue  # not computable from the inputs (as Keras skips it)
            outs = _call(
                node.operation, tuple(ids[id(t)] for t in node.input_tensors), nodes, count
            )
            if len(outs) != len(node.outputs):
                raise ValueError(
                    f"`model` must have layers with one output each. Received: layer "
                    f"{node.operation.name!r} ({type(node.operation).__name__}) with "
                    f"{len(node.outputs)} outputs"
                )
            ids.update({id(t): o for t, o in zip(node.outputs, outs)})
    return tuple(ids[id(t)] for t in model.outputs)


def _call(layer: Any, in_ids: tuple[int, ...], nodes: list[GraphNode], count: list[int]):
    if isinstance(layer, keras.layers.InputLayer):
        return in_ids
    if _is_graph_model(layer):
        return _expand(layer, in_ids, nodes, count)
    if isinstance(layer, keras.Model):
        raise ValueError(
            "`model` must be a Sequential or functional Keras model (nested ones too): a "
            f"subclassed model has no layer graph to walk. Received: a nested model "
            f"{layer.name!r} of class {type(layer).__name__}"
        )
    count[0] += 1
    nodes.append(GraphNode(layer, tuple(in_ids), count[0]))
    return (count[0],)


def graph_nodes(model: Any) -> LayerGraph:
    """Flatten a Sequential or functional model, nested models included, into layer calls.

    Each `GraphNode` is one call ``(layer, input ids, output id)``; nested
    Sequential and functional models are replaced by their own layers, and
    ``InputLayer`` s disappear (their tensor is the model input's). The nodes
    come in topological order, so a pass over ``nodes`` in order computes the
    model, and one in reverse order is a backward pass.

    Args:
        model: a built Sequential or functional Keras model.

    Returns:
        A `LayerGraph` ``(nodes, inputs, outputs)``.

    Raises:
        ValueError: ``model`` (or a model nested in it) is subclassed, is not
            built (no known inputs), or has a layer with several outputs.
        TypeError: ``model`` is not a Keras model.

    Example:

    >>> import keras
    >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.ReLU()])
    >>> x = keras.Input((3,))
    >>> model = keras.Model(x, keras.layers.Dense(2)(inner(x)))
    >>> graph = graph_nodes(model)
    >>> [(type(n.layer).__name__, n.inputs, n.output) for n in graph.nodes], graph.outputs
    ([('Dense', (0,), 1), ('ReLU', (1,), 2), ('Dense', (2,), 3)], (3,))
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
    if not _is_graph_model(model):
        raise ValueError(
            "`model` must be a Sequential or functional Keras model: a subclassed model "
            f"has no layer graph to walk. Received: model={model.name!r} of class "
            f"{type(model).__name__}"
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "`model` must be built with known inputs (`keras.Input(shape)` first, or call it "
            f"once). Received: model={model.name!r} without inputs"
        )
    nodes: list[GraphNode] = []
    in_ids = tuple(range(len(inputs)))
    count = [len(inputs) - 1]
    outputs = _expand(model, in_ids, nodes, count)
    return LayerGraph(nodes, in_ids, outputs)
