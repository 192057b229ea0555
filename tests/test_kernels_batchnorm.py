"""The batch-norm kernel: Numba twin vs NumPy reference, and the fused op vs torch and gradcheck."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grad

import tinyopt as to
import tinyopt.nn.functional as F
from tinyopt.kernels import batchnorm as K


@pytest.mark.parametrize("shape", [(8, 3, 5), (2, 4, 1), (5, 6, 49)])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("affine", [True, False])
def test_twins_agree(shape, dtype, tol, affine):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(shape[1]).astype(dtype) if affine else None
    b = rng.standard_normal(shape[1]).astype(dtype) if affine else None
    fast = K.batch_norm_forward_numba(x, w, b, 1e-5)
    ref = K.batch_norm_forward_reference(x, w, b, 1e-5)
    assert fast[0].dtype == ref[0].dtype == dtype
    for a, r in zip(fast, ref):
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol)
    _, mean, _, inv_std = ref
    for a, r in zip(K.batch_norm_backward_numba(g, x, w, mean, inv_std), K.batch_norm_backward_reference(g, x, w, mean, inv_std)):
        assert a.dtype == r.dtype == dtype
        np.testing.assert_allclose(a, r, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("backend", ["numba", "reference"])
@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 3, 3)])
def test_fused_training_batch_norm_gradcheck(backend, shape, rng):
    from tinyopt.kernels import backend as use

    x = to.tensor(rng.standard_normal(shape), requires_grad=True)
    w = to.tensor(rng.standard_normal(shape[1]), requires_grad=True)
    b = to.tensor(rng.standard_normal(shape[1]), requires_grad=True)
    with use(backend):
        check_grad(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True) * to.tensor(np.arange(x.numel()).reshape(shape) % 3), x, w, b)


def test_fused_training_matches_torch_with_running_stats(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((8, 3, 4, 4))
    g = rng.standard_normal(x.shape)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = np.zeros(3), np.ones(3)
    xt = to.tensor(x, requires_grad=True)
    wt, bt = to.tensor(w, requires_grad=True), to.tensor(b, requires_grad=True)
    y = F.batch_norm(xt, rm, rv, wt, bt, training=True, momentum=0.1)
    y.backward(g)
    xr = torch.tensor(x, requires_grad=True)
    wr, br = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    rmr, rvr = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    yr = torch.nn.functional.batch_norm(xr, rmr, rvr, wr, br, training=True, momentum=0.1)
    yr.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, yr.detach().numpy(), rtol=1e-10, atol=1e-10)
    for mine, ref in ((xt, xr), (wt, wr), (bt, br)):
        np.testing.assert_allclose(mine.grad.data, ref.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rm, rmr.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, rvr.numpy(), rtol=1e-12)


def test_half_precision_falls_back_to_the_composed_formula(rng):
    x = to.tensor(rng.standard_normal((4, 2)).astype(np.float16), requires_grad=True)
    y = F.batch_norm(x, None, None, training=True)
    assert y.dtype == to.float16
    y.sum().backward()
    assert x.grad.shape == x.shape


# ----------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_eval_twins_agree_bit_for_bit(dtype, affine):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 3, 7)).astype(dtype)
    mean, var = rng.standard_normal(3), rng.uniform(0.1, 2.0, 3)
    w, b = (rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)) if affine else (None, None)
    ref = K.batch_norm_eval_reference(x, mean, var, w, b, 1e-5)
    assert ref.dtype == dtype
    np.testing.assert_array_equal(K.batch_norm_eval_numba(x, mean, var, w, b, 1e-5), ref)
    np.testing.assert_array_equal(K.batch_norm_eval_parallel(x, mean, var, w, b, 1e-5), ref)
    expected = (x.astype(np.float64) - mean[None, :, None]) / np.sqrt(var[None, :, None] + 1e-5)
    if affine:
        expected = expected * w[None, :, None] + b[None, :, None]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ref, expected, rtol=tol, atol=tol)


def test_functional_eval_uses_the_kernel_only_without_a_gradient_to_compute(monkeypatch):
    import tinyopt as to
    import tinyopt.nn.functional as F

    calls = []
    original = K.batch_norm_eval
    monkeypatch.setattr(K, "batch_norm_eval", lambda *a: calls.append(1) or original(*a))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    w = to.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    b = to.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    with to.no_grad():
        fast = F.batch_norm(to.tensor(x), mean, var, w, b, training=False)
    assert calls == [1]
    slow = F.batch_norm(to.tensor(x), mean, var, w, b, training=False)   # weight and bias need gradients
    assert calls == [1] and slow.requires_grad
    slow.sum().backward()
    assert w.grad is not None and b.grad is not None
    np.testing.assert_allclose(fast.data, slow.data, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 3)])
def test_eval_kernel_matches_torch(shape):
    """The no-gradient evaluation path (the kernel) against torch's eval-mode batch_norm, float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape) * 3 + 1
    mean, var = rng.standard_normal(3), rng.uniform(0.2, 3.0, 3)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    with to.no_grad():
        ours = F.batch_norm(to.tensor(x), mean, var, to.tensor(w), to.tensor(b), training=False, eps=1e-3)
    ref = torch.nn.functional.batch_norm(torch.tensor(x), torch.tensor(mean), torch.tensor(var), torch.tensor(w),
                                         torch.tensor(b), training=False, eps=1e-3)
    np.testing.assert_allclose(ours.data, ref.numpy(), rtol=1e-12, atol=1e-12)
