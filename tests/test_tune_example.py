"""examples/tune_gamma.py runs, shortened, on every backend (2 trials x 2 epochs)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("keras_tuner")
pytest.importorskip("matplotlib")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tune_gamma.py"


def _load():
    spec = importlib.util.spec_from_file_location("tune_gamma", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    return _load().main(
        trials=2,
        epochs=2,
        out=out,
        max_gamma=(1.0, 100.0),
        weight=2.0,
        robustness_samples=20,
        batch_size=256,  # 5 steps per epoch, 10 per trial
        verbose=0,
    )


def test_writes_a_non_empty_png_and_the_json_report(result):
    figure = Path(result["figure"])
    assert figure.name == "objective_vs_gamma.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size > 10_000  # three drawn panels, not a blank canvas
    saved = json.loads((figure.parent / "results.json").read_text())
    assert saved["best"]["trial_id"] == result["best"]["trial_id"]
    assert saved["space"] == {"max_gamma": [1.0, 100.0], "dims": [16], "tuner": "random"}


def test_best_trial_comes_from_the_declared_space(result):
    assert len(result["trials"]) == 2
    hp = result["best"]["hyperparameters"]
    assert 1.0 <= hp["lpc_max_gamma"] <= 100.0
    assert hp["lpc_dim"] == 16 and hp["lpc_unit"] == "step"
    assert hp["lpc_ramp_fraction"] == "auto"  # 0.95 of each trial
    # best first: the ranking follows the objective
    scores = [row["score"] for row in result["trials"]]
    assert scores == sorted(scores, reverse=True)
    assert result["best"]["score"] == max(scores)


def test_each_trial_reaches_its_gamma_and_scores_the_combined_objective(result):
    for row in result["trials"]:
        assert row["epochs"] == 2
        # the quadratic ramp to the tuned maximum on the clock, ending by the last step
        # of each trial: every trial trains at its maximum at the end
        top = row["hyperparameters"]["lpc_max_gamma"]
        assert row["gamma"] == pytest.approx(top, rel=1e-5)
        # objective = val_accuracy + 2 * val_deepfool, at the last epoch
        expected = row["val_accuracy"] + 2.0 * row["val_deepfool"]
        assert row["score"] == pytest.approx(expected, rel=1e-6)
        assert row["val_accuracy_robustness"] == pytest.approx(expected, rel=1e-6)
        assert 0.0 <= row["val_accuracy"] <= 1.0 and row["val_deepfool"] > 0.0
    assert 0.0 <= result["test"]["accuracy"] <= 1.0 and result["test"]["deepfool"] > 0.0


def test_rejects_an_unknown_tuner(tmp_path):
    with pytest.raises(ValueError, match=r"`tuner` must be 'random' or 'hyperband'"):
        _load().main(tuner="grid", out=tmp_path)
