"""The Numba kernels agree with their NumPy reference twins on random configurations (shapes,
strides, padding, dilation, dtypes), drawn by Hypothesis; and the backend switch routes calls."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyopt import kernels
from tinyopt.kernels import conv as K
from tinyopt.kernels import pool as P

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


@st.composite
def conv_geometry(draw, max_stride=3):
    """An input shape and a conv window (kernel, stride, padding top/left, dilation, output size)
    whose output is at least 1×1; the bottom/right padding is drawn separately (asymmetric)."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    extra_h, extra_w = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 12))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 12))
    oh = K.conv_output_size(h, kh, sh, ph, ph + extra_h, dh)
    ow = K.conv_output_size(w, kw, sw, pw, pw + extra_w, dw)
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (n, c, h, w), (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), np.random.default_rng(seed), dtype


@SETTINGS
@given(conv_geometry())
def test_im2col_twins_agree(case):
    shape, geometry, rng, dtype = case
    x = rng.standard_normal(shape).astype(dtype)
    fast, ref = K.im2col_numba(x, *geometry), K.im2col_reference(x, *geometry)
    assert fast.dtype == ref.dtype == dtype
    np.testing.assert_array_equal(fast, ref)  # a pure gather: bit-identical


@SETTINGS
@given(conv_geometry())
def test_col2im_twins_agree_and_are_the_adjoint_of_im2col(case):
    shape, geometry, rng, dtype = case
    rows = shape[1] * geometry[0] * geometry[1]
    cols = rng.standard_normal((rows, shape[0] * geometry[-2] * geometry[-1]))
    fast, ref = K.col2im_numba(cols, *shape, *geometry), K.col2im_reference(cols, *shape, *geometry)
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12)
    # Adjointness: <im2col(x), cols> = <x, col2im(cols)> for any x.
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(np.sum(K.im2col_reference(x, *geometry) * cols), np.sum(x * ref), rtol=1e-10)


def _wide_args(geometry):
    """(kh, kw, ph, pw, dh, dw, oh, ow) of a stride-1 im2col geometry."""
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = geometry
    assert (sh, sw) == (1, 1)
    return kh, kw, ph, pw, dh, dw, oh, ow


@SETTINGS
@given(conv_geometry(max_stride=1))
def test_im2col_wide_twins_agree_and_hold_the_im2col_columns(case):
    """The wide matrix: the Numba twins equal the reference bit for bit, and its columns at the
    positions b < OW are exactly im2col's."""
    shape, geometry, rng, dtype = case
    x = rng.standard_normal(shape).astype(dtype)
    args = _wide_args(geometry)
    ref = K.im2col_wide_reference(x, *args)
    np.testing.assert_array_equal(K.im2col_wide_numba(x, *args), ref)
    np.testing.assert_array_equal(K.im2col_wide_parallel(x, *args), ref)
    _, wp, length = K.wide_geometry(shape, *args[:-2], *args[-2:])
    oh, ow = args[-2:]
    p = (np.arange(oh)[:, None] * wp + np.arange(ow)[None, :]).ravel()  # the non-wide columns
    kept = ref.reshape(ref.shape[0], shape[0], length)[:, :, p].reshape(ref.shape[0], -1)
    np.testing.assert_array_equal(kept, K.im2col_reference(x, *geometry))


@SETTINGS
@given(conv_geometry(max_stride=1))
def test_col2im_wide_twins_agree_and_are_the_adjoint_of_im2col_wide(case):
    shape, geometry, rng, dtype = case
    args = _wide_args(geometry)
    _, wp, length = K.wide_geometry(shape, *args)
    cols = rng.standard_normal((shape[1] * args[0] * args[1], shape[0] * length)).astype(dtype)
    ref = K.col2im_wide_reference(cols, *shape, *args)
    assert ref.shape == shape
    np.testing.assert_array_equal(K.col2im_wide_numba(cols, *shape, *args), ref)  # the same sums in the same order
    np.testing.assert_array_equal(K.col2im_wide_parallel(cols, *shape, *args), ref)
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(np.sum(K.im2col_wide_reference(x, *args) * cols), np.sum(x * ref), rtol=1e-5)


