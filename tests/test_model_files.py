"""Model files: the 3x3 cross-backend matrix, and checkpoints keeping gamma.

The matrix is covered by checked-in fixtures written under each backend by
tests/data/make_cross_backend_fixtures.py: an LPC model annealed to gamma
37.5, compiled with `with_lr_multipliers`, after 6 Adam steps, twice over.
tests/data/lpc_v3_<backend>.keras is the current format (gamma computed in
the train step from the optimizer's steps, six annealing variables, the state
saved by name); lpc_v2_<backend>.keras has the earlier four annealing
variables and lpc_<backend>.keras none (gamma alone, the state as a 9-float
array): both must keep loading. This file loads all nine under the backend it
runs on. Run under the three backends, that is every saving backend x every
loading backend, without starting a process per pair (each costs a Keras
import, several seconds); a same-backend save made now is covered by
tests/test_layers.py. Optimizer state crosses backends too: one more step
on the loaded model lands on the weights the saving backend computed.

A file records the saving backend's resolved ``jit_compile`` (True under
JAX); loaded under torch that means `torch.compile`, about two minutes for
the first step of this tiny model on 2 CPU cores instead of 0.3 s. The test
sets ``model.jit_compile = None`` (re-resolve "auto" for the loading
backend), as users moving files between backends should.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc.layers import AnnealingState, EpochState
from keras_lpc.optimizers import LRMultiplierOptimizer

DATA = Path(__file__).resolve().parent / "data"
BACKENDS = ("tensorflow", "jax", "torch")
ANNEALING = (
    "annealing_count",
    "annealing_origin",
    "annealing_step",
    "annealing_rate",
    "annealing_scale",
    "annealing_on",
)
NEW_IN_V3 = ("annealing_origin", "annealing_step")


def _released(lpc, count):
    """The layer's annealing as a file saved after `fit` holds it: count kept, schedule off."""
    view = lpc.annealing
    assert (view.on, view.count, view.rate, view.scale) == (False, count, 0.0, 1.0)


def _np(t):
    return keras.ops.convert_to_numpy(t)


