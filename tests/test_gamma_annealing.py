"""GammaAnnealing: pacing to the run, per-step/per-epoch updates, holds, resume, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import schedules as S


def _model(nested=False):
    core = keras.Sequential([keras.Input((4,)), keras_lpc.LatentPointCollapse(2, name="lpc")])
    if nested:
        return keras.Sequential([keras.Input((4,)), core, keras.layers.Dense(2)])
    return keras.Sequential(
        [keras.Input((4,)), keras_lpc.LatentPointCollapse(2, name="lpc"), keras.layers.Dense(2)]
    )


def _compiled(nested=False, lr=0.0):
    model = _model(nested)
    model.compile(
        keras.optimizers.SGD(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 2, n)


class _Gammas(keras.callbacks.Callback):
    """Reads gamma from the layer itself after every train step."""

    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        lpc = keras_lpc._models.find_lpc_layers(self.model)[0]
        self.values.append(float(keras.ops.convert_to_numpy(lpc.gamma)))


def test_epoch_unit_writes_gamma_to_history_and_layer():
    x, y = _data()
    model = _compiled(nested=True)
    cb = keras_lpc.GammaAnnealing(
        S.Exponential(1.0, 2.0, 1, 8.0), unit="epoch", pace=False, hold_monitor=None
    )
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[cb])
    assert history.history["gamma"] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert history.history["gamma_count"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert (
        float(keras.ops.convert_to_numpy(keras_lpc._models.find_lpc_layers(model)[0].gamma)) == 8.0
    )


@pytest.mark.parametrize(("epochs", "batch_size"), [(4, 4), (10, 8)])
def test_paced_default_reaches_its_maximum_at_ramp_fraction_of_any_run(epochs, batch_size):
    x, y = _data(16)
    steps = 16 // batch_size
    total = epochs * steps
    model = _compiled()
    cb = keras_lpc.GammaAnnealing(ramp_fraction=0.5, hold_monitor=None, max_gamma=1e3)
    seen = _Gammas()
    model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0, callbacks=[cb, seen]
    )
    schedule = keras_lpc.callbacks.default_schedule()
    expected = [schedule(n * schedule.span / (0.5 * total)) for n in range(total)]
    np.testing.assert_allclose(seen.values, expected, rtol=1e-6)
    assert seen.values[total // 2] == pytest.approx(schedule.stop)
    assert seen.values[0] == pytest.approx(schedule.start)


def test_unpaced_step_unit_uses_the_global_step():
    x, y = _data(16)
    model = _compiled()
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 100.0, steps=100), pace=False, hold_monitor=None)
    seen = _Gammas()
    model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[cb, seen])
    np.testing.assert_allclose(seen.values, np.arange(12.0))


def test_resume_with_initial_epoch_reproduces_the_trajectory():
    x, y = _data(16)
    full, first, second = _Gammas(), _Gammas(), _Gammas()
    kwargs = dict(batch_size=4, shuffle=False, verbose=0)
    _compiled().fit(
        x, y, epochs=6, callbacks=[keras_lpc.GammaAnnealing(hold_monitor=None), full], **kwargs
    )
    model = _compiled()
    model.fit(
        x, y, epochs=3, callbacks=[keras_lpc.GammaAnnealing(hold_monitor=None), first], **kwargs
    )
    # A new run that only knows it resumes at epoch 3 of 6.
    model.fit(
        x,
        y,
        epochs=6,
        initial_epoch=3,
        callbacks=[keras_lpc.GammaAnnealing(hold_monitor=None), second],
        **kwargs,
    )
    # The first, shorter run paces to 3 epochs; the resumed one to all 6, like the full run.
    np.testing.assert_allclose(second.values, full.values[12:], rtol=1e-7)


def test_keras_learning_rate_schedule_and_plain_callable_are_accepted():
    x, y = _data(8)
    lr_like = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=1, decay_rate=2.0)
    for schedule, expected in [(lr_like, [1.0, 2.0, 4.0]), (lambda n: 3.0 * n, [0.0, 3.0, 6.0])]:
        model = _compiled()
        cb = keras_lpc.GammaAnnealing(schedule, unit="epoch", hold_monitor=None)
        h = model.fit(x, y, epochs=3, verbose=0, callbacks=[cb])
        np.testing.assert_allclose(h.history["gamma"], expected, rtol=1e-6)


def _drive(cb, model, accuracies, steps=3):
    """Run the callback's hooks by hand with a scripted training accuracy."""
    cb.set_model(model)
    cb.set_params({"epochs": len(accuracies), "steps": steps, "verbose": 0})
    cb.on_train_begin()
    counts = []
    for epoch, acc in enumerate(accuracies):
        cb.on_epoch_begin(epoch)
        for batch in range(steps):
            cb.on_train_batch_begin(batch)
            counts.append(cb.count_at(batch))
            cb.on_train_batch_end(batch, {"accuracy": acc} if batch + 1 < steps else {})
        logs = {"accuracy": acc}
        cb.on_epoch_end(epoch, logs)
    return counts


