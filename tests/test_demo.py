"""The demo's building blocks: architectures, data sources, the Mahalanobis fallback."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from keras_lpc import demo, metrics
from keras_lpc.demo import measurement


def _count(model: keras.Model, kind: type) -> int:
    return sum(isinstance(layer, kind) for layer in model.layers)


@pytest.mark.parametrize(
    ("architecture", "shape", "convs", "norms"),
    [("mlp", (64,), 0, 0), ("mlp", (8, 8, 1), 0, 0), ("cnn", (8, 8, 1), 4, 0)]
    + [("resnet", (8, 8, 1), 10, 9)],
)
def test_build_model_architectures(architecture, shape, convs, norms):
    model = demo.build_model(shape, 10, dim=6, augment_noise=0.1, architecture=architecture)
    assert model.input_shape == (None, *shape) and model.output_shape == (None, 10)
    assert model.get_layer("lpc").output.shape == (None, 6)
    assert _count(model, keras.layers.Conv2D) == convs
    assert _count(model, keras.layers.BatchNormalization) == norms
    assert _count(model, keras.layers.GaussianNoise) == 1
    # the head reads the latents directly, so lpc_multipliers finds it
    from keras_lpc.optimizers import lpc_multipliers

    assert lpc_multipliers(model, 10.0) == {"head": 10.0}


def test_resnet_trains_one_step_and_its_skips_are_identity_at_zero_weights():
    model = demo.build_model((8, 8, 1), 3, dim=2, architecture="resnet")
    block = [layer for layer in model.layers if layer.name == "block1_conv2"][0]
    block.kernel.assign(np.zeros(block.kernel.shape, "float32"))
    # with the second convolution zeroed the residual branch is BN(0) = 0 at initialisation,
    # so the block is silu(x + 0): the skip connection carries x through unchanged
    block_in = model.get_layer("block1_conv1").input
    probe = keras.Model(model.input, [block_in, model.get_layer("block1_out").output])
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    inp, out = probe.predict(x, verbose=0)
    np.testing.assert_allclose(out, inp / (1.0 + np.exp(-inp)), rtol=1e-5, atol=1e-6)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_data_sources_shapes_and_subsets():
    flat = demo.load_data(demo.DemoConfig())
    images = demo.load_data(demo.DemoConfig(architecture="cnn"))
    assert flat.x_train.shape == (1437, 64) and images.x_train.shape == (1437, 8, 8, 1)
    np.testing.assert_array_equal(images.x_test.reshape(-1, 64), flat.x_test)
    small = demo.load_data(demo.DemoConfig(max_train=100, max_test=50))
    assert small.x_train.shape == (100, 64) and small.x_test.shape == (50, 64)
    # a fixed subset: the same rows every time, in their original order
    again = demo.load_data(demo.DemoConfig(max_train=100, max_test=50))
    np.testing.assert_array_equal(small.x_train, again.x_train)
    rows = [np.flatnonzero((flat.x_train == r).all(1))[0] for r in small.x_train[:20]]
    assert rows == sorted(rows)


def test_demo_on_tensorflow_datasets_mock(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        report = demo.run_demo(
            dataset="mnist",
            epochs=1,
            seeds=1,
            attack_samples=4,
            max_test=20,
            metrics_every=1,
            robustness_every=1,
            out=str(tmp_path),
            verbose=0,
        )
    runs = report["runs"]
    assert [r["model"] for r in runs] == ["baseline", "lpc"]
    assert all(r["attacked"] == 4 for r in runs)
    base, lpc = runs
    # gamma stays 0 in the baseline; the LPC arm's ramp has risen, and the model holds
    # the last value the annealing logged
    assert base["final_gamma"] == 0.0
    assert lpc["final_gamma"] > 0.0
    assert lpc["history"]["gamma"][-1] == pytest.approx(lpc["final_gamma"], rel=1e-6)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["config"]["dataset"] == "mnist" and saved["config"]["max_test"] == 20
    assert saved["runs"] == json.loads(json.dumps(runs))  # no private keys, same rows
    assert all(not key.startswith("_") for r in saved["runs"] for key in r)
    md = (tmp_path / "report.md").read_text()
    assert "| metric | baseline | LPC |" in md and "## What this run shows" in md
    assert set(report["figures"]) >= {"training_curves.png", "latent_histograms.png"}


def test_paired_points_match_the_epochs_both_callbacks_logged():
    # separation every 2 epochs (2, 4, 6, 8), DeepFool every 4 (4, 8): pairs at 4 and 8
    history = {"val_separation_ratio": [1.0, 2.0, 3.0, 4.0], "val_deepfool": [0.1, 0.2]}
    run = demo.RunResult(*([None] * 25), history, None, None, None, None)
    sep, rob = demo.paired_points([run, run], every_collapse=2, every_robust=4)
    np.testing.assert_array_equal(sep, [2.0, 4.0, 2.0, 4.0])
    np.testing.assert_array_equal(rob, [0.1, 0.2, 0.1, 0.2])
    # one value per epoch, NaN between computations (the metric callbacks' logs)
    nan = float("nan")
    full = {
        "loss": [1.0] * 4,
        "val_separation_ratio": [1.0, 2.0, nan, 4.0],
        "val_deepfool": [0.1, nan, nan, 0.4],
    }
    run = demo.RunResult(*([None] * 25), full, None, None, None, None)
    sep, rob = demo.paired_points([run], every_collapse=2, every_robust=4)
    np.testing.assert_array_equal(sep, [1.0, 4.0])
    np.testing.assert_array_equal(rob, [0.1, 0.4])


def test_mahalanobis_falls_back_when_a_predicted_class_was_never_fitted():
    rng = np.random.default_rng(0)
    z_tr = rng.normal(size=(60, 2)) + np.repeat([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], 20, 0)
    y_tr = np.repeat([0, 1, 2], 20)
    pred_tr = y_tr.copy()
    pred_tr[40:] = 0  # no training example of class 2 is classified correctly
    z_te = rng.normal(size=(5, 2))
    pred_te = np.array([0, 1, 2, 0, 1])
    got = measurement.mahalanobis_confidence(z_tr, y_tr, pred_tr, z_te, pred_te)
    nearest = metrics.mahalanobis_score(z_tr, y_tr, z_te, fit_predictions=pred_tr)
    np.testing.assert_allclose(got, nearest)
    # every predicted class fitted: the distance to the predicted class, as in the paper
    known = measurement.mahalanobis_confidence(z_tr, y_tr, y_tr, z_te, pred_te)
    expected = metrics.mahalanobis_score(
        z_tr, y_tr, z_te, predictions=pred_te, fit_predictions=y_tr
    )
    np.testing.assert_allclose(known, expected)
    # fewer than two fitted classes: undefined
    assert measurement.mahalanobis_confidence(z_tr, y_tr, np.full(60, 1), z_te, pred_te) is None


def test_auroc_is_nan_when_a_run_makes_no_mistake_or_has_no_score():
    score = np.array([0.9, 0.2, 0.7, 0.1])
    correct = np.array([True, False, True, False])
    assert measurement.auroc_or_nan(score, correct) == 1.0
    assert np.isnan(measurement.auroc_or_nan(score, np.ones(4, bool)))  # a perfect test accuracy
    assert np.isnan(measurement.auroc_or_nan(score, np.zeros(4, bool)))
    assert np.isnan(measurement.auroc_or_nan(None, correct))
