"""The integer-only Linear layer in one pass: u8 × s8 GEMM with the requantization fused.

    acc[i, j] = Σ_k q_x[i, k] · W[k, j]                                 (exact, int32)
    q_y[i, j] = requantize(clamp_int32(acc[i, j] + offset[j]); M0[j], n[j])  (`kernels.fixed_point`)
    or, for a model's float output,
    y[i, j]   = (acc[i, j] + offset[j]) · scale[j]                     (float32)

q_x int8 activations known to lie in [qmin_x, qmax_x] (the layer's input range), W the int8
weights packed once (`gemm_u8s8.pack_b_u8s8`), offset the layer's b_q − Z_x Σ_k W[k, j].

The three steps of the unfused path (`tinyopt.quant.modules.int8_times_weight`, then the
requantization) each make a pass over memory and a Python call; at LeNet-5's sizes (batch 256,
400 → 120 → 84 → 10) those, not the multiply-adds, were the time. Here a block of 48 rows
goes to one thread, which

- shifts its rows to unsigned, u = q_x − qmin_x ∈ [0, 255], into a zero-padded strip (K to a
  multiple of 4, rows to a multiple of 6): Σ_k q_x W = Σ_k u W + qmin_x Σ_k W, so
  qmin_x Σ_k W[k, j] joins the offset;
- multiplies it by every column panel with `gemm_u8s8`'s VNNI micro-kernel (exact for any u8);
- requantizes (or scales) the int32 tile while it is in cache.

The NumPy twin is `linear_int8_reference`; without VNNI the Numba twin runs the unfused path.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .backend import dispatch
from .fixed_point import INT32_MAX, INT32_MIN, _requantize_one, per_channel, requantize_reference
from .gemm_int8 import MR
from .gemm_u8s8 import PackedU8S8, _mk_vnni256, _mk_vnni512, _panels, choose, matmul_u8s8_numba

ROWS = 8 * MR      # rows per thread task


def _check(q_x, packed, offset, scale=None):
    if not isinstance(packed, PackedU8S8):
        raise TypeError(f"linear_int8: the weight must be a PackedU8S8 (gemm_u8s8.pack_b_u8s8), got {type(packed).__name__}")
    if not isinstance(q_x, np.ndarray) or q_x.dtype != np.int8 or q_x.ndim != 2:
        desc = f"{q_x.dtype} array of shape {q_x.shape}" if isinstance(q_x, np.ndarray) else type(q_x).__name__
        raise TypeError(f"linear_int8: q_x must be a 2-D int8 ndarray, got {desc}")
    k, n = packed.original.shape
    if q_x.shape[1] != k:
        raise ValueError(f"linear_int8: q_x has {q_x.shape[1]} features, the weight expects {k}")
    for name, v in (("offset", offset), ("scale", scale)):
        if v is not None and np.shape(v) != (n,):
            raise ValueError(f"linear_int8: {name} must have shape ({n},), got {np.shape(v)}")


def _acc_reference(q_x, packed):
    return (q_x.astype(np.int64) @ packed.original.astype(np.int64)).astype(np.int32)


def linear_int8_reference(q_x, packed, qmin_x, qmax_x, offset, m0, shift, zero_point, qmin, qmax):
    """int8 [M, N]: requantize(clamp_int32(q_x · W + offset); M0, n) by NumPy (int64 products).
    `qmin_x`, `qmax_x` (the input's range: the fast twin shifts by qmin_x, and without VNNI a range
    of at most 128 values lets it use `vpmaddubsw`) are accepted for parity."""
    _check(q_x, packed, offset)
    return requantize_reference(_acc_reference(q_x, packed), m0, shift, zero_point, qmin, qmax, axis=-1,
                                out_dtype=np.int8, offset=np.asarray(offset, np.int64))


def linear_int8_float_reference(q_x, packed, qmin_x, qmax_x, offset, scale):
    """float32 [M, N]: (q_x · W + offset) · scale by NumPy (the product and offset in int64, then
    one float64 multiply rounded to float32)."""
    _check(q_x, packed, offset, scale)
    acc = _acc_reference(q_x, packed).astype(np.int64) + np.asarray(offset, np.int64)
    return (acc * np.asarray(scale, np.float64)).astype(np.float32)


# ----------------------------------------------------------------------------- Numba


@njit(cache=True, inline="always")
def _tile(q, i0, rows, qmin_x, kq, b_flat, n_panels, nr, wide, a, c):
    """c [MR·⌈rows/MR⌉, n_panels·nr] = u(rows i0 … i0 + rows) · W (int32, exact) for the strip a."""
    k = q.shape[1]
    a[:, :] = 0
    for r in range(rows):
        src = q[i0 + r]
        dst = a[r]
        for kk in range(k):
            dst[kk] = np.uint8(np.int32(src[kk]) - qmin_x)
    c[:, :] = 0
    a_q = a.ravel().view(np.int32)
    c_flat = c.ravel()
    np_ = n_panels * nr
    for jp in range(n_panels):
        b_off = jp * kq * 4 * nr
        for s in range(0, rows, MR):
            if wide:
                _mk_vnni512(a_q, s * kq, kq, b_flat, b_off, c_flat, s * np_ + jp * nr, np_, kq)
            else:
                _mk_vnni256(a_q, s * kq, kq, b_flat, b_off, c_flat, s * np_ + jp * nr, np_, kq)


@njit(cache=True, parallel=True)
def _linear(q, qmin_x, b_pack, wide, offset, m0, shift, zero_point, qmin, qmax, scale, to_float, out_q, out_f):
    """Threads over tasks of ROWS rows: `_tile`, then per row either the requantization into
    out_q int8 [M, N] or (`to_float`) the scale into out_f float32 [M, N] (the other is unused)."""
    m = out_f.shape[0] if to_float else out_q.shape[0]
    n = out_f.shape[1] if to_float else out_q.shape[1]
    n_panels, kq, nr = b_pack.shape[0], b_pack.shape[1], b_pack.shape[2] // 4
    b_flat = b_pack.ravel()
    for task in prange(-(-m // ROWS)):
        i0 = task * ROWS
        rows = min(ROWS, m - i0)
        a = np.empty((ROWS, kq * 4), np.uint8)
        c = np.empty((ROWS, n_panels * nr), np.int32)
        _tile(q, i0, rows, qmin_x, kq, b_flat, n_panels, nr, wide, a, c)
        for r in range(rows):
            acc = c[r]
            if to_float:
                dst_f = out_f[i0 + r]
                for j in range(n):
                    dst_f[j] = np.float32((np.int64(acc[j]) + offset[j]) * scale[j])
            else:
                dst_q = out_q[i0 + r]
                for j in range(n):
                    total = min(max(np.int64(acc[j]) + offset[j], INT32_MIN), INT32_MAX)
                    dst_q[j] = _requantize_one(total, m0[j], shift[j], zero_point, qmin, qmax)


_NO_SCALE = np.zeros(0, np.float64)          # the unused operands of `_linear`
_NO_INT = np.zeros(0, np.int64)
_NO_INT8 = np.zeros((0, 0), np.int8)
_NO_FLOAT = np.zeros((0, 0), np.float32)


def _vnni(packed):
    """(the packed panels, wide) for the VNNI kernel this CPU runs, or None."""
    kind = choose(False)
    if kind not in ("vnni512", "vnni256"):
        return None
    return _panels(packed, 32 if kind == "vnni512" else 16), kind == "vnni512"


def _offsets(packed, qmin_x, offset):
    """offset + qmin_x Σ_k W[k, j] (int64): the shift u = q_x − qmin_x undone."""
    return np.asarray(offset, np.int64) + int(qmin_x) * packed.col_sum


def linear_int8_numba(q_x, packed, qmin_x, qmax_x, offset, m0, shift, zero_point, qmin, qmax):
    """`linear_int8_reference` in one fused pass on a VNNI CPU; otherwise `matmul_u8s8_numba` on
    u = q_x − qmin_x and the reference's requantization."""
    _check(q_x, packed, offset)
    m, n = q_x.shape[0], packed.original.shape[1]
    vnni = _vnni(packed)
    if vnni is None or q_x.shape[1] == 0:
        u = (q_x.astype(np.int16) - np.int16(qmin_x)).astype(np.uint8)
        acc = matmul_u8s8_numba(u, packed, seven_bit=qmax_x - qmin_x <= 127)
        return requantize_reference(acc, m0, shift, zero_point, qmin, qmax, axis=-1, out_dtype=np.int8,
                                    offset=_offsets(packed, qmin_x, offset))
    out = np.empty((m, n), np.int8)
    _linear(q_x, int(qmin_x), vnni[0], vnni[1], _offsets(packed, qmin_x, offset), per_channel(m0, n),
            per_channel(shift, n), int(zero_point), int(qmin), int(qmax), _NO_SCALE, False, out, _NO_FLOAT)
    return out