def test_hold_freezes_the_count_while_accuracy_is_below_the_fraction_of_its_best():
    model = _model()
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 1.0, 100), pace=False, hold_fraction=0.8)
    counts = _drive(cb, model, [0.5, 0.9, 0.6, 0.7, 0.85, 0.95])
    # epochs 0,1 advance; epoch 1 ends at 0.9 (best); epoch 2 ends at 0.6 < 0.72 -> hold during
    # epoch 3; epoch 3 ends at 0.7 < 0.72 -> hold during epoch 4; 0.85 recovers -> epoch 5 advances.
    expected = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 10, 11]
    assert counts == expected


def test_hold_warns_once_and_is_disabled_when_the_metric_is_missing():
    model = _model()
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 1.0, 100), pace=False, hold_monitor="f1")
    with pytest.warns(UserWarning, match="hold_monitor"):
        counts = _drive(cb, model, [0.9, 0.1, 0.1], steps=2)
    assert counts == [0, 1, 2, 3, 4, 5]


def test_layers_argument_selects_layers():
    inp = keras.Input((4,))
    a = keras_lpc.LatentPointCollapse(2, name="a")(inp)
    b = keras_lpc.LatentPointCollapse(2, name="b")(a)
    model = keras.Model(inp, keras.layers.Dense(2)(b))
    model.compile(
        keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = _data(8)
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[keras_lpc.GammaAnnealing(5.0, layers=["b"], hold_monitor=None)],
    )
    assert float(keras.ops.convert_to_numpy(model.get_layer("a").gamma)) == 0.0
    assert float(keras.ops.convert_to_numpy(model.get_layer("b").gamma)) == 5.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"unit": "batch"},
            ValueError,
            r"`unit` must be one of 'step', 'epoch'. Received: unit='batch'",
        ),
        ({"schedule": "exp"}, TypeError, r"`schedule` must be .* Received: schedule='exp'"),
        (
            {"ramp_fraction": 1.5},
            ValueError,
            r"`ramp_fraction` must be in \(0, 1\]. Received: ramp_fraction=1.5",
        ),
        (
            {"hold_fraction": -0.1},
            ValueError,
            r"`hold_fraction` must be a number >= 0. Received: hold_fraction=-0.1",
        ),
        (
            {"pace": "yes"},
            ValueError,
            r"`pace` must be one of 'auto', True, False. Received: pace='yes'",
        ),
        (
            {"pace": True, "schedule": lambda n: n},
            ValueError,
            r"`pace=True` needs a schedule with a finite `span`",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        keras_lpc.GammaAnnealing(**kwargs)


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        (
            lambda n: -1.0,
            r"`schedule` must return a finite number >= 0. Received: schedule\(0.0\)=-1.0",
        ),
        (lambda n: float("nan"), r"Received: schedule\(0.0\)=nan"),
    ],
)
def test_schedule_returning_a_bad_value_fails_in_fit(schedule, match):
    x, y = _data(8)
    model = _compiled()
    with pytest.raises(ValueError, match=match):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[keras_lpc.GammaAnnealing(schedule, hold_monitor=None)],
        )


def test_model_without_lpc_layer_is_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = _data(8)
    with pytest.raises(
        ValueError, match=r"`model` must contain at least one keras_lpc.LatentPointCollapse layer"
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_lpc.GammaAnnealing()])


def test_gamma_budget_formula_by_hand():
    budget = keras_lpc.callbacks.gamma_budget
    assert budget(4500, 1e-3) == pytest.approx(1e3)
    assert budget(675, 1e-3) == pytest.approx(22.5)
    assert budget(675, 1e-3, multiplier=10.0) == pytest.approx(2250.0)
    assert budget(0, 1e-3) == 0.0


