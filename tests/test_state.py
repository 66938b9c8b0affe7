"""`keras_lpc.annealing.state`: the resume state, its saved entries and the earlier format."""

from __future__ import annotations

import math

import numpy as np

from keras_lpc.annealing import AnnealingState, EpochState


def test_entries_round_trip_with_policy_numbers_and_an_undecided_next():
    state = AnnealingState(
        EpochState(3, 12.5, 0.9, 0.5, {"pace_best": 0.9, "pace_speed": 0.5}), None, 4, 2.5
    )
    entries = state.to_entries()
    assert entries["annealing_state.current.count"] == 12.5
    assert entries["annealing_state.current.policy.pace_speed"] == 0.5
    assert not any(k.startswith("annealing_state.next") for k in entries)
    assert all(v.dtype == np.float64 for v in entries.values())
    assert AnnealingState.from_entries(entries) == state
    assert state.latest() is state.current


def test_the_nine_float_array_of_earlier_files_loads():
    # epoch, count, best, hold flag of the current epoch, the same of the next one, counts
    array = np.array([2.0, 8.0, 0.9, 1.0, 3.0, 8.0, 0.9, 0.0, 4.0])
    state = AnnealingState.from_entries({"annealing_state": array})
    assert state == AnnealingState(EpochState(2, 8.0, 0.9, 0.0), EpochState(3, 8.0, 0.9, 1.0), 4)
    undecided = array.copy()
    undecided[4] = math.nan
    assert AnnealingState.from_entries({"annealing_state": undecided}).next is None
    assert AnnealingState.from_entries({"annealing_state": np.zeros(3)}) is None
    assert AnnealingState.from_entries({}) is None
