"""int8 2-D convolution (cross-correlation, like torch) with exact int32 accumulation, via im2col.

    acc[n, o, y, x] = Σ_{c, i, j} W[o, c, i, j] · X̃[n, c, s·y + i, s·x + j]

where X̃ is X padded by `padding` on each side with `pad_value`.  In a quantized network the pad
value is the input's zero point Z_x (the integer that means real 0), not 0.

im2col turns the convolution into one matrix product: each output position (n, y, x) becomes a
row of C·kh·kw input values, and `matmul_int8` multiplies those rows by Wᵀ [C·kh·kw, O].

`conv2d_int8_reference` computes the sum directly in int64 from sliding windows (independent of
im2col and of the matmul kernel); `conv2d_int8_numba` runs the Numba im2col and `matmul_int8_numba`.
Groups and dilation are not supported.

What a quantized layer runs (`conv2d_int8_acc`, then `requantize_pool_nchw`; for a stride-1
convolution followed by a max pool, `conv2d_requant_pool`, which does both):

- stride 1 with VNNI (AVX-VNNI or AVX-512 VNNI+VL): `_conv_s1_vnni`, the same scheme with
  `vpdpbusd` on four taps at a time, the input shifted to unsigned (`gemm_u8s8`'s operand types);
  `_conv_s1_vnni_requant_pool` also max-pools and requantizes each image while its accumulators
  are in cache, on 512-bit registers (32 positions per panel) where the CPU has AVX-512 VNNI.
  `conv2d_requant_pool` has two more layouts of that fused step, chosen per layer by
  `choose_layout`: output channels in the lanes for layers with many output channels
  (`conv_int8_channels`), and output positions in the lanes with the input read in place by
  byte permutes instead of packed (`conv_int8_sliding`);
- stride 1 with AVX2: `_conv_s1_avx2`, the matmul's 6×16 micro-kernel with the *weight* as the
  6-row operand and 16 output positions per column panel, each panel packed into L1 straight
  from the padded input (no im2col matrix in memory); accumulators come out channels first.
- otherwise: im2col written in the AVX2 kernel's int16 layout (`_im2col_pairs`) and the matmul.
- `requantize_pool_nchw`: requantization fused with a following non-overlapping max pool — max
  of the int32 accumulators, then one requantization per window (exact: requantization is
  non-decreasing), written int8 NCHW.
"""
from __future__ import annotations

import os

import numpy as np
from numba import njit, prange

from .backend import dispatch
from .gemm_int8 import MR, NR, PackedB, _choose, _microkernel, _pack_pair16, matmul_int8_avx2_pairs, matmul_int8_numba, pack_b
from .fixed_point import INT32_MAX, INT32_MIN, _requantize_one, per_channel, requantize_reference
from .gemm_u8s8 import _mk_vnni256_sw, _mk_vnni512_sw, _pack_quad16, available_kernels, host_features
from . import conv_int8_channels as CH
from .conv_input_u8 import PaddedU8, ensure_padded
from . import conv_int8_sliding as SL


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv_output_size(h, w, kh, kw, stride, padding):
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _check(x, w, padded_ok=False):
    """x and w int8 4-D with matching channels; `padded_ok`: x may be a `conv_input_u8.PaddedU8`."""
    for name, a, nd in (("x", x, 4), ("w", w, 4)):
        if padded_ok and name == "x" and isinstance(a, PaddedU8):
            continue
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


@njit(cache=True)
def _tap_offsets(c, kh, kw, hp, wp, length):
    """Offset of each kernel tap k = (c_k·kh + i_k)·kw + j_k in a flattened padded image:
    t_k = (c_k·Hp + i_k)·Wp + j_k. Entries past c·kh·kw (padding taps, whose weights are 0)
    repeat t_0, so they read valid memory."""
    taps = np.empty(length, np.int64)
    t = 0
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                taps[t] = (ch * hp + i) * wp + j
                t += 1
    for t in range(c * kh * kw, length):
        taps[t] = taps[0]
    return taps


