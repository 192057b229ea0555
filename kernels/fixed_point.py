"""Requantization: int32 accumulators → int8/uint8 outputs with integer arithmetic only.

A quantized layer (Jacob et al. 2018, §2.2) computes q_out = Z_out + M · acc, where
acc = Σ (q_x − Z_x)(q_w − Z_w) (+ bias in int32) and the real multiplier M = S_x S_w / S_out.
M is stored as a fixed-point number:

    M = M0 · 2⁻³¹ · 2⁻ⁿ,    M0 ∈ [2³⁰, 2³¹)  (so M0 · 2⁻³¹ ∈ [0.5, 1)),  n an integer shift

(`quantize_multiplier`; n < 0 means a left shift, for M ≥ 1).  Then, exactly as gemmlowp and
TFLite do it (`MultiplyByQuantizedMultiplier`):

    x  = acc · 2^max(−n, 0)                                       (left shift, saturated to int32)
    y  = SRDHM(x, M0) = round(x · M0 / 2³¹)                       (saturating rounding doubling
                                                                    high multiply; ties toward +∞)
    z  = RDBPOT(y, max(n, 0)) = round(y / 2ⁿ)                     (rounding right shift; ties away from 0)
    q  = clamp(z + Z_out, q_min, q_max)                           (saturate to the output dtype)

The two roundings differ from round(acc · M) (one rounding, ties to even) by at most one unit
in the last place (LSB); `requantize_float` is that one-rounding float simulation.

Per-channel requantization passes arrays M0[c], n[c] that broadcast along `axis`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .backend import dispatch

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(m):
    """Real multiplier(s) M ≥ 0 → (M0, n) with M = M0 · 2⁻³¹ · 2⁻ⁿ, M0 ∈ [2³⁰, 2³¹) int32.

    M = 0 gives (0, 0).  Accepts a float or an array (per-channel); returns int32 arrays then.
    Raises ValueError for negative, NaN or infinite M, or M outside the representable shift range.
    """
    arr = np.asarray(m, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"quantize_multiplier: multipliers must be finite and >= 0, got {m}")
    m0 = np.zeros(arr.shape, np.int64)
    n = np.zeros(arr.shape, np.int64)
    for idx, value in np.ndenumerate(arr):
        if value == 0.0:
            continue
        mantissa, exponent = math.frexp(float(value))       # value = mantissa · 2^exponent, mantissa ∈ [0.5, 1)
        q = int(round(mantissa * 2**31))                     # M0 = round(mantissa · 2³¹)
        if q == 2**31:                                       # rounding reached 1.0: renormalise
            q //= 2
            exponent += 1
        if not -31 <= -exponent <= 62:
            raise ValueError(f"quantize_multiplier: M = {value} is out of range (needs a shift of {-exponent})")
        m0[idx], n[idx] = q, -exponent
    if arr.ndim == 0:
        return int(m0), int(n)
    return m0.astype(np.int32), n.astype(np.int32)


def multiplier_value(m0, n):
    """The real number M0 · 2⁻³¹ · 2⁻ⁿ that (M0, n) encodes."""
    return np.asarray(m0, np.float64) * 2.0 ** (-31 - np.asarray(n, np.float64))


# ----------------------------------------------------------------------------- reference (NumPy int64)


def srdhm_reference(x, m0):
    """Saturating rounding doubling high multiply: round(x · M0 / 2³¹) as gemmlowp computes it:
    (x·M0 + nudge) / 2³¹ truncated toward zero, nudge = 2³⁰ for x·M0 ≥ 0 else 1 − 2³⁰, so ties
    go toward +∞ (−1.5 → −1, 1.5 → 2);
    the one overflow case (x = M0 = −2³¹) saturating to 2³¹ − 1.  int64 arithmetic."""
    x = np.asarray(x, np.int64)
    m0 = np.asarray(m0, np.int64)
    ab = x * m0
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    result = np.where(num >= 0, num >> 31, -((-num) >> 31))   # C-style division: truncate toward 0
    overflow = (x == INT32_MIN) & (m0 == INT32_MIN)
    return np.where(overflow, INT32_MAX, result)


def rounding_divide_by_pot_reference(x, exponent):
    """round(x / 2^exponent), ties away from zero (gemmlowp RoundingDivideByPOT)."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def _broadcast_channel(v, ndim, axis):
    v = np.asarray(v, np.int64)
    if v.ndim == 0:
        return v
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def requantize_reference(acc, m0, n, zero_point=0, qmin=-128, qmax=127, axis=-1, out_dtype=np.int8, offset=None):
    """q = clamp(RDBPOT(SRDHM(acc · 2^max(−n,0), M0), max(n,0)) + Z_out, qmin, qmax) in NumPy int64.

    `acc` int32 array; `m0`, `n` scalars or per-channel arrays along `axis`; returns `out_dtype`.
    `offset` (optional, per channel): added first, acc ← clamp_int32(acc + offset) — the layers'
    int32 bias and −Z_x Σ q_w terms, fused here to save a pass over the accumulators.
    """
    acc = np.asarray(acc)
    if acc.dtype != np.int32:
        raise TypeError(f"requantize: accumulators must be int32, got {acc.dtype}")
    axis = axis % acc.ndim if acc.ndim else 0
    m0 = _broadcast_channel(m0, acc.ndim, axis)
    n = _broadcast_channel(n, acc.ndim, axis)
    total = acc.astype(np.int64)
    if offset is not None:
        total = np.clip(total + _broadcast_channel(offset, acc.ndim, axis), INT32_MIN, INT32_MAX)
    left = np.maximum(-n, 0)
    right = np.maximum(n, 0)
    x = np.clip(total << left, INT32_MIN, INT32_MAX)
    y = srdhm_reference(x, m0)
    z = rounding_divide_by_pot_reference(y, right)
    return np.clip(z + int(zero_point), qmin, qmax).astype(out_dtype)