def linear_int8_float_numba(q_x, packed, qmin_x, qmax_x, offset, scale):
    """`linear_int8_float_reference`, fused on a VNNI CPU."""
    _check(q_x, packed, offset, scale)
    m, n = q_x.shape[0], packed.original.shape[1]
    vnni = _vnni(packed)
    if vnni is None or q_x.shape[1] == 0:
        u = (q_x.astype(np.int16) - np.int16(qmin_x)).astype(np.uint8)
        acc = matmul_u8s8_numba(u, packed, seven_bit=qmax_x - qmin_x <= 127).astype(np.int64) + _offsets(packed, qmin_x, offset)
        return (acc * np.asarray(scale, np.float64)).astype(np.float32)
    out = np.empty((m, n), np.float32)
    _linear(q_x, int(qmin_x), vnni[0], vnni[1], _offsets(packed, qmin_x, offset), _NO_INT, _NO_INT, 0, 0, 0,
            np.ascontiguousarray(scale, np.float64), True, _NO_INT8, out)
    return out


linear_int8 = dispatch(linear_int8_reference, linear_int8_numba)
linear_int8.__doc__ = linear_int8_reference.__doc__
linear_int8_float = dispatch(linear_int8_float_reference, linear_int8_float_numba)
linear_int8_float.__doc__ = linear_int8_float_reference.__doc__

__all__ = ["linear_int8", "linear_int8_float", "linear_int8_float_numba", "linear_int8_float_reference",
           "linear_int8_numba", "linear_int8_reference"]
