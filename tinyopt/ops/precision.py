"""Low-precision compute on a CPU: float16/bfloat16 matmul and conv emulated on float32 BLAS.

Mixed-precision hardware (tensor cores, AVX512-BF16/FP16) multiplies 16-bit inputs and accumulates
the products in float32, rounding only the result to 16 bits (Micikevicius et al. 2018, §3.2). A CPU
BLAS has no 16-bit GEMM, and NumPy's own float16 matmul is a slow loop, so the lower-precision ops
(matmul, linear, conv2d) do exactly that in software:

    y = round_16( (float32) a  @  (float32) b )        a, b already rounded to 16 bits

The float32 products of two 16-bit numbers are exact (11 + 11 or 8 + 8 significand bits fit in 24),
so the only differences from the hardware are the order of the float32 additions. The emulation
saves no time (each op pays two casts); the memory saved for backward is halved, as on hardware.

`AutocastFloat32` is the identity on the `fp32` autocast list: the losses that tinyopt composes from
several ops (mse, l1, smooth-l1, binary cross-entropy, nll) call `float32_region(input)` first, so that
under autocast they run in float32 as torch's single-kernel losses do.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd import autocast_mode
from tinyopt.autograd.function import Function
from tinyopt.dtypes import is_floating_point

FLOAT32 = np.dtype(np.float32)


def low_precision_dtype(*arrays):
    """The 16-bit float dtype that every given array (None skipped) has, else None."""
    dtype = None
    for a in arrays:
        if a is None:
            continue
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            return None
    return dtype if dtype is not None and dtype.itemsize == 2 and is_floating_point(dtype) else None


def widen(a):
    """float32 copy of a 16-bit array (exact: every 16-bit float is a float32), None stays None."""
    return None if a is None else a.astype(FLOAT32)


def narrow(a, dtype):
    """Round to the 16-bit `dtype`; values past its max become ±inf silently, as on hardware (a
    GradScaler looks for them), so NumPy's overflow warning is not raised."""
    with np.errstate(over="ignore"):
        return a.astype(dtype)


class AutocastFloat32(Function):
    """y = x. Listed as "fp32", so under autocast its input arrives cast to float32."""

    is_view = "if_shared"
    autocast_policy = autocast_mode.FP32

    @staticmethod
    def forward(ctx, a):
        return a

    @staticmethod
    def backward(ctx, grad):
        return grad


def float32_region(x):
    """`x` as float32 when an autocast region is active (the start of a composed fp32-list op)."""
    if not autocast_mode.active or autocast_mode.state.dtype is None or not hasattr(x, "_node"):
        return x
    return AutocastFloat32.apply(x)


__all__ = ["AutocastFloat32", "float32_region", "low_precision_dtype", "narrow", "widen"]
