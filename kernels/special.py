"""Special functions NumPy lacks: the error function erf (GELU's Φ(x) = ½(1 + erf(x/√2))).

    erf(x) = 2/√π ∫₀ˣ e^(−t²) dt

Both twins evaluate the C library's `erf` (Python's `math.erf`) element by element, so they agree
bit for bit; the reference loops in Python (slow, obviously right), the Numba twin in machine code.
The result has the input's dtype.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .backend import dispatch


def erf_reference(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=x.dtype)
    for i, v in np.ndenumerate(x):
        out[i] = math.erf(float(v))
    return out


@njit(cache=True)
def _erf_kernel(flat, out):
    for i in range(flat.shape[0]):
        out[i] = math.erf(np.float64(flat[i]))  # in double, as the reference, then rounded to out's dtype


def erf_numba(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        return erf_reference(x)  # float16/bfloat16: no Numba type; rare enough to take the slow path
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _erf_kernel(flat, out)
    return out.reshape(x.shape)


erf = dispatch(erf_reference, erf_numba)
