"""The demo's building blocks: architectures, data sources, the Mahalanobis fallback."""

from __future__ import annotations

import dataclasses
import json
import types

import keras
import numpy as np
import pytest

from keras_lpc import demo, metrics
from keras_lpc.demo import measurement, report

NAN = float("nan")


def _run(history, model="lpc", seed=0, z=None, y=None, **values):
    """A `RunResult` with the given history and values, 0.0 in the other reported fields."""
    fields = {f.name: 0.0 for f in dataclasses.fields(demo.RunResult)}
    fields.update(model=model, seed=seed, history=history, pgd_accuracy={"0.02": 0.5})
    fields.update(z_test=z, y_test=y, attack_idx=None, deepfool_result=None)
    fields.update(values)
    return demo.RunResult(**fields)


def _logged(epochs, every, value, first=1):
    """A metric as the callbacks log it: measured at the first epoch, each every-th and
    the last, NaN on the others."""
    return [
        value(e) if e == first or e % every == 0 or e == epochs else NAN
        for e in range(1, epochs + 1)
    ]


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
            certify="ibp",  # the data path is under test here; CROWN's is in test_cli
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
    run = _run(history)
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
    run = _run(full)
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


def _demo_runs(epochs, shorter=False):
    """Both arms of two seeds, histories shaped as the demo's callbacks log them: gamma and
    accuracy every epoch, collapse metrics every 5 epochs, DeepFool every 20 (NaN between,
    or, with ``shorter``, only the measured values)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    corners = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    runs = []
    for seed in (0, 1):
        for kind in demo.MODELS:
            history = {
                "loss": [1.0 / e for e in range(1, epochs + 1)],
                "accuracy": [1.0 - 0.5 / e for e in range(1, epochs + 1)],
                "val_nc1": _logged(epochs, 5, lambda e: 1.0 / e),
                "val_separation_ratio": _logged(epochs, 5, lambda e, s=seed: 1.0 + e / 10 + s),
                "val_deepfool": _logged(epochs, 20, lambda e: 0.1 + e / 1000),
            }
            if kind == "lpc":
                history["gamma"] = [1e-4 * e**2 for e in range(1, epochs + 1)]
            if shorter:
                history = {k: [v for v in vals if np.isfinite(v)] for k, vals in history.items()}
            z = corners[y] + 0.1 * rng.standard_normal((40, 2))
            found = rng.uniform(0.5, 2.0, 30)
            bracket = {  # the attack ensemble's and the bound's results, distances only
                "ensemble_result": types.SimpleNamespace(distance=found),
                "certified_result": types.SimpleNamespace(distance=0.6 * found),
            }
            runs.append(_run(history, model=kind, seed=seed, z=z, y=y, **bracket))
    return runs


@pytest.mark.parametrize("shorter", [False, True], ids=["nan-between", "measured-only"])
def test_every_panel_of_the_demo_figures_has_data(tmp_path, shorter):
    pytest.importorskip("matplotlib")
    from _figures import empty_panels

    from keras_lpc.demo.figures import write_figures

    config = demo.DemoConfig(
        epochs=60, dim=2, metrics_every=5, robustness_every=20, out=str(tmp_path), verbose=0
    )
    figures = write_figures(_demo_runs(60, shorter), config)
    assert list(figures) == [
        "training_curves.png",
        "latent_histograms.png",
        "bracket_baseline.png",
        "bracket_lpc.png",
        "separation_vs_robustness.png",
        "latents_2d.png",
    ]
    for name, fig in figures.items():
        assert empty_panels(fig) == [], name
        assert (tmp_path / name).stat().st_size > 1000
    curves = figures["training_curves.png"]
    titles = [ax.get_title() for ax in curves.axes]
    assert len(titles) == 5 and titles[4].startswith("DeepFool")
    if not shorter:  # NaN between the measurements: every value at its own epoch
        deepfool = curves.axes[4].lines[1]
        np.testing.assert_array_equal(deepfool.get_xdata(), [1, 20, 40, 60])
        np.testing.assert_allclose(deepfool.get_ydata(), [0.101, 0.12, 0.14, 0.16])
        # separation and DeepFool paired where both were measured (epochs 1, 20, 40, 60)
        scatter = figures["separation_vs_robustness.png"].axes[0]
        assert scatter.get_title().endswith("(N = 16)")
    # each arm's bracket: found above, certified below, sorted by found
    bracket = figures["bracket_lpc.png"].axes[0]
    assert bracket.get_title() == "lpc: 30 inputs, median certified / found = 0.600"
    found, certified = (line.get_ydata() for line in bracket.lines)
    assert np.all(np.diff(found) >= 0) and np.allclose(certified, 0.6 * found)


def test_per_epoch_spreads_values_logged_only_when_measured():
    from keras_lpc.demo.training import per_epoch

    class Collapse:
        prefix, metric_names, computed_epochs = "val_", ("nc1", "cdnv"), [0, 4, 5]

    history = {
        "loss": [1.0] * 6,
        "val_nc1": [0.9, 0.5, 0.4],  # measured at epochs 1, 5 and 6 only
        "val_cdnv": [0.3, NAN, NAN, NAN, 0.2, 0.1],  # NaN between: kept as it is
    }
    got = per_epoch(history, [Collapse(), object()], 6)
    np.testing.assert_array_equal(got["val_nc1"], [0.9, NAN, NAN, NAN, 0.5, 0.4])
    np.testing.assert_array_equal(got["val_cdnv"], history["val_cdnv"])
    assert got["loss"] == history["loss"]


def _report_runs(per_seed):
    """Report rows (dicts) for ``{model: {key: [value per seed]}}``, 0.5 elsewhere."""
    runs = []
    for model, values in per_seed.items():
        for seed in range(len(next(iter(values.values())))):
            row = {r.key: 0.5 for r in report.SCALARS}
            row.update({k: v[seed] for k, v in values.items()})
            row.update(model=model, seed=seed, pgd_accuracy={"0.02": 0.8, "0.05": 0.6})
            runs.append(row)
    return runs


def test_verdict_reads_differences_against_the_spread_over_seeds():
    runs = _report_runs(
        {
            "baseline": {
                "test_accuracy": [0.90, 0.92],  # mean 0.91, std 0.01
                "min_perturbation": [0.10, 0.20],  # std 0.05
                "certified_radius": [0.05, 0.05],
                "deepfool": [0.20, 0.20],
                "nc1": [0.8, 0.8],
                "auroc_mahalanobis": [0.80, 0.90],
            },
            "lpc": {
                "test_accuracy": [0.95, 0.97],  # +0.05 > 0.01 + 0.01
                "min_perturbation": [0.12, 0.18],  # same mean
                "certified_radius": [0.02, 0.03],  # -0.025 beyond the spread 0.005
                "deepfool": [0.10, 0.10],
                "nc1": [0.2, 0.2],  # lower is better
                "auroc_mahalanobis": [0.84, 0.86],  # +0.0 within the spread
            },
        }
    )
    summary = report.summarize(runs)
    assert summary["baseline"]["seeds"] == summary["lpc"]["seeds"] == 2
    assert summary["lpc"]["test_accuracy"] == pytest.approx(0.96)
    assert summary["baseline"]["min_perturbation_std"] == pytest.approx(0.05)
    assert summary["lpc"]["pgd_accuracy@0.05"] == 0.6
    lines = report.verdict(summary)
    assert [line.rsplit(": ", 1)[1] for line in lines] == [
        "LPC better",
        "no clear difference",
        "LPC worse",
        "LPC worse",
        "LPC better",
        "no clear difference",
    ]
    assert lines[0] == "test accuracy: baseline 0.91, LPC 0.96 (x1.05): LPC better"
    table = report.format_table(summary).splitlines()
    # header, rule, one row per scalar, one per PGD budget
    assert len(table) == 2 + len(report.SCALARS) + 2
    assert table[2] == "| test accuracy | 91.00% ± 1.00% | 96.00% ± 1.00% |"
    assert table[-1] == "| PGD accuracy (L-inf eps=0.05) | 60.00% ± 0.00% | 60.00% ± 0.00% |"


def test_one_seed_gives_no_verdict_and_no_spread():
    runs = _report_runs({"baseline": {"test_accuracy": [0.97]}, "lpc": {"test_accuracy": [0.98]}})
    summary = report.summarize(runs)
    lines = report.verdict(summary)
    assert len(lines) == 6
    assert all(line.endswith(": " + report.ONE_SEED) for line in lines)
    assert lines[0] == (
        "test accuracy: baseline 0.97, LPC 0.98 (x1.01): one seed: no spread "
        "(2 or more seeds give a verdict)"
    )
    table = report.format_table(summary)
    assert "±" not in table
    assert "| test accuracy | 97.00% | 98.00% |" in table.splitlines()


def test_table_rows_come_from_the_row_specs():
    run = {"pgd_accuracy": {"0.02": 0.75}, "nc1": 0.25}
    rows = report.table_rows({"baseline": {"pgd_accuracy@0.02": 0.7, "seeds": 1}})
    assert rows[: len(report.SCALARS)] == report.SCALARS
    assert rows[-1] == report.Row("pgd_accuracy@0.02", "PGD accuracy (L-inf eps=0.02)", "{:.2%}")
    assert rows[-1].value(run) == 0.75
    assert report.Row("nc1", "NC1", "{:.3g}").value(run) == 0.25
    # every row's key is a reported RunResult field (or an entry of one)
    reported = set(_run({}).to_dict())
    assert all(row.key.partition("@")[0] in reported for row in rows)


def test_output_folder_is_created_and_a_file_is_refused(tmp_path):
    assert demo.output_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    message = r"`out` must be a folder \(created if missing\), but '.*notes\.txt' is an existing"
    with pytest.raises(ValueError, match=message + r" file\. Received: out='.*notes\.txt'"):
        demo.output_folder(notes)
    with pytest.raises(ValueError, match=message + r" file\. Received: out='.*notes\.txt/runs'"):
        demo.run_demo(out=str(notes / "runs"), verbose=0)
