"""examples/cifar10_resnet.py: the smoke run on tfds mock data, and its building blocks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import keras_lpc

tfds = pytest.importorskip("tensorflow_datasets")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cifar10_resnet.py"


def _load():
    spec = importlib.util.spec_from_file_location("cifar10_resnet", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cifar():
    return _load()


def _args(cifar, *flags: str, **overrides):
    args = cifar.build_parser().parse_args(list(flags))
    for key, value in overrides.items():
        setattr(args, key, value)
    return cifar.resolve(args)


@pytest.fixture(scope="module")
def smoke(cifar, tmp_path_factory):
    """One smoke run per backend (module scope): 2 epochs x 2 steps of a tiny ResNet."""
    import keras

    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("cifar")
    return cifar.train(_args(cifar, "--smoke", "--out", str(out), "--verbose", "0"))


def test_smoke_writes_json_with_final_metrics(smoke):
    result, model = smoke
    saved = json.loads(Path(result["json"]).read_text())
    assert saved == {k: v for k, v in result.items() if k != "json"}
    for key in ("test_accuracy", "nc1", "deepfool", "deepfool_correct", "gamma", "history"):
        assert key in saved
    assert (saved["dataset"], saved["arm"], saved["dim"], saved["depth"]) == (
        "cifar10",
        "lpc",
        8,
        6,
    )
    # 16 mock examples at batch 8: 2 steps per epoch; 4 of 16 test images attacked.
    assert saved["steps_per_epoch"] == 2 and saved["robustness_samples"] == 4
    # Mock test labels are uniform over 10 classes; 16 images give accuracy k / 16.
    assert 0.0 <= saved["test_accuracy"] <= 1.0
    assert saved["test_accuracy"] * 16 == pytest.approx(round(saved["test_accuracy"] * 16))
    assert saved["nc1"] >= 0.0 and saved["deepfool"] > 0.0
    assert saved["parameters"] == model.count_params()


def test_smoke_gamma_follows_the_paced_default(smoke):
    result, model = smoke
    # GammaAnnealing() default: Polynomial(0, m, power 2), per step, paced by the
    # training; at full pace it ends at 0.7 of the 2 x 2 = 4 steps (2.8). Its ceiling m is
    # the run's budget 1e3 * (k * lr * steps / 4.5) ** 2 = 1e3 * (10 * 5e-4 * 4 / 4.5) ** 2
    # = 0.0198, floored at 0.1 (a full CIFAR run, 78,200 steps, gets 1e3). Epoch 1 ramps
    # (last step: count 1); its end is the pacing's first decision, a hold, so epoch 2 stays
    # at count 2: gamma = m * (1 / 2.8) ** 2, then m * (2 / 2.8) ** 2.
    assert 1e3 * (10 * 5e-4 * 4 / 4.5) ** 2 < 0.1
    assert result["gamma_max"] == pytest.approx(0.1)
    assert result["history"]["gamma"] == pytest.approx([0.1 / 2.8**2, 0.1 * (2 / 2.8) ** 2])
    assert result["gamma"] == pytest.approx(0.1 * (2 / 2.8) ** 2)
    assert float(np.asarray(model.get_layer("lpc").gamma)) == pytest.approx(0.1 * (2 / 2.8) ** 2)


def test_smoke_model_shapes_lpc_layer_and_head_multiplier(smoke):
    result, model = smoke
    lpc, head = model.get_layer("lpc"), model.get_layer("head")
    assert isinstance(lpc, keras_lpc.LatentPointCollapse) and lpc.dim == 8
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    assert lpc.output.shape == (None, 8)
    assert head.use_bias is False and tuple(head.kernel.shape) == (8, 10)
    assert model.optimizer.multipliers == {"head": 10.0}
    logits = model.predict(np.zeros((3, 32, 32, 3), "float32"), verbose=0)
    assert logits.shape == (3, 10)
    # Trainable weights by hand (width 4, depth 6): stem conv 3*3*3*4 + BN 2*4;
    # block 1: two 3*3*4*4 convs + 2 BN(4); block 2: 3*3*4*8 + 3*3*8*8 convs, 1x1
    # projection 4*8, 3 BN(8); LPC Dense 8*8 + 8; head 8*10, no bias.
    stem = 3 * 3 * 3 * 4 + 2 * 4
    block1 = 2 * (3 * 3 * 4 * 4) + 2 * (2 * 4)
    block2 = 3 * 3 * 4 * 8 + 3 * 3 * 8 * 8 + 4 * 8 + 3 * (2 * 8)
    want = stem + block1 + block2 + (8 * 8 + 8) + 8 * 10
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == want == 1516


def _raw_pixels(x, name, cifar):
    spec = cifar.TFDS_DATASETS[name]
    return (np.asarray(x) * np.array(spec["std"]) + np.array(spec["mean"])) * 255.0


def _is_crop_of(aug, orig, pad=4):
    """``aug`` is ``orig`` or its mirror image, zero-padded by ``pad`` and cropped."""
    h, w = orig.shape[:2]
    for image in (orig, orig[:, ::-1]):
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if np.allclose(padded[dy : dy + h, dx : dx + w], aug, atol=1e-3):
                    return True
    return False


def test_augmentation_changes_images_keeps_shape_and_labels(cifar):
    with tfds.testing.mock_data(num_examples=8):
        plain, _ = cifar.make_datasets("cifar10", batch_size=8, seed=3, augment=False)
        jittered, (x_test, y_test) = cifar.make_datasets("cifar10", batch_size=8, seed=3)
        (x0, y0), (x1, y1) = next(iter(plain)), next(iter(jittered))
    x0, x1 = np.asarray(x0), np.asarray(x1)
    assert x1.shape == x0.shape == (8, 32, 32, 3) and x_test.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y0))  # same shuffle, same labels
    assert not np.allclose(x1, x0)
    raw0, raw1 = _raw_pixels(x0, "cifar10", cifar), _raw_pixels(x1, "cifar10", cifar)
    assert all(_is_crop_of(a, o) for a, o in zip(raw1, raw0))


def test_baseline_arm_has_no_annealing_and_keeps_gamma_zero(cifar):
    lpc = cifar.make_callbacks(_args(cifar, "--smoke"), (np.zeros((2, 32, 32, 3)), np.zeros(2)))
    base = cifar.make_callbacks(
        _args(cifar, "--smoke", "--baseline"), (np.zeros((2, 32, 32, 3)), np.zeros(2))
    )
    names = lambda cbs: [type(c).__name__ for c in cbs]  # noqa: E731
    assert names(lpc) == ["GammaAnnealing", "CollapseMetrics", "RobustnessMetrics"]
    assert names(base) == ["CollapseMetrics", "RobustnessMetrics"]


def test_paper_schedule_is_the_authors_per_epoch_two_phase(cifar):
    cb = cifar.gamma_annealing("paper")
    assert cb.unit == "epoch" and cb.ramp_fraction is None and cb.policies == []
    # 1e-4, doubled every 5 epochs: 2e-4 at epoch 5, 1e-4 * 2**24 at epoch 120.
    assert cb.schedule(4) == pytest.approx(1e-4)
    assert cb.schedule(5) == pytest.approx(2e-4)
    assert cb.schedule(120) == pytest.approx(1e-4 * 2**24)
    assert cifar.gamma_annealing("default").schedule == keras_lpc.GammaAnnealing().schedule


def test_learning_rate_holds_then_follows_a_half_cosine(cifar):
    s = cifar.HoldThenCosine(0.1, total=100, start=75, final=1e-8)
    values = [float(np.asarray(s(k))) for k in (0, 75, 87.5, 100, 150)]
    half = 1e-8 + (0.1 - 1e-8) * 0.5
    np.testing.assert_allclose(values, [0.1, 0.1, half, 1e-8, 1e-8], rtol=1e-5, atol=1e-9)


def test_resolve_defaults_and_main_rejects_unknown_keywords(cifar):
    full = _args(cifar, "--dataset", "cifar100")
    assert (full.epochs, full.batch_size, full.width, full.depth, full.dim) == (
        200,
        128,
        64,
        18,
        64,
    )
    assert (full.lr, full.collapse_every, full.robustness_every) == (5e-4, 4, 20)
    assert _args(cifar, "--optimizer", "sgd").lr == 0.1
    smoke = _args(cifar, "--smoke", "--epochs", "3")
    assert (smoke.epochs, smoke.width, smoke.depth, smoke.robustness_every) == (3, 4, 6, 3)
    with pytest.raises(TypeError, match=r"`overrides` must be flag names .* \['epoch'\]"):
        cifar.main(epoch=3)
    with pytest.raises(ValueError, match=r"`epochs` must be an integer >= 1. Received: epochs=0"):
        _args(cifar, "--smoke", epochs=0)
    with pytest.raises(ValueError, match=r"`depth` must be one of \[6, 10, 18, 34, 50\]"):
        cifar.build_resnet((32, 32, 3), 10, 8, depth=12)