@njit(cache=True, parallel=True)
def _im2col_pairs(xp, kh, kw, sh, sw, ho, wo, mp, kp):
    """im2col written straight in the AVX2 kernel's A layout: int16 [mp, kp], zero-padded to mp
    rows (a multiple of 6) and kp columns (even), so `matmul_int8_avx2_pairs` needs no packing pass.

        A[(b·Ho + y)·Wo + x, k] = X̃[b, c_k, s_h·y + i_k, s_w·x + j_k],   k = (c_k·kh + i_k)·kw + j_k

    As a gather from the flat padded input with precomputed tap offsets
    t_k = (c_k·Hp + i_k)·Wp + j_k: one add per element, no 4-D index arithmetic."""
    n, c, hp, wp = xp.shape
    flat = xp.ravel()
    k_len = c * kh * kw
    taps = _tap_offsets(c, kh, kw, hp, wp, k_len)
    out = np.empty((mp, kp), np.int16)
    for b in prange(n):
        for y in range(ho):
            for x in range(wo):
                row = (b * ho + y) * wo + x
                base = ((b * c) * hp + sh * y) * wp + sw * x
                for k in range(k_len):
                    out[row, k] = flat[base + taps[k]]
                for k in range(k_len, kp):
                    out[row, k] = 0
    for row in range(n * ho * wo, mp):
        for k in range(kp):
            out[row, k] = 0
    return out


def conv2d_int8_rows_reference(x, w, stride=1, padding=0, pad_value=0, packed_w=None):
    """The accumulators as rows: int32 [N·Ho·Wo, O], row (b·Ho + y)·Wo + x (channels last)."""
    acc = conv2d_int8_nhwc_reference(x, w, stride, padding, pad_value)
    return acc.reshape(-1, acc.shape[-1])


