"""`keras_lpc.backend`: loops, guarded compiled calls, torch's traced graphs and threads."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _attack_models import linear, mlp, two_class
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness import (
    Scorer,
    apgd_accuracy,
    certified_radius,
    deepfool,
    fgsm_accuracy,
    lipschitz,
    minimal_perturbation,
    pgd_accuracy,
)

torch_only = pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch's traced graphs")


def _private_scope_name_still_exists():
    # backend/__init__.py imports Keras' get_stateless_scope (no public getter): fail loudly
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    return get_stateless_scope


def test_keras_private_stateless_scope_getter_exists():
    assert callable(_private_scope_name_still_exists())


@pytest.fixture
def trace_at_once(monkeypatch):
    """On torch, every signature traced on its first call and promoted to TorchScript on
    its first replay (the defaults wait: `_trace.TRACE_AT`, `_replay.PROMOTE_AFTER`), so
    that the tests below exercise the traced path with a few calls."""
    if keras.backend.backend() == "torch":
        from keras_lpc.backend import _replay, _trace

        monkeypatch.setattr(_trace, "TRACE_AT", 1)
        monkeypatch.setattr(_replay, "PROMOTE_AFTER", 1)


def _weighted_sum(scale):
    """A jitted loop ``sum_{k < n} scale * k * x`` whose body closes over tensors."""

    def f(x, n):
        s = ops.cast(scale, x.dtype) * x

        def body(k, acc):
            return acc + s * ops.cast(k, x.dtype)

        return (backend.fori_loop(0, n, body, ops.zeros_like(x)),)

    return backend.jit(f)


def test_loops_with_closures_give_the_closed_form_for_new_inputs(trace_at_once):
    run = _weighted_sum(2.0)
    x = np.array([[1.0, -2.0]], "float32")
    for n, scale in ((4, 12.0), (3, 6.0)):  # 2 * (0 + 1 + 2 + 3), 2 * (0 + 1 + 2)
        (out,) = run(x, np.int32(n))
        np.testing.assert_array_equal(ops.convert_to_numpy(out), scale * x)
    (out,) = run(3 * x, np.int32(4))  # new closure tensors, same graph
    np.testing.assert_array_equal(ops.convert_to_numpy(out), 36 * x)

    def g(x):
        def cond(k, acc):
            return k < 3

        def body(k, acc):
            return k + 1, acc + x

        return backend.while_loop(cond, body, (ops.zeros((), "int32"), ops.zeros_like(x)))

    k, total = backend.jit(g)(x)
    assert int(ops.convert_to_numpy(k)) == 3
    np.testing.assert_array_equal(ops.convert_to_numpy(total), 3 * x)


def test_each_attack_loop_is_one_guarded_compiled_call_per_batch(rng):
    # 6 inputs in batches of 4: per function one forward pass for the labels and one
    # loop per batch (2 + 2 calls); on JAX each call runs under
    # jax.transfer_guard("disallow"), so a host transfer inside a loop would raise
    model, x = mlp(rng, n=6)
    y = Scorer(model).predict(x)
    runs = {
        "deepfool": lambda: deepfool(model, x, batch_size=4),
        "lipschitz": lambda: lipschitz(model, x, batch_size=4),
        "fgsm": lambda: fgsm_accuracy(model, x, y, 0.1, batch_size=4),
        "pgd": lambda: pgd_accuracy(model, x, y, 0.1, steps=3, batch_size=4),
        "apgd": lambda: apgd_accuracy(model, x, y, 0.1, steps=3, batch_size=4),
    }
    for name, run in runs.items():
        with backend.guard() as record:
            run()
        assert record.calls == 4, name
    budget = {"deepfool": 3, "fmn": 3, "pgd": 2, "apgd-ce": 2, "apgd-dlr": 2, "boundary": 2}
    for norm in ("l2", "linf"):
        with backend.guard() as record:
            res = minimal_perturbation(model, x, norm=norm, budget=budget, verbose=0)
        assert record.calls > 0 and np.all(np.isfinite(res.per_sample)), norm
    for method in ("crown", "ibp"):  # the radius search: compiled, guarded calls
        with backend.guard() as record:
            cert = certified_radius(model, x, norm="linf", method=method, batch_size=4)
        assert record.calls > 0 and np.all(cert.distance <= res.distance + 1e-6), method


@pytest.mark.parametrize(
    ("n", "plain", "fine"),
    [(1, 8, 8), (5, 8, 8), (9, 16, 12), (12, 16, 12), (13, 16, 16), (97, 128, 128),
     (136, 256, 192), (192, 256, 192), (193, 256, 256)],
)  # fmt: skip
def test_bucket_sizes(n, plain, fine):
    assert backend.bucket(n) == plain
    assert backend.bucket(n, fine=True) == fine
    assert backend.bucket(n, minimum=1) == 1 << (n - 1).bit_length()


def test_guard_counts_nothing_outside_it():
    run = _weighted_sum(1.0)
    with backend.guard() as record:
        run(np.ones((1, 2), "float32"), np.int32(2))
    run(np.ones((1, 2), "float32"), np.int32(2))
    assert record.calls == 1


def test_torch_threads_setting_is_checked():
    with pytest.raises(
        ValueError, match=r"`limit` must be an integer >= 1 or None\. Received: limit=0"
    ):
        backend.set_torch_threads(0)


@torch_only
def test_torch_threads_are_limited_inside_jit_and_restored_after():
    import torch

    before = torch.get_num_threads()
    seen = []
    run = backend.jit(lambda x: (seen.append(torch.get_num_threads()) or x + 1,))
    run(np.zeros((1, 2), "float32"))  # traced and run once: Python sees the count twice
    assert set(seen) == {1} and torch.get_num_threads() == before
    backend.set_torch_threads(None)
    try:
        run(np.zeros((2, 2), "float32"))
    finally:
        backend.set_torch_threads(1)
    assert seen[-1] == before


@torch_only
def test_torch_traces_replay_equal_eager_and_fall_back_on_data_dependent_python(monkeypatch):
    from keras_lpc.backend import _trace

    model = two_class()
    scorer = Scorer(model)
    x = ops.convert_to_tensor(np.array([[3.0, 4.0], [-1.0, 2.0]], "float32"))
    # a signature runs eagerly until its TRACE_AT-th call, then replays its graph
    for _ in range(_trace.TRACE_AT - 1):
        np.testing.assert_array_equal(ops.convert_to_numpy(scorer.fn(x)), [[3, -3], [-1, 1]])
    assert not scorer.fn.graphs.store
    np.testing.assert_array_equal(ops.convert_to_numpy(scorer.fn(x)), [[3, -3], [-1, 1]])
    (entry,) = scorer.fn.graphs.store.values()
    assert entry is not _trace._FAILED  # traced and replayed
    model.set_weights([np.array([[2.0, -2.0], [0.0, 0.0]], "float32"), np.zeros(2, "float32")])
    np.testing.assert_array_equal(ops.convert_to_numpy(scorer.fn(x)), [[6, -6], [-2, 2]])

    def branchy(a):  # Python control flow on a tensor value cannot be traced
        return (a * 2,) if bool(ops.all(a > 0)) else (a - 1,)

    monkeypatch.setattr(_trace, "TRACE_AT", 1)
    run = backend.jit(branchy)
    for value, want in ((1.0, 2.0), (-1.0, -2.0)):
        (out,) = run(np.full((1, 2), value, "float32"))
        np.testing.assert_array_equal(ops.convert_to_numpy(out), [[want, want]])


@torch_only
def test_torch_trace_keeps_inputs_that_start_as_one_tensor_apart(trace_at_once):
    # make_fx would merge two state slots holding one tensor into one graph input
    def f(x):
        def body(k, s):
            a, b = s
            return a + 1.0, b * 2.0

        return backend.fori_loop(0, 3, body, (x, x))

    a, b = backend.jit(f)(np.ones((1, 2), "float32"))
    np.testing.assert_array_equal(ops.convert_to_numpy(a), [[4.0, 4.0]])
    np.testing.assert_array_equal(ops.convert_to_numpy(b), [[8.0, 8.0]])


@torch_only
def test_torch_compile_falls_back_to_plain_graphs_when_it_fails(monkeypatch):
    import torch

    from keras_lpc.backend import _trace

    def broken(*args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setitem(_trace._COMPILE, "broken", None)
    backend.set_torch_compile(True)
    try:
        model = linear(np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2))
        res = deepfool(model, np.array([[3.0, 4.0]]), overshoot=0.0)
    finally:
        backend.set_torch_compile(False)
    np.testing.assert_allclose(res.perturbation, [[-3.0001, 0.0]], rtol=1e-6)
    assert "no C++ compiler" in _trace._COMPILE["broken"]


def _eager_bodies(caplog):
    return [r.getMessage() for r in caplog.records if "body runs eagerly" in r.getMessage()]


@torch_only
def test_torch_short_inner_loops_unroll_into_their_outer_body(caplog, trace_at_once):
    # acc <- 8 acc + 1 per step (three doublings, unrolled): 1 -> 9 -> 73 -> 585
    def f(x, n):
        def inner(j, a):
            return a * 2.0

        def body(k, acc):
            return backend.fori_loop(0, 3, inner, acc) + 1.0

        return (backend.fori_loop(0, n, body, x),)

    caplog.set_level("DEBUG", logger="keras_lpc.backend")
    run = backend.jit(f)
    for n, want in ((2, 73.0), (3, 585.0)):
        (out,) = run(np.ones((1, 2), "float32"), np.int32(n))
        np.testing.assert_array_equal(ops.convert_to_numpy(out), [[want, want]])
    assert _eager_bodies(caplog) == []  # the outer body is one graph


def _one_hot_loop():
    """A jitted loop whose body builds one loop-invariant one-hot twice: ``n x_y + k x_y``
    summed over ``k < n``, i.e. ``x_y (n + n (n - 1) / 2)``."""

    def f(x, y, n):
        def body(k, acc):
            hot = ops.one_hot(y, 3, dtype=x.dtype)
            again = ops.one_hot(y, 3, dtype=x.dtype)
            return (
                acc + ops.sum(hot * x, axis=1) + ops.sum(again * x, axis=1) * ops.cast(k, x.dtype)
            )

        return (backend.fori_loop(0, n, body, ops.zeros_like(x[:, 0])),)

    return f


@torch_only
def test_torch_replays_fold_merge_and_hoist_without_changing_values(trace_at_once):
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx

    from keras_lpc.backend import _replay

    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "float32")
    y = np.array([2, 0], "int32")
    run = backend.jit(_one_hot_loop())
    (out,) = run(x, y, np.int32(4))  # x_y (4 + 6)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), [30.0, 40.0])
    (out,) = run(x, np.array([1, 1], "int32"), np.int32(3))  # x_y (3 + 3), same graphs
    np.testing.assert_array_equal(ops.convert_to_numpy(out), [12.0, 30.0])

    def twice(a):
        return [torch.ones(3) * 2.0 + a, torch.exp(a) + torch.exp(a)]

    a = torch.tensor([0.0, 1.0, -1.0])
    graph = make_fx(twice)(a)
    folded = _replay.fold(graph)
    ops_in = [n for n in folded.graph.nodes if n.op == "call_function"]
    assert [str(n.target) for n in ops_in].count("aten.exp.default") == 1  # merged
    assert "aten.ones.default" not in {str(n.target) for n in ops_in}  # folded
    for got, want in zip(folded(a), twice(a)):
        assert torch.equal(got, want)


@torch_only
def test_torch_replays_run_without_torchscript(monkeypatch, trace_at_once):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("no TorchScript")

    monkeypatch.setattr(torch.jit, "trace", broken)
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    (out,) = backend.jit(_one_hot_loop())(x, np.array([0], "int32"), np.int32(2))
    np.testing.assert_array_equal(ops.convert_to_numpy(out), [3.0])  # 1 (2 + 1)
