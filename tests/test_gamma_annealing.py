"""`GammaAnnealing`: the wiring between `fit` and the annealing package, on every backend.

The per-epoch decisions are tested without a model in tests/test_run.py,
the in-graph count in tests/test_drive.py; here: the schedule followed as
written, the default recipe (budget, stretch, policies, recorded
trajectories), resume and later fits, Python callables, async dispatch,
the deprecated arguments and the errors.
"""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import schedules as S
from keras_lpc.annealing import Hold, TrainingPace


def _model(nested=False, classes=2):
    if nested:
        core = keras.Sequential([keras.Input((4,)), keras_lpc.LatentPointCollapse(2, name="lpc")])
        return keras.Sequential([keras.Input((4,)), core, keras.layers.Dense(classes)])
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras_lpc.LatentPointCollapse(2, name="lpc"),
            keras.layers.Dense(classes),
        ]
    )


def _compiled(nested=False, lr=0.0, classes=2):
    model = _model(nested, classes)
    model.compile(
        keras.optimizers.SGD(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 2, n)


def _lpc(model):
    return keras_lpc._models.find_lpc_layers(model)[0]


def _gamma(model):
    return float(keras.ops.convert_to_numpy(_lpc(model).gamma))


class _Gammas(keras.callbacks.Callback):
    """Reads gamma from the layer itself after every train step."""

    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(_gamma(self.model))


FIT = dict(batch_size=4, shuffle=False, verbose=0)


# ------------------------------------------------------------ an explicit schedule
def test_an_explicit_schedule_is_followed_exactly_as_written():
    x, y = _data(16)
    seen = _Gammas()
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 1000.0, 1000))
    assert cb.policies == [] and cb.ramp_fraction is None
    history = _compiled().fit(x, y, epochs=4, callbacks=[cb, seen], **FIT)
    np.testing.assert_allclose(seen.values, np.arange(16.0), rtol=1e-6)
    assert history.history["gamma_count"] == [3.0, 7.0, 11.0, 15.0]
    assert "gamma_holding" not in history.history


def test_epoch_unit_writes_gamma_to_history_and_layer():
    x, y = _data()
    model = _compiled(nested=True)
    cb = keras_lpc.GammaAnnealing(S.Exponential(1.0, 2.0, 1, 8.0), unit="epoch")
    history = model.fit(x, y, epochs=5, callbacks=[cb], **FIT)
    assert history.history["gamma"] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert history.history["gamma_count"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert _gamma(model) == 8.0


def test_ramp_fraction_stretches_a_schedule_to_any_run():
    x, y = _data(16)
    for epochs, batch_size in [(4, 4), (10, 8)]:
        steps = 16 // batch_size
        total = epochs * steps
        schedule = S.Linear(0.0, 10.0, steps=1000)
        seen = _Gammas()
        cb = keras_lpc.GammaAnnealing(schedule, ramp_fraction=0.5)
        fit = dict(FIT, batch_size=batch_size)
        _compiled().fit(x, y, epochs=epochs, callbacks=[cb, seen], **fit)
        expected = [schedule(n * 1000 / (0.5 * total)) for n in range(total)]
        np.testing.assert_allclose(seen.values, expected, rtol=1e-6)
        assert seen.values[total // 2] == pytest.approx(10.0)


def test_keras_learning_rate_schedule_and_plain_callable_are_accepted():
    x, y = _data(8)
    lr_like = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=1, decay_rate=2.0)
    for schedule, expected in [(lr_like, [1.0, 2.0, 4.0]), (lambda n: 3.0 * n, [0.0, 3.0, 6.0])]:
        cb = keras_lpc.GammaAnnealing(schedule, unit="epoch")
        h = _compiled().fit(x, y, epochs=3, verbose=0, callbacks=[cb])
        np.testing.assert_allclose(h.history["gamma"], expected, rtol=1e-6)


def test_layers_argument_selects_layers():
    inp = keras.Input((4,))
    a = keras_lpc.LatentPointCollapse(2, name="a")(inp)
    b = keras_lpc.LatentPointCollapse(2, name="b")(a)
    model = keras.Model(inp, keras.layers.Dense(2)(b))
    model.compile(
        keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = _data(8)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_lpc.GammaAnnealing(5.0, layers=["b"])])
    assert float(keras.ops.convert_to_numpy(model.get_layer("a").gamma)) == 0.0
    assert float(keras.ops.convert_to_numpy(model.get_layer("b").gamma)) == 5.0


