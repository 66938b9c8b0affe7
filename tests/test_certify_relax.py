"""The relaxations of the certified bounds: proved sound by dense sampling, exact where known.

Every activation's linear bounds ``a_l z + b_l <= f(z) <= a_u z + b_u`` are
checked on 2001 points of each of 3000 intervals (narrow, wide, centred
anywhere, points) against ``f`` in float64; the activation intervals (IBP)
likewise; max pooling's relaxation against the maximum of sampled windows.
"""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from keras_lpc.robustness.certify import _activations as acts
from keras_lpc.robustness.certify import _relax
from keras_lpc.robustness.certify._pooling import MaxPool, Windows

SPECS = [
    acts.SILU,
    acts.GELU,
    acts.SIGMOID,
    acts.TANH,
    acts.Leaky(0.0),
    acts.Leaky(float(np.float32(0.2))),
    acts.Leaky(float(np.float32(-0.3))),
    acts.Leaky(2.0),
]


def _intervals(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=n) * rng.choice([0.3, 1.0, 3.0, 8.0], size=n)
    width = np.abs(rng.normal(size=n)) * rng.choice([0.0, 1e-6, 1e-3, 0.3, 1.0, 5.0, 20.0], size=n)
    return (centre - width).astype("float32"), (centre + width).astype("float32")


def _grid(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    t = np.linspace(0.0, 1.0, 2001)[:, None]
    return lower.astype("float64") + (upper.astype("float64") - lower) * t


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_relaxation_is_sound_on_every_interval(spec):
    lower, upper = _intervals()
    out = _relax.relax(spec, ops.convert_to_tensor(lower), ops.convert_to_tensor(upper))
    a_l, b_l, a_u, b_u = (ops.convert_to_numpy(v).astype("float64") for v in out)
    z = _grid(lower, upper)
    fz = spec.f64(z)
    assert np.max(a_l * z + b_l - fz) <= 0.0
    assert np.max(fz - a_u * z - b_u) <= 0.0
    # and not vacuous: on narrow intervals the two lines close on f (within 1e-3 of its range)
    narrow = (upper - lower) < 1e-3
    gap = np.max((a_u * z + b_u) - (a_l * z + b_l), axis=0)
    assert np.all(gap[narrow] < 1e-3 * (1.0 + np.abs(fz[0][narrow])))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_activation_interval_contains_every_value(spec):
    lower, upper = _intervals(seed=1)
    low, up = acts.interval(spec, ops.convert_to_tensor(lower), ops.convert_to_tensor(upper))
    fz = spec.f64(_grid(lower, upper))
    assert np.all(ops.convert_to_numpy(low) <= fz.min(axis=0) + 1e-6 * (1 + np.abs(fz.min(axis=0))))
    assert np.all(ops.convert_to_numpy(up) >= fz.max(axis=0) - 1e-6 * (1 + np.abs(fz.max(axis=0))))


def test_relu_is_the_standard_triangle():
    lower = np.array([-2.0, -1.0, 1.0, -3.0], "float32")
    upper = np.array([1.0, 3.0, 2.0, -1.0], "float32")
    a_l, b_l, a_u, b_u = (
        ops.convert_to_numpy(v) for v in _relax.relax(acts.Leaky(0.0), lower, upper)
    )
    # chord u / (u - l) through (l, 0) where the sign is unknown; slope 1 below iff u >= -l
    np.testing.assert_allclose(a_u, [1 / 3, 3 / 4, 1.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(b_u, [2 / 3, 3 / 4, 0.0, 0.0], rtol=1e-5)
    np.testing.assert_array_equal(a_l, [0.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(b_l, [0.0, 0.0, 0.0, 0.0])


def test_point_interval_gives_the_tangent():
    z = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], "float32")
    a_l, b_l, a_u, b_u = (ops.convert_to_numpy(v) for v in _relax.relax(acts.SILU, z, z))
    slope = acts.SILU.df64(z.astype("float64"))
    np.testing.assert_allclose(a_l, slope, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a_u, slope, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a_u * z + b_u, acts.SILU.f64(z.astype("float64")), atol=1e-5)


def test_constants_of_the_smooth_activations():
    # SiLU: inflections solve z tanh(z/2) = 2, minimum where 1 + z (1 - s(z)) = 0
    assert acts.SILU.breaks[1] == pytest.approx(2.399357, abs=1e-6)
    assert acts.SILU.argmin == pytest.approx(-1.278465, abs=1e-6)
    assert acts.SILU.lipschitz == pytest.approx(1.099839, abs=1e-6)
    assert acts.GELU.breaks == pytest.approx((-np.sqrt(2), np.sqrt(2)))
    assert acts.GELU.lipschitz == pytest.approx(1.128904, abs=1e-6)
    z = np.linspace(-6, 6, 120001)
    for spec in (acts.SILU, acts.GELU, acts.SIGMOID, acts.TANH):
        assert np.max(np.abs(spec.df64(z))) <= spec.lipschitz + 1e-12
        second = np.gradient(spec.df64(z), z)
        for i, convex in enumerate(spec.convex):
            left = -np.inf if i == 0 else spec.breaks[i - 1]
            right = np.inf if i == len(spec.breaks) else spec.breaks[i]
            inside = (z > left + 1e-3) & (z < right - 1e-3)
            assert np.all(second[inside] >= -1e-10) if convex else np.all(second[inside] <= 1e-10)


@pytest.mark.parametrize("pool,strides,padding", [(2, 2, "valid"), (3, 2, "same"), (2, 1, "valid")])
def test_max_pool_relaxation_bounds_the_maximum(pool, strides, padding, rng):
    windows = Windows((5, 5, 2), (pool, pool), (strides, strides), padding)
    op = MaxPool(windows)
    centre = rng.normal(size=(3, 5, 5, 2))
    width = np.abs(rng.normal(size=(3, 5, 5, 2))) * rng.choice([0.01, 1.0], size=(3, 5, 5, 2))
    lower, upper = (centre - width).astype("float32"), (centre + width).astype("float32")
    pick, upper_mask, const = (ops.convert_to_numpy(v) for v in op.relax(lower, upper))
    x = lower + (upper - lower) * rng.random((200, *lower.shape))  # 200 points per box
    x = x.reshape(-1, *lower.shape[1:]).astype("float32")
    y = ops.convert_to_numpy(op.forward(x)).reshape(200, 3, -1)
    win = ops.convert_to_numpy(windows.extract(x, -3e38)).reshape(200, 3, pick.shape[1], -1)
    shape = (1, 3, pick.shape[1], -1)
    assert np.all(np.sum(pick.reshape(shape) * win, axis=2) <= y + 1e-6)
    bound = np.sum(upper_mask.reshape(shape) * win, axis=2) + const.reshape(1, 3, -1)
    assert np.all(y <= bound + 1e-6)
    low, up = (ops.convert_to_numpy(v) for v in op.interval(lower, upper))
    assert np.all(low <= up)