@pytest.mark.parametrize(
    ("lr", "multiplier", "expected"),
    [
        (1e-3, None, 1e3 * (1e-3 * 40 / 4.5) ** 2),  # 0.079 -> the 0.1 floor
        (0.05, None, 1e3 * (0.05 * 40 / 4.5) ** 2),  # 197.5
        (0.05, 4.0, 1e3),  # 3160 -> the 1e3 ceiling
    ],
)
def test_default_maximum_is_the_budget_of_the_run(lr, multiplier, expected):
    x, y = _data(16)
    model = _model()
    optimizer = keras.optimizers.Adam(lr)
    if multiplier:
        optimizer = keras_lpc.optimizers.with_lr_multipliers(
            optimizer, {model.layers[-1]: multiplier}
        )
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.GammaAnnealing(hold_monitor=None)
    seen = _Gammas()
    h = model.fit(x, y, epochs=10, batch_size=4, verbose=0, callbacks=[cb, seen])  # 40 steps
    expected = min(max(expected, 0.1), 1e3)
    assert cb.max_gamma_used == pytest.approx(expected)
    assert h.history["gamma"][-1] == pytest.approx(expected)
    # Polynomial(0, m, power 2) paced to end at 0.95 * 40 = 38 steps
    assert seen.values[38] == pytest.approx(expected)
    assert seen.values[19] == pytest.approx(expected * (19 / 38) ** 2)
    assert seen.values[0] == 0.0


def test_max_gamma_number_replaces_the_budget():
    x, y = _data(16)
    model = _compiled()
    cb = keras_lpc.GammaAnnealing(hold_monitor=None, max_gamma=50.0)
    h = model.fit(x, y, epochs=4, batch_size=4, verbose=0, callbacks=[cb])
    assert cb.max_gamma_used == 50.0
    # 16 steps; the ramp ends at 0.95 * 16 = 15.2, so the last step (15) is just short of it
    assert h.history["gamma"][-1] == pytest.approx(50.0 * (15 / 15.2) ** 2)
    assert keras_lpc.GammaAnnealing(**cb.get_config()).max_gamma == 50.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"schedule": 3.0, "max_gamma": 10.0},
            ValueError,
            "`max_gamma` applies to the default schedule only",
        ),
        ({"max_gamma": "big"}, ValueError, "`max_gamma` must be 'auto' or a number > 0"),
        ({"max_gamma": -1.0}, ValueError, "max_gamma"),
    ],
)
def test_bad_max_gamma(kwargs, error, match):
    with pytest.raises(error, match=match):
        keras_lpc.GammaAnnealing(**kwargs)


# --------------------------------------------------------------- in the train step
def _lpc(model):
    return keras_lpc._models.find_lpc_layers(model)[0]


def _gamma(model):
    return float(keras.ops.convert_to_numpy(_lpc(model).gamma))


@pytest.mark.parametrize("steps_per_execution", [1, 8])
def test_gamma_after_fit_is_the_schedule_at_the_last_step_whatever_steps_per_execution(
    steps_per_execution,
):
    x, y = _data(64)  # 16 steps of 4 per epoch, 2 executions of 8
    model = _model()
    schedule = S.Linear(0.0, 100.0, steps=100)
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
    )
    cb = keras_lpc.GammaAnnealing(schedule, pace=False, hold_monitor=None)
    fit = dict(batch_size=4, epochs=3, shuffle=False, verbose=0, callbacks=[cb])
    if keras.backend.backend() == "torch" and steps_per_execution > 1:
        with pytest.raises(ValueError, match="`steps_per_execution` must be 1"):
            model.fit(x, y, **fit)  # Keras' torch trainer refuses k > 1 itself
        return
    history = model.fit(x, y, **fit)
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    assert steps == 48
    # gamma of the last step (count 47) = 47; the count has advanced past it.
    assert _gamma(model) == pytest.approx(schedule(steps - 1), rel=1e-6)
    assert float(keras.ops.convert_to_numpy(_lpc(model).annealing_count)) == steps
    assert history.history["gamma"] == [15.0, 31.0, 47.0]
    assert history.history["gamma_count"] == [15.0, 31.0, 47.0]


