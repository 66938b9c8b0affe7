"""Per-layer learning-rate multipliers for any Keras optimizer, on every backend.

Keras 3 has no parameter groups. `with_lr_multipliers` wraps an optimizer so
that chosen variables move ``k`` times as far per step as the wrapped
optimizer would move them: after the inner optimizer's update
``delta = w_new - w_old``, a multiplied variable is set to
``w_old + k * delta``. For every stock optimizer whose step is proportional
to the learning rate (SGD with or without momentum, Adam, AdamW, Nadam,
Adamax, RMSprop, Adagrad, Lion...) this is exactly the update with learning
rate ``k * lr``, schedules included, and unlike scaling the gradient it also
works for Adam-family optimizers (whose step does not depend on the
gradient's scale). Decoupled weight decay is part of ``delta``, so it scales
with ``k`` too, like a per-group learning rate in PyTorch.

Why LPC needs it: as gamma rises, the latents shrink like ``1/sqrt(gamma)``,
so the output layer's weights must grow like ``sqrt(gamma / d)``; Adam moves a
weight by about one learning rate per step, and a small data set gives few
steps per epoch, so with one learning rate the head cannot keep up and
accuracy falls to chance. A 10-100x learning rate on the output layer
(`lpc_multipliers`) fixes it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from keras_lpc._models import iter_layers, named_layers, next_layers, parents
from keras_lpc._validation import check_float
from keras_lpc.layers import LatentPointCollapse

__all__ = ["LRMultiplierOptimizer", "lpc_multipliers", "with_lr_multipliers"]


def _canonical(multipliers: Any) -> dict[str, float]:
    """Turn a user mapping {layer | name | variable | pattern: factor} into {pattern: factor}."""
    # Keras variables are unhashable, so (key, factor) pairs are accepted too.
    pairs = list(multipliers.items()) if isinstance(multipliers, Mapping) else multipliers
    if (
        isinstance(multipliers, str)
        or not isinstance(pairs, (list, tuple))
        or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs)
    ):
        raise TypeError(
            "`multipliers` must be a mapping {layer, layer name or path pattern: factor} or a "
            f"list of (key, factor) pairs. Received: multipliers={multipliers!r}"
        )
    if not pairs:
        raise ValueError(
            f"`multipliers` must be a non-empty mapping. Received: multipliers={multipliers!r}"
        )
    out: dict[str, float] = {}
    for key, value in pairs:
        name = getattr(key, "name", key)
        factor = check_float(f"multipliers[{name!r}]", value, strictly_positive=True)
        if isinstance(key, keras.Variable):
            patterns = [key.path]
        elif isinstance(key, keras.layers.Layer):
            built = key.built and key.trainable_weights
            patterns = [v.path for v in key.trainable_weights] if built else [key.name]
        elif isinstance(key, str) and key.strip("/"):
            patterns = [key.strip("/")]
        else:
            raise TypeError(
                "`multipliers` keys must be layers, layer names, variables or variable path "
                f"patterns (non-empty str). Received: multipliers key={key!r}"
            )
        for pattern in patterns:
            out[pattern] = factor
    return out


def path_matches(pattern: str, path: str) -> bool:
    """Whether a multiplier key selects the variable at ``path``.

    A key with a glob character (``*``, ``?``, ``[``) matches when it matches
    the whole path or a ``/``-aligned suffix of it (``fnmatch`` rules). Any
    other key matches when its ``/``-separated components appear contiguously
    in the path: a layer name ``"dense_1"`` selects ``"seq/dense_1/kernel"``
    but not ``"dense_10/kernel"``.

    Args:
        pattern: layer name, variable path, path fragment or glob pattern.
        path: a variable's ``path``, e.g. ``"sequential/dense_1/kernel"``.

    Returns:
        True when ``pattern`` selects ``path``.

    Example:

    >>> path_matches("dense_1", "sequential/dense_1/kernel")
    True
    >>> path_matches("dense_1", "dense_10/kernel")
    False
    >>> path_matches("dense_*/bias", "model/dense_3/bias")
    True
    """
    parts = path.split("/")
    if any(c in pattern for c in "*?["):
        suffixes = ("/".join(parts[i:]) for i in range(len(parts)))
        return any(fnmatch.fnmatchcase(s, pattern) for s in suffixes)
    keys = pattern.split("/")
    n = len(keys)
    return any(parts[i : i + n] == keys for i in range(len(parts) - n + 1))


@keras.saving.register_keras_serializable(package="keras_lpc")
class LRMultiplierOptimizer(keras.optimizers.Optimizer):
    """Wraps an optimizer so that chosen variables use ``factor * learning_rate``.

    Each step runs the inner optimizer unchanged, then rescales the step of
    every multiplied variable ``w``::

        w_new = w_old + k * (inner_step(w_old) - w_old)

    which equals the inner optimizer's update at learning rate ``k * lr``
    (schedules and decoupled weight decay included, as in a PyTorch parameter
    group) for every optimizer whose step is linear in the learning rate.
    Variables that no key selects move as with the inner optimizer alone.
    Variable constraints are re-applied after rescaling. The learning rate,
    ``iterations`` and loss scaling are those of the inner optimizer.

    Args:
        inner_optimizer: a `keras.optimizers.Optimizer` instance (or
            identifier such as ``"adamw"``), without EMA.
        multipliers: mapping from a layer, a layer name, a variable path
            (fragment) or a glob pattern on ``variable.path`` (see
            `path_matches`) to a positive factor (dimensionless), or a list
            of ``(key, factor)`` pairs, where a key may also be a variable
            (Keras variables are unhashable). Layers and variables are stored
            by name/path so that the optimizer serializes.
        name: optional name.

    Raises:
        TypeError: ``multipliers`` is not a mapping, or a key or factor has
            the wrong type, or ``inner_optimizer`` is not an optimizer.
        ValueError: a factor is not positive and finite, ``multipliers`` is
            empty, the inner optimizer uses EMA; when built, a key selects no
            trainable variable or two keys give one variable different factors.

    Example:

    >>> import keras, numpy as np
    >>> w = keras.Variable(np.zeros(2, "float32"), name="w")
    >>> opt = LRMultiplierOptimizer(keras.optimizers.SGD(0.1), [(w, 10.0)])
    >>> opt.apply([keras.ops.ones(2)], [w])
    >>> np.round(keras.ops.convert_to_numpy(w), 4).tolist()
    [-1.0, -1.0]
    """

    def __init__(
        self,
        inner_optimizer: keras.optimizers.Optimizer | str,
        multipliers: Mapping[Any, float],
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            inner = keras.optimizers.get(inner_optimizer)
        except (ValueError, TypeError):  # an unknown name or config
            inner = None
        if not isinstance(inner, keras.optimizers.Optimizer) or isinstance(
            inner, (LRMultiplierOptimizer, keras.optimizers.LossScaleOptimizer)
        ):
            raise TypeError(
                "`inner_optimizer` must be a plain keras.optimizers.Optimizer (not already "
                f"wrapped). Received: inner_optimizer={inner_optimizer!r}"
            )
        if inner.use_ema:
            raise ValueError(
                "`inner_optimizer` must not use EMA (its averages would miss the rescaled "
                f"steps). Received: inner_optimizer={inner!r} with use_ema=True"
            )
        if kwargs:
            raise TypeError(
                "`LRMultiplierOptimizer` takes no base optimizer arguments; set them on the "
                f"inner optimizer. Received: kwargs={sorted(kwargs)}"
            )
        factors = _canonical(multipliers)
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner
        self._multipliers = factors
        self._factor_by_key: dict[int, float] = {}

    @property
    def multipliers(self) -> dict[str, float]:
        """The multipliers as ``{path pattern: factor}`` (a copy)."""
        return dict(self._multipliers)

    def build(self, var_list: list[keras.Variable]) -> None:
        """Resolve the multiplier keys on ``var_list`` and build the inner optimizer."""
        chosen: dict[int, tuple[str, float]] = {}
        for pattern, factor in self._multipliers.items():
            hits = [v for v in var_list if path_matches(pattern, v.path)]
            if not hits:
                paths = ", ".join(v.path for v in var_list)
                raise ValueError(
                    "`multipliers` keys must each select a trainable variable (a layer name, "
                    f"a variable path or a glob on variable.path; the paths are: {paths}). "
                    f"Received: multipliers key={pattern!r}"
                )
            for v in hits:
                key = self._var_key(v)
                if key in chosen and chosen[key][1] != factor:
                    raise ValueError(
                        "`multipliers` must give each variable one factor. Received: "
                        f"multipliers keys {chosen[key][0]!r} and {pattern!r} for {v.path!r}"
                    )
                chosen[key] = (pattern, factor)
        self._factor_by_key = {k: f for k, (_, f) in chosen.items() if f != 1.0}
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self) -> list[keras.Variable]:
        return self._variables + self.inner_optimizer.variables

    def apply(self, grads: list[Any], trainable_variables: list[keras.Variable] | None = None):
        """Apply the inner optimizer, then rescale the steps of multiplied variables."""
        if not self.built:
            if trainable_variables is None:
                raise ValueError(
                    "`trainable_variables` must be given on the first call, to build the "
                    "optimizer. Received: trainable_variables=None"
                )
            with keras.name_scope(self.name, caller=self):
                self.build(list(trainable_variables))
        variables = (
            self._trainable_variables if trainable_variables is None else trainable_variables
        )
        scaled = []
        for v in variables:
            factor = self._factor_by_key.get(self._var_key(v))
            if factor is not None:
                scaled.append((v, factor, ops.copy(ops.stop_gradient(v))))
        self.inner_optimizer.apply(grads, trainable_variables)
        for v, factor, old in scaled:
            step = ops.subtract(ops.stop_gradient(v), old)
            new = ops.add(old, ops.multiply(step, ops.cast(factor, step.dtype)))
            if v.constraint is not None:
                new = v.constraint(new)
            v.assign(new)

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> keras.Variable:
        return self.inner_optimizer.iterations

    def scale_loss(self, loss: Any) -> Any:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: list[keras.Variable]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "multipliers": dict(self._multipliers),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None):
        config = dict(config)
        # keras.optimizers.deserialize maps built-in names ("Adam") to the
        # current backend's class: a file saved under torch records the
        # torch-only module of its optimizer, which other backends cannot use.
        inner = keras.optimizers.deserialize(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)


def with_lr_multipliers(
    optimizer: keras.optimizers.Optimizer | str, multipliers: Mapping[Any, float]
) -> LRMultiplierOptimizer:
    """Give chosen layers or variables a learning-rate multiplier, for any optimizer.

    Returns `LRMultiplierOptimizer(optimizer, multipliers)`: a selected
    variable's step is ``factor`` times the step the optimizer would take,
    i.e. it trains at learning rate ``factor * lr`` (dimensionless factor).

    Args:
        optimizer: a Keras optimizer instance or identifier (``"adamw"``).
        multipliers: ``{layer | layer name | path pattern: factor}`` with
            positive factors, e.g. ``{"dense_2": 10.0}`` or
            ``lpc_multipliers(model)``; or ``[(key, factor), ...]`` pairs,
            whose keys may also be variables.

    Returns:
        The wrapping optimizer, to pass to ``model.compile``.

    Raises:
        TypeError, ValueError: see `LRMultiplierOptimizer`.

    Example:

    >>> import keras
    >>> opt = with_lr_multipliers(keras.optimizers.AdamW(1e-3), {"dense_2/*": 10.0})
    >>> opt.multipliers
    {'dense_2/*': 10.0}
    """
    return LRMultiplierOptimizer(optimizer, multipliers)


def lpc_multipliers(model: keras.Model, factor: float = 10.0, head: Any = None) -> dict[str, float]:
    """Learning-rate multipliers for the layer(s) fed by the model's LPC output.

    Finds every `LatentPointCollapse` layer of ``model``, nested models
    included (the search `GammaAnnealing` uses), and the layers that consume
    its output: in a `Sequential` model the next layer, in a functional
    model every layer whose recorded input is the LPC output; when the LPC
    layer is the output of a nested model (a backbone), the layers that
    consume that model in the enclosing one. Weightless layers (activations,
    dropout, pooling) are looked through. Returns ``{layer name: factor}``,
    meant for `with_lr_multipliers`: the output layer must grow like
    ``sqrt(gamma / d)`` as gamma rises; 10-100 works on small data sets.

    A subclassed model's ``call`` records no graph, so which layer reads the
    latents cannot be known there: name it with ``head``.

    Args:
        model: a built or unbuilt Keras model containing a LatentPointCollapse.
        factor: learning-rate multiplier of the head, a positive number.
        head: ``None`` (find the head), or the layer(s) fed by the LPC
            output: a layer, a layer name or a list of them.

    Returns:
        ``{layer name: factor}``.

    Raises:
        TypeError: ``model`` is not a Keras model, ``factor`` not a number,
            or ``head`` not layers/names.
        ValueError: ``factor`` is not positive, the model has no
            LatentPointCollapse layer, ``head`` names no layer of the model,
            or nothing with weights follows the LPC layer (for a subclassed
            model, the message says to pass ``head``).

    Example:

    >>> import keras, keras_lpc
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="backbone"),
    ...     keras_lpc.LatentPointCollapse(dim=2), keras.layers.Dense(3, name="head")])
    >>> lpc_multipliers(model, factor=10)
    {'head': 10.0}
    >>> lpc_multipliers(model, factor=10, head="backbone")  # named: taken as given
    {'backbone': 10.0}
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
    factor = check_float("factor", factor, strictly_positive=True)
    names = [la.name for la in model.layers]
    sources = [la for la in iter_layers(model) if isinstance(la, LatentPointCollapse)]
    if not sources:
        raise ValueError(
            "`model` must contain a LatentPointCollapse layer among its layers. "
            f"Received: model={model.name!r} with layers {names}"
        )
    if head is not None:
        return {la.name: factor for la in named_layers(model, head, "head")}
    parent_map = parents(model)
    heads: dict[str, float] = {}
    unknown: list[str] = []
    frontier = [(la, parent) for la in sources for parent in parent_map.get(id(la), [])]
    seen = {id(la) for la in sources}
    while frontier:
        layer, container = frontier.pop()
        for nxt in next_layers(layer, container, model, parent_map, unknown):
            if id(nxt) in seen:
                continue
            seen.add(id(nxt))
            if nxt.trainable_weights or not nxt.built:
                heads[nxt.name] = factor
            else:
                frontier.extend((nxt, parent) for parent in parent_map.get(id(nxt), []))
    if not heads and unknown:
        lpc = sources[0].name
        raise ValueError(
            f"`head` must be given for a subclassed model: its call() records no graph, so the "
            f"layer that reads {lpc!r} cannot be found; pass it, e.g. "
            f"lpc_multipliers(model, factor, head='<layer name>'). Received: head=None for "
            f"model={model.name!r} with layers {names}"
        )
    if not heads:
        raise ValueError(
            "`model` must have a layer with weights after its LatentPointCollapse layer. "
            f"Received: model={model.name!r} with layers {names}"
        )
    return heads
