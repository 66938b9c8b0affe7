"""`keras-lpc demo` end to end on tiny settings: report schema, files, exit codes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import keras_lpc
from keras_lpc import cli

ROOT = Path(__file__).resolve().parents[1]
BACKEND = keras.backend.backend()
# a KERAS_BACKEND that disagrees with the flag: --backend must win
OTHER = next(b for b in cli.BACKENDS if b != BACKEND)


def _command(*args, env=None, timeout=600):
    """Run ``python -m keras_lpc_cli ...`` on this checkout, TF_CPP_MIN_LOG_LEVEL unset."""
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(env or {})
    environ = {k: v for k, v in environ.items() if v is not None}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The console command in a fresh process: KERAS_BACKEND says OTHER, --backend BACKEND."""
    out = tmp_path_factory.mktemp("demo")
    done = _command(
        "-m",
        "keras_lpc_cli",
        "demo",
        "--backend",
        BACKEND,
        "--epochs",
        "3",
        "--seeds",
        "1",
        "--attack-samples",
        "8",
        "--max-train",
        "300",
        "--max-test",
        "60",
        "--out",
        str(out),
        "--quiet",
        env={"KERAS_BACKEND": OTHER},
    )
    return done.returncode, out, done


def test_backend_flag_overrides_keras_backend_and_is_recorded(demo_run):
    code, out, done = demo_run
    assert code == 0, done.stderr
    assert json.loads((out / "report.json").read_text())["backend"] == BACKEND
    # TensorFlow/absl native start-up lines are filtered out of the output
    assert "absl::InitializeLog" not in done.stderr and "port.cc" not in done.stderr
    assert "cpu_feature_guard" not in done.stderr
    assert done.stdout == ""  # --quiet


def test_backend_flag_works_with_keras_backend_unset(fresh_python):
    # a new process without KERAS_BACKEND (conftest.py's fresh_python)
    assert fresh_python["select_backend"] is None
    assert fresh_python["backend"] == BACKEND


def test_select_backend_after_keras_is_imported():
    assert cli.select_backend(None) is None
    assert cli.select_backend(BACKEND) is None
    assert cli.select_backend(OTHER) == (
        f"--backend {OTHER} cannot be used: Keras is already imported in this process with "
        f"the {BACKEND} backend"
    )


def test_importing_the_command_does_not_import_keras(fresh_python):
    assert fresh_python["after_cli"] == []


def test_callbacks_are_there_before_the_user_imports_keras(fresh_python):
    # `import keras_lpc; keras_lpc.callbacks.TrainingPace` with no `import keras` first
    assert fresh_python["pace_before_keras"] == "TrainingPace"
    assert fresh_python["backend"] == keras.backend.backend()


def test_help_shows_defaults_and_version_answers():
    done = _command("-m", "keras_lpc_cli", "demo", "--help")
    assert done.returncode == 0
    assert "(default: 60)" in done.stdout and "(default: digits)" in done.stdout
    assert "(default: None)" not in done.stdout
    version = _command("-m", "keras_lpc_cli", "--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"keras-lpc {keras_lpc.__version__}"


def test_native_log_filter_drops_absl_lines_only(monkeypatch, capfd):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    noise = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796159635.293189   12593 port.cc:153] oneDNN custom operations are on.\n"
        "W0000 00:00:1796159635.627371   12593 cpu_feature_guard.cc:227] This TensorFlow binary\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags.\n"
    )
    kept = "E0000 00:00:1.0 1 x.cc:1] a real error\nTraceback (most recent call last):\n"
    capfd.readouterr()
    with cli.quiet_native_logs():
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
        os.write(2, (noise + kept).encode())
    assert capfd.readouterr().err == kept


