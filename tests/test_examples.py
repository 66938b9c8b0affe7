"""The examples run, shortened, on every backend."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_png(path: str | Path) -> bool:
    data = Path(path).read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 10_000


def test_quickstart_trains_and_logs_gamma_and_nc1(monkeypatch):
    import keras

    import keras_lpc

    made = []

    class Kept(keras_lpc.CollapseMetrics):  # the example's callback, kept for its model
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(keras_lpc, "CollapseMetrics", Kept)
    result = _load("quickstart").main(epochs=4)
    (callback,) = made
    model = callback.model
    lpc = model.layers[1]
    assert isinstance(lpc, keras_lpc.LatentPointCollapse) and lpc.dim == 16
    # 4 epochs x ceil(1437 / 32) = 180 AdamW steps at lr 1e-3 are too few for 1e3:
    # the default maximum is gamma_budget = 1e3 * (1e-3 * 180 / 4.5) ** 2 = 1.6, and the
    # ramp, paced by the training accuracy (held while it rises fast), ends below it
    assert 0.0 < result["gamma"] <= 1e3 * (1e-3 * 180 / 4.5) ** 2 + 1e-6
    assert result["gamma"] == pytest.approx(float(keras.ops.convert_to_numpy(lpc.gamma)))
    # every = max(1, 4 // 10) = 1: NC1 measured at every epoch, the last on the final model,
    # on all 360 test digits (max_samples 10000) grouped by the model's predictions
    assert callback.computed_epochs == [0, 1, 2, 3]
    data = keras_lpc.datasets.load_digits()
    z, logits = keras_lpc.readout.latents_and_outputs(model, data.x_test)
    predicted = np.argmax(logits, axis=1)
    nc1 = keras_lpc.metrics.nc1(z, predicted)
    assert result["val_nc1"] == pytest.approx(nc1, rel=1e-4)
    assert result["test_accuracy"] == pytest.approx(np.mean(predicted == data.y_test), abs=1e-6)
    # digits after 180 steps: well above chance (0.1)
    assert result["test_accuracy"] >= 0.85


def test_synthetic_hypercube_shrinks_latents_and_draws_both_models(tmp_path):
    report = _load("synthetic_hypercube").main(
        dim=2, n=320, noise=0.3, epochs=6, width=16, gamma_max=10.0, out=tmp_path
    )
    base, lpc = report["baseline"], report["lpc"]
    assert 0.0 < report["gamma"] <= 10.0  # paced by the training: held while it learns
    # noise 0.3 around vertices >= 2 apart: every cluster is > 3 std from a boundary
    assert base["test_accuracy"] >= 0.95 and lpc["test_accuracy"] >= 0.95
    assert 1 <= base["distinct_vertices"] <= 4 and 1 <= lpc["distinct_vertices"] <= 4
    # alignment of a 2-d point with its nearest vertex lies in [1/sqrt(2), 1]
    for entry in (base, lpc):
        assert 1 / math.sqrt(2) - 1e-9 <= entry["hypercube_alignment"] <= 1.0
    # the penalty pulls the latents towards the origin (gamma ~2 in this 6-epoch run, paced
    # by the training accuracy: 0.54 of the baseline's norm on JAX, 0.78 on PyTorch)
    assert lpc["mean_norm"] < 0.9 * base["mean_norm"]
    assert _is_png(report["figure"])
    saved = json.loads((tmp_path / "synthetic_hypercube.json").read_text())
    assert saved["lpc"] == pytest.approx(lpc) and saved["baseline"] == pytest.approx(base)


def test_sign_codes_by_hand():
    sign_codes = _load("binary_encoding").sign_codes
    z = np.array([[1.0, -2.0], [2.0, 3.0], [0.5, -1.0], [-1.0, 1.0], [-1.0, -1.0], [-3.0, 2.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # class 0: p = (1, 1/3) -> agreement (1, 2/3), code (+, -), 2 of 3 rows match;
    # class 1: p = (0, 2/3) -> agreement (1, 2/3), code (-, +), 2 of 3 rows match
    assert sign_codes(z, labels) == {
        "sign_agreement": pytest.approx((1 + 2 / 3) / 2),
        "code_agreement": pytest.approx(4 / 6),
        "distinct_codes": 2,
    }
    same = sign_codes(np.abs(z) + 1.0, labels)  # one code for both classes
    assert same == {"sign_agreement": 1.0, "code_agreement": 1.0, "distinct_codes": 1}


def test_binary_encoding_reports_both_models_and_writes_histograms(tmp_path):
    report = _load("binary_encoding").main(dim=4, epochs=2, width=32, gamma_max=3.0, out=tmp_path)
    base, lpc = report["baseline"], report["lpc"]
    assert base["gamma"] == 0.0 and 0.0 < lpc["gamma"] <= 3.0  # paced: at most the maximum
    for entry in (base, lpc):
        assert entry["test_accuracy"] >= 0.7  # digits after 90 steps (0.81 on JAX)
        assert 0.5 <= entry["sign_agreement"] <= 1.0
        assert 0.0 <= entry["code_agreement"] <= 1.0
        assert 1 <= entry["distinct_codes"] <= 10
        assert entry["peak_distance"] > 0.0 and entry["mean_std"] > 0.0
    names = [Path(p).name for p in report["figures"]]
    assert names == ["binary_encoding_baseline.png", "binary_encoding_lpc.png"]
    assert all(_is_png(p) for p in report["figures"])
    saved = json.loads((tmp_path / "binary_encoding.json").read_text())
    assert saved["lpc"] == pytest.approx(lpc)


def test_robustness_report_table_and_json(tmp_path):
    report = _load("robustness_report").main(
        epochs=2, dim=8, width=32, gamma_max=3.0, attack_samples=20, eps=(0.0, 0.1), out=tmp_path
    )
    base, lpc = report["baseline"], report["lpc"]
    assert report["attacked"] == 20
    assert base["gamma"] == 0.0 and 0.0 < lpc["gamma"] <= 3.0  # paced: at most the maximum
    for entry in (base, lpc):
        assert entry["test_accuracy"] >= 0.7  # digits after 90 steps (0.79 / 0.83 on JAX)
        assert entry["nc1"] > 0.0 and np.isfinite(entry["nc1"])
        # a zero budget leaves the inputs unchanged: both attacks give the clean accuracy
        assert entry["fgsm_accuracy@0"] == pytest.approx(entry["attacked_accuracy"])
        assert entry["pgd_accuracy@0"] == pytest.approx(entry["attacked_accuracy"])
        assert entry["pgd_accuracy@0.1"] <= entry["attacked_accuracy"]
        assert entry["lipschitz_max"] >= entry["lipschitz_mean"] > 0.0
        assert entry["deepfool"] > 0.0
        assert 0.0 <= entry["auroc_mahalanobis"] <= 1.0
        assert 0.0 <= entry["auroc_softmax"] <= 1.0
        assert entry["separation_ratio"] > 1.0  # on average nearer their own class mean
    lines = report["table"].splitlines()
    # header, rule, 11 fixed rows, FGSM and PGD per budget
    assert len(lines) == 2 + 11 + 2 * 2
    assert lines[2].startswith("| test accuracy | ")
    saved = json.loads((tmp_path / "robustness_report.json").read_text())
    assert saved["table"] == report["table"]
    assert saved["lpc"]["deepfool"] == pytest.approx(lpc["deepfool"])
