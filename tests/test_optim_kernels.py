"""The fused update kernels (kernels/optim_update.py): the Numba twin agrees with the NumPy twin,
and the optimizers fall back to their formula when a kernel cannot update in place."""
import itertools
import math

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


# ------------------------------------------------------------------ every other optimizer's twins
def _positive(rng, n, dtype):
    """Second moments: positive, and larger than the square of a standard normal first moment."""
    return (np.abs(rng.standard_normal(n)) + 4.0).astype(dtype)


# op name -> (number of arrays, which arrays are positive, a list of scalar-argument dicts)
TWINS = {
    "adagrad_update": (3, {2}, [dict(clr=0.05, weight_decay=0.0, eps=1e-10, maximize=False),
                                dict(clr=0.01, weight_decay=0.1, eps=1e-6, maximize=True)]),
    "rmsprop_update": (5, {2}, [dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                                     maximize=False),
                                dict(lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=0.5, centered=True,
                                     maximize=True)]),
    "adamax_update": (4, {3}, [dict(lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False,
                                    bias_correction1=0.271),
                               dict(lr=0.01, beta1=0.5, beta2=0.9, eps=1e-3, weight_decay=0.1, maximize=True,
                                    bias_correction1=0.5)]),
    "nadam_update": (4, {3}, [dict(lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False,
                                   maximize=False, coef_m=1.9, coef_g=0.7, bias_correction2=0.003),
                              dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=True,
                                   maximize=True, coef_m=0.3, coef_g=0.2, bias_correction2=0.5),
                              dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=False,
                                   maximize=False, coef_m=0.3, coef_g=0.2, bias_correction2=0.5)]),
    "radam_update": (4, {3}, [dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False,
                                   maximize=False, bias_correction1=0.5, bias_correction2=0.01, rect=0.3),
                              dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=True,
                                   maximize=True, bias_correction1=0.3, bias_correction2=0.003, rect=None),
                              dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=False,
                                   maximize=False, bias_correction1=0.3, bias_correction2=0.003, rect=0.9)]),
    "adadelta_update": (4, {2, 3}, [dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False),
                                    dict(lr=0.5, rho=0.5, eps=1e-3, weight_decay=0.1, maximize=True)]),
    "rprop_update": (4, {3}, [dict(etaminus=0.5, etaplus=1.2, step_size_min=1e-6, step_size_max=50.0, maximize=False),
                              dict(etaminus=0.3, etaplus=1.5, step_size_min=0.1, step_size_max=0.5, maximize=True)]),
    "asgd_update": (3, set(), [dict(eta=0.01, mu=1.0, lambd=1e-4, weight_decay=0.0, maximize=False),
                               dict(eta=0.05, mu=0.25, lambd=0.01, weight_decay=0.1, maximize=True)]),
    "lion_update": (3, set(), [dict(lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0, maximize=False),
                               dict(lr=1e-3, beta1=0.8, beta2=0.95, weight_decay=0.1, maximize=True)]),
    "lamb_update": (4, {3}, [dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.0, maximize=False,
                                  bias_correction1=0.1, bias_correction2=0.001, phi_low=0.0, phi_high=math.inf),
                             dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.1, maximize=True,
                                  bias_correction1=1.0, bias_correction2=1.0, phi_low=0.5, phi_high=2.0)]),
}
TWINS["adafactor_update"] = (5, {4}, [dict(lr=0.01, beta2_decay=-0.8, eps1=1e-6, eps2=1e-3, d=1.0, weight_decay=0.0,
                                           maximize=False, step=1),
                                      dict(lr=0.05, beta2_decay=-0.5, eps1=1e-3, eps2=1e-2, d=0.5, weight_decay=0.1,
                                           maximize=True, step=7)])  # 1-D: the vector path; the matrix path below
TWIN_CASES = [(op, i) for op, (_, _, variants) in TWINS.items() for i in range(len(variants))]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("op,variant", TWIN_CASES, ids=[f"{op}-{i}" for op, i in TWIN_CASES])
def test_twins_agree(op, variant, dtype, tol):
    count, positive, variants = TWINS[op]
    rng = np.random.default_rng(3)
    arrays = [_positive(rng, 1001, dtype) if i in positive else rng.standard_normal(1001).astype(dtype)
              for i in range(count)]
    if op == "rprop_update":  # some sign flips, some zeros (no test), and step sizes near both bounds
        arrays[2][::7] = 0
    if op == "rmsprop_update":  # a gradient average whose square stays below the square average
        arrays[3] *= 0.1
    a, b = [x.copy() for x in arrays], [x.copy() for x in arrays]
    kernel = getattr(optim_update, op)
    kernel.reference(*a, **variants[variant])
    kernel.fast(*b, **variants[variant])
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
    assert not np.array_equal(a[0], arrays[0])  # the update happened, in place
    assert all(x.dtype == dtype for x in a + b)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("shape", [(5, 9), (3, 5, 9), (1, 200), (200, 1)])
def test_adafactor_factored_twins_agree(shape, dtype, tol):
    rng = np.random.default_rng(5)
    theta, grad = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    rows = (np.abs(rng.standard_normal(shape[:-1] + (1,))) + 0.1).astype(dtype)
    cols = (np.abs(rng.standard_normal(shape[:-2] + (1, shape[-1]))) + 0.1).astype(dtype)
    unused = np.empty(0, dtype)
    a, b = ([x.copy() for x in (theta, grad, rows, cols, unused)] for _ in range(2))
    for step in (1, 2, 5):
        kwargs = dict(lr=0.01, beta2_decay=-0.8, eps1=1e-6, eps2=1e-3, d=1.0, weight_decay=0.1, maximize=step == 2,
                      step=step)
        optim_update.adafactor_update.reference(*a, **kwargs)
        optim_update.adafactor_update.fast(*b, **kwargs)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
    assert not np.array_equal(a[0], theta)


def test_numba_twin_refuses_a_trace():
    args = [np.zeros(3) for _ in range(3)]
    with pytest.raises(ValueError, match="does not record"):
        optim_update.sgd_update_numba(*args, 0.1, 0.0, 0.0, 0.0, False, False, False, trace={})


@pytest.mark.parametrize("name,kwargs", [("Adagrad", {}), ("RMSprop", dict(momentum=0.5, centered=True)),
                                         ("Adamax", {}), ("NAdam", {}), ("RAdam", {}), ("Adadelta", {}),
                                         ("Rprop", {}), ("ASGD", dict(t0=5.0)), ("Lion", dict(lr=1e-3)),
                                         ("LAMB", dict(weight_decay=0.01)), ("Adafactor", dict(weight_decay=0.1))])
def test_kernel_and_formula_paths_agree_over_steps(name, kwargs):
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((8, 9))
    ps = [to.Tensor(x0.copy(), requires_grad=True, dtype=np.float64) for _ in range(2)]
    fused = getattr(optim, name)([ps[0]], **kwargs)
    plain = getattr(optim, name)([ps[1]], **kwargs, fused=False)
    with backend("numba"):
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