def test_demo_writes_report_with_the_documented_schema(demo_run):
    code, out, _ = demo_run
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    for model in ("baseline", "lpc"):
        entry = report["summary"][model]
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        assert entry["deepfool"] > 0.0
        # the headline is the verified ensemble, which includes DeepFool: per input it is
        # never longer than DeepFool's, so DeepFool / best >= 1
        assert 0.0 < entry["min_perturbation"] < float("inf")
        assert entry["deepfool_overestimate"] >= 1.0 - 1e-6
        assert entry["nc1"] >= 0.0
    assert {r["model"] for r in report["runs"]} == {"baseline", "lpc"}
    lpc_run = next(r for r in report["runs"] if r["model"] == "lpc")
    base_run = next(r for r in report["runs"] if r["model"] == "baseline")
    assert lpc_run["final_gamma"] > 0.0 and base_run["final_gamma"] == 0.0
    # the summary is the mean over seeds of the per-seed runs (one seed here)
    assert report["summary"]["lpc"]["test_accuracy"] == lpc_run["test_accuracy"]
    assert len(report["verdict"]) == 6
    assert report["verdict"][1].startswith("robustness (smallest verified perturbation")
    assert report["verdict"][2].startswith("certified radius (a lower bound")
    # one seed: no spread to judge a difference by, so no verdict
    assert report["summary"]["lpc"]["seeds"] == 1
    assert all(
        line.endswith(": one seed: no spread (2 or more seeds give a verdict)")
        for line in report["verdict"]
    )
    # the audit's finding is the demo's default: input noise in both arms, said in the report
    assert report["config"]["augment_noise"] == 0.1
    assert "Gaussian input noise sigma=0.1" in report["setup"]


def test_demo_writes_markdown_and_figures(demo_run):
    _, out, _ = demo_run
    md = (out / "report.md").read_text()
    assert "| test accuracy |" in md and "DeepFool" in md
    assert "only with such augmentation in both arms" in md
    assert "one seed: no spread" in md and "LPC better" not in md and "±" not in md
    for name in ("training_curves.png", "latent_histograms.png", "bracket_lpc.png"):
        assert (out / name).stat().st_size > 1000
    # the bracket: the certified row below the verified one, on every input
    assert "| certified radius, a proved lower bound (mean) |" in md
    for run in json.loads((out / "report.json").read_text())["runs"]:
        assert 0.0 <= run["certified_radius"] <= run["min_perturbation"]
        assert 0.0 <= run["bracket_ratio"] <= 1.0


def test_demo_histories_fill_every_panel_of_the_training_curves(demo_run):
    """The histories the demo plotted (3 epochs, metrics at epochs 1 and 3, NaN at 2)."""
    pytest.importorskip("matplotlib")
    from _figures import empty_panels

    from keras_lpc import plotting

    _, out, _ = demo_run
    runs = json.loads((out / "report.json").read_text())["runs"]
    histories = {run["model"]: run["history"] for run in runs}
    for history in histories.values():
        assert {len(values) for values in history.values()} == {3}
        assert math.isnan(history["val_nc1"][1]) and math.isnan(history["val_deepfool"][1])
    fig = plotting.plot_training_curves(histories)
    assert len(fig.axes) == 5 and empty_panels(fig) == []


def test_out_naming_a_file_is_a_usage_error(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for out in (notes, notes / "runs"):
        with pytest.raises(SystemExit) as info:
            cli.main(["demo", "--out", str(out), "--quiet"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("usage: keras-lpc demo")
        assert (
            f"keras-lpc demo: error: `out` must be a folder (created if missing), but "
            f"'{notes}' is an existing file. Received: out='{out}'"
        ) in err
        assert "Traceback" not in err
    assert notes.read_text() == "keep me"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--epochs", "0"], "expected a positive integer, received '0'"),
        (["demo", "--seeds", "two"], "expected a positive integer, received 'two'"),
        (["demo", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["demo", "--backend", "numpy"], "invalid choice: 'numpy'"),
        ([], "required: command"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_exits_1_with_the_loader_message(monkeypatch, capsys):
    from keras_lpc import demo

    def missing(config):
        raise FileNotFoundError("Dataset 'cifar10' is not prepared in /nowhere")

    monkeypatch.setattr(demo, "run_demo", missing)
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--dataset", "cifar10", "--data-dir", "/nowhere", "--quiet"])
    assert info.value.code == 1
    assert "keras-lpc demo: error: Dataset 'cifar10' is not prepared" in capsys.readouterr().err


def test_flag_choices_are_the_demo_s_own():
    """The CLI lists its choices without importing Keras; they must match the demo's."""
    from keras_lpc import demo

    sub = cli.build_parser()._subparsers._group_actions[0].choices["demo"]
    choices = {a.dest: tuple(a.choices) for a in sub._actions if a.choices}
    assert choices["dataset"] == demo.DATASETS
    assert choices["architecture"] == demo.ARCHITECTURES
