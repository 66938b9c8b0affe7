"""`keras_lpc.annealing.drive`: gamma computed in the train step from the optimizer's steps.

Every backend: the count advances once per optimizer step, whatever the
number of calls of a shared layer or ``steps_per_execution`` (with a
remainder); inference advances nothing; the variables stay float32 under
mixed precision; manual assignments and the release after ``fit``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import schedules as S
from keras_lpc.layers import LatentPointCollapse

TORCH = keras.backend.backend() == "torch"


def _np(v):
    return float(keras.ops.convert_to_numpy(v))


class _Gammas(keras.callbacks.Callback):
    """The layer's gamma after every train step (read through `self.model`)."""

    def __init__(self, name="lpc"):
        super().__init__()
        self.name, self.values = name, []

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(_np(self.model.get_layer(self.name).gamma))


def _data(n, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype("float32"), rng.integers(0, 2, n)


def _compile(model, **kwargs):
    model.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **kwargs,
    )
    return model


def _shared(shared):
    inp = keras.Input((4,))
    first = LatentPointCollapse(2, name="lpc")
    second = first if shared else LatentPointCollapse(2, name="other")
    merged = keras.layers.Concatenate()([first(inp), second(inp)])
    return keras.Model(inp, keras.layers.Dense(2)(merged))


def test_variables_are_float32_non_trainable_and_off_by_default():
    layer = LatentPointCollapse(dim=2, gamma=1.5)
    names = [
        "gamma",
        "annealing_count",
        "annealing_origin",
        "annealing_step",
        "annealing_rate",
        "annealing_scale",
        "annealing_on",
    ]
    own = layer._trainable_variables + layer._non_trainable_variables
    assert [v.name for v in own] == names  # saved in this order: "0" is gamma, as before
    assert all(v.dtype == "float32" and not v.trainable for v in own)
    assert [_np(v) for v in own] == [1.5, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    view = layer.annealing
    assert (view.schedule, view.on, view.count, view.resume) == (None, False, 0.0, None)
    # not driven: a training call uses gamma as it is and advances nothing
    x = np.ones((2, 3), "float32")
    layer(x, training=True)
    assert _np(layer.losses[0]) == pytest.approx(
        1.5 * np.mean(keras.ops.convert_to_numpy(layer(x)) ** 2)
    )
    assert layer.annealing.count == 0.0 and layer.annealing.step == 0.0


@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_a_shared_layer_counts_each_step_once(steps_per_execution):
    if TORCH and steps_per_execution > 1:
        pytest.skip("Keras' torch trainer requires steps_per_execution=1")
    x, y = _data(64)
    schedule = S.Linear(0.0, 1000.0, 1000)
    results = {}
    for shared in (True, False):
        model = _compile(_shared(shared), steps_per_execution=steps_per_execution)
        seen = _Gammas()
        cb = keras_lpc.GammaAnnealing(schedule)
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[cb, seen])
        layer = model.get_layer("lpc")
        results[shared] = (layer.annealing.count, _np(layer.gamma), seen.values)
    # 16 steps: the last one used count 15, gamma 15; the count reached 16
    assert results[True][:2] == pytest.approx((16.0, 15.0))
    assert results[True][:2] == pytest.approx(results[False][:2])
    if steps_per_execution == 1:
        np.testing.assert_allclose(results[True][2], np.arange(16.0), rtol=1e-6)


def test_steps_per_execution_with_a_remainder_counts_the_steps_taken():
    if TORCH:
        pytest.skip("Keras' torch trainer requires steps_per_execution=1")
    x, y = _data(45 * 2)  # 45 steps of 2 per epoch: 5 executions of 8, then one of 5
    histories, counts = {}, {}
    for k in (1, 8):
        model = _compile(
            keras.Sequential(
                [keras.Input((4,)), LatentPointCollapse(2, name="lpc"), keras.layers.Dense(2)]
            ),
            steps_per_execution=k,
        )
        cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 1000.0, 1000))
        histories[k] = model.fit(
            x, y, batch_size=2, epochs=3, shuffle=False, verbose=0, callbacks=[cb]
        )
        counts[k] = model.get_layer("lpc").annealing.count
    assert counts[1] == counts[8] == 135.0
    np.testing.assert_allclose(histories[8].history["gamma"], [44.0, 89.0, 134.0], rtol=1e-6)
    assert histories[8].history["gamma"] == histories[1].history["gamma"]
    assert histories[8].history["gamma_count"] == [44.0, 89.0, 134.0]