def conv2d_int8_rows_numba(x, w, stride=1, padding=0, pad_value=0, packed_w=None):
    """`conv2d_int8_rows_reference` by Numba: with AVX2, im2col straight into the kernel's int16
    layout (`_im2col_pairs`) and `matmul_int8_avx2_pairs`; the result may be a strided view of the
    kernel's padded output (no copy).  Otherwise int8 im2col and `matmul_int8_numba`."""
    _check(x, w)
    sh, sw = _pair(stride)
    n = x.shape[0]
    o, _, kh, kw = w.shape
    ho, wo = conv_output_size(x.shape[2], x.shape[3], kh, kw, stride, padding)
    xp = np.ascontiguousarray(_pad(x, padding, pad_value))
    b = packed_w if packed_w is not None else pack_conv_weight(w)
    m = n * ho * wo
    if _choose() == "avx2":
        mp = -(-m // MR) * MR
        a16 = _im2col_pairs(xp, kh, kw, sh, sw, ho, wo, mp, 2 * b.data.shape[1])
        return matmul_int8_avx2_pairs(a16, b)[:m, :o]
    cols = _im2col(xp, kh, kw, sh, sw, ho, wo)
    return matmul_int8_numba(cols, b)


conv2d_int8_rows = dispatch(conv2d_int8_rows_reference, conv2d_int8_rows_numba)
conv2d_int8_rows.__doc__ = conv2d_int8_rows_reference.__doc__


def conv2d_int8_nhwc_numba(x, w, stride=1, padding=0, pad_value=0, packed_w=None):
    """im2col (Numba) then the int8 matmul, the result channels last: int32 [N, Ho, Wo, O]
    (the matmul's own layout; a quantized layer requantizes it before moving channels first).
    Pass `packed_w = pack_conv_weight(w)` to reuse the packed weight across calls."""
    n = x.shape[0]
    o, _, kh, kw = w.shape
    ho, wo = conv_output_size(x.shape[2], x.shape[3], kh, kw, stride, padding)
    rows = conv2d_int8_rows_numba(x, w, stride, padding, pad_value, packed_w)
    return np.ascontiguousarray(rows).reshape(n, ho, wo, o)


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


# ----------------------------------------------------------------------------- stride-1 convolution, weights as A


def pack_conv_weight_pairs(w: np.ndarray) -> np.ndarray:
    """W [O, C, kh, kw] int8 → int16 [Op, Kp]: rows o of W flattened over k = (c·kh + i)·kw + j,
    zero-padded to Op (a multiple of 6, the micro-kernel's rows) and Kp = K rounded up to even
    (the kernel takes k in pairs).  The A operand of `_conv_s1_avx2`; pack once per layer."""
    o = w.shape[0]
    k = w[0].size
    out = np.zeros((-(-o // MR) * MR, k + k % 2), np.int16)
    out[:o, :k] = w.reshape(o, k)
    return out


@njit(cache=True, parallel=True)
def _conv_s1_avx2(xflat, n, c, hp, wp, kh, kw, w_pairs, npos, out):
    """Stride-1 convolution with the AVX2 6×16 micro-kernel, the weight as A and the input as B:

        acc[b, o, q] = Σ_k W[o, k] · X̃_b[q + t_k],   q = y·Wp + x,  t_k = (c_k·Hp + i_k)·Wp + j_k

    Output positions are numbered over the padded width Wp (x ∈ [0, Wp), of which x < Wo are
    real; the others are computed and ignored), so for one tap k the inputs of 16 consecutive
    positions are 16 consecutive bytes: a B panel [K/2 pairs, 16 positions × 2] is packed by
    plain copies into a small buffer that stays in L1, then multiplied by every 6-row strip of
    W.  No im2col matrix is written.  out int32 [N, Op, npos] (zeroed; npos ≥ Ho·Wp, a multiple
    of 16); xflat is the padded input flattened with K spare zero bytes at the end (the ignored
    positions of the last image read past it).  Threads over images."""
    op, kp = w_pairs.shape
    kp2 = kp // 2
    taps = _tap_offsets(c, kh, kw, hp, wp, kp)   # taps past c·kh·kw are padding (weight 0)
    a_flat = w_pairs.ravel().view(np.int32)
    out_flat = out.ravel()
    image = c * hp * wp
    n_strips = op // MR
    for b in prange(n):
        panel = np.empty(kp2 * 2 * NR, np.int16)
        for q0 in range(0, npos, NR):
            src = b * image + q0
            for p in range(kp2):
                _pack_pair16(xflat, src + taps[2 * p], src + taps[2 * p + 1], panel, p * 2 * NR)
            for strip in range(n_strips):
                _microkernel(a_flat, strip * MR * kp2, kp2, panel, 0, out_flat,
                             (b * op + strip * MR) * npos + q0, npos, kp2)


def pack_conv_weight_quads(w: np.ndarray) -> np.ndarray:
    """W [O, C, kh, kw] int8 → int8 [Op, Kq·4]: rows o of W flattened over k, zero-padded to Op (a
    multiple of 6) and to a multiple of 4 taps (VNNI takes k in quads).  The weight operand of
    `_conv_s1_vnni`; pack once per layer."""
    o = w.shape[0]
    k = w[0].size
    out = np.zeros((-(-o // MR) * MR, -(-k // 4) * 4), np.int8)
    out[:o, :k] = w.reshape(o, k)
    return out


@njit(cache=True, parallel=True)
def _conv_s1_vnni(xu, n, c, hp, wp, kh, kw, w_quads, init, npos, out):
    """`_conv_s1_avx2` with VNNI's `vpdpbusd` (AVX-VNNI, 256-bit): the input shifted to unsigned
    (u = x + 128, the pad value too) is the unsigned operand, packed four taps at a time

        panel[p, 4c + h] = ũ_b[q0 + c + t_{4p+h}]          (16 positions c, 4 taps h)

    and the weight quads (int8, broadcast) the signed one, so one instruction does 4 taps × 8
    positions.  Σ_k u·w = acc + 128 Σ_k w, so each image's accumulators start at init[o] =
    −128 Σ_k W[o, k] (written just before use, while they are in cache) and end holding the exact
    acc.  `out` int32 [N, Op, npos] may be uninitialised.  Threads over images."""
    op, kp = w_quads.shape
    kq = kp // 4
    taps = _tap_offsets(c, kh, kw, hp, wp, kp)   # taps past c·kh·kw are padding (weight 0)
    a_flat = w_quads.ravel().view(np.int32)
    out_flat = out.ravel()
    image = c * hp * wp
    n_strips = op // MR
    for b in prange(n):
        for o in range(op):
            out[b, o, :] = init[o]
        panel = np.empty(kq * 4 * NR, np.uint8)
        for q0 in range(0, npos, NR):
            src = b * image + q0
            for p in range(kq):
                _pack_quad16(xu, src + taps[4 * p], src + taps[4 * p + 1], src + taps[4 * p + 2], src + taps[4 * p + 3],
                             panel, p * 4 * NR)
            for strip in range(n_strips):
                _mk_vnni256_sw(a_flat, strip * MR * kq, kq, panel, 0, out_flat,
                               (b * op + strip * MR) * npos + q0, npos, kq)


def _padded_u8(x, padding, pad_value, ho, kw, nr=NR):
    """The positions kernels' input: `conv_input_u8` (X̃ + 128 as uint8, padded with
    pad_value + 128, flattened) with spare bytes at the end for the ignored positions of the
    last image (as in the AVX2 path).  Returns (flat, Hp, Wp, npos)."""
    ph, pw = _pair(padding)
    wp = x.shape[3] + 2 * pw
    npos = -(-(ho * wp) // nr) * nr
    xu = ensure_padded(x, (ph, pw), pad_value, slack=npos - ho * wp + kw)
    return xu.flat, xu.hp, xu.wp, npos


def _use_vnni_conv() -> bool:
    """The VNNI direct convolution when the CPU has AVX-VNNI (or AVX-512 VNNI with VL) and no
    environment variable forces another kernel (TINYOPT_INT8_KERNEL, TINYOPT_U8S8_KERNEL)."""
    forced = os.environ.get("TINYOPT_U8S8_KERNEL", "").strip().lower()
    return _choose() == "avx2" and "vnni256" in available_kernels() and forced in ("", "vnni256", "vnni512")


def _vnni_conv_width() -> int:
    """Output positions per panel of the fused VNNI convolution: 32 on 512-bit registers where the CPU
    has AVX-512 VNNI (the same instructions do twice the products: LeNet-5's int8 convolutions
    8% faster), else 16; TINYOPT_U8S8_KERNEL=vnni256 keeps 16."""
    forced = os.environ.get("TINYOPT_U8S8_KERNEL", "").strip().lower()
    return 32 if "vnni512" in available_kernels() and forced in ("", "vnni512") else 16


def conv2d_int8_acc_reference(x, w, stride=1, padding=0, pad_value=0, packed_w=None, w_pairs=None, w_quads=None):
    """The int32 accumulators channels first, [N, O, Ho, Wo] (= `conv2d_int8_reference`)."""
    return conv2d_int8_reference(x, w, stride, padding, pad_value)


def conv2d_int8_acc_numba(x, w, stride=1, padding=0, pad_value=0, packed_w=None, w_pairs=None, w_quads=None):
    """`conv2d_int8_acc_reference` by Numba; the result may be a strided view [N, O, Ho, Wo] of a
    padded buffer (no copy).  Stride 1 on an AVX2 CPU: `_conv_s1_avx2` (pass
    `w_pairs = pack_conv_weight_pairs(w)` to pack once).  Otherwise the im2col path
    (`conv2d_int8_rows_numba`, `packed_w` as there) seen channels first.

    The direct kernel is used for every stride-1 shape because it beat im2col + matmul on each
    shape `benchmarks/bench_quant_lenet.py` measures, despite the ignored positions (it writes
    no im2col matrix)."""
    _check(x, w)
    n = x.shape[0]
    o, c, kh, kw = w.shape
    ho, wo = conv_output_size(x.shape[2], x.shape[3], kh, kw, stride, padding)
    if _pair(stride) == (1, 1) and ho > 0 and wo > 0 and _use_vnni_conv():
        quads = w_quads if w_quads is not None else pack_conv_weight_quads(w)
        xu, hp, wp, npos = _padded_u8(x, padding, pad_value, ho, kw)
        init = -128 * quads.astype(np.int32).sum(axis=1)
        out = np.empty((n, quads.shape[0], npos), np.int32)
        _conv_s1_vnni(xu, n, c, hp, wp, kh, kw, quads, init, npos, out)
        return out[:, :o, :ho * wp].reshape(n, o, ho, wp)[:, :, :, :wo]
    if _pair(stride) == (1, 1) and _choose() == "avx2" and ho > 0 and wo > 0:
        xp = _pad(x, padding, pad_value)
        hp, wp = xp.shape[2], xp.shape[3]
        pairs = w_pairs if w_pairs is not None else pack_conv_weight_pairs(w)
        npos = -(-(ho * wp) // NR) * NR
        # the ignored positions of the last image read up to npos − Ho·Wp + kw − 1 bytes past it
        xflat = np.zeros(xp.size + npos - ho * wp + kw, np.int8)
        xflat[:xp.size] = xp.reshape(-1)
        out = np.zeros((n, pairs.shape[0], npos), np.int32)
        _conv_s1_avx2(xflat, n, c, hp, wp, kh, kw, pairs, npos, out)
        return out[:, :o, :ho * wp].reshape(n, o, ho, wp)[:, :, :, :wo]
    rows = conv2d_int8_rows_numba(x, w, stride, padding, pad_value, packed_w)
    return rows.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)


conv2d_int8_acc = dispatch(conv2d_int8_acc_reference, conv2d_int8_acc_numba)
conv2d_int8_acc.__doc__ = conv2d_int8_acc_numba.__doc__


# ----------------------------------------------------------------------------- requantize (+ max pool) to NCHW


def requantize_pool_nchw_reference(acc, offset, m0, shift, zero_point, qmin, qmax, pool=1):
    """Convolution accumulators int32 [N, O, Ho, Wo] (any strides) → int8 [N, O, Ho/k, Wo/k]:
    per channel o, q = requantize(clamp_int32(acc + offset[o]); M0[o], n[o]) (`kernels.fixed_point`),
    then max over non-overlapping k×k windows (k = `pool`; 1: none).

    The fused twin takes the max of the accumulators first and requantizes once per window:
    max_k f(a_k) = f(max_k a_k) for the non-decreasing map f = clamp ∘ requantize ∘ (+offset),
    so both orders give the same integers and the fused one requantizes k² times fewer values."""
    q = requantize_reference(np.asarray(acc), m0, shift, zero_point, qmin, qmax, axis=1, out_dtype=np.int8,
                             offset=offset)
    return q if pool == 1 else max_pool2d_int8_reference(q, pool)


@njit(cache=True, parallel=True)
def _requantize_pool_nchw(acc, k, offset, m0, shift, zero_point, qmin, qmax, out):
    """Per (image, channel) plane: max over each k×k window, then one requantization.  Threads
    over images.  (Buffering a row of window maxima to requantize it in a separate loop, and flat
    indexing with explicit element strides, were tried and were slower.)"""
    n, o_len, hq, wq = out.shape
    for b in prange(n):
        for o in range(o_len):
            off, mo, sh = offset[o], m0[o], shift[o]
            for yq in range(hq):
                if k == 2:                               # the common 2×2 pool: unrolled, on row views
                    r0 = acc[b, o, 2 * yq]
                    r1 = acc[b, o, 2 * yq + 1]
                    for xq in range(wq):
                        best = max(max(r0[2 * xq], r0[2 * xq + 1]), max(r1[2 * xq], r1[2 * xq + 1]))
                        total = min(max(np.int64(best) + off, INT32_MIN), INT32_MAX)
                        out[b, o, yq, xq] = _requantize_one(total, mo, sh, zero_point, qmin, qmax)
                    continue
                for xq in range(wq):
                    best = acc[b, o, yq * k, xq * k]
                    for i in range(k):
                        for j in range(k):
                            v = acc[b, o, yq * k + i, xq * k + j]
                            best = v if v > best else best
                    total = min(max(np.int64(best) + off, INT32_MIN), INT32_MAX)
                    out[b, o, yq, xq] = _requantize_one(total, mo, sh, zero_point, qmin, qmax)


def requantize_pool_nchw_numba(acc, offset, m0, shift, zero_point, qmin, qmax, pool=1):
    n, o, ho, wo = acc.shape
    as_channels = lambda v: per_channel(v, o)  # noqa: E731
    out = np.empty((n, o, ho // pool, wo // pool), np.int8)
    _requantize_pool_nchw(acc, int(pool), as_channels(offset), as_channels(m0), as_channels(shift),
                          int(zero_point), int(qmin), int(qmax), out)
    return out


requantize_pool_nchw = dispatch(requantize_pool_nchw_reference, requantize_pool_nchw_numba)
requantize_pool_nchw.__doc__ = requantize_pool_nchw_reference.__doc__


# ----------------------------------------------------------------------------- convolution + requantize + max pool, fused


def conv2d_requant_pool_reference(x, w, padding, pad_value, offset, m0, shift, zero_point, qmin, qmax, pool=1,
                                  w_quads=None, w_channels=None, layout=None):
    """A stride-1 quantized convolution's int8 output in one call: `requantize_pool_nchw` of
    `conv2d_int8_acc` (int8 [N, O, Ho/k, Wo/k]; k = `pool`, 1: no pooling).  `w_quads`,
    `w_channels` and `layout` are accepted for parity with the Numba twin and ignored; x may be a
    `conv_input_u8.PaddedU8` (its int8 values are used)."""
    _check(x, w, padded_ok=True)
    if isinstance(x, PaddedU8):
        x = x.int8()
    acc = conv2d_int8_acc_reference(x, w, 1, padding, pad_value)
    return requantize_pool_nchw_reference(acc, offset, m0, shift, zero_point, qmin, qmax, pool)


@njit(cache=True, parallel=True)
def _conv_s1_vnni_requant_pool(xu, n, c, hp, wp, kh, kw, w_quads, init, npos, offset, m0, shift, zero_point, qmin,
                               qmax, k, nr, out):
    """`_conv_s1_vnni` for one image at a time into a per-thread buffer [Op, npos] that stays in
    cache, then, while it is there, the max over each k×k window and one requantization per window
    (`_requantize_pool_nchw`'s arithmetic), written int8 to out [N, O, Ho/k, Wo/k].  The int32
    accumulators never go to memory as a whole.  nr = 16 positions per panel (256-bit VNNI) or
    32 (512-bit: two 16-position quads per panel row, twice the products per instruction)."""
    op, kp = w_quads.shape
    kq = kp // 4
    taps = _tap_offsets(c, kh, kw, hp, wp, kp)
    a_flat = w_quads.ravel().view(np.int32)
    image = c * hp * wp
    n_strips = op // MR
    o_len, hq, wq = out.shape[1], out.shape[2], out.shape[3]
    for b in prange(n):
        acc = np.empty((op, npos), np.int32)
        for o in range(op):
            acc[o, :] = init[o]
        acc_flat = acc.ravel()
        panel = np.empty(kq * 4 * nr, np.uint8)
        for q0 in range(0, npos, nr):
            for p in range(kq):
                for half in range(0, nr, 16):
                    src = b * image + q0 + half
                    _pack_quad16(xu, src + taps[4 * p], src + taps[4 * p + 1], src + taps[4 * p + 2],
                                 src + taps[4 * p + 3], panel, p * 4 * nr + 4 * half)
            for strip in range(n_strips):
                if nr == 32:
                    _mk_vnni512_sw(a_flat, strip * MR * kq, kq, panel, 0, acc_flat, strip * MR * npos + q0, npos, kq)
                else:
                    _mk_vnni256_sw(a_flat, strip * MR * kq, kq, panel, 0, acc_flat, strip * MR * npos + q0, npos, kq)
        best = np.empty(hq * wq, np.int32)
        pair = np.empty(2 * wq, np.int32)
        for o in range(o_len):
            row = acc[o]
            for yq in range(hq):                     # the window maxima of channel o, in order
                if k == 2:                           # the common 2×2 pool: rows first (contiguous,
                    r0 = row[2 * yq * wp:2 * yq * wp + 2 * wq]          # vectorised), then pairs
                    r1 = row[(2 * yq + 1) * wp:(2 * yq + 1) * wp + 2 * wq]
                    for j in range(2 * wq):
                        pair[j] = max(r0[j], r1[j])
                    dst = best[yq * wq:(yq + 1) * wq]
                    for xq in range(wq):
                        dst[xq] = max(pair[2 * xq], pair[2 * xq + 1])
                    continue
                for xq in range(wq):
                    base = yq * k * wp + xq * k
                    m = row[base]
                    for i in range(k):
                        for j in range(k):
                            v = row[base + i * wp + j]
                            m = v if v > m else m
                    best[yq * wq + xq] = m
            off, mo, sh = offset[o], m0[o], shift[o]
            dst = out[b, o].ravel()
            for t in range(hq * wq):                 # a plain loop over a contiguous buffer: vectorised
                total = min(max(best[t] + off, INT32_MIN), INT32_MAX)
                dst[t] = _requantize_one(total, mo, sh, zero_point, qmin, qmax)


LAYOUTS = ("positions", "channels", "sliding")


def choose_layout(c: int, o: int, lanes: int) -> str:
    """Which fused VNNI kernel a stride-1 layer with C input and O output channels runs:

    - 'channels' (`kernels.conv_int8_channels`: output channels in the `lanes` vector lanes, the
      input read in place) when O fills at least 3/4 of its lane groups and C ≥ 4;
    - else 'sliding' (`kernels.conv_int8_sliding`: output positions in the lanes, the input read
      in place by byte permutes) on 512-bit registers where the CPU has AVX-512 VBMI;
    - else 'positions' (`_conv_s1_vnni_requant_pool`: output positions in the lanes, the input
      packed into panels).

    Measured at 2 threads (`benchmarks/bench_quant_lenet.py`, and 3×3 layers at batch 64):
    LeNet-5's conv2 (6 → 16, 5×5, batch 256) 0.50 ms by positions, 0.35 by channels; its conv1
    (1 → 6) 0.51 by positions, 0.40 by sliding, 1.4 by channels (10 of 16 lanes idle); 16 → 32
    3×3 0.45 / 0.40 / 0.62 (positions / channels / sliding); 3 → 32 3×3 0.71 / 0.81 / 0.62."""
    groups = -(-o // lanes)
    if c >= 4 and 4 * o >= 3 * groups * lanes:
        return "channels"
    if lanes == 16 and host_features().get("avx512vbmi"):
        return "sliding"
    return "positions"


def conv2d_requant_pool_numba(x, w, padding, pad_value, offset, m0, shift, zero_point, qmin, qmax, pool=1,
                              w_quads=None, w_channels=None, layout=None):
    """The fused kernels where the CPU has VNNI, else the two steps (`conv2d_int8_acc_numba`,
    `requantize_pool_nchw_numba`).  Of the fused ones, `layout` (one of LAYOUTS; None:
    `choose_layout`) picks `_conv_s1_vnni_requant_pool`, `conv_int8_channels`'s or
    `conv_int8_sliding`'s kernel; `w_channels`, a dict, keeps the latter two's packed weights
    between calls.  x is int8 NCHW or a `conv_input_u8.PaddedU8` (read in place when its padding
    and pad value are these)."""
    _check(x, w, padded_ok=True)
    n = x.shape[0]
    o, c, kh, kw = w.shape
    ho, wo = conv_output_size(x.shape[2], x.shape[3], kh, kw, 1, padding)
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} or None, got {layout!r}")
    if not (_use_vnni_conv() and ho > 0 and wo > 0):
        x = x.int8() if isinstance(x, PaddedU8) else x
        acc = conv2d_int8_acc_numba(x, w, 1, padding, pad_value)
        return requantize_pool_nchw_numba(acc, offset, m0, shift, zero_point, qmin, qmax, pool)
    as_channels = lambda v: per_channel(v, o)  # noqa: E731
    lanes = 16 if _vnni_conv_width() == 32 else 8
    layout = layout or choose_layout(c, o, lanes)
    if layout == "sliding" and lanes != 16:
        raise RuntimeError("the sliding layout needs AVX-512 VNNI (512-bit registers)")
    cache = w_channels if w_channels is not None else {}
    if layout == "channels":
        if lanes not in cache:
            cache[lanes] = CH.pack_weight_channels(w, lanes)
        packed, init = cache[lanes]
        return CH.conv2d_requant_pool_channels(x, packed, init, kh, kw, _pair(padding), pad_value, as_channels(offset),
                                               as_channels(m0), as_channels(shift), zero_point, qmin, qmax, int(pool),
                                               lanes)
    if layout == "sliding":
        if "rows" not in cache:
            cache["rows"] = SL.pack_weight_rows(w)
        packed, init = cache["rows"]
        return SL.conv2d_requant_pool_sliding(x, packed, init, kh, kw, _pair(padding), pad_value, as_channels(offset),
                                              as_channels(m0), as_channels(shift), zero_point, qmin, qmax, int(pool))
    quads = w_quads if w_quads is not None else pack_conv_weight_quads(w)
    nr = _vnni_conv_width()
    xu, hp, wp, npos = _padded_u8(x, padding, pad_value, ho, kw, nr)
    init = -128 * quads.astype(np.int32).sum(axis=1)
    out = np.empty((n, o, ho // pool, wo // pool), np.int8)
    _conv_s1_vnni_requant_pool(xu, n, c, hp, wp, kh, kw, quads, init, npos, as_channels(offset), as_channels(m0),
                               as_channels(shift), int(zero_point), int(qmin), int(qmax), int(pool), nr, out)
    return out


conv2d_requant_pool = dispatch(conv2d_requant_pool_reference, conv2d_requant_pool_numba)
conv2d_requant_pool.__doc__ = conv2d_requant_pool_reference.__doc__
