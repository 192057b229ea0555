"""The engine's mechanics added with torch's semantics: in-place ops and their version counters,
hooks, gradients as Tensors, grad modes, NumPy interop, and the import having no side effect."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tinyopt as to
import tinyopt.nn as nn
from conftest import assert_matches_torch, check_grad, randn


# ----------------------------------------------------------------------------- in place


def test_inplace_ops_write_the_same_memory():
    x = to.zeros(4)
    data = x.data
    x += 1
    x.mul_(3)
    x[1] = 7.0
    x.clamp_(max=5.0)
    assert x.data is data
    np.testing.assert_array_equal(data, [3, 5, 3, 3])


def test_views_see_inplace_changes_and_share_the_version():
    x = to.zeros(2, 3)
    v, row = x.view(-1), x[0]
    x.add_(1)
    row[2] = 9.0
    np.testing.assert_array_equal(v.data, [1, 1, 9, 1, 1, 1])
    assert v._version is x._version is row._version


@pytest.mark.parametrize("change", [
    lambda y: y.add_(1), lambda y: y.mul_(2), lambda y: y.__setitem__(0, 5.0), lambda y: y.zero_(),
])
def test_a_backward_that_needs_an_overwritten_value_raises(change):
    x = to.tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    y = x.exp()           # Exp saves its output for backward
    change(y)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_through_a_view_is_detected():
    x = to.tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    y = x.tanh()
    y.view(3)[0] = 0.0
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()


def test_inplace_that_backward_does_not_need_is_fine(rng):
    x = randn((4,), rng)

    def fn(t):
        y = t * 2      # Mul saves its inputs, not its output
        y += 1
        y *= y.detach() * 0 + 3.0
        y[0] = y[1] * 4
        return y

    check_grad(fn, x)
    assert_matches_torch([x], fn)


def test_leaf_requiring_grad_refuses_inplace_unless_no_grad():
    w = to.ones(3, requires_grad=True)
    before = w.data.copy()
    with pytest.raises(RuntimeError, match="leaf"):
        w.add_(1)
    np.testing.assert_array_equal(w.data, before)  # nothing changed
    with to.no_grad():
        w -= 0.5
    np.testing.assert_array_equal(w.data, [0.5, 0.5, 0.5])
    assert w.is_leaf and w.requires_grad


def test_inplace_shape_and_dtype_errors_change_nothing():
    x = to.zeros(2, 3)
    with pytest.raises(RuntimeError, match="broadcast shape"):
        x += to.ones(4, 2, 3)
    i = to.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        i += 0.5
    np.testing.assert_array_equal(i.data, [1, 2])
    np.testing.assert_array_equal(x.data, np.zeros((2, 3)))


# ----------------------------------------------------------------------------- gradients and hooks


def test_grad_is_a_tensor_accumulated_in_place():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    g = x.grad
    assert isinstance(g, to.Tensor) and not g.requires_grad
    (x * 3).sum().backward()
    assert x.grad is g  # the same tensor, as in torch
    np.testing.assert_array_equal(g.data, [5.0, 7.0])
    x.grad.zero_()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])


def test_assigning_a_grad_checks_its_shape():
    p = nn.Parameter(np.zeros((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="different size"):
        p.grad = np.ones(3, np.float32)
    with pytest.raises(RuntimeError, match="different size"):
        p.grad = np.ones((3, 2), np.float32)
    assert p.grad is None
    p.grad = np.ones((2, 3), np.float32)
    assert isinstance(p.grad, to.Tensor)


def test_tensor_hooks_and_handles():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.data.copy()))
    y = x * 3
    y.register_hook(lambda g: g * 10)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [30.0, 30.0])
    np.testing.assert_array_equal(seen[0], [30.0, 30.0])
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    assert len(seen) == 1


def test_post_accumulate_grad_hook_sees_the_finished_grad():
    w = nn.Parameter(np.ones(2, np.float32))
    got = []
    w.register_post_accumulate_grad_hook(lambda p: got.append(p.grad.data.copy()))
    ((w * 2).sum() + (w * 3).sum()).backward()
    assert len(got) == 1
    np.testing.assert_array_equal(got[0], [5.0, 5.0])


def test_module_forward_hooks():
    layer = nn.Linear(2, 2, rng=0)
    calls = []
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda m, args, out: calls.append(tuple(out.shape)) or out * 2)
    out = layer(to.ones(3, 2))
    np.testing.assert_allclose(out.data, np.tile(2 * layer.bias.data, (3, 1)))
    assert calls == [(3, 2)]
    pre.remove(), post.remove()
    assert layer(to.ones(1, 2)).shape == (1, 2) and calls == [(3, 2)]


def test_grad_modes():
    x = to.ones(2, requires_grad=True)
    with to.inference_mode():
        assert not (x * 2).requires_grad
    to.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        to.set_grad_enabled(True)
    assert (x * 2).requires_grad


def test_bfloat16_and_float16_tensors_carry_gradients():
    for dtype in (to.float16, to.bfloat16):
        x = to.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
        (x * x).sum().backward()
        assert x.grad.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(np.asarray(x.grad, dtype=np.float32), [2.0, 4.0])


# ----------------------------------------------------------------------------- NumPy interop


def test_numpy_ufuncs_on_tensors():
    x = to.tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = np.ones(2) * x + np.exp(x)
    assert isinstance(y, to.Tensor) and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 1 + np.exp([1.0, -2.0]))
    assert isinstance(np.abs(x.detach()), to.Tensor)
    with pytest.raises(TypeError, match="drop it from the graph"):
        np.arctan(x)
    assert np.asarray(x) is x.data


def test_register_buffer_and_dataloader_take_tensors():
    m = nn.Module()
    m.register_buffer("scale", to.tensor([2.0, 3.0]))
    assert m.scale.dtype == np.float32 and m.scale.shape == (2,)
    loader = to.utils.data.DataLoader((to.arange(6), to.arange(6) * 2), batch_size=4)
    xb, yb = next(iter(loader))
    assert isinstance(xb, to.Tensor) and xb.tolist() == [0, 1, 2, 3] and yb.tolist() == [0, 2, 4, 6]


# ----------------------------------------------------------------------------- errors and dims


@pytest.mark.parametrize("call", [
    lambda: to.stack([to.ones(2), to.ones(2)], dim=-5),
    lambda: to.ones(2, 3).sum(dim=2),
    lambda: to.ones(2, 3).transpose(0, 5),
    lambda: to.ones(2, 3).softmax(dim=3),
    lambda: nn.Flatten(start_dim=7)(to.ones(2, 3)),
    lambda: to.cat([to.ones(2), to.ones(2)], dim=1),
])
def test_out_of_range_dims_raise(call):
    with pytest.raises((IndexError, ValueError)):
        call()


@pytest.mark.parametrize("data, error", [("abc", TypeError), (["a", 1], TypeError), ({"a": 1}, TypeError),
                                         ([[1, 2], [3]], ValueError)])
def test_tensor_refuses_what_is_not_numbers(data, error):
    with pytest.raises(error, match="can't make a tensor"):
        to.tensor(data)


def test_cuda_is_refused_clearly():
    assert not to.cuda.is_available()
    with pytest.raises(RuntimeError, match="CPU only"):
        to.ones(2).to("cuda")
    with pytest.raises(RuntimeError, match="CPU only"):
        nn.Linear(2, 2).to(to.device("cuda:0"))
    assert to.ones(2).to("cpu").device == to.device("cpu")


def test_train_mode_must_be_a_bool():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="boolean"):
        model.train("False")
    assert model.training


def test_load_state_dict_checks_everything_before_writing():
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Linear(2, 1, rng=1))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    bad = dict(model.state_dict())
    bad["0.weight"] = np.full((2, 2), 9.0)
    bad["1.weight"] = np.array([["a", "b"]])  # cannot be cast: must fail before 0.weight is written
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    result = model.load_state_dict({k: to.tensor(v) for k, v in before.items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    with pytest.raises(TypeError, match="dict"):
        model.load_state_dict([1, 2])


# ----------------------------------------------------------------------------- import has no side effect


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **env))


def test_import_does_not_tune_malloc():
    result = _run("import tinyopt, tinyopt.nn, tinyopt.kernels.memory as m; print(m.is_tuned())")
    assert result.returncode == 0 and result.stdout.strip() == "None", result.stderr


def test_a_bad_kernel_backend_fails_at_first_use_not_at_import():
    result = _run("import tinyopt as to\nprint('imported')\nto.nn.functional.max_pool2d(to.zeros(1, 1, 4, 4), 2)",
                  TINYOPT_KERNELS="fastest")
    assert "imported" in result.stdout
    assert result.returncode != 0 and "TINYOPT_KERNELS must be one of numba, reference" in result.stderr


@pytest.mark.parametrize("dtype", [to.float16, to.bfloat16])
def test_pooling_in_half_precision_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    for ours, theirs in ((nn.MaxPool2d(2), torch.nn.MaxPool2d(2)), (nn.AvgPool2d(3, 1, 1), torch.nn.AvgPool2d(3, 1, 1))):
        x = to.tensor(a).to(dtype).requires_grad_()
        t = torch.tensor(a).to(getattr(torch, np.dtype(dtype).name)).requires_grad_()
        y, r = ours(x), theirs(t)
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(np.asarray(y.data, np.float32), r.detach().float().numpy())
        (y * y).sum().backward()
        (r * r).sum().backward()
        np.testing.assert_allclose(np.asarray(x.grad, np.float32), t.grad.float().numpy(), rtol=1e-2, atol=1e-2)
