"""`warmup()`: compile (or load from Numba's on-disk cache) every kernel before a timed run.

Numba compiles a kernel on its first call for each new combination of argument types, which
takes seconds; with `cache=True` the machine code is stored next to the source (or under
`NUMBA_CACHE_DIR`) and later processes only load it.  Calling `warmup()` once after import moves
that cost out of the first training step, so a benchmark or a tutorial's timer measures steady
state.  It runs each kernel on a tiny input with the dtypes tinyopt uses (float32 by default).
"""
from __future__ import annotations

import time

import numpy as np

from tinyopt.kernels import activation as _activation
from tinyopt.kernels import blas as _blas
from tinyopt.kernels import conv as _conv
from tinyopt.kernels import pool as _pool


def warmup(dtypes=(np.float32,), verbose: bool = False) -> float:
    """Compile/load the Numba conv, pooling and ReLU kernels and the GEMM split for each dtype; return
    the seconds it took."""
    start = time.perf_counter()
    for dtype in dtypes:
        x = np.zeros((1, 1, 4, 4), dtype=dtype)
        geometry = (3, 3, 1, 1, 1, 1, 1, 1, 4, 4)  # kh, kw, sh, sw, ph, pw, dh, dw, oh, ow
        cols = _conv.im2col_numba(x, *geometry)
        _conv.col2im_numba(cols, 1, 1, 4, 4, *geometry)
        wide = (3, 3, 1, 1, 1, 1, 4, 4)  # the stride-1 path: kh, kw, ph, pw, dh, dw, oh, ow
        _, wp, _ = _conv.wide_geometry(x.shape, *wide)
        cols = _conv.im2col_wide_numba(x, *wide)
        _conv.col2im_wide_numba(cols, 1, 1, 4, 4, *wide)
        y_wide = np.zeros((2, cols.shape[1]), dtype=dtype)
        _conv.output_grad_wide_numba(_conv.wide_to_output_numba(y_wide, np.zeros(2, dtype), wp,
                                                                np.empty((1, 2, 4, 4), dtype)), wp)
        w, b = np.zeros((2, 1, 3, 3), dtype=dtype), np.zeros(2, dtype=dtype)
        g = _conv.conv2d_direct_numba(x, w, b, 1, 1, 1, 1, 4, 4)
        _conv.conv2d_direct_weight_grad_numba(x, g, 3, 3, 1, 1, 1, 1)
        _conv.conv2d_direct_input_grad_numba(g, w, 4, 4, 1, 1, 1, 1)
        _conv.bias_grad_numba(g)
        _activation.relu_backward_numba(_activation.relu_numba(x), x)
        y, argmax = _pool.max_pool2d_forward_numba(x, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2)
        _pool.max_pool2d_backward_numba(y, argmax, 4, 4)
        _pool.avg_pool2d_forward_numba(x, 2, 2, 2, 2, 0, 0, 2, 2, True, 0)
        _pool.avg_pool2d_backward_numba(y, 4, 4, 2, 2, 2, 2, 0, 0, True, 0)
        if dtype in (np.float32, np.float64):   # the GEMM split of set_num_threads(n > 1)
            square = np.zeros((32, 32), dtype=dtype)
            _blas.matmul_split_numba(square, square, 2)
    seconds = time.perf_counter() - start
    if verbose:
        print(f"tinyopt.warmup: Numba kernels ready in {seconds:.2f} s")
    return seconds