def test_the_penalty_of_each_step_follows_the_schedule_under_steps_per_execution():
    """lr=0: each step's loss is CE + gamma_step * mean(z^2); the epoch's loss is their mean."""
    if TORCH:
        pytest.skip("Keras' torch trainer requires steps_per_execution=1")
    block = np.random.default_rng(1).normal(size=(4, 4)).astype("float32")
    x, y = np.concatenate([block] * 8), np.zeros(32, dtype="int64")
    model = keras.Sequential(
        [keras.Input((4,)), LatentPointCollapse(2, name="lpc"), keras.layers.Dense(2)]
    )
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=4,
    )
    cb = keras_lpc.GammaAnnealing(S.Exponential(1.0, 2.0, 1, 1e3))
    h = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    lpc = model.get_layer("lpc")
    z = keras.ops.convert_to_numpy(lpc(block)).astype(np.float64)
    logits = keras.ops.convert_to_numpy(model(block)).astype(np.float64)
    ce = np.mean(np.log(np.exp(logits).sum(1)) - logits[:, 0])
    gammas = 2.0 ** np.arange(8)
    assert h.history["loss"][0] == pytest.approx(ce + gammas.mean() * np.mean(z**2), rel=2e-4)
    assert _np(lpc.gamma) == 128.0


def test_inference_does_not_advance_the_count():
    x, y = _data(16)
    model = _compile(
        keras.Sequential(
            [keras.Input((4,)), LatentPointCollapse(2, name="lpc"), keras.layers.Dense(2)]
        )
    )
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 100.0, steps=100))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[cb], validation_data=(x, y))
    lpc = model.get_layer("lpc")
    assert lpc.annealing.count == 4.0
    model.predict(x, verbose=0)
    model.evaluate(x, y, verbose=0)
    model(x, training=False)
    assert lpc.annealing.count == 4.0 and _np(lpc.gamma) == 3.0


class _Assign(keras.callbacks.Callback):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def on_train_batch_begin(self, batch, logs=None):
        self.model.get_layer("lpc").gamma.assign(self.value)


def test_manual_assignment_while_driven_is_overwritten_and_after_fit_is_used():
    x, y = _data(16)
    model = _compile(
        keras.Sequential(
            [keras.Input((4,)), LatentPointCollapse(2, name="lpc"), keras.layers.Dense(2)]
        )
    )
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 100.0, steps=100))
    seen = _Gammas()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[_Assign(55.0), cb, seen])
    np.testing.assert_allclose(seen.values, [0.0, 1.0, 2.0, 3.0])  # the schedule's, not 55
    # Released after fit, the count kept: a later fit without GammaAnnealing uses gamma as is.
    lpc = model.get_layer("lpc")
    assert (lpc.annealing.on, lpc.annealing.count, lpc.annealing.rate) == (False, 4.0, 0.0)
    seen = _Gammas()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[_Assign(55.0), seen])
    assert seen.values == [55.0] * 4
    assert lpc.annealing.count == 4.0


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_in_graph_schedule_under_mixed_precision_stays_float32(policy):
    keras.config.set_dtype_policy(policy)
    x, y = _data(16)
    model = _compile(
        keras.Sequential(
            [keras.Input((4,)), LatentPointCollapse(2, name="lpc"), keras.layers.Dense(3)]
        )
    )
    # 3e5 does not fit in float16: the count, the scale and gamma must not be autocast
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 1e5 * 100, steps=100))
    model.fit(x, y % 3, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    lpc = model.get_layer("lpc")
    assert lpc.gamma.dtype == "float32"
    # mixed_float16's loss scaling skips the steps whose gradients overflow: the optimizer
    # does not count them (TensorFlow, torch read its steps; JAX counts the epoch's train
    # steps and resynchronises at the next epoch)
    gamma = _np(lpc.gamma)
    if policy == "mixed_bfloat16" or keras.backend.backend() == "jax":
        assert gamma == 3e5 and lpc.annealing.count == 4.0
    else:
        assert gamma in (0.0, 1e5, 2e5, 3e5) and lpc.annealing.count <= 4.0


def test_the_write_methods_set_what_the_view_reads():
    layer = LatentPointCollapse(2, name="lpc")
    steps = keras.Variable(10, dtype="int64", trainable=False)
    assert layer.drive(S.Linear(0.0, 10.0, 10), steps) is True
    assert layer.drive(S.Linear(0.0, 10.0, 10), steps) is False  # equal schedule: no retrace
    layer.set_annealing(count=3.0, origin=10.0, rate=0.5, scale=2.0)
    view = layer.annealing
    assert (view.on, view.count, view.rate, view.scale, view.step) == (True, 3.0, 0.5, 2.0, 10.0)
    layer(np.ones((1, 4), "float32"), training=True)  # step 10: count 3, gamma Linear(6) = 6
    assert _np(layer.gamma) == pytest.approx(6.0) and layer.annealing.count == 3.5
    layer.release()
    assert (layer.annealing.on, layer.annealing.count, layer.annealing.rate) == (False, 3.5, 0.0)
    with pytest.warns(DeprecationWarning, match="layer.annealing.resume"):
        assert layer.annealing_state is None