@pytest.mark.parametrize("saved_under", BACKENDS)
def test_fixture_saved_under_any_backend_loads_with_same_predictions_gamma_and_state(saved_under):
    expected = np.load(DATA / f"lpc_{saved_under}.npz")
    assert str(expected["backend"]) == saved_under
    model = keras.saving.load_model(DATA / f"lpc_{saved_under}.keras", safe_mode=True)
    lpc = model.get_layer("lpc")
    assert isinstance(lpc, keras_lpc.LatentPointCollapse)
    assert float(_np(lpc.gamma)) == 37.5 == float(expected["gamma"])
    x = expected["x"]
    np.testing.assert_allclose(
        _np(model(x, training=False)), expected["y_pred"], rtol=1e-5, atol=1e-6
    )
    (penalty,) = model.losses
    np.testing.assert_allclose(float(_np(penalty)), float(expected["penalty"]), rtol=1e-5)
    # The penalty is gamma * mean(z ** 2) of the loaded layer's own output.
    z = _np(lpc(model.get_layer("body")(x))).astype(np.float64)
    np.testing.assert_allclose(float(expected["penalty"]), 37.5 * np.mean(z**2), rtol=1e-5)
    # GammaAnnealing's resume state, from the file's 9-float array: epoch 2 started at
    # count 2, epoch 3 starts at count 3, neither held, best accuracies as saved.
    old = expected["annealing_state"]
    assert lpc.annealing.resume == AnnealingState(
        EpochState(2, 2.0, float(old[2]), 1.0), EpochState(3, 3.0, float(old[6]), 1.0), 1
    )
    # The variables the file predates load at their defaults: the schedule is off.
    _released(lpc, 0.0)

    optimizer = model.optimizer
    assert isinstance(optimizer, LRMultiplierOptimizer)
    assert optimizer.multipliers == {"head": 10.0}
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.Adam)
    assert int(_np(optimizer.iterations)) == int(expected["iterations"]) == 6
    model.jit_compile = None  # this backend's "auto", not the saving backend's choice
    model.fit(
        expected["x_step"], expected["y_step"], batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    # The weights the file has, in its order (the annealing variables are new).
    weights = [_np(v) for v in model.weights if v.name not in ANNEALING]
    assert len(weights) == 7
    for i, weight in enumerate(weights):
        np.testing.assert_allclose(weight, expected[f"next_{i}"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("saved_under", BACKENDS)
def test_v2_fixture_saved_under_any_backend_loads_its_annealing_variables_and_state(saved_under):
    """Files with the in-graph annealing variables and the named state (lpc_v2_*)."""
    expected = np.load(DATA / f"lpc_v2_{saved_under}.npz")
    assert str(expected["backend"]) == saved_under
    model = keras.saving.load_model(DATA / f"lpc_v2_{saved_under}.keras", safe_mode=True)
    lpc = model.get_layer("lpc")
    assert float(_np(lpc.gamma)) == 37.5 == float(expected["gamma"])
    x = expected["x"]
    np.testing.assert_allclose(
        _np(model(x, training=False)), expected["y_pred"], rtol=1e-5, atol=1e-6
    )
    # 3 epochs of 2 steps annealed in the step: the count is 6, released after fit.
    _released(lpc, 6.0)
    assert float(expected["annealing_count"]) == 6.0
    entries = {k: expected[k] for k in expected.files if k.startswith("annealing_state")}
    assert lpc.annealing.resume == AnnealingState.from_entries(entries)
    assert lpc.annealing.resume == AnnealingState(
        EpochState(2, 4.0, -np.inf, 1.0), EpochState(3, 6.0, -np.inf, 1.0), 2, 1.0
    )
    assert int(_np(model.optimizer.iterations)) == 6
    model.jit_compile = None
    model.fit(
        expected["x_step"], expected["y_step"], batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    assert float(_np(lpc.gamma)) == 37.5  # not driven: used as it is
    # the file's weights: 7 trained ones and its four annealing variables, in its order
    weights = [_np(v) for v in model.weights if v.name not in NEW_IN_V3]
    assert len(weights) == 11
    for i, weight in enumerate(weights):
        np.testing.assert_allclose(weight, expected[f"next_{i}"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("saved_under", BACKENDS)
def test_v3_fixture_saved_under_any_backend_loads_its_annealing_variables_and_state(saved_under):
    """Files of today's format (lpc_v3_*): six annealing variables, the state by name."""
    expected = np.load(DATA / f"lpc_v3_{saved_under}.npz")
    assert str(expected["backend"]) == saved_under
    model = keras.saving.load_model(DATA / f"lpc_v3_{saved_under}.keras", safe_mode=True)
    lpc = model.get_layer("lpc")
    assert float(_np(lpc.gamma)) == 37.5 == float(expected["gamma"])
    np.testing.assert_allclose(
        _np(model(expected["x"], training=False)), expected["y_pred"], rtol=1e-5, atol=1e-6
    )
    _released(lpc, 6.0)
    assert lpc.annealing.step == 6.0 == float(expected["annealing_count"])
    entries = {k: expected[k] for k in expected.files if k.startswith("annealing_state")}
    assert lpc.annealing.resume == AnnealingState.from_entries(entries)
    assert lpc.annealing.resume.next == EpochState(3, 6.0, -np.inf, 1.0)
    assert int(_np(model.optimizer.iterations)) == 6
    model.jit_compile = None
    model.fit(
        expected["x_step"], expected["y_step"], batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    weights = model.get_weights()
    assert len(weights) == 13  # 7 trained weights + the six annealing variables
    for i, weight in enumerate(weights):
        np.testing.assert_allclose(weight, expected[f"next_{i}"], rtol=1e-4, atol=1e-6)


def test_fixtures_are_small():
    for backend in BACKENDS:
        for name in (f"lpc_{backend}", f"lpc_v2_{backend}", f"lpc_v3_{backend}"):
            for suffix in (".keras", ".npz"):
                assert (DATA / f"{name}{suffix}").stat().st_size < 100_000


def _build():
    return keras.Sequential(
        [keras.Input((4,)), keras_lpc.LatentPointCollapse(2, name="lpc"), keras.layers.Dense(2)]
    )


def _annealed_model_and_files(tmp_path, rng):
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 2, size=16)
    model = _build()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Listed before GammaAnnealing: each file holds the gamma of the epoch just trained.
    checkpoints = [
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "w{epoch}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "m{epoch}.keras")),
    ]
    annealing = keras_lpc.GammaAnnealing(
        keras_lpc.schedules.Exponential(1.0, 2.0, 1, 8.0), unit="epoch"
    )
    history = model.fit(
        x, y, batch_size=8, epochs=3, verbose=0, callbacks=[*checkpoints, annealing]
    )
    assert history.history["gamma"] == [1.0, 2.0, 4.0]
    return model, x


@pytest.mark.parametrize("kind", ["weights", "full"])
def test_model_checkpoint_files_keep_gamma_and_annealing_state(kind, tmp_path, rng):
    model, x = _annealed_model_and_files(tmp_path, rng)
    for epoch, gamma in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        if kind == "weights":
            loaded = _build()  # fresh variables: gamma 0
            assert float(_np(loaded.get_layer("lpc").gamma)) == 0.0
            loaded.load_weights(tmp_path / f"w{epoch}.weights.h5")
        else:
            loaded = keras.saving.load_model(tmp_path / f"m{epoch}.keras", safe_mode=True)
        lpc = loaded.get_layer("lpc")
        assert float(_np(lpc.gamma)) == gamma
        # The epoch just trained (epoch - 1) and the next one, at counts epoch - 1 and epoch.
        state = lpc.annealing.resume
        assert (state.current.epoch, state.current.count) == (epoch - 1, epoch - 1)
        assert (state.next.epoch, state.next.count) == (epoch, epoch)
        assert state.counts_per_epoch == 1 and state.next.rate == 1.0
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_annealing_state_is_not_a_weight_and_files_without_it_load(tmp_path, rng):
    model, _ = _annealed_model_and_files(tmp_path, rng)
    lpc = model.get_layer("lpc")
    # projection kernel and bias, gamma and the four annealing variables; no state
    assert sorted(v.name for v in lpc.weights) == sorted(["kernel", "bias", "gamma", *ANNEALING])
    assert lpc.annealing.resume is not None
    plain = _build()  # never annealed (gamma 0): saves no state
    plain.save_weights(tmp_path / "plain.weights.h5")
    model.load_weights(tmp_path / "plain.weights.h5")  # replaces the state with none
    assert model.get_layer("lpc").annealing.resume is None
    assert float(_np(model.get_layer("lpc").gamma)) == 0.0


def test_step_annealing_state_and_variables_are_saved_by_name_and_resume(tmp_path, rng):
    h5py = pytest.importorskip("h5py")
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 2, size=16)
    model = _build()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    schedule = keras_lpc.schedules.Linear(0.0, 100.0, steps=100)
    annealing = keras_lpc.GammaAnnealing(schedule)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[annealing])
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r") as f:
        (group,) = [g for name, g in f["layers"].items() if name.startswith("latent_point")]
        keys = set(group["vars"].keys())
    assert {"0", "1", "2", "3", "4", "5", "6"} <= keys  # gamma and the six annealing variables
    assert {
        "annealing_state.current.epoch",
        "annealing_state.current.count",
        "annealing_state.next.count",
        "annealing_state.next.rate",
        "annealing_state.counts_per_epoch",
        "annealing_state.scale",
    } <= keys
    loaded = _build()
    loaded.load_weights(path)
    lpc = loaded.get_layer("lpc")
    assert lpc.annealing.resume == model.get_layer("lpc").annealing.resume
    assert lpc.annealing.resume.next == EpochState(2, 8.0, -np.inf, 1.0)
    assert float(_np(lpc.gamma)) == 7.0  # the last step's
    _released(lpc, 8.0)
    # going on from the file with initial_epoch continues the count: steps 8..11
    loaded.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.GammaAnnealing(schedule)
    history = loaded.fit(x, y, batch_size=4, epochs=3, initial_epoch=2, verbose=0, callbacks=[cb])
    assert history.history["gamma_count"] == [11.0]
    assert float(_np(lpc.gamma)) == 11.0
