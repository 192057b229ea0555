"""The `_parallel` kernel twins (prange over planes) agree bit for bit with the serial Numba ones and
their NumPy references, and run only when kernel threads > 1 (tinyopt.set_num_threads)."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from tinyopt.kernels import conv as K
from tinyopt.kernels import pool as P

backend = importlib.import_module("tinyopt.kernels.backend")  # the module (the package exports a function of that name)

GEOMETRIES = [((3, 2, 9, 8), (3, 3, 1, 1, 1, 1, 1, 1, 9, 8)), ((2, 3, 11, 7), (5, 2, 2, 1, 2, 0, 1, 2, 6, 5)),
              ((4, 1, 28, 28), (5, 5, 1, 1, 2, 2, 1, 1, 28, 28))]


@pytest.mark.parametrize("shape, geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_col2im_parallel_agrees(shape, geometry, dtype):
    rng = np.random.default_rng(sum(shape))
    cols = rng.standard_normal((shape[1] * geometry[0] * geometry[1], shape[0] * geometry[-2] * geometry[-1])).astype(dtype)
    par = K.col2im_parallel(cols, *shape, *geometry)
    np.testing.assert_array_equal(par, K.col2im_numba(cols, *shape, *geometry))  # same sums in the same order
    np.testing.assert_allclose(par, K.col2im_reference(cols, *shape, *geometry), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape, geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_parallel_agrees(shape, geometry, dtype):
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    par = K.im2col_parallel(x, *geometry)
    np.testing.assert_array_equal(par, K.im2col_numba(x, *geometry))
    np.testing.assert_array_equal(par, K.im2col_reference(x, *geometry))


@pytest.mark.parametrize("shape, window", [((3, 4, 8, 8), (2, 2, 2, 2, 0, 0, 1, 1)), ((2, 3, 9, 7), (3, 2, 2, 1, 1, 1, 1, 2)),
                                           ((2, 2, 7, 9), (3, 3, 2, 2, 1, 0, 2, 1))])
def test_max_pool_parallel_agrees(shape, window):
    rng = np.random.default_rng(sum(shape))
    x = np.round(rng.standard_normal(shape), 1).astype(np.float32)  # ties
    x[0, 0, 1, 1] = np.nan
    kh, kw, sh, sw, ph, pw, dh, dw = window
    oh = P.pool_output_size(shape[2], kh, sh, ph, dh)
    ow = P.pool_output_size(shape[3], kw, sw, pw, dw)
    y_par, idx_par = P.max_pool2d_forward_parallel(x, *window, oh, ow)
    y_ref, idx_ref = P.max_pool2d_forward_reference(x, *window, oh, ow)
    np.testing.assert_array_equal(y_par, y_ref)
    np.testing.assert_array_equal(idx_par, idx_ref)
    g = rng.standard_normal(y_par.shape).astype(np.float32)
    np.testing.assert_array_equal(P.max_pool2d_backward_parallel(g, idx_par, *shape[2:]),
                                  P.max_pool2d_backward_numba(g, idx_par, *shape[2:]))


def test_parallel_twins_run_only_with_more_than_one_kernel_thread(monkeypatch):
    calls = []
    op = backend.dispatch(lambda: "reference", lambda: "fast", lambda: calls.append(1) or "parallel")
    monkeypatch.setattr(backend, "_current", "numba")
    monkeypatch.setattr(backend, "_threads", 1)
    assert op() == "fast"
    monkeypatch.setattr(backend, "_threads", 2)
    assert op() == "parallel" and calls == [1]
    monkeypatch.setattr(backend, "_current", "reference")
    assert op() == "reference"
    assert K.col2im.parallel is K.col2im_parallel and K.im2col.parallel is K.im2col_parallel and P.max_pool2d_forward.parallel is P.max_pool2d_forward_parallel
    with pytest.raises(ValueError):
        backend.set_kernel_threads(0)