def test_per_step_penalty_follows_the_schedule_under_steps_per_execution():
    """lr=0: each step's loss is CE + gamma_step * mean(z^2), read from the logged running mean."""
    if keras.backend.backend() == "torch":
        pytest.skip("Keras' torch trainer requires steps_per_execution=1")
    rng = np.random.default_rng(1)
    block = rng.normal(size=(4, 4)).astype("float32")
    x, y = np.concatenate([block] * 8), np.zeros(32, dtype="int64")
    model = _model()
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=4,
    )
    cb = keras_lpc.GammaAnnealing(S.Exponential(1.0, 2.0, 1, 1e3), pace=False, hold_monitor=None)
    h = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    z = keras.ops.convert_to_numpy(_lpc(model)(block)).astype(np.float64)
    logits = keras.ops.convert_to_numpy(model(block)).astype(np.float64)
    ce = np.mean(np.log(np.exp(logits).sum(1)) - logits[:, 0])
    gammas = 2.0 ** np.arange(8)
    # The epoch's loss is the mean of the 8 steps' losses.
    assert h.history["loss"][0] == pytest.approx(ce + gammas.mean() * np.mean(z**2), rel=2e-4)
    assert _gamma(model) == 128.0


class _TouchCounter(keras_lpc.GammaAnnealing):
    """Counts the callback's accesses to `self.model` inside the per-batch hooks."""

    def __init__(self, *args, **kwargs):
        self.in_batch = False
        self.touches = 0
        super().__init__(*args, **kwargs)

    @property
    def model(self):
        if self.in_batch:
            self.touches += 1
        return self._model

    def on_train_batch_begin(self, batch, logs=None):
        self.in_batch = True
        super().on_train_batch_begin(batch, logs)
        self.in_batch = False

    def on_train_batch_end(self, batch, logs=None):
        self.in_batch = True
        super().on_train_batch_end(batch, logs)
        self.in_batch = False


def test_no_python_assignment_per_step_with_a_keras_lpc_schedule():
    x, y = _data(16)
    model = _compiled()
    cb = _TouchCounter(S.Linear(0.0, 12.0, steps=12), pace=False, hold_monitor=None)
    seen = _Gammas()
    model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[cb, seen])
    assert cb.touches == 0
    np.testing.assert_allclose(seen.values, np.arange(12.0), rtol=1e-6)
    # A plain callable cannot run in the step: it is assigned from Python, step by step.
    python = _TouchCounter(lambda n: float(n), pace=False, hold_monitor=None)
    seen = _Gammas()
    model = _compiled()
    model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0, callbacks=[python, seen])
    assert python.touches == 8
    np.testing.assert_allclose(seen.values, np.arange(8.0))


def test_plain_callable_under_steps_per_execution_warns():
    if keras.backend.backend() == "torch":
        pytest.skip("Keras' torch trainer requires steps_per_execution=1")
    x, y = _data(16)
    model = _model()
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=2
    )
    cb = keras_lpc.GammaAnnealing(lambda n: float(n), pace=False, hold_monitor=None)
    with pytest.warns(UserWarning, match="gamma changes once per execution"):
        model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[cb])


def test_inference_does_not_advance_the_count():
    x, y = _data(16)
    model = _compiled()
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 100.0, steps=100), pace=False, hold_monitor=None)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[cb], validation_data=(x, y))
    lpc = _lpc(model)
    assert float(keras.ops.convert_to_numpy(lpc.annealing_count)) == 4.0
    model.predict(x, verbose=0)
    model.evaluate(x, y, verbose=0)
    model(x, training=False)
    assert float(keras.ops.convert_to_numpy(lpc.annealing_count)) == 4.0
    assert _gamma(model) == 3.0


class _Assign(keras.callbacks.Callback):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def on_train_batch_begin(self, batch, logs=None):
        self.model.get_layer("lpc").gamma.assign(self.value)


def test_manual_assignment_while_driven_is_overwritten_and_after_fit_is_used():
    x, y = _data(16)
    model = _compiled()
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 100.0, steps=100), pace=False, hold_monitor=None)
    seen = _Gammas()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[_Assign(55.0), cb, seen])
    np.testing.assert_allclose(seen.values, [0.0, 1.0, 2.0, 3.0])  # the schedule's, not 55
    # Released after fit: a later fit without GammaAnnealing uses the assigned gamma.
    seen = _Gammas()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[_Assign(55.0), seen])
    assert seen.values == [55.0] * 4
    assert float(keras.ops.convert_to_numpy(_lpc(model).annealing_count)) == 4.0


