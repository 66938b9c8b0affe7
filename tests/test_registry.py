"""The attack table (`keras_lpc.robustness._registry`): one signature, one registry."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from _attack_models import two_class

from keras_lpc.robustness import (
    ATTACKS,
    Scorer,
    _registry,
    minimal_perturbation,
    register_attack,
    unregister_attack,
)

BUILT_IN = ("deepfool", "fmn", "pgd", "apgd-ce", "apgd-dlr", "boundary")
# f = (x_0, -x_0): the boundary x_0 = 0 lies |x_0| away
X = np.array([[3.0, 4.0], [-1.0, 2.0]], "float32")


@pytest.fixture
def table(monkeypatch):
    """The table, restored after the test."""
    monkeypatch.setattr(_registry, "_TABLE", dict(_registry._TABLE))
    return _registry._TABLE


def _to_boundary(scorer, x, labels, *, norm, budget, clip, rng):
    """Steps x_0 to -0.01 x_0 (1.01 times the distance): flips every input of `two_class`."""
    r = np.zeros_like(x)
    r[:, 0] = -1.01 * x[:, 0]
    return r


def test_attacks_is_a_live_read_only_view_equal_to_the_tuple(table):
    assert ATTACKS == BUILT_IN and tuple(ATTACKS) == BUILT_IN and list(ATTACKS) == list(BUILT_IN)
    assert (
        repr(ATTACKS) == repr(BUILT_IN) and ATTACKS.index("pgd") == 2 and ATTACKS[-1] == "boundary"
    )
    assert ATTACKS + ("x",) == (*BUILT_IN, "x")
    assert _registry.default_attacks("l2") == ("deepfool", "fmn", "pgd", "boundary")
    assert _registry.default_attacks("linf") == ("fmn", "apgd-ce", "apgd-dlr", "boundary")
    register_attack("to-boundary", _to_boundary, default_budget=3, default_for=("l2",))
    assert ATTACKS == (*BUILT_IN, "to-boundary")  # the view follows the table
    assert _registry.default_attacks("l2")[-1] == "to-boundary"
    unregister_attack("to-boundary")
    assert ATTACKS == BUILT_IN
    with pytest.raises(TypeError):
        ATTACKS[0] = "x"  # read-only


def test_a_registered_attack_runs_by_name_with_its_budget_and_rng(table):
    seen = {}

    def spy(scorer, x, labels, *, norm, budget, clip, rng):
        seen.update(scorer=scorer, budget=budget, norm=norm, clip=clip, rng=rng)
        return _to_boundary(scorer, x, labels, norm=norm, budget=budget, clip=clip, rng=rng)

    register_attack("spy", spy, default_budget=7, norms=("l2",))
    res = minimal_perturbation(two_class(), X, attacks=["spy"], clip=(-5.0, 5.0), verbose=0)
    # verified: |x_0| 1.01 / ||x||
    np.testing.assert_allclose(
        res.by_attack["spy"], 1.01 * np.abs(X[:, 0]) / np.linalg.norm(X, axis=1), rtol=1e-6
    )
    assert isinstance(seen["scorer"], Scorer) and seen["budget"] == 7 and seen["norm"] == "l2"
    assert seen["clip"] == (-5.0, 5.0) and isinstance(seen["rng"], np.random.Generator)
    # its place in the table seeds its generator: default_rng([seed, 6])
    expected = np.random.default_rng([0, 6]).random()
    assert seen["rng"].random() == expected
    minimal_perturbation(two_class(), X, attacks=["spy"], budget={"spy": 2}, verbose=0)
    assert seen["budget"] == 2
    with pytest.raises(ValueError, match=re.escape("`attacks` must support norm='linf': 'spy'")):
        minimal_perturbation(two_class(), X, norm="linf", attacks=["spy"], verbose=0)


def test_a_callable_takes_the_same_signature_and_the_former_one_is_deprecated():
    def current(scorer, x, labels, *, norm, budget, clip, rng):
        return _to_boundary(scorer, x, labels, norm=norm, budget=budget, clip=clip, rng=rng)

    def former(model, x, labels, *, norm, budget, clip, seed):
        assert seed == 5 and budget == 100 and hasattr(model, "predict")
        return _to_boundary(None, x, labels, norm=norm, budget=budget, clip=clip, rng=None)

    with warnings.catch_warnings():
        # the current signature: no deprecation
        warnings.filterwarnings("error", ".*deprecated", DeprecationWarning)
        now = minimal_perturbation(two_class(), X, attacks=[current], seed=5, verbose=0)
    with pytest.warns(DeprecationWarning, match="attack 'former': the signature fn\\(model"):
        old = minimal_perturbation(two_class(), X, attacks=[former], seed=5, verbose=0)
    np.testing.assert_array_equal(now.by_attack["current"], old.by_attack["former"])
    assert np.isfinite(now.per_sample).all()


def test_kinds_order_and_what_a_decision_attack_receives(table):
    # built-in kinds; a "decision" attack runs after the others and, if it takes them,
    # receives the best perturbation found so far and where to search fully
    assert {n: _registry.kind_of(n) for n in BUILT_IN} == {
        **dict.fromkeys(("deepfool", "fmn", "pgd", "apgd-ce", "apgd-dlr"), "gradient"),
        "boundary": "decision",
    }
    assert _registry.kind_of(_to_boundary) == "other"
    calls = []

    def free(scorer, x, labels, *, norm, budget, clip, rng, start, search):
        calls.append(("free", start.copy(), search.copy()))
        return np.where(np.isfinite(start), 0.5 * start, 0.0)  # half as far: does not flip

    def plain(scorer, x, labels, *, norm, budget, clip, rng):
        calls.append(("plain",))
        return _to_boundary(scorer, x, labels, norm=norm, budget=budget, clip=clip, rng=rng)

    register_attack("free", free, kind="decision")
    register_attack("plain", plain, kind="gradient")
    register_attack("lone", plain, kind="decision")  # no start / search: called plainly
    res = minimal_perturbation(two_class(), X, attacks=["free", "lone", "plain"], verbose=0)
    assert list(res.by_attack) == ["free", "lone", "plain"]  # reported in the order asked
    assert [c[0] for c in calls] == ["plain", "free", "plain"]  # the decision ones last
    start, search = calls[1][1], calls[1][2]
    # the best gradient perturbation (plain's, -1.01 x_0 on x_0); only one gradient attack
    # ran, so every input is searched fully
    np.testing.assert_allclose(start[:, 0], -1.01 * X[:, 0], rtol=1e-6)
    assert search.dtype == bool and search.all()
    assert np.isinf(res.by_attack["free"]).all()  # its claims are verified like any
    assert res.masking.gradient_failed == 0.0 and res.masking.decision_won == 0.0


def test_the_signature_is_read_not_guessed_from_errors():
    # a current-signature attack that raises TypeError is not retried the former way
    def broken(scorer, x, labels, *, norm, budget, clip, rng):
        raise TypeError("a real bug")

    with pytest.raises(TypeError, match="a real bug"):
        minimal_perturbation(two_class(), X, attacks=[broken], verbose=0)
    assert not _registry._legacy(broken) and not _registry._legacy(print)
    assert _registry._legacy(lambda model, x, labels, *, norm, budget, clip, seed: None)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": ""}, ValueError, "`name` must be a non-empty string. Received: name=''"),
        ({"name": "fmn"}, ValueError, "`name` must not be registered already"),
        ({"fn": 3}, TypeError, "`fn` must be a callable attack. Received: fn=3"),
        ({"default_budget": 0}, ValueError, "`default_budget` must be an integer >= 1"),
        ({"norms": ("l1",)}, ValueError, "`norms` must hold 'l2' and/or 'linf'"),
        ({"norms": ("l2",), "default_for": ("linf",)}, ValueError, "`default_for` must hold"),
        ({"kind": "label"}, ValueError, "`kind` must be one of 'gradient', 'decision', 'other'"),
    ],
)
def test_bad_registration(table, kwargs, error, message):
    args = {"name": "new", "fn": _to_boundary, **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        register_attack(args.pop("name"), args.pop("fn"), **args)


def test_replace_and_unregister(table):
    register_attack("fmn", _to_boundary, replace=True, default_for=("l2", "linf"))
    res = minimal_perturbation(two_class(), X, attacks=["fmn"], verbose=0)
    np.testing.assert_allclose(
        res.per_sample, 1.01 * np.abs(X[:, 0]) / np.linalg.norm(X, axis=1), rtol=1e-6
    )
    with pytest.raises(ValueError, match="`name` must be a registered attack"):
        unregister_attack("nope")
