"""int8 2-D convolution (cross-correlation, like torch) with exact int32 accumulation, via im2col.

    acc[n, o, y, x] = Σ_{c, i, j} W[o, c, i, j] · X̃[n, c, s·y + i, s·x + j]

where X̃ is X padded by `padding` on each side with `pad_value`.  In a quantized network the pad
value is the input's zero point Z_x (the integer that means real 0), not 0.

im2col turns the convolution into one matrix product: each output position (n, y, x) becomes a
row of C·kh·kw input values, and `matmul_int8` multiplies those rows by Wᵀ [C·kh·kw, O].

`conv2d_int8_reference` computes the sum directly in int64 from sliding windows (independent of
im2col and of the matmul kernel); `conv2d_int8_numba` runs the Numba im2col and `matmul_int8_numba`.
Groups and dilation are not supported.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .backend import dispatch
from .matmul_int8 import PackedB, matmul_int8_numba, pack_b


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv_output_size(h, w, kh, kw, stride, padding):
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _check(x, w):
    for name, a, nd in (("x", x, 4), ("w", w, 4)):
        if not isinstance(a, np.ndarray) or a.dtype != np.int8 or a.ndim != nd:
            desc = f"{a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"conv2d_int8: {name} must be a 4-D int8 ndarray, got {desc}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d_int8: input has {x.shape[1]} channels but the weight {w.shape} expects {w.shape[1]}")


def _pad(x, padding, pad_value):
    ph, pw = _pair(padding)
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)


def conv2d_int8_reference(x, w, stride=1, padding=0, pad_value=0, packed_w=None):
    """acc = Σ W · X̃ in int64 over sliding windows, returned as int32 [N, O, Ho, Wo].
    (`packed_w` is accepted for signature parity with the Numba twin and ignored.)"""
    _check(x, w)
    sh, sw = _pair(stride)
    xp = _pad(x, padding, pad_value).astype(np.int64)
    kh, kw = w.shape[2], w.shape[3]
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    acc = np.einsum("ncyxij,ocij->noyx", windows, w.astype(np.int64), optimize=True)
    return acc.astype(np.int32)


@njit(cache=True)
def _im2col(xp, kh, kw, sh, sw, ho, wo):
    """xp int8 [N, C, Hp, Wp] (already padded) → cols int8 [N·Ho·Wo, C·kh·kw].
    One thread: a byte-copying loop that is memory-bound; `parallel=True` cost more CPU time
    than it saved on the shared 2-core machine."""
    n, c = xp.shape[0], xp.shape[1]
    cols = np.empty((n * ho * wo, c * kh * kw), np.int8)
    for b in range(n):
        for y in range(ho):
            for x in range(wo):
                row = (b * ho + y) * wo + x
                col = 0
                for ch in range(c):
                    for i in range(kh):
                        for j in range(kw):
                            cols[row, col] = xp[b, ch, sh * y + i, sw * x + j]
                            col += 1
    return cols


def pack_conv_weight(w: np.ndarray) -> PackedB:
    """Wᵀ [C·kh·kw, O] packed for `matmul_int8` (do it once per layer)."""
    return pack_b(np.ascontiguousarray(w.reshape(w.shape[0], -1).T))


def conv2d_int8_nhwc_numba(x, w, stride=1, padding=0, pad_value=0, packed_w=None):
    """im2col (Numba) then `matmul_int8_numba`, the result channels last: int32 [N, Ho, Wo, O]
    (the matmul's own layout; a quantized layer requantizes it before moving channels first).
    Pass `packed_w = pack_conv_weight(w)` to reuse the packed weight across calls."""
    _check(x, w)
    sh, sw = _pair(stride)
    n = x.shape[0]
    o, _, kh, kw = w.shape
    ho, wo = conv_output_size(x.shape[2], x.shape[3], kh, kw, stride, padding)
    xp = np.ascontiguousarray(_pad(x, padding, pad_value))
    cols = _im2col(xp, kh, kw, sh, sw, ho, wo)
    b = packed_w if packed_w is not None else pack_conv_weight(w)
    return matmul_int8_numba(cols, b).reshape(n, ho, wo, o)


def conv2d_int8_nhwc_reference(x, w, stride=1, padding=0, pad_value=0, packed_w=None):
    """The reference result with channels last, int32 [N, Ho, Wo, O]."""
    return np.ascontiguousarray(conv2d_int8_reference(x, w, stride, padding, pad_value).transpose(0, 2, 3, 1))


def conv2d_int8_numba(x, w, stride=1, padding=0, pad_value=0, packed_w=None):
    """`conv2d_int8_nhwc_numba` moved to channels first: int32 [N, O, Ho, Wo]."""
    acc = conv2d_int8_nhwc_numba(x, w, stride, padding, pad_value, packed_w)
    return np.ascontiguousarray(acc.transpose(0, 3, 1, 2))


conv2d_int8 = dispatch(conv2d_int8_reference, conv2d_int8_numba)
conv2d_int8.__doc__ = conv2d_int8_reference.__doc__
conv2d_int8_nhwc = dispatch(conv2d_int8_nhwc_reference, conv2d_int8_nhwc_numba)
conv2d_int8_nhwc.__doc__ = conv2d_int8_nhwc_numba.__doc__


# ----------------------------------------------------------------------------- int8 max pooling


def max_pool2d_int8_reference(q, k):
    """Max over non-overlapping k×k windows (stride k, no padding, floor) of int8 [N, C, H, W].
    On quantized values this is exact: max commutes with the increasing map q ↦ S (q − Z)."""
    n, c, h, w = q.shape
    ho, wo = h // k, w // k
    return q[:, :, :ho * k, :wo * k].reshape(n, c, ho, k, wo, k).max(axis=(3, 5))


@njit(cache=True)
def _max_pool_int8(q, k, out):
    n, c, ho, wo = out.shape
    for b in range(n):
        for ch in range(c):
            for y in range(ho):
                for x in range(wo):
                    best = q[b, ch, y * k, x * k]
                    for i in range(k):
                        for j in range(k):
                            v = q[b, ch, y * k + i, x * k + j]
                            if v > best:
                                best = v
                    out[b, ch, y, x] = best


def max_pool2d_int8_numba(q, k):
    n, c, h, w = q.shape
    out = np.empty((n, c, h // k, w // k), q.dtype)
    _max_pool_int8(np.ascontiguousarray(q), int(k), out)
    return out


max_pool2d_int8 = dispatch(max_pool2d_int8_reference, max_pool2d_int8_numba)
max_pool2d_int8.__doc__ = max_pool2d_int8_reference.__doc__