def test_second_fit_continues_the_schedule_count_instead_of_restarting():
    x, y = _data(16)
    model = _compiled()
    kwargs = dict(batch_size=4, shuffle=False, verbose=0)
    first, second = _Gammas(), _Gammas()
    model.fit(
        x,
        y,
        epochs=2,
        callbacks=[keras_lpc.GammaAnnealing(max_gamma=100.0, hold_monitor=None), first],
        **kwargs,
    )
    # 8 steps paced to end at 7.6: step 7 is 100 * (7 / 7.6) ** 2
    assert first.values[-1] == pytest.approx(100.0 * (7 / 7.6) ** 2, rel=1e-6)
    model.fit(
        x,
        y,
        epochs=4,
        callbacks=[keras_lpc.GammaAnnealing(max_gamma=100.0, hold_monitor=None), second],
        **kwargs,
    )
    # The new run (16 steps, ramp end 15.2) starts at the same schedule count, 8 / 7.6 of
    # the ramp: past its end, so gamma stays at 100 instead of going back to 0.
    assert second.values == pytest.approx([100.0] * 16, rel=1e-6)
    state = _lpc(model).annealing_state
    assert state.next.epoch == 4
    assert state.scale == pytest.approx(1000.0 / 15.2)


def test_second_fit_continues_a_ramp_in_progress():
    x, y = _data(16)
    model = _compiled()
    kwargs = dict(batch_size=4, shuffle=False, verbose=0)
    schedule = S.Linear(0.0, 100.0, steps=100)
    seen = _Gammas()
    model.fit(
        x,
        y,
        epochs=2,
        callbacks=[keras_lpc.GammaAnnealing(schedule, pace=False, hold_monitor=None)],
        **kwargs,
    )
    model.fit(
        x,
        y,
        epochs=2,
        callbacks=[keras_lpc.GammaAnnealing(schedule, pace=False, hold_monitor=None), seen],
        **kwargs,
    )
    np.testing.assert_allclose(seen.values, np.arange(8.0, 16.0), rtol=1e-6)


def test_unknown_length_warns_and_explains_steps_per_epoch():
    x, y = _data(16)
    model = _compiled()

    def batches():
        for i in range(0, 16, 4):
            yield x[i : i + 4], y[i : i + 4]

    with pytest.warns(UserWarning, match="steps_per_epoch"):
        model.fit(batches(), epochs=1, verbose=0, callbacks=[keras_lpc.GammaAnnealing()])


def test_gamma_starting_above_the_budget_warns():
    x, y = _data(16)
    model = _model()
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    with pytest.warns(UserWarning, match="gamma starts at 1e\\+06, above this run's budget"):
        model.fit(
            x, y, epochs=1, batch_size=4, verbose=0, callbacks=[keras_lpc.GammaAnnealing(1e6)]
        )
    with pytest.warns(UserWarning, match="gamma=1e\\+06 from the first step"):
        keras_lpc.LatentPointCollapse(2, gamma=1e6)


# ----------------------------------------------------------------------- the hold
def _rates(cb, values, monitor="accuracy", steps=2):
    """Scripted epochs: the count of every step and the logged gamma_holding."""
    cb.set_model(_model())
    cb.set_params({"epochs": len(values), "steps": steps, "verbose": 0})
    cb.on_train_begin()
    counts, holding = [], []
    for epoch, value in enumerate(values):
        cb.on_epoch_begin(epoch)
        for batch in range(steps):
            counts.append(cb.count_at(batch))
            cb.on_train_batch_end(batch, {})
        logs = {monitor: value}
        cb.on_epoch_end(epoch, logs)
        holding.append(logs.get("gamma_holding"))
    return counts, holding


def test_hold_in_min_mode_on_a_loss_with_min_delta():
    cb = keras_lpc.GammaAnnealing(
        S.Linear(0.0, 1.0, 100),
        pace=False,
        hold_monitor="loss",
        hold_fraction=0.8,
        hold_min_delta=0.05,
    )
    assert cb._mode() == "min"
    # best: 1.0, then 0.5; 0.47 is not better by more than 0.05, so best stays 0.5 and
    # 0.65 > 0.5 / 0.8 = 0.625 holds; 0.6 recovers.
    _, holding = _rates(cb, [1.0, 0.5, 0.47, 0.65, 0.6], monitor="loss")
    assert holding == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert cb._best == 0.5


