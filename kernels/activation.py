"""ReLU forward and backward, one pass each over memory.

    relu(x) = max(x, 0)                         (NaN stays NaN, as torch.relu)
    ∂L/∂x = 0 where y ≤ 0, else ∂L/∂y            (a NaN y passes the gradient, as torch's threshold_backward)

Why a kernel for something this small: in a CNN step the activations are the largest arrays, and
NumPy needs several passes where one loop suffices. `np.maximum(x, 0)` runs its generic
NaN-propagating loop (about 4x a copy of x), and `grad * (y > 0)` writes a boolean mask and reads it
back (and turns an infinite gradient at y ≤ 0 into NaN, where torch gives 0, and drops it where y is
NaN, where torch passes it). One loop each reads and writes every element once.

The twins agree bit for bit. The Numba loops take contiguous float32/float64 arrays; any other
input (float16, bfloat16, integers, a strided view) takes the NumPy twin. The `_parallel` twins
(blocks of RELU_BLOCK elements over Numba's threads; run only with the kernels' threads on, see
`backend.py`) compute each element the same way.
"""
from __future__ import annotations

import numba
import numpy as np

from .backend import dispatch


def relu_reference(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.zeros((), dtype=x.dtype))


def relu_backward_reference(grad: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(y <= 0, np.zeros((), dtype=grad.dtype), grad)


@numba.njit(cache=True)
def _relu_loop(x, y):
    for i in range(x.shape[0]):
        v = x[i]
        y[i] = 0 if v <= 0 else v  # NaN <= 0 is False: NaN passes through


@numba.njit(cache=True)
def _relu_backward_loop(grad, y, dx):
    for i in range(grad.shape[0]):
        dx[i] = 0 if y[i] <= 0 else grad[i]


# Elements per block of the parallel twins: large enough that a block amortises its scheduling, small
# enough that LeNet's largest activation (a batch of 64: 0.3 M elements) splits into several blocks.
RELU_BLOCK = 1 << 15


@numba.njit(cache=True, parallel=True)
def _relu_parallel_loop(x, y):
    n = x.shape[0]
    for k in numba.prange(-(-n // RELU_BLOCK)):
        lo, hi = k * RELU_BLOCK, min(n, (k + 1) * RELU_BLOCK)
        _relu_loop(x[lo:hi], y[lo:hi])


@numba.njit(cache=True, parallel=True)
def _relu_backward_parallel_loop(grad, y, dx):
    n = grad.shape[0]
    for k in numba.prange(-(-n // RELU_BLOCK)):
        lo, hi = k * RELU_BLOCK, min(n, (k + 1) * RELU_BLOCK)
        _relu_backward_loop(grad[lo:hi], y[lo:hi], dx[lo:hi])


def _fast_dtype(*arrays) -> bool:
    return all(a.dtype in (np.float32, np.float64) and a.flags.c_contiguous for a in arrays)


def relu_numba(x: np.ndarray) -> np.ndarray:
    if not _fast_dtype(x):
        return relu_reference(x)
    y = np.empty_like(x)
    _relu_loop(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward_numba(grad: np.ndarray, y: np.ndarray) -> np.ndarray:
    if grad.shape != y.shape or grad.dtype != y.dtype or not _fast_dtype(grad, y):
        return relu_backward_reference(grad, y)
    dx = np.empty_like(grad)
    _relu_backward_loop(grad.reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx


def relu_parallel(x: np.ndarray) -> np.ndarray:
    if not _fast_dtype(x):
        return relu_reference(x)
    y = np.empty_like(x)
    (_relu_parallel_loop if x.size > RELU_BLOCK else _relu_loop)(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward_parallel(grad: np.ndarray, y: np.ndarray) -> np.ndarray:
    if grad.shape != y.shape or grad.dtype != y.dtype or not _fast_dtype(grad, y):
        return relu_backward_reference(grad, y)
    dx = np.empty_like(grad)
    loop = _relu_backward_parallel_loop if grad.size > RELU_BLOCK else _relu_backward_loop
    loop(grad.reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx


relu = dispatch(relu_reference, relu_numba, relu_parallel)
relu_backward = dispatch(relu_backward_reference, relu_backward_numba, relu_backward_parallel)
