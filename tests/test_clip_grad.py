"""Gradient clipping and parameter flattening (tinyopt.nn.utils) against hand values and torch."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import tinyopt as to
from tinyopt.nn import Parameter
from tinyopt.nn.utils import (
    clip_grad_norm, clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm, parameters_to_vector,
    vector_to_parameters,
)
from tinyopt.optim import SGD

SHAPES = [(3, 4), (5,), (2, 2, 3)]


def params_with_grads(rng, dtype=np.float64, scale=1.0):
    params = [Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]
    for p in params:
        p.grad = (scale * rng.standard_normal(p.shape)).astype(dtype)
    return params


def test_clip_grad_norm_by_hand():
    p, q = Parameter(np.array([3.0, 0.0])), Parameter(np.array([[4.0]]))
    p.grad, q.grad = np.array([3.0, 0.0]), np.array([[4.0]])
    grad_p = p.grad  # clipping works in place: the optimizer reads these same arrays
    total = clip_grad_norm_([p, q], max_norm=1.0)
    assert isinstance(total, to.Tensor) and total.item() == 5.0  # the norm before clipping
    c = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(p.grad, [3 * c, 0.0], rtol=1e-15)
    np.testing.assert_allclose(q.grad, [[4 * c]], rtol=1e-15)
    assert p.grad is grad_p


def test_clip_grad_norm_leaves_small_gradients_alone_and_skips_none():
    p, q = Parameter(np.array([0.3, 0.4])), Parameter(np.zeros(2))
    p.grad = np.array([0.3, 0.4])
    total = clip_grad_norm_([p, q], max_norm=1.0)
    assert total.item() == pytest.approx(0.5)
    np.testing.assert_array_equal(p.grad, [0.3, 0.4])
    assert q.grad is None


def test_max_norm_and_other_norms_by_hand():
    p = Parameter(np.array([1.0, -2.0, 0.0]))
    p.grad = np.array([1.0, -2.0, 0.0])
    assert get_total_norm([p.grad], math.inf).item() == 2.0
    assert get_total_norm([p.grad], -math.inf).item() == 0.0
    assert get_total_norm([p.grad], 1).item() == 3.0
    # p = 0 counts non-zeros, and the total is a norm of norms: it counts tensors with a non-zero
    # gradient, not elements (PyTorch's semantics, checked against torch below)
    assert get_total_norm([p.grad], 0).item() == 1.0
    assert get_total_norm([p.grad, np.zeros(3), np.ones(2)], 0).item() == 2.0
    assert get_total_norm([p.grad], 3).item() == pytest.approx(9.0 ** (1 / 3))
    assert get_total_norm([]).item() == 0.0


def test_after_clipping_the_norm_is_max_norm(rng):
    params = params_with_grads(rng, scale=10.0)
    before = clip_grad_norm_(params, max_norm=2.5)
    after = get_total_norm([p.grad for p in params])
    assert before.item() > 2.5
    assert after.item() == pytest.approx(2.5, rel=1e-6)


def test_clip_grads_with_a_precomputed_norm(rng):
    params = params_with_grads(rng)
    expected = [p.grad * min(1.0, 0.1 / (7.0 + 1e-6)) for p in params]
    clip_grads_with_norm_(params, 0.1, total_norm=7.0)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.grad, e, rtol=1e-15)


def test_nonfinite_norm():
    p = Parameter(np.array([1.0, 2.0]))
    p.grad = np.array([np.nan, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad, [np.nan, 1.0])  # untouched when it raises
    total = clip_grad_norm_(p, 1.0)
    assert np.isnan(total.item()) and np.all(np.isnan(p.grad))  # PyTorch's behaviour: scaled by nan


def test_clip_grad_value_by_hand():
    p, q = Parameter(np.array([-3.0, 0.5, 2.0])), Parameter(np.zeros(1))
    p.grad = np.array([-3.0, 0.5, 2.0])
    grad = p.grad
    assert clip_grad_value_([p, q], 1.0) is None
    np.testing.assert_array_equal(p.grad, [-1.0, 0.5, 1.0])
    assert p.grad is grad and q.grad is None


def test_empty_generator_warns_and_deprecated_alias_warns():
    with pytest.warns(UserWarning, match="empty generator"):
        clip_grad_norm_((p for p in []), 1.0)
    p = Parameter(np.array([1.0]))
    p.grad = np.array([2.0])
    with pytest.warns(FutureWarning, match="deprecated"):
        assert clip_grad_norm(p, 1.0).item() == 2.0


def test_float32_gradients_give_a_float32_norm(rng):
    params = params_with_grads(rng, dtype=np.float32)
    total = clip_grad_norm_(params, 1.0)
    assert total.dtype == np.float32 and all(p.grad.dtype == np.float32 for p in params)


# ---------------------------------------------------------------------------- against torch

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 0.5, 3.0, math.inf, -math.inf, 0.0])
@pytest.mark.parametrize("max_norm", [0.3, 1e3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    params = params_with_grads(rng, dtype=dtype)
    tparams = [torch.nn.Parameter(torch.tensor(p.data)) for p in params]
    for p, tp in zip(params, tparams):
        tp.grad = torch.tensor(np.array(p.grad))
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=rtol)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=rtol, atol=0)


def test_clip_grad_value_matches_torch(rng):
    torch = pytest.importorskip("torch")
    params = params_with_grads(rng, scale=3.0)
    tparams = [torch.nn.Parameter(torch.tensor(p.data)) for p in params]
    for p, tp in zip(params, tparams):
        tp.grad = torch.tensor(np.array(p.grad))
    clip_grad_value_(params, 0.7)
    torch.nn.utils.clip_grad_value_(tparams, 0.7)
    for p, tp in zip(params, tparams):
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())


def test_clipped_sgd_trajectory_matches_torch(rng):
    """Least squares with steep gradients: every step is clipped; same path as torch."""
    torch = pytest.importorskip("torch")
    A, b, w0 = 5 * rng.standard_normal((20, 4)), rng.standard_normal(20), rng.standard_normal(4)

    w = Parameter(w0.copy())
    opt = SGD([w], lr=0.05)
    tw = torch.nn.Parameter(torch.tensor(w0.copy()))
    topt = torch.optim.SGD([tw], lr=0.05)
    At, bt = torch.tensor(A), torch.tensor(b)
    norms, tnorms = [], []
    for _ in range(40):
        opt.zero_grad()
        r = to.tensor(A) @ w - to.tensor(b)
        (r * r).mean().backward()
        norms.append(clip_grad_norm_([w], max_norm=1.0).item())
        opt.step()

        topt.zero_grad()
        tr = At @ tw - bt
        (tr * tr).mean().backward()
        tnorms.append(torch.nn.utils.clip_grad_norm_([tw], max_norm=1.0).item())
        topt.step()
    np.testing.assert_allclose(norms, tnorms, rtol=1e-10)
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-10)
    assert norms[0] > 1.0  # the clipping was active


# ---------------------------------------------------------------------------- parameters <-> vector

def test_parameters_to_vector_and_back(rng):
    params = [Parameter(rng.standard_normal(s)) for s in SHAPES]
    vec = parameters_to_vector(params)
    assert vec.shape == (sum(int(np.prod(s)) for s in SHAPES),)
    np.testing.assert_array_equal(vec.data, np.concatenate([p.data.ravel() for p in params]))

    new = to.tensor(rng.standard_normal(vec.shape))
    arrays = [p.data for p in params]
    vector_to_parameters(new, params)
    np.testing.assert_array_equal(parameters_to_vector(params).data, new.data)
    assert all(p.data is a for p, a in zip(params, arrays))  # copied into the existing arrays
    new.data[:] = 0
    assert not np.all(parameters_to_vector(params).data == 0)  # no aliasing with vec


def test_parameters_to_vector_is_differentiable(rng):
    torch = pytest.importorskip("torch")
    data = [rng.standard_normal(s) for s in SHAPES]
    weights = rng.standard_normal(sum(d.size for d in data))
    params = [Parameter(d.copy()) for d in data]
    tparams = [torch.nn.Parameter(torch.tensor(d.copy())) for d in data]
    v = parameters_to_vector(params)
    ((v * v) * to.tensor(weights)).sum().backward()
    tv = torch.nn.utils.parameters_to_vector(tparams)
    ((tv * tv) * torch.tensor(weights)).sum().backward()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-14)


def test_vector_to_parameters_errors():
    params = [Parameter(np.zeros((2, 3))), Parameter(np.zeros(4))]
    with pytest.raises(ValueError, match=r"shape \(9,\).*10 elements"):
        vector_to_parameters(to.tensor(np.zeros(9)), params)
    with pytest.raises(ValueError, match="10 elements"):
        vector_to_parameters(to.tensor(np.zeros((2, 5))), params)
    with pytest.raises(TypeError, match="Tensor"):
        vector_to_parameters(np.zeros(10), params)
    with pytest.raises(ValueError, match="no parameters"):
        parameters_to_vector([])


def test_works_with_a_module_parameters_generator(rng):
    model = to.nn.Sequential(to.nn.Linear(3, 4), to.nn.ReLU(), to.nn.Linear(4, 2))
    x = to.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    model(x).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        total = clip_grad_norm_(model.parameters(), 1e-3)
    assert total.item() > 1e-3
    assert get_total_norm([p.grad for p in model.parameters()]).item() == pytest.approx(1e-3, rel=1e-3)
    assert parameters_to_vector(model.parameters()).shape == (3 * 4 + 4 + 4 * 2 + 2,)


@pytest.mark.parametrize("name", ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm",
                                  "clip_grads_with_norm_", "parameters_to_vector", "vector_to_parameters"])
def test_signature_matches_torch(name):
    import inspect

    import tinyopt.nn.utils as U

    torch = pytest.importorskip("torch")

    def params(fn):
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]

    assert params(getattr(U, name)) == params(getattr(torch.nn.utils, name))