@SETTINGS
@given(conv_geometry(max_stride=1), st.integers(1, 5))
def test_wide_output_twins_agree_and_are_adjoint(case, o):
    """wide_to_output (drop the wide columns, add the bias) and output_grad_wide (put dY back, zeros
    in the wide columns): twins bit-identical, and the second is the adjoint of the first."""
    shape, geometry, rng, dtype = case
    args = _wide_args(geometry)
    n, (oh, ow) = shape[0], args[-2:]
    _, wp, length = K.wide_geometry(shape, *args)
    y_wide = rng.standard_normal((o, n * length)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    ref = K.wide_to_output_reference(y_wide, bias, wp, np.empty((n, o, oh, ow), dtype))
    np.testing.assert_array_equal(K.wide_to_output_numba(y_wide, bias, wp, np.empty((n, o, oh, ow), dtype)), ref)
    grad = rng.standard_normal((n, o, oh, ow)).astype(dtype)
    g_wide = K.output_grad_wide_reference(grad, wp)
    np.testing.assert_array_equal(K.output_grad_wide_numba(grad, wp), g_wide)
    no_bias = K.wide_to_output_reference(y_wide, np.zeros(o, dtype), wp, np.empty((n, o, oh, ow), dtype))
    np.testing.assert_allclose(np.sum(no_bias * grad), np.sum(y_wide * g_wide), rtol=1e-4)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("padding, dilation", [((0, 0), (1, 1)), ((1, 2), (2, 1))])
def test_conv_wide_path_equals_the_im2col_path(monkeypatch, groups, padding, dilation):
    """A stride-1 layer gives the same y, dx, dW, dbias through the wide matrix as through im2col
    (both in chunks of samples)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 4, 9, 8))
    w = rng.standard_normal((6, 4 // groups, 3, 3))
    b = rng.standard_normal(6)
    out_hw = tuple(K.conv_output_size(s, 3, 1, p, p, d) for s, p, d in zip((9, 8), padding, dilation))
    args = ((1, 1), padding, dilation, groups, out_hw)
    g = rng.standard_normal((7, 6) + out_hw)
    monkeypatch.setattr(K, "CHUNK_BYTES", 2000)  # several chunks
    backend = importlib.import_module("tinyopt.kernels.backend")
    monkeypatch.setattr(backend, "_threads", 1)
    assert K.conv_path(x.shape, w.shape, (1, 1), groups) == "wide"
    monkeypatch.setattr(backend, "_threads", 2)  # the twins on: rows too short for the direct loops
    assert K.conv_path(x.shape, w.shape, (1, 1), groups, out_hw, padding, dilation) == "im2col"
    results = {}
    for path in ("wide", "im2col"):
        monkeypatch.setattr(K, "conv_path", lambda *a, path=path: path)
        y, chunks = K.conv2d_forward(x, w, b, *args)
        results[path] = (y,) + K.conv2d_backward(g, x.shape, w, chunks, *args[:4])
    for wide, im2col in zip(results["wide"], results["im2col"]):
        np.testing.assert_allclose(wide, im2col, rtol=1e-12, atol=1e-12)


@st.composite
def pool_geometry(draw, with_dilation=True):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 11))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 11))
    ceil_mode = draw(st.booleans())
    oh = P.pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    ow = P.pool_output_size(w, kw, sw, pw, dw, ceil_mode)
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (n, c, h, w), (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow), np.random.default_rng(seed), dtype


@SETTINGS
@given(pool_geometry())
def test_max_pool_twins_agree(case):
    shape, geometry, rng, dtype = case
    x = rng.standard_normal(shape).astype(dtype)
    if rng.random() < 0.3:
        x = np.round(x)  # many ties: both twins must pick the same (first) maximum
    y_fast, idx_fast = P.max_pool2d_forward_numba(x, *geometry)
    y_ref, idx_ref = P.max_pool2d_forward_reference(x, *geometry)
    np.testing.assert_array_equal(y_fast, y_ref)
    np.testing.assert_array_equal(idx_fast, idx_ref)
    grad = rng.standard_normal(y_ref.shape).astype(dtype)
    np.testing.assert_allclose(P.max_pool2d_backward_numba(grad, idx_ref, *shape[2:]),
                               P.max_pool2d_backward_reference(grad, idx_ref, *shape[2:]), rtol=1e-6, atol=1e-6)


@SETTINGS
@given(pool_geometry(with_dilation=False), st.booleans(), st.sampled_from([0, 1, 5]))
def test_avg_pool_twins_agree(case, count_include_pad, divisor_override):
    shape, geometry, rng, dtype = case
    kh, kw, sh, sw, ph, pw, _, _, oh, ow = geometry
    x = rng.standard_normal(shape).astype(dtype)
    options = (count_include_pad, divisor_override)
    np.testing.assert_allclose(P.avg_pool2d_forward_numba(x, kh, kw, sh, sw, ph, pw, oh, ow, *options),
                               P.avg_pool2d_forward_reference(x, kh, kw, sh, sw, ph, pw, oh, ow, *options),
                               rtol=1e-5, atol=1e-6)
    grad = rng.standard_normal((shape[0], shape[1], oh, ow)).astype(dtype)
    np.testing.assert_allclose(P.avg_pool2d_backward_numba(grad, *shape[2:], kh, kw, sh, sw, ph, pw, *options),
                               P.avg_pool2d_backward_reference(grad, *shape[2:], kh, kw, sh, sw, ph, pw, *options),
                               rtol=1e-5, atol=1e-6)


def test_conv2d_forward_and_backward_agree_across_backends():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    out_hw = (K.conv_output_size(9, 3, 2, 1, 1, 1), K.conv_output_size(8, 2, 1, 2, 2, 2))
    args = ((2, 1), (1, 2), (1, 2), 2, out_hw)
    results = {}
    for name in ("numba", "reference"):
        with kernels.backend(name):
            y, cols = K.conv2d_forward(x, w, b, *args[:4], args[4])
            grads = K.conv2d_backward(np.ones_like(y), x.shape, w, cols, *args[:4])
            results[name] = (y,) + grads
    for fast, ref in zip(results["numba"], results["reference"]):
        np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module, name", [(K, "im2col"), (K, "col2im"), (K, "im2col_wide"), (K, "col2im_wide"),
                                          (K, "wide_to_output"), (K, "output_grad_wide"), (K, "conv2d_direct"),
                                          (K, "conv2d_direct_input_grad"), (K, "bias_grad"),
                                          (K, "conv2d_direct_weight_grad"), (P, "max_pool2d_forward"),
                                          (P, "max_pool2d_backward"), (P, "avg_pool2d_forward"),
                                          (P, "avg_pool2d_backward")])
def test_every_public_kernel_dispatches_to_its_twins(module, name):
    op = getattr(module, name)
    assert op.reference is getattr(module, f"{name}_reference")
    assert op.fast is getattr(module, f"{name}_numba")


@pytest.mark.parametrize("shape, ceil_mode", [((3, 4, 8, 8), False), ((2, 3, 7, 9), False), ((2, 3, 7, 9), True)])
def test_max_pool_2x2_fast_path_agrees_with_reference(shape, ceil_mode):
    """Kernel 2, stride 2 takes a specialised loop when every window is inside x (odd sizes in
    ceil_mode leave a partial window and must take the general one)."""
    rng = np.random.default_rng(sum(shape))
    x = np.round(rng.standard_normal(shape), 1).astype(np.float32)  # rounding makes ties
    x[0, 0, 0, 1] = np.nan
    oh, ow = (P.pool_output_size(s, 2, 2, 0, 1, ceil_mode) for s in shape[2:])
    y_fast, idx_fast = P.max_pool2d_forward_numba(x, 2, 2, 2, 2, 0, 0, 1, 1, oh, ow)
    y_ref, idx_ref = P.max_pool2d_forward_reference(x, 2, 2, 2, 2, 0, 0, 1, 1, oh, ow)
    np.testing.assert_array_equal(y_fast, y_ref)
    np.testing.assert_array_equal(idx_fast, idx_ref)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_in_chunks_of_samples_equals_one_chunk(monkeypatch, groups):
    """The sample chunks (kernels.conv.sample_chunks) give the same results to rounding (dW and
    dbias are summed chunk by chunk, and BLAS may round a narrower product differently)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((7, 4, 9, 8))
    w = rng.standard_normal((6, 4 // groups, 3, 3))
    b = rng.standard_normal(6)
    args = ((2, 1), (1, 2), (1, 1), groups, (5, 10))
    g = rng.standard_normal((7, 6, 5, 10))
    results = {}
    for budget in (1 << 30, 1):  # one chunk; one sample per chunk
        monkeypatch.setattr(K, "CHUNK_BYTES", budget)
        y, chunks = K.conv2d_forward(x, w, b, *args)
        assert len(chunks) == (1 if budget > 1 else 7)
        results[budget] = (y,) + K.conv2d_backward(g, x.shape, w, chunks, *args[:4])
    one, many = results[1 << 30], results[1]
    np.testing.assert_allclose(one[0], many[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one[1], many[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one[2], many[2], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one[3], many[3], rtol=1e-12, atol=1e-12)


def test_sample_chunks_cover_the_batch_evenly():
    assert K.sample_chunks(0, 100, 1000) == [slice(0, 0)]
    assert K.sample_chunks(10, 100, 1000) == [slice(0, 10)]
    assert K.sample_chunks(64, 100, 3200) == [slice(0, 32), slice(32, 64)]
    parts = K.sample_chunks(256, 78_400, 4 << 20)  # conv1 of LeNet, 4 MB
    assert [p.stop - p.start for p in parts] == [52, 52, 52, 52, 48]
    assert K.sample_chunks(3, 10_000, 10) == [slice(0, 1), slice(1, 2), slice(2, 3)]


def test_numba_twins_take_non_contiguous_input():
    """The Numba loops index a flat copy when the input is a strided view (e.g. every other channel)."""
    x = np.random.default_rng(3).standard_normal((3, 4, 9, 10))[:, ::2]
    geometry = (3, 3, 1, 1, 1, 1, 1, 1, 9, 10)
    np.testing.assert_array_equal(K.im2col_numba(x, *geometry), K.im2col_reference(x, *geometry))
    np.testing.assert_array_equal(K.im2col_parallel(x, *geometry), K.im2col_reference(x, *geometry))
    for fast in (P.max_pool2d_forward_numba, P.max_pool2d_forward_parallel):
        for window in ((2, 2, 2, 2, 0, 0, 1, 1), (3, 3, 2, 2, 1, 1, 1, 1)):
            oh = P.pool_output_size(9, window[0], window[2], window[4], window[6])
            ow = P.pool_output_size(10, window[1], window[3], window[5], window[7])
            got, want = fast(x, *window, oh, ow), P.max_pool2d_forward_reference(x, *window, oh, ow)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 5, 5), (4, 2, 28, 28), (3, 2, 2, 3)])
def test_two_pass_2x2_max_pool_equals_the_window_loop(shape):
    """The 2×2 stride-2 fast path (two passes) against the reference: odd sizes, many ties and NaNs."""
    rng = np.random.default_rng(sum(shape))
    for _ in range(10):
        x = np.round(rng.standard_normal(shape)).astype(np.float32)  # values in a few integers: ties
        x[rng.random(shape) < 0.1] = np.nan
        oh, ow = shape[2] // 2, shape[3] // 2
        want = P.max_pool2d_forward_reference(x, 2, 2, 2, 2, 0, 0, 1, 1, oh, ow)
        for fast in (P.max_pool2d_forward_numba, P.max_pool2d_forward_parallel):
            got = fast(x, 2, 2, 2, 2, 0, 0, 1, 1, oh, ow)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


# ----------------------------------------------------------------------------- direct convolution


@st.composite
def direct_conv_case(draw):
    """A stride-1 window from conv_geometry, with O output channels and a seed."""
    shape, (kh, kw, _, _, ph, pw, dh, dw, _, _), rng, dtype = draw(conv_geometry())
    h, w = shape[2], shape[3]
    extra_h, extra_w = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    oh = K.conv_output_size(h, kh, 1, ph, ph + extra_h, dh)
    ow = K.conv_output_size(w, kw, 1, pw, pw + extra_w, dw)
    o = draw(st.integers(1, 7))
    return shape, o, (kh, kw, ph, pw, dh, dw, oh, ow), rng, dtype


@SETTINGS
@given(direct_conv_case())
def test_direct_conv_twins_agree_and_parallel_is_bit_identical(case):
    shape, o, (kh, kw, ph, pw, dh, dw, oh, ow), rng, dtype = case
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((o, shape[1], kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    ref = K.conv2d_direct_reference(x, w, b, ph, pw, dh, dw, oh, ow)
    fast = K.conv2d_direct_numba(x, w, b, ph, pw, dh, dw, oh, ow)
    assert fast.dtype == ref.dtype == dtype and fast.shape == (shape[0], o, oh, ow)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)
    np.testing.assert_array_equal(K.conv2d_direct_parallel(x, w, b, ph, pw, dh, dw, oh, ow), fast)
    # The same output from im2col + GEMM, the path every other layer takes.
    cols = K.im2col_reference(x, kh, kw, 1, 1, ph, pw, dh, dw, oh, ow)
    via_gemm = (w.reshape(o, -1) @ cols + b[:, None]).reshape(o, shape[0], oh, ow).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(ref, via_gemm, rtol=tol, atol=tol)

    grad = rng.standard_normal((shape[0], o, oh, ow)).astype(dtype)
    dw_ref = K.conv2d_direct_weight_grad_reference(x, grad, kh, kw, ph, pw, dh, dw)
    dw_fast = K.conv2d_direct_weight_grad_numba(x, grad, kh, kw, ph, pw, dh, dw)
    assert dw_fast.dtype == dtype and dw_fast.shape == w.shape
    np.testing.assert_allclose(dw_fast, dw_ref, rtol=10 * tol, atol=10 * tol)
    np.testing.assert_array_equal(K.conv2d_direct_weight_grad_parallel(x, grad, kh, kw, ph, pw, dh, dw), dw_fast)
    g2 = grad.transpose(1, 0, 2, 3).reshape(o, -1)
    np.testing.assert_allclose(dw_ref, (g2 @ cols.T).reshape(w.shape), rtol=10 * tol, atol=10 * tol)

    db_ref = K.bias_grad_reference(grad)
    np.testing.assert_allclose(db_ref, grad.sum(axis=(0, 2, 3)), rtol=10 * tol, atol=10 * tol)
    np.testing.assert_allclose(K.bias_grad_numba(grad), db_ref, rtol=10 * tol, atol=10 * tol)
    np.testing.assert_array_equal(K.bias_grad_parallel(grad), K.bias_grad_numba(grad))

    h, wd = shape[2], shape[3]
    dx_ref = K.conv2d_direct_input_grad_reference(grad, w, h, wd, ph, pw, dh, dw)
    dx_fast = K.conv2d_direct_input_grad_numba(grad, w, h, wd, ph, pw, dh, dw)
    assert dx_fast.dtype == dtype and dx_fast.shape == shape
    np.testing.assert_allclose(dx_fast, dx_ref, rtol=10 * tol, atol=10 * tol)
    np.testing.assert_array_equal(K.conv2d_direct_input_grad_parallel(grad, w, h, wd, ph, pw, dh, dw), dx_fast)
    # The input gradient is col2im of Wᵀ·dY, the adjoint of the forward.
    via_col2im = K.col2im_reference(w.reshape(o, -1).T @ g2, *shape, kh, kw, 1, 1, ph, pw, dh, dw, oh, ow)
    np.testing.assert_allclose(dx_ref, via_col2im, rtol=10 * tol, atol=10 * tol)


def test_direct_conv_parallel_splits_a_large_batch_in_blocks_bit_identically():
    rng = np.random.default_rng(3)
    n = 3 * K.DIRECT_BLOCK + 5  # several blocks and a partial one
    x = rng.standard_normal((n, 1, 12, 11)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y = K.conv2d_direct_numba(x, w, b, 2, 2, 1, 1, 12, 11)
    np.testing.assert_array_equal(K.conv2d_direct_parallel(x, w, b, 2, 2, 1, 1, 12, 11), y)
    g = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(K.conv2d_direct_weight_grad_parallel(x, g, 5, 5, 2, 2, 1, 1),
                                  K.conv2d_direct_weight_grad_numba(x, g, 5, 5, 2, 2, 1, 1))
    np.testing.assert_array_equal(K.conv2d_direct_input_grad_parallel(g, w, 12, 11, 2, 2, 1, 1),
                                  K.conv2d_direct_input_grad_numba(g, w, 12, 11, 2, 2, 1, 1))


def test_direct_conv_applies_to_small_stride_1_ungrouped_layers():
    assert K.direct_conv_applies((8, 1, 28, 28), (6, 1, 5, 5), (1, 1), 1)        # LeNet's first layer: 150
    assert K.direct_conv_applies((8, 3, 32, 32), (6, 3, 3, 3), (1, 1), 1)        # an RGB 3×3 stem: 162
    assert not K.direct_conv_applies((8, 1, 28, 28), (32, 1, 3, 3), (1, 1), 1)   # 288: im2col + GEMM
    assert not K.direct_conv_applies((8, 6, 14, 14), (16, 6, 5, 5), (1, 1), 1)   # LeNet's second layer
    assert not K.direct_conv_applies((8, 1, 28, 28), (6, 1, 5, 5), (2, 1), 1)    # strided
    assert not K.direct_conv_applies((8, 2, 28, 28), (6, 1, 5, 5), (1, 1), 2)    # grouped


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("need_input", [False, True])
def test_conv_direct_path_equals_the_im2col_path(monkeypatch, dtype, need_input):
    """conv2d_forward/backward give the same y, dx, dW, dbias whether a small layer takes the direct
    loops or (DIRECT_MAX_MACS = 0) the wide im2col matrix + GEMM."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 2, 10, 9)).astype(dtype)
    w = rng.standard_normal((4, 2, 3, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    args = ((1, 1), (1, 2), (2, 1), 1, (K.conv_output_size(10, 3, 1, 1, 1, 2), K.conv_output_size(9, 4, 1, 2, 2, 1)))
    g = rng.standard_normal((5, 4) + args[4]).astype(dtype)
    results = {}
    for macs in (K.DIRECT_MAX_MACS, 0):
        monkeypatch.setattr(K, "DIRECT_MAX_MACS", macs)
        assert K.direct_conv_applies(x.shape, w.shape, (1, 1), 1) == (macs > 0)
        y, saved = K.conv2d_forward(x, w, b, *args)
        results[macs] = (y,) + K.conv2d_backward(g, x.shape, w, saved, *args[:4], need_input=need_input)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for direct, gemm in zip(results[K.DIRECT_MAX_MACS], results[0]):
        if gemm is None:
            assert direct is None
        else:
            np.testing.assert_allclose(direct, gemm, rtol=tol, atol=tol)


@pytest.mark.parametrize("need_input", [False, True])
def test_parallel_direct_forward_of_a_larger_layer_equals_the_wide_path(monkeypatch, need_input):
    """With the parallel twins on, a stride-1 layer with long wide rows takes the direct forward, and
    its backward rebuilds the wide matrix per chunk for dW: the same y, dx, dW, dbias as the wide path."""
    import importlib

    backend = importlib.import_module("tinyopt.kernels.backend")  # the module (the package exports a function of that name)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((9, 5, 14, 13))
    w = rng.standard_normal((7, 5, 3, 4))
    b = rng.standard_normal(7)
    out_hw = (K.conv_output_size(14, 3, 1, 1, 1, 1), K.conv_output_size(13, 4, 1, 0, 0, 2))
    args = ((1, 1), (1, 0), (1, 2), 1, out_hw)
    g = rng.standard_normal((9, 7) + out_hw)
    monkeypatch.setattr(K, "CHUNK_BYTES", 20000)   # several chunks in backward
    monkeypatch.setattr(backend, "_threads", 1)
    assert K.conv_path(x.shape, w.shape, (1, 1), 1, out_hw, (1, 0), (1, 2)) == "wide"
    y_wide, saved = K.conv2d_forward(x, w, b, *args)
    wide = (y_wide,) + K.conv2d_backward(g, x.shape, w, saved, *args[:4], need_input=need_input)
    monkeypatch.setattr(backend, "_threads", 2)
    assert K.conv_path(x.shape, w.shape, (1, 1), 1, out_hw, (1, 0), (1, 2)) == "direct"
    y, saved = K.conv2d_forward(x, w, b, *args)
    assert len(saved) == 1 and saved[0][1].ndim == 4   # x kept, no columns
    direct = (y,) + K.conv2d_backward(g, x.shape, w, saved, *args[:4], need_input=need_input)
    for got, want in zip(direct, wide):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels, not a problem
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, padding, dilation", [(5, 2, 1), (3, "same", 2), (4, "same", 1), ((2, 3), 0, 1)])
def test_first_layer_convolution_equals_torch(dtype, kernel, padding, dilation):
    """The layers that take the direct loops (1 or 3 input channels, stride 1): output and all three
    gradients equal torch's."""
    torch = pytest.importorskip("torch")
    import tinyopt as to
    import tinyopt.nn.functional as F

    rng = np.random.default_rng(5)
    for c in (1, 3):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        x = rng.standard_normal((37, c, 13, 12)).astype(dtype)
        w = rng.standard_normal((2, c, kh, kw)).astype(dtype)
        b = rng.standard_normal(2).astype(dtype)
        assert K.direct_conv_applies(x.shape, w.shape, (1, 1), 1)
        xt, wt, bt = (to.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(xt, wt, bt, padding=padding, dilation=dilation)
        g = rng.standard_normal(y.shape).astype(dtype)
        y.backward(to.tensor(g))
        X, W, B = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        Y = torch.nn.functional.conv2d(X, W, B, padding=padding, dilation=dilation)
        Y.backward(torch.from_numpy(g))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        for mine, theirs in ((y, Y), (xt.grad, X.grad), (wt.grad, W.grad), (bt.grad, B.grad)):
            np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=tol, atol=tol * np.abs(theirs.detach().numpy()).max())


def test_with_the_twins_on_large_layers_take_the_split_gemms(monkeypatch):
    """conv_path with the kernels' twins on: direct up to DIRECT_PARALLEL_MAX_MACS, im2col above."""
    backend = importlib.import_module("tinyopt.kernels.backend")
    monkeypatch.setattr(backend, "_threads", 2)
    x_shape, out_hw, pad = (4, 32, 14, 14), (14, 14), (1, 1)
    small, large = (32, 32, 3, 3), (64, 32, 3, 3)
    assert 32 * 32 * 9 <= K.DIRECT_PARALLEL_MAX_MACS < 64 * 32 * 9
    assert K.conv_path(x_shape, small, (1, 1), 1, out_hw, pad) == "direct"
    assert K.conv_path(x_shape, large, (1, 1), 1, out_hw, pad) == "im2col"
    monkeypatch.setattr(backend, "_threads", 1)
    assert K.conv_path(x_shape, large, (1, 1), 1, out_hw, pad) == "wide"
