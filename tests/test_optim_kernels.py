"""The fused update kernels (kernels/optim_update.py): the Numba twin agrees with the NumPy twin,
and the optimizers fall back to their formula when a kernel cannot update in place."""
import itertools

import numpy as np
import pytest

import tinyopt as to
from tinyopt import optim
from tinyopt.kernels import backend, optim_update


def _arrays(n, dtype, rng, count):
    return [rng.standard_normal(n).astype(dtype) for _ in range(count)]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("momentum,dampening,weight_decay,nesterov,maximize,first",
                         [(0.0, 0.0, 0.0, False, False, False), (0.9, 0.0, 0.0, False, False, True),
                          (0.9, 0.2, 0.01, False, True, False), (0.8, 0.0, 0.05, True, False, False)])
def test_sgd_twins_agree(dtype, tol, momentum, dampening, weight_decay, nesterov, maximize, first):
    rng = np.random.default_rng(0)
    param, grad, buf = _arrays(1001, dtype, rng, 3)
    a = [param.copy(), grad.copy(), buf.copy()]
    b = [param.copy(), grad.copy(), buf.copy()]
    args = (0.05, momentum, dampening, weight_decay, nesterov, maximize, first)
    optim_update.sgd_update_reference(*a, *args)
    optim_update.sgd_update_numba(*b, *args)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
    assert not np.array_equal(a[0], param)  # the update happened, in place


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 1e-6)])
@pytest.mark.parametrize("amsgrad,maximize,weight_decay,decoupled",
                         list(itertools.product([False, True], [False, True], [0.0, 0.1], [False, True])))
def test_adam_twins_agree(dtype, tol, amsgrad, maximize, weight_decay, decoupled):
    rng = np.random.default_rng(1)
    param, grad, m = _arrays(777, dtype, rng, 3)
    v, vmax = (np.abs(x) for x in _arrays(777, dtype, rng, 2))
    a = [x.copy() for x in (param, grad, m, v, vmax)]
    b = [x.copy() for x in (param, grad, m, v, vmax)]
    # lr, β₁, β₂, ε, λ, decoupled, amsgrad, maximize, 1 − β₁ᵗ, 1 − β₂ᵗ (t = 3)
    args = (0.01, 0.9, 0.999, 1e-8, weight_decay, decoupled, amsgrad, maximize, 0.271, 0.003)
    optim_update.adam_update_reference(*a, *args)
    optim_update.adam_update_numba(*b, *args)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
    assert not np.array_equal(a[0], param)


def test_division_by_zero_gives_nan_like_numpy_and_torch():
    """eps = 0 and a zero gradient: 0/0. NumPy's (and torch's) answer is nan, not an exception."""
    a = [np.zeros(4) for _ in range(5)]
    b = [np.zeros(4) for _ in range(5)]
    args = (0.1, 0.9, 0.999, 0.0, 0.0, False, False, False, 0.1, 0.001)
    with np.errstate(invalid="ignore", divide="ignore"):
        optim_update.adam_update_reference(*a, *args)
    optim_update.adam_update_numba(*b, *args)
    assert np.isnan(a[0]).all() and np.isnan(b[0]).all()


def test_fusable():
    x = np.zeros((4, 5))
    assert optim_update.fusable(x, np.ones((4, 5)))
    assert not optim_update.fusable(x.T, x)  # not C-contiguous: reshape(-1) would copy
    assert not optim_update.fusable(x, x.astype(np.float32))
    assert not optim_update.fusable(np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.1))])
def test_non_contiguous_parameter_falls_back_to_formula(name, kwargs):
    """A transposed (non-contiguous) parameter is updated correctly through the NumPy formula."""
    base = np.arange(12, dtype=np.float64).reshape(3, 4) / 10
    w_nc = to.Tensor(base.copy(), requires_grad=True, dtype=np.float64)
    w_nc.data = w_nc.data.T  # a non-contiguous view
    w_c = to.Tensor(np.ascontiguousarray(base.T), requires_grad=True, dtype=np.float64)
    opt_nc = getattr(optim, name)([w_nc], **kwargs)
    opt_c = getattr(optim, name)([w_c], **kwargs, fused=False)
    with backend("numba"):
        for _ in range(5):
            w_nc.grad = 2 * w_nc.data
            w_c.grad = 2 * w_c.data
            opt_nc.step()
            opt_c.step()
    np.testing.assert_allclose(w_nc.data, w_c.data, rtol=1e-14)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_fused_and_formula_paths_agree(name):
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((8, 9))
    ps = [to.Tensor(x0.copy(), requires_grad=True, dtype=np.float64) for _ in range(2)]
    kwargs = dict(lr=0.05, momentum=0.9, nesterov=True) if name == "SGD" else dict(lr=0.05, amsgrad=True)
    fused = getattr(optim, name)([ps[0]], **kwargs, fused=True)
    plain = getattr(optim, name)([ps[1]], **kwargs, fused=False)
    for _ in range(40):
        g = rng.standard_normal(x0.shape)
        for p in ps:
            p.grad = g + p.data
        fused.step()
        plain.step()
    np.testing.assert_allclose(ps[0].data, ps[1].data, rtol=1e-12, atol=1e-14)


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), lr=st.floats(0, 1), beta1=st.floats(0, 0.999), beta2=st.floats(0, 0.9999),
       eps=st.floats(1e-12, 1e-2), wd=st.floats(0, 0.5), decoupled=st.booleans(), amsgrad=st.booleans(),
       maximize=st.booleans(), t=st.integers(1, 1000), seed=st.integers(0, 2**31 - 1))
def test_adam_twins_agree_on_drawn_hyperparameters(n, lr, beta1, beta2, eps, wd, decoupled, amsgrad, maximize, t, seed):
    rng = np.random.default_rng(seed)
    param, grad, m = (rng.standard_normal(n) for _ in range(3))
    v = np.abs(rng.standard_normal(n))
    vmax = v + np.abs(rng.standard_normal(n))
    args = (lr, beta1, beta2, eps, wd, decoupled, amsgrad, maximize, 1 - beta1**t, 1 - beta2**t)
    a = [x.copy() for x in (param, grad, m, v, vmax)]
    b = [x.copy() for x in (param, grad, m, v, vmax)]
    optim_update.adam_update_reference(*a, *args)
    optim_update.adam_update_numba(*b, *args)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-300)
