"""The float matrix product every GEMM of the linear, matmul and convolution ops goes through.

`matmul(a, b)` is `np.matmul(a, b)` (OpenBLAS for float32/float64). It exists so that one place
can observe the time spent inside BLAS: `tinyopt.profile()` sets `_observer` while it runs, and
when no profiler is active the cost is one test of a module global per call.
"""
from __future__ import annotations

import numpy as np

_observer = None   # while profiling: observer(np.matmul, a, b) -> the product (and it times the call)


def matmul(a, b):
    """np.matmul(a, b), timed when a profiler is active."""
    if _observer is None:
        return np.matmul(a, b)
    return _observer(np.matmul, a, b)
