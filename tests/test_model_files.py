"""Model files: the 3x3 cross-backend matrix, and checkpoints keeping gamma.

The matrix is covered by checked-in fixtures: tests/data/lpc_<backend>.keras
was saved under each backend by tests/data/make_cross_backend_fixtures.py
(an LPC model annealed to gamma 37.5, compiled with `with_lr_multipliers`,
after 6 Adam steps), and this file loads all three under the backend it runs
on. Run under the three backends, that is every saving backend x every
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
from keras_lpc.optimizers import LRMultiplierOptimizer

DATA = Path(__file__).resolve().parent / "data"
BACKENDS = ("tensorflow", "jax", "torch")


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
    # GammaAnnealing's resume state: epoch 2 started at count 2, epoch 3 starts at count 3.
    np.testing.assert_array_equal(lpc._annealing_state, expected["annealing_state"])
    assert lpc._annealing_state[[0, 1, 4, 5, 8]].tolist() == [2.0, 2.0, 3.0, 3.0, 1.0]

    optimizer = model.optimizer
    assert isinstance(optimizer, LRMultiplierOptimizer)
    assert optimizer.multipliers == {"head": 10.0}
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.Adam)
    assert int(_np(optimizer.iterations)) == int(expected["iterations"]) == 6
    model.jit_compile = None  # this backend's "auto", not the saving backend's choice
    model.fit(
        expected["x_step"], expected["y_step"], batch_size=8, epochs=1, shuffle=False, verbose=0
    )
    for i, weight in enumerate(model.get_weights()):
        np.testing.assert_allclose(weight, expected[f"next_{i}"], rtol=1e-4, atol=1e-6)


def test_fixtures_are_small():
    for backend in BACKENDS:
        for suffix in (".keras", ".npz"):
            assert (DATA / f"lpc_{backend}{suffix}").stat().st_size < 100_000


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
        keras_lpc.schedules.Exponential(1.0, 2.0, 1, 8.0),
        unit="epoch",
        pace=False,
        hold_monitor=None,
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
        state = lpc._annealing_state.tolist()
        assert state[0:2] + state[4:6] == [epoch - 1, epoch - 1, epoch, epoch]
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_annealing_state_is_not_a_weight_and_files_without_it_load(tmp_path, rng):
    model, _ = _annealed_model_and_files(tmp_path, rng)
    lpc = model.get_layer("lpc")
    assert len(lpc.weights) == 3  # projection kernel and bias, gamma
    assert lpc._annealing_state is not None
    plain = _build()  # never annealed (gamma 0): saves no state
    plain.save_weights(tmp_path / "plain.weights.h5")
    model.load_weights(tmp_path / "plain.weights.h5")  # replaces the state with none
    assert model.get_layer("lpc")._annealing_state is None
    assert float(_np(model.get_layer("lpc").gamma)) == 0.0