def test_hold_works_when_accuracy_was_never_above_chance():
    # 3 classes: chance is 1/3. The accuracy never rises, so the fraction of its best never
    # triggers; the baseline holds while it is below chance.
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 1.0, 100), pace=False)
    cb.set_model(
        keras.Sequential(
            [keras.Input((4,)), keras_lpc.LatentPointCollapse(2), keras.layers.Dense(3)]
        )
    )
    cb.set_params({"epochs": 4, "steps": 2, "verbose": 0})
    cb.on_train_begin()
    assert cb._baseline == pytest.approx(1 / 3)
    counts = []
    for epoch, acc in enumerate([0.30, 0.31, 0.35, 0.30]):
        cb.on_epoch_begin(epoch)
        for batch in range(2):
            counts.append(cb.count_at(batch))
            cb.on_train_batch_end(batch, {})
        cb.on_epoch_end(epoch, {"accuracy": acc})
    assert counts == [0, 1, 2, 2, 2, 2, 2, 3]
    without = keras_lpc.GammaAnnealing(S.Linear(0.0, 1.0, 100), pace=False, hold_baseline=None)
    counts, _ = _rates(without, [0.30, 0.31, 0.35, 0.30])
    assert counts == [0, 1, 2, 3, 4, 5, 6, 7]


class _HalfSpeed(keras_lpc.GammaAnnealing):
    """A per-epoch rule: half speed after an epoch below 0.9 accuracy; counts its calls."""

    def _next_rate(self, epoch, logs):
        self.policy_state["calls"] = self.policy_state.get("calls", 0.0) + 1.0
        return 0.5 if logs["accuracy"] < 0.9 else 1.0


def test_the_per_epoch_rule_sets_the_next_rate_and_its_state_is_saved():
    cb = _HalfSpeed(S.Linear(0.0, 1.0, 100), pace=False)
    counts, holding = _rates(cb, [0.95, 0.5, 0.95], steps=4)
    assert counts == [0, 1, 2, 3, 4, 5, 6, 7, 8, 8.5, 9, 9.5]
    assert holding == [0.0, 0.5, 0.0]
    state = _lpc(cb.model).annealing_state
    assert state.next == keras_lpc.layers.EpochState(3, 10.0, -np.inf, 1.0, {"calls": 3.0})
    assert state.current.rate == 0.5 and state.counts_per_epoch == 4


def test_a_rule_returning_a_rate_outside_0_1_is_an_error():
    class Bad(keras_lpc.GammaAnnealing):
        def _next_rate(self, epoch, logs):
            return 2.0

    with pytest.raises(ValueError, match=r"`_next_rate` must return a number in \[0, 1\]"):
        _rates(Bad(S.Linear(0.0, 1.0, 100)), [0.9])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hold_mode": "up"}, ValueError, r"`hold_mode` must be one of 'auto', 'max', 'min'"),
        ({"hold_min_delta": -1.0}, ValueError, r"`hold_min_delta` must be a number >= 0"),
        ({"hold_baseline": "chance"}, ValueError, r"`hold_baseline` must be 'auto', None"),
    ],
)
def test_bad_hold_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        keras_lpc.GammaAnnealing(**kwargs)


def test_policy_helpers_are_re_exported_from_the_callback_module():
    from keras_lpc.callbacks import gamma_annealing

    assert gamma_annealing.default_schedule is S.default_schedule
    assert gamma_annealing.gamma_budget is S.gamma_budget
    assert keras_lpc.callbacks.default_schedule is S.default_schedule


def test_a_custom_training_loop_gets_gamma_assigned_from_python():
    """No fit, so no train function: the callback assigns gamma before every step."""
    x, _ = _data(4)
    model = _model()
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 100.0, steps=100), pace=False, hold_monitor=None)
    hooks = keras.callbacks.CallbackList([cb], model=model, epochs=1, steps=3, verbose=0)
    hooks.on_train_begin()
    hooks.on_epoch_begin(0)
    gammas = []
    for step in range(3):
        hooks.on_train_batch_begin(step)
        model(x)  # the loop's forward pass, without training=True
        gammas.append(_gamma(model))
        hooks.on_train_batch_end(step, {})
    hooks.on_epoch_end(0, {})
    hooks.on_train_end()
    assert gammas == [0.0, 1.0, 2.0]
    assert float(keras.ops.convert_to_numpy(_lpc(model).annealing_on)) == 0.0