# ------------------------------------------------------------ the default recipe
RECORDED = json.loads(
    (pathlib.Path(__file__).parent / "data" / "annealing_trajectories.json").read_text()
)
# The configurations recorded before the redesign (commit deaa82b), in today's arguments.
RECORDED_CONFIGS = {
    "default": {},
    "default_max50": {"max_gamma": 50.0},
    "default_epoch": {"unit": "epoch"},
    "explicit_paced_stretched": {
        "schedule": S.Linear(0.0, 100.0, 40),
        "ramp_fraction": 0.5,
        "policy": [Hold(), TrainingPace()],
    },
    "explicit_hold": {"schedule": S.Linear(0.0, 100.0, 1000), "policy": Hold(fraction=0.9)},
}


class _Script(keras.callbacks.Callback):
    """Writes the recorded scripted training accuracy into the epoch's logs (listed first)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["accuracy"] = RECORDED["accuracies"][epoch]


@pytest.mark.parametrize("name", sorted(RECORDED_CONFIGS))
def test_the_recorded_trajectories_are_reproduced(name):
    """Per-step gamma and per-epoch logs equal those of the earlier implementation."""
    expected, steps = RECORDED["scenarios"][name], RECORDED["steps"]
    x = np.random.default_rng(0).normal(size=(4 * steps, 4)).astype("float32")
    seen = _Gammas()
    history = _compiled(lr=0.05, classes=3).fit(
        x,
        np.arange(4 * steps) % 3,
        epochs=len(RECORDED["accuracies"]),
        callbacks=[_Script(), keras_lpc.GammaAnnealing(**RECORDED_CONFIGS[name]), seen],
        **FIT,
    )
    np.testing.assert_allclose(seen.values, expected["gamma"], rtol=2e-6, atol=1e-6)
    for key in ("gamma", "gamma_count", "gamma_holding"):
        want = [logs[key] for logs in expected["logs"]]
        np.testing.assert_allclose(history.history[key], want, rtol=2e-6, atol=1e-6, err_msg=key)


def test_the_default_recipe_chooses_its_policies_and_ramp():
    default = keras_lpc.GammaAnnealing()
    assert [type(p) for p in default.policies] == [Hold, TrainingPace]
    assert default.ramp_fraction == 0.7
    clock = keras_lpc.GammaAnnealing(policy=None)
    assert clock.policies == [] and clock.ramp_fraction == 0.95
    held = keras_lpc.GammaAnnealing(policy=Hold())
    assert held.ramp_fraction == 0.95
    paced = keras_lpc.GammaAnnealing(S.Linear(0.0, 1.0, 10), policy=TrainingPace())
    assert paced.ramp_fraction is None and isinstance(paced.policies[0], TrainingPace)


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
    cb = keras_lpc.GammaAnnealing(policy=None)
    seen = _Gammas()
    h = model.fit(x, y, epochs=10, batch_size=4, verbose=0, callbacks=[cb, seen])  # 40 steps
    expected = min(max(expected, 0.1), 1e3)
    assert cb.max_gamma_used == pytest.approx(expected)
    assert h.history["gamma"][-1] == pytest.approx(expected)
    # Polynomial(0, m, power 2) stretched to end at 0.95 * 40 = 38 steps
    assert seen.values[38] == pytest.approx(expected)
    assert seen.values[19] == pytest.approx(expected * (19 / 38) ** 2)
    assert seen.values[0] == 0.0


def test_max_gamma_number_replaces_the_budget():
    x, y = _data(16)
    cb = keras_lpc.GammaAnnealing(policy=None, max_gamma=50.0)
    h = _compiled().fit(x, y, epochs=4, batch_size=4, verbose=0, callbacks=[cb])
    assert cb.max_gamma_used == 50.0
    # 16 steps: 0.95 * 16 = 15.2 is past the last step, so the ramp ends at step 15
    assert h.history["gamma"] == pytest.approx(
        [50.0 * (3 / 15) ** 2, 50.0 * (7 / 15) ** 2, 50.0 * (11 / 15) ** 2, 50.0]
    )


# ------------------------------------------------------------ resume and later fits
def test_resume_with_initial_epoch_reproduces_the_trajectory():
    x, y = _data(16)
    full, first, second = _Gammas(), _Gammas(), _Gammas()
    _compiled().fit(x, y, epochs=6, callbacks=[keras_lpc.GammaAnnealing(policy=None), full], **FIT)
    model = _compiled()
    model.fit(x, y, epochs=3, callbacks=[keras_lpc.GammaAnnealing(policy=None), first], **FIT)
    # A new run that only knows it resumes at epoch 3 of 6.
    model.fit(
        x,
        y,
        epochs=6,
        initial_epoch=3,
        callbacks=[keras_lpc.GammaAnnealing(policy=None), second],
        **FIT,
    )
    # The first, shorter run stretches to 3 epochs; the resumed one to all 6, like the full run.
    np.testing.assert_allclose(second.values, full.values[12:], rtol=1e-6)


def test_second_fit_continues_the_schedule_count_instead_of_restarting():
    x, y = _data(16)
    model = _compiled()
    first, second = _Gammas(), _Gammas()
    model.fit(
        x,
        y,
        epochs=2,
        callbacks=[keras_lpc.GammaAnnealing(max_gamma=100.0, policy=None), first],
        **FIT,
    )
    # 8 steps stretched to end at min(7.6, 7): step 7 reaches 100, step 6 is 100 * (6 / 7) ** 2
    assert first.values[-2:] == pytest.approx([100.0 * (6 / 7) ** 2, 100.0], rel=1e-6)
    model.fit(
        x,
        y,
        epochs=4,
        callbacks=[keras_lpc.GammaAnnealing(max_gamma=100.0, policy=None), second],
        **FIT,
    )
    # The new run (16 steps, ramp end 15) starts at the same schedule count, 8 / 7 of
    # the ramp: past its end, so gamma stays at 100 instead of going back to 0.
    assert second.values == pytest.approx([100.0] * 16, rel=1e-6)
    state = _lpc(model).annealing.resume
    assert state.next.epoch == 4 and state.scale == pytest.approx(1000.0 / 15.0)


def test_second_fit_continues_a_ramp_in_progress():
    x, y = _data(16)
    model = _compiled()
    schedule = S.Linear(0.0, 100.0, steps=100)
    seen = _Gammas()
    model.fit(x, y, epochs=2, callbacks=[keras_lpc.GammaAnnealing(schedule)], **FIT)
    model.fit(x, y, epochs=2, callbacks=[keras_lpc.GammaAnnealing(schedule), seen], **FIT)
    np.testing.assert_allclose(seen.values, np.arange(8.0, 16.0), rtol=1e-6)


# ------------------------------------------------------------ Python, dispatch, custom loops
def test_no_per_batch_hook_keeps_keras_async_dispatch_on():
    x, y = _data(8)
    cb = keras_lpc.GammaAnnealing()
    collapse = keras_lpc.CollapseMetrics((x, y))
    assert keras.src.utils.python_utils.is_default(keras_lpc.GammaAnnealing.on_train_batch_end)
    assert keras.src.utils.python_utils.is_default(keras_lpc.GammaAnnealing.on_train_batch_begin)
    with_ours = keras.callbacks.CallbackList([cb, collapse])
    assert with_ours._async_train == keras.callbacks.CallbackList([])._async_train


def test_a_plain_callable_is_assigned_from_python_before_every_step():
    x, y = _data(16)
    python = keras_lpc.GammaAnnealing(lambda n: float(n))
    seen = _Gammas()
    _compiled().fit(x, y, epochs=2, callbacks=[python, seen], **FIT)
    np.testing.assert_allclose(seen.values, np.arange(8.0))
    assert "on_train_batch_begin" not in python.__dict__  # removed after fit


def test_plain_callable_under_steps_per_execution_warns():
    if keras.backend.backend() == "torch":
        pytest.skip("Keras' torch trainer requires steps_per_execution=1")
    x, y = _data(16)
    model = _model()
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=2
    )
    with pytest.warns(UserWarning, match="gamma changes once per execution"):
        model.fit(
            x,
            y,
            epochs=1,
            batch_size=4,
            verbose=0,
            callbacks=[keras_lpc.GammaAnnealing(lambda n: float(n))],
        )


def test_a_custom_training_loop_gets_gamma_assigned_from_python():
    """No fit, so no train function: the callback assigns gamma before every step."""
    x, _ = _data(4)
    model = _model()
    cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 100.0, steps=100))
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
    assert not _lpc(model).annealing.on


def test_verbose_prints_gamma_at_every_epoch(capsys):
    x, y = _data(8)
    cb = keras_lpc.GammaAnnealing(S.Constant(2.5), verbose=1)
    _compiled().fit(x, y, epochs=2, callbacks=[cb], **FIT)
    out = capsys.readouterr().out
    assert "Epoch 1: GammaAnnealing sets gamma to 2.5" in out and "Epoch 2:" in out


# ------------------------------------------------------------ warnings and errors
def test_unknown_length_warns_and_explains_steps_per_epoch():
    x, y = _data(16)

    def batches():
        for i in range(0, 16, 4):
            yield x[i : i + 4], y[i : i + 4]

    with pytest.warns(UserWarning, match="steps_per_epoch"):
        _compiled().fit(batches(), epochs=1, verbose=0, callbacks=[keras_lpc.GammaAnnealing()])


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
    with pytest.raises(ValueError, match=match):
        _compiled().fit(x, y, epochs=1, verbose=0, callbacks=[keras_lpc.GammaAnnealing(schedule)])


def test_model_without_lpc_layer_is_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = _data(8)
    with pytest.raises(
        ValueError, match=r"`model` must contain at least one keras_lpc.LatentPointCollapse"
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_lpc.GammaAnnealing()])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"unit": "batch"},
            ValueError,
            r"`unit` must be one of 'step', 'epoch'. Received: unit='batch'",
        ),
        ({"schedule": "exp"}, TypeError, r"`schedule` must be .* Received: schedule='exp'"),
        ({"schedule": True}, TypeError, r"`schedule` must be a schedule, a number or a callable"),
        (
            {"ramp_fraction": 1.5},
            ValueError,
            r"`ramp_fraction` must be in \(0, 1\]. Received: ramp_fraction=1.5",
        ),
        (
            {"ramp_fraction": "late"},
            ValueError,
            r"`ramp_fraction` must be 'auto', None or a number",
        ),
        (
            {"schedule": lambda n: n, "ramp_fraction": 0.5},
            ValueError,
            r"`ramp_fraction` stretches a schedule that settles",
        ),
        (
            {"policy": "fast"},
            TypeError,
            r"`policy` must be 'auto', None, a keras_lpc.annealing.Policy",
        ),
        ({"policy": [Hold(), 3]}, TypeError, r"Received: policy=\[Hold"),
        (
            {"schedule": 3.0, "max_gamma": 10.0},
            ValueError,
            "`max_gamma` applies to the default schedule only",
        ),
        ({"max_gamma": "big"}, ValueError, "`max_gamma` must be 'auto' or a number > 0"),
        ({"max_gamma": -1.0}, ValueError, "max_gamma"),
        ({"hold_fraction": 0.5, "policy": None}, ValueError, r"`policy` replaces the deprecated"),
        (
            {"colour": "red"},
            TypeError,
            r"unexpected keyword argument 'colour'. Received: colour='red'",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        keras_lpc.GammaAnnealing(**kwargs)


# ------------------------------------------------------------ deprecated forms, config
@pytest.mark.parametrize(
    ("kwargs", "policies", "ramp_fraction"),
    [
        ({"pace": False, "hold_monitor": None}, [], None),
        ({"pace": True, "schedule": S.Linear(0.0, 1.0, 10)}, [], 0.95),
        ({"hold_fraction": 0.5, "schedule": 2.0}, [Hold], None),
        ({"pacing": None}, [Hold], 0.95),
        ({"hold_monitor": None}, [], 0.95),
        ({"pacing": {"fast": 0.1}, "schedule": S.Linear(0.0, 1.0, 10)}, [TrainingPace], 0.7),
        ({"hold_monitor": "loss", "pacing": None}, [Hold], 0.95),
    ],
)
def test_deprecated_flat_arguments_become_policies(kwargs, policies, ramp_fraction):
    with pytest.warns(DeprecationWarning, match="are deprecated; pass policy="):
        cb = keras_lpc.GammaAnnealing(**kwargs)
    assert [type(p) for p in cb.policies] == policies
    assert cb.ramp_fraction == ramp_fraction


def test_deprecated_positional_arguments_still_work():
    with pytest.warns(DeprecationWarning, match="passing unit by position is deprecated"):
        cb = keras_lpc.GammaAnnealing(S.Linear(0.0, 1.0, 10), "epoch")
    assert cb.unit == "epoch"
    with pytest.raises(TypeError, match="got `unit` both by position and by keyword"):
        keras_lpc.GammaAnnealing(2.0, "epoch", unit="step")


def test_config_round_trip():
    cb = keras_lpc.GammaAnnealing(
        S.Linear(0.0, 5.0, 10),
        policy=[Hold(fraction=0.5), TrainingPace(fast=0.1)],
        ramp_fraction=0.8,
    )
    again = keras_lpc.GammaAnnealing(**cb.get_config())
    assert again.schedule == cb.schedule and again.ramp_fraction == 0.8
    assert [p.get_config() for p in again.policies] == [p.get_config() for p in cb.policies]
    default = keras_lpc.GammaAnnealing(**keras_lpc.GammaAnnealing(max_gamma=50.0).get_config())
    assert default.max_gamma == 50.0 and len(default.policies) == 2


def test_policy_helpers_are_re_exported():
    assert keras_lpc.callbacks.default_schedule is S.default_schedule
    assert keras_lpc.callbacks.TrainingPace is TrainingPace and keras_lpc.callbacks.Hold is Hold
