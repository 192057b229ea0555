"""The float ends of a quantized layer, one pass each: activations → uint8 or int8, int32 → float.

    (lo, hi, finite) = min(x), max(x), all(isfinite(x))                        `minmax_finite`
    q[i, k] = clamp(round_half_even(x[i, k] · (1/S) + Z), 0, q_max)   uint8    `quantize_u8`
    q[i, k] = clamp(round_half_even(x[i, k] · (1/S) + Z), q_min, q_max) int8,
              and whether every x is finite                                    `quantize_i8`
    y[i, j] = float32(acc[i, j] − Z · Σ_k W[j, k]) · s[j] + b[j]               `dequantize_acc`

(products and sums in float32, each rounded, as NumPy does them: the twins agree bit for bit).
The NumPy references of the last two take several passes over the data, with temporaries; the
Numba twins take one each.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .backend import dispatch


def minmax_finite(x):
    """(min, max, all finite) in two vectorised NumPy passes: min and max propagate NaN, and ±∞ shows
    as an infinite min or max, so no separate isfinite pass is needed.  (Plain NumPy, no twin: a
    Numba loop cannot vectorise a float min/max reduction without fastmath, and was slower.)"""
    x = np.asarray(x, np.float32)
    if x.size == 0:
        return 0.0, 0.0, True
    lo, hi = float(x.min()), float(x.max())
    finite = bool(np.isfinite(lo) and np.isfinite(hi))
    return (lo, hi, True) if finite else (0.0, 0.0, False)


def quantize_u8_reference(x, scale, zero_point, qmax=255):
    """`tinyopt.quant.affine.quantize_array`'s arithmetic, to uint8."""
    inv_scale = np.float32(1.0) / np.float32(scale)
    shifted = np.asarray(x, np.float32) * inv_scale + np.float32(zero_point)
    return np.clip(np.rint(shifted), 0, qmax).astype(np.uint8)


@njit(cache=True)
def _quantize_u8(flat, inv_scale, zp, qmax, out):
    for i in range(flat.size):
        v = np.rint(flat[i] * inv_scale + zp)
        out[i] = np.uint8(min(max(v, np.float32(0.0)), qmax))


def quantize_u8_numba(x, scale, zero_point, qmax=255):
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty(x.shape, np.uint8)
    _quantize_u8(x.reshape(-1), np.float32(1.0) / np.float32(scale), np.float32(zero_point), np.float32(qmax),
                 out.reshape(-1))
    return out


def quantize_i8_reference(x, scale, zero_point, qmin=-128, qmax=127):
    """(q, finite): `tinyopt.quant.affine.quantize_array`'s arithmetic to int8 (the static model's
    input), and whether x is all finite (q is meaningless where it is not)."""
    x = np.asarray(x, np.float32)
    inv_scale = np.float32(1.0) / np.float32(scale)
    with np.errstate(invalid="ignore"):   # a NaN casts to an arbitrary q; the flag reports it
        shifted = x * inv_scale + np.float32(zero_point)
        q = np.clip(np.rint(shifted), qmin, qmax).astype(np.int8)
    return q, bool(np.all(np.isfinite(x)))


@njit(cache=True)
def _quantize_i8(flat, inv_scale, zp, qmin, qmax, out):
    finite = True
    for i in range(flat.size):
        v = flat[i]
        finite &= np.isfinite(v)
        out[i] = np.int8(min(max(np.rint(v * inv_scale + zp), qmin), qmax))
    return finite


def quantize_i8_numba(x, scale, zero_point, qmin=-128, qmax=127):
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty(x.shape, np.int8)
    finite = _quantize_i8(x.reshape(-1), np.float32(1.0) / np.float32(scale), np.float32(zero_point),
                          np.float32(qmin), np.float32(qmax), out.reshape(-1))
    return out, bool(finite)


def dequantize_acc_reference(acc, zero_point, w_sum, scale, bias=None):
    """acc int32 [M, N]; w_sum int [N]; scale float32 [N] (= S_x S_w[j]); bias float32 [N] or None."""
    shifted = acc - (zero_point * np.asarray(w_sum, np.int64)).astype(np.int32)
    y = shifted.astype(np.float32) * np.asarray(scale, np.float32)
    return y + np.asarray(bias, np.float32) if bias is not None else y


@njit(cache=True)
def _dequantize_acc(acc, zw, scale, bias, has_bias, out):
    m, n = acc.shape
    for i in range(m):
        for j in range(n):
            v = np.float32(acc[i, j] - zw[j]) * scale[j]
            out[i, j] = v + bias[j] if has_bias else v


def dequantize_acc_numba(acc, zero_point, w_sum, scale, bias=None):
    zw = (zero_point * np.asarray(w_sum, np.int64)).astype(np.int32)
    scale = np.ascontiguousarray(scale, np.float32)
    b = np.ascontiguousarray(bias, np.float32) if bias is not None else scale
    out = np.empty(acc.shape, np.float32)
    _dequantize_acc(acc, zw, scale, b, bias is not None, out)
    return out


quantize_u8 = dispatch(quantize_u8_reference, quantize_u8_numba)
quantize_u8.__doc__ = quantize_u8_reference.__doc__
quantize_i8 = dispatch(quantize_i8_reference, quantize_i8_numba)
quantize_i8.__doc__ = quantize_i8_reference.__doc__
dequantize_acc = dispatch(dequantize_acc_reference, dequantize_acc_numba)
dequantize_acc.__doc__ = dequantize_acc_reference.__doc__

__all__ = ["dequantize_acc", "minmax_finite", "quantize_u8"]
