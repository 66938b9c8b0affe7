"""`keras-lpc demo` end to end on tiny settings: report schema, files, exit codes."""

from __future__ import annotations

import json

import pytest

from keras_lpc import cli


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = cli.main(
        [
            "demo",
            "--epochs",
            "3",
            "--seeds",
            "1",
            "--attack-samples",
            "20",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    return code, out


def test_demo_writes_report_with_the_documented_schema(demo_run):
    code, out = demo_run
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    for model in ("baseline", "lpc"):
        entry = report["summary"][model]
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        assert entry["deepfool"] > 0.0
        assert entry["nc1"] >= 0.0
    assert {r["model"] for r in report["runs"]} == {"baseline", "lpc"}
    lpc_run = next(r for r in report["runs"] if r["model"] == "lpc")
    base_run = next(r for r in report["runs"] if r["model"] == "baseline")
    assert lpc_run["final_gamma"] > 0.0 and base_run["final_gamma"] == 0.0
    # the summary is the mean over seeds of the per-seed runs (one seed here)
    assert report["summary"]["lpc"]["test_accuracy"] == lpc_run["test_accuracy"]
    assert len(report["verdict"]) == 4
    # the audit's finding is the demo's default: input noise in both arms, said in the report
    assert report["config"]["augment_noise"] == 0.1
    assert "Gaussian input noise sigma=0.1" in report["setup"]


def test_demo_writes_markdown_and_figures(demo_run):
    _, out = demo_run
    md = (out / "report.md").read_text()
    assert "| test accuracy |" in md and "DeepFool" in md
    assert "only with such augmentation in both arms" in md
    for name in ("training_curves.png", "latent_histograms.png"):
        assert (out / name).stat().st_size > 1000


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