def requantize_float(acc, multiplier, zero_point=0, qmin=-128, qmax=127, axis=-1, out_dtype=np.int8):
    """Float simulation: clamp(round_half_even(acc · M) + Z_out) with M in float64 (for tests)."""
    acc = np.asarray(acc)
    axis = axis % acc.ndim if acc.ndim else 0
    mult = np.asarray(multiplier, np.float64)
    if mult.ndim:
        shape = [1] * acc.ndim
        shape[axis] = mult.shape[0]
        mult = mult.reshape(shape)
    return np.clip(np.rint(acc * mult) + zero_point, qmin, qmax).astype(out_dtype)


# ----------------------------------------------------------------------------- Numba twin


def per_channel(v, n: int) -> np.ndarray:
    """A scalar or per-channel parameter as the kernels take it: contiguous int64 [n] (no copy when
    it already is one)."""
    if isinstance(v, np.ndarray) and v.dtype == np.int64 and v.shape == (n,) and v.flags.c_contiguous:
        return v
    return np.ascontiguousarray(np.broadcast_to(np.asarray(v, np.int64).reshape(-1), (n,)))


@njit(cache=True, inline="always")
def _requantize_one(acc, m0, n, zero_point, qmin, qmax):
    """One element, the reference's steps in int64 scalars.  Only conditional expressions (no if
    blocks), which LLVM turns into selects, so the loop calling this can be vectorised."""
    left = -n if n < 0 else 0
    right = n if n > 0 else 0
    x = min(max(np.int64(acc) << left, INT32_MIN), INT32_MAX)
    # SRDHM: (x·M0 + nudge) / 2³¹, truncated toward zero. x and M0 both fit int32: saying so (the
    # int32 round trips) lets LLVM use a 32 × 32 → 64-bit multiply (vpmuldq) instead of a 64-bit one.
    ab = np.int64(np.int32(x)) * np.int64(np.int32(m0))
    num = ab + (np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30)))
    y = (num + ((num >> 63) & np.int64((1 << 31) - 1))) >> 31   # adding 2³¹−1 to negatives: trunc, not floor
    y = np.int64(INT32_MAX) if (x == INT32_MIN and m0 == INT32_MIN) else y
    # RDBPOT: round(y / 2^right), ties away from zero
    mask = (np.int64(1) << right) - 1
    remainder = y & mask
    threshold = (mask >> 1) + (np.int64(1) if y < 0 else np.int64(0))
    z = (y >> right) + (np.int64(1) if remainder > threshold else np.int64(0))
    return min(max(z + zero_point, qmin), qmax)


@njit(cache=True)
def _requantize_rows(acc, offset, m0, n, zero_point, qmin, qmax, out):
    """Channels last: acc int32 [R, C]; offset, m0, n int64 [C]; out [R, C].
    out[r, c] = requantize(clamp_int32(acc[r, c] + offset[c]); m0[c], n[c]).
    One thread: a memory-bound loop, where `parallel=True` cost more CPU time than it saved on a
    shared 2-core machine."""
    rows, cols = acc.shape
    for r in range(rows):
        for c in range(cols):
            total = min(max(np.int64(acc[r, c]) + offset[c], INT32_MIN), INT32_MAX)
            out[r, c] = _requantize_one(total, m0[c], n[c], zero_point, qmin, qmax)


def requantize_numba(acc, m0, n, zero_point=0, qmin=-128, qmax=127, axis=-1, out_dtype=np.int8, offset=None):
    acc = np.asarray(acc)
    if acc.dtype != np.int32:
        raise TypeError(f"requantize: accumulators must be int32, got {acc.dtype}")
    if acc.ndim == 0:
        return requantize_reference(acc, m0, n, zero_point, qmin, qmax, axis, out_dtype, offset)
    axis = axis % acc.ndim
    moved = np.moveaxis(acc, axis, -1)                       # a copy below only when axis is not last
    flat = np.ascontiguousarray(moved).reshape(-1, moved.shape[-1])
    channels = flat.shape[1]
    as_channels = lambda v: per_channel(v, channels)  # noqa: E731
    offset_arr = as_channels(0 if offset is None else offset)
    out = np.empty(flat.shape, out_dtype)
    _requantize_rows(flat, offset_arr, as_channels(m0), as_channels(n), int(zero_point), int(qmin), int(qmax), out)
    return np.moveaxis(out.reshape(moved.shape), -1, axis)


requantize = dispatch(requantize_reference, requantize_numba)
requantize.__doc__ = requantize_reference.__doc__
