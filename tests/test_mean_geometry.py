"""keras_lpc.metrics.mean_geometry: NC2-NC4 (norms, angles, self-duality, NCC) by hand."""

from __future__ import annotations

import pytest

from keras_lpc import metrics as M


def test_hand_values():
    square = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    assert M.max_angle_deviation(square, [0, 1, 2, 3]) == pytest.approx(4 / 9)
    assert M.ncc_agreement([[0.0], [0.2], [1.0], [0.4]], [0, 0, 1, 1], [0, 0, 1, 0]) == 0.75
    assert M.self_duality([[1.0, 0.0], [-1.0, 0.0]], [0, 1], [[2.0, -2.0], [0.0, 0.0]]) == 0.0
    assert M.self_duality(
        [[1.0, 0.0], [-1.0, 0.0]], [0, 1], [[-1.0, 1.0], [0.0, 0.0]]
    ) == pytest.approx(4.0)
