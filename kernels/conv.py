"""2-D convolution as im2col + one BLAS matrix product, with the gather/scatter loops in Numba.

Notation (NCHW, like torch): input x of shape (N, C, H, W), weight w of shape (O, C/G, KH, KW),
G groups, stride (s_h, s_w), padding (p_h, p_w) on the top/left, dilation (d_h, d_w), output of
shape (N, O, OH, OW).  The cross-correlation that torch calls convolution is

    y[n, o, a, b] = bias[o] + Σ_{c, i, j} w[o, c, i, j] · x_pad[n, g·C/G + c, a·s_h + i·d_h, b·s_w + j·d_w]

with g = o // (O/G) the group of output channel o and x_pad the zero-padded input.

im2col unrolls every receptive field into one column:

    cols[(c, i, j), (n, a, b)] = x_pad[n, c, a·s_h + i·d_h, b·s_w + j·d_w]       shape (C·KH·KW, N·OH·OW)

so that, per group g (rows of cols and of w in contiguous blocks),

    Y_g  = W_g · cols_g                 forward         (O/G, N·OH·OW)
    dW_g = dY_g · cols_gᵀ               weight gradient (O/G, C/G·KH·KW)
    dcols_g = W_gᵀ · dY_g               then dx = col2im(dcols), the adjoint of im2col (sums overlaps)
    dbias[o] = Σ_{n,a,b} dY[o, (n, a, b)]

Why im2col + BLAS and not a direct loop: the three products above are single large float32
GEMMs that OpenBLAS runs near peak, while a direct convolution is a 7-deep loop that Numba does
not block in registers. The exception is a small layer (few output channels times few input rows,
such as LeNet-5's first layer), where BLAS mostly packs and im2col mostly copies: those take the
direct loops further down (`direct_conv_applies`; benchmarks/bench_conv.py times both paths).
The gather (im2col) and scatter-add (col2im) are memory-bound loops, both in Numba (faster than
their NumPy twins; `benchmarks/bench_conv.py` times them). A stride-1 layer uses the *wide* im2col
matrix instead (section "wide im2col" below): one block copy per (row, sample) instead of one per
output row, at the price of (WP − OW)/WP extra GEMM columns that are dropped. `conv_path` picks
direct / wide / im2col per layer.

Numba practice: `cache=True`, compiled lazily on first call (or by `tinyopt.warmup()`).  Both have
a `parallel=True` twin (`im2col_parallel` over the rows of cols, `col2im_parallel` over the input
channels, bit-identical to the serial loops) that runs only after `tinyopt.set_num_threads(n)`
with n > 1: then Numba's pool does all the work, the GEMMs split by `kernels.blas` included, since
two busy-waiting pools cannot share the cores (`tinyopt/threads.py` says why; README "Threads" has
the measurements).  Inner loops
carry no bounds tests: `_valid_range` computes, per kernel offset, the output rows/columns that
read inside the input; cols starts zeroed, which is the padding.

Each loop exists twice with the same signature: `<op>_reference` (NumPy slicing, the readable
specification) and `<op>_numba`; the public `<op>` dispatches (see `backend.py`).
"""
from __future__ import annotations

import numba
import numpy as np

from .backend import dispatch, kernel_threads
from .blas import matmul


def conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int) -> int:
    """⌊(size + p_begin + p_end − d·(k − 1) − 1) / s⌋ + 1, the number of window positions."""
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


# ----------------------------------------------------------------------------- im2col


def im2col_reference(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """cols[(c, i, j), (n, a, b)] = x_pad[n, c, a·sh + i·dh, b·sw + j·dw] (zero outside x).

    `ph, pw` pad the top/left; the bottom/right padding is whatever `oh, ow` need, so asymmetric
    ('same') padding works too.
    """
    n, c, h, w = x.shape
    pad_bottom = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - h - ph)
    pad_right = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - w - pw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, pad_bottom), (pw, pad_right)))
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = x_pad[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw]
            cols[:, i, j] = rows.transpose(1, 0, 2, 3)  # (C, N, OH, OW)
    return cols.reshape(c * kh * kw, n * oh * ow)


@numba.njit(cache=True)
def _valid_range(pad, offset, stride, size, out):
    """Output positions q in [lo, hi) whose input index q·stride − pad + offset lies in [0, size)."""
    lo = max(0, -((offset - pad) // stride))  # ⌈(pad − offset) / stride⌉
    hi = min(out, -((offset - pad - size) // stride))  # ⌈(size + pad − offset) / stride⌉
    return lo, max(lo, hi)


# Why the Numba loops below copy through 1-D slices (`dst = cols[k0:k0 + L]`, then `dst[q]` for q in
# range(L)): Numba wraps negative indices around (x[-1] is the last element), so an index it cannot
# prove non-negative, such as `k0 + q`, costs a test and a select per access and keeps LLVM from
# vectorising the loop. A range variable from 0 needs no such test, and the copies of a row become
# SIMD loads and stores (3-4x faster at the LeNet shapes; benchmarks/bench_conv.py times the twins).


@numba.njit(cache=True)
def _im2col_row(x_flat, cols_flat, r, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Row r = (ch, i, j) of cols: the entries x_pad[b, ch, a·sh + i·dh, q·sw + j·dw] for every
    sample b. Only the entries that read inside x are written; cols starts zeroed (the padding)."""
    ch, i, j = r // (kh * kw), (r // kw) % kh, r % kw
    a_lo, a_hi = _valid_range(ph, i * dh, sh, h, oh)
    q_lo, q_hi = _valid_range(pw, j * dw, sw, w, ow)
    length = q_hi - q_lo
    row0 = r * n * oh * ow
    for b in range(n):
        plane = (b * c + ch) * h * w
        for a in range(a_lo, a_hi):
            src0 = plane + (a * sh - ph + i * dh) * w + q_lo * sw - pw + j * dw
            dst0 = row0 + (b * oh + a) * ow + q_lo
            dst = cols_flat[dst0:dst0 + length]
            if sw == 1:
                src = x_flat[src0:src0 + length]
                for q in range(length):
                    dst[q] = src[q]
            else:
                for q in range(length):
                    dst[q] = x_flat[src0 + q * sw]


@numba.njit(cache=True)
def im2col_numba(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    cols = np.zeros((c * kh * kw, n * oh * ow), dtype=x.dtype)
    x_flat, cols_flat = np.ascontiguousarray(x).reshape(-1), cols.reshape(-1)
    for r in range(c * kh * kw):  # row r of cols is (channel ch, kernel offset i, j)
        _im2col_row(x_flat, cols_flat, r, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return cols


@numba.njit(cache=True, parallel=True)
def im2col_parallel(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """im2col_numba with the rows of cols split over Numba's threads (each row is written by one)."""
    n, c, h, w = x.shape
    cols = np.zeros((c * kh * kw, n * oh * ow), dtype=x.dtype)
    x_flat, cols_flat = np.ascontiguousarray(x).reshape(-1), cols.reshape(-1)
    for r in numba.prange(c * kh * kw):
        _im2col_row(x_flat, cols_flat, r, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return cols


im2col = dispatch(im2col_reference, im2col_numba, im2col_parallel)


# ----------------------------------------------------------------------------- col2im


def col2im_reference(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The adjoint of im2col: dx[n, c, y, x] = Σ over every (i, j, a, b) that im2col read x[n, c, y, x]
    from of cols[(c, i, j), (n, a, b)].  Entries that fell in the padding are dropped."""
    pad_bottom = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - h - ph)
    pad_right = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - w - pw)
    dx_pad = np.zeros((n, c, h + ph + pad_bottom, w + pw + pad_right), dtype=cols.dtype)
    blocks = cols.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            # Within one (i, j) the strided slice touches each position once, so += is exact.
            dx_pad[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw] += (
                blocks[:, i, j].transpose(1, 0, 2, 3)
            )
    return dx_pad[:, :, ph: ph + h, pw: pw + w]


@numba.njit(cache=True)
def _col2im_channel(cols_flat, dx_flat, ch, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """dx[:, ch] += every entry of cols that im2col read from channel ch, rows (ch, i, j) in order,
    each read front to back."""
    for i in range(kh):
        a_lo, a_hi = _valid_range(ph, i * dh, sh, h, oh)
        for j in range(kw):
            q_lo, q_hi = _valid_range(pw, j * dw, sw, w, ow)
            length = q_hi - q_lo
            row0 = ((ch * kh + i) * kw + j) * n * oh * ow
            for b in range(n):
                plane = (b * c + ch) * h * w
                for a in range(a_lo, a_hi):
                    dst0 = plane + (a * sh - ph + i * dh) * w + q_lo * sw - pw + j * dw
                    src0 = row0 + (b * oh + a) * ow + q_lo
                    src = cols_flat[src0:src0 + length]
                    if sw == 1:
                        dst = dx_flat[dst0:dst0 + length]
                        for q in range(length):
                            dst[q] += src[q]
                    else:
                        for q in range(length):
                            dx_flat[dst0 + q * sw] += src[q]


@numba.njit(cache=True)
def col2im_numba(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    dx = np.zeros((n, c, h, w), dtype=cols.dtype)
    cols_flat, dx_flat = np.ascontiguousarray(cols).reshape(-1), dx.reshape(-1)
    for ch in range(c):
        _col2im_channel(cols_flat, dx_flat, ch, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return dx


@numba.njit(cache=True, parallel=True)
def col2im_parallel(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """col2im_numba with the input channels split over Numba's threads: each channel of dx is
    written by one iteration only, so there is no race and the sums are in the same order."""
    dx = np.zeros((n, c, h, w), dtype=cols.dtype)
    cols_flat, dx_flat = np.ascontiguousarray(cols).reshape(-1), dx.reshape(-1)
    for ch in numba.prange(c):
        _col2im_channel(cols_flat, dx_flat, ch, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    return dx


col2im = dispatch(col2im_reference, col2im_numba, col2im_parallel)


# ----------------------------------------------------------------------------- wide im2col (stride 1)
#
# For stride 1 the im2col rows have a structure the general loops above do not use. Pad one sample
# to (C, HP, WP) and flatten it to x_flat; output (a, b) at kernel offset (c, i, j) reads
#
#     x_flat[off(c, i, j) + p],   p = a·WP + b,   off(c, i, j) = c·HP·WP + i·d_h·WP + j·d_w
#
# so for a fixed row (c, i, j) the whole output plane is ONE contiguous run x_flat[off : off + L],
# L = (OH − 1)·WP + OW, if the "wide" positions b ≥ OW (which run past a row's end into the next row)
# are kept as columns too. The wide im2col matrix
#
#     cols_wide[(c, i, j), (n, p)] = x_flat[n, off(c, i, j) + p]        shape (C·KH·KW, N·L)
#
# is therefore one block copy per (row, sample) instead of OH copies of OW elements, and
# col2im_wide one block add. The GEMMs are the im2col ones on L columns per sample instead of
# OH·OW (WP/OW more work, e.g. 14/10 at LeNet-5's second layer); Y_wide's wide columns are dropped
# (`wide_to_output`), and in backward dY_wide is zero there (`output_grad_wide`), so they add
# nothing to dW, and the wide columns of dcols = Wᵀ·dY_wide are zero too.


@numba.njit(cache=True)
def _wide_geometry(h, w, kh, kw, ph, pw, dh, dw, oh, ow):
    """(HP, WP, L): the input padded by (ph, pw) on the top/left and by what the output needs on the
    bottom/right, and the length L = (OH − 1)·WP + OW of a wide output row."""
    hp, wp = max(h + ph, oh + (kh - 1) * dh), max(w + pw, ow + (kw - 1) * dw)
    return hp, wp, (oh - 1) * wp + ow


def wide_geometry(x_shape, kh, kw, ph, pw, dh, dw, oh, ow):
    """(HP, WP, L) of `_wide_geometry` for an input of shape (N, C, H, W), callable from Python."""
    return _wide_geometry(x_shape[2], x_shape[3], kh, kw, ph, pw, dh, dw, oh, ow)


def _pad_reference(x, hp, wp, ph, pw):
    x_pad = np.zeros(x.shape[:2] + (hp, wp), dtype=x.dtype)
    x_pad[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
    return x_pad


def im2col_wide_reference(x, kh, kw, ph, pw, dh, dw, oh, ow):
    """cols_wide[(c, i, j), (n, p)] = x_flat[n, off(c, i, j) + p] for p < L (stride 1)."""
    n, c, h, w = x.shape
    hp, wp, length = _wide_geometry(h, w, kh, kw, ph, pw, dh, dw, oh, ow)
    x_flat = _pad_reference(x, hp, wp, ph, pw).reshape(n, c * hp * wp)
    cols = np.empty((c, kh, kw, n, length), dtype=x.dtype)
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                off = ch * hp * wp + i * dh * wp + j * dw
                cols[ch, i, j] = x_flat[:, off:off + length]
    return cols.reshape(c * kh * kw, n * length)


def col2im_wide_reference(cols, n, c, h, w, kh, kw, ph, pw, dh, dw, oh, ow):
    """The adjoint of im2col_wide: dx_flat[n, off(c, i, j) + p] += cols_wide[(c, i, j), (n, p)], rows
    in order; then the padding is cut off."""
    hp, wp, length = _wide_geometry(h, w, kh, kw, ph, pw, dh, dw, oh, ow)
    dx_pad = np.zeros((n, c * hp * wp), dtype=cols.dtype)
    blocks = cols.reshape(c, kh, kw, n, length)
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                off = ch * hp * wp + i * dh * wp + j * dw
                dx_pad[:, off:off + length] += blocks[ch, i, j]
    return np.ascontiguousarray(dx_pad.reshape(n, c, hp, wp)[:, :, ph:ph + h, pw:pw + w])


def wide_to_output_reference(y_wide, bias, wp, out):
    """out[n, o, a, b] = y_wide[o, n·L + a·WP + b] + bias[o] for b < OW (the wide columns dropped);
    `out` (N, O, OH, OW) is filled in place and returned."""
    n, o, oh, ow = out.shape
    length = (oh - 1) * wp + ow
    full = np.zeros((o, n, oh * wp), dtype=y_wide.dtype)
    full[:, :, :length] = y_wide.reshape(o, n, length)
    out[...] = full.reshape(o, n, oh, wp)[:, :, :, :ow].transpose(1, 0, 2, 3) + bias.reshape(1, o, 1, 1)
    return out


def output_grad_wide_reference(grad, wp):
    """dY_wide[o, n·L + a·WP + b] = dY[n, o, a, b] for b < OW, 0 in the wide columns: (O, N·L)."""
    n, o, oh, ow = grad.shape
    length = (oh - 1) * wp + ow
    full = np.zeros((o, n, oh, wp), dtype=grad.dtype)
    full[:, :, :, :ow] = grad.transpose(1, 0, 2, 3)
    return np.ascontiguousarray(full.reshape(o, n, oh * wp)[:, :, :length]).reshape(o, n * length)


@numba.njit(cache=True)
def _pad_sample(x, s, x_pad, ph, pw):
    """x_pad[:, ph:ph + H, pw:pw + W] = x[s]; the border of x_pad stays as it is (zero)."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    for ch in range(c):
        for a in range(h):
            src = x[s, ch, a]
            dst = x_pad[ch, a + ph, pw:pw + w]
            for q in range(w):
                dst[q] = src[q]


@numba.njit(cache=True)
def _crop_sample(dx_pad, dx, s, ph, pw):
    """dx[s] = dx_pad[:, ph:ph + H, pw:pw + W], the inverse of `_pad_sample`."""
    c, h, w = dx.shape[1], dx.shape[2], dx.shape[3]
    for ch in range(c):
        for a in range(h):
            src = dx_pad[ch, a + ph, pw:pw + w]
            dst = dx[s, ch, a]
            for q in range(w):
                dst[q] = src[q]


@numba.njit(cache=True)
def _wide_sample(grad, s, g_wide, wp):
    """g_wide[o, a·WP + b] = dY[s, o, a, b] for b < OW, one sample's (O, L) rows; the wide columns of
    g_wide are left as they are (zero)."""
    o, oh, ow = grad.shape[1], grad.shape[2], grad.shape[3]
    for oo in range(o):
        for a in range(oh):
            src = grad[s, oo, a]
            dst = g_wide[oo, a * wp:a * wp + ow]
            for q in range(ow):
                dst[q] = src[q]


@numba.njit(cache=True)
def _padded(x, hp, wp, ph, pw):
    """x itself when it needs no padding, else a zero-padded copy (N, C, HP, WP)."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    if hp == h and wp == w:
        return x
    x_pad = np.zeros((n, c, hp, wp), dtype=x.dtype)
    for b in range(n):
        _pad_sample(x, b, x_pad[b], ph, pw)
    return x_pad


@numba.njit(cache=True)
def _im2col_wide_row(x_flat, cols, r, n, plane, kh, kw, hp, wp, dh, dw, length):
    ch, i, j = r // (kh * kw), (r // kw) % kh, r % kw
    off = ch * hp * wp + i * dh * wp + j * dw
    row = cols[r]
    for b in range(n):
        src = x_flat[b * plane + off:b * plane + off + length]
        dst = row[b * length:(b + 1) * length]
        for p in range(length):
            dst[p] = src[p]


@numba.njit(cache=True)
def im2col_wide_numba(x, kh, kw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    hp, wp, length = _wide_geometry(h, w, kh, kw, ph, pw, dh, dw, oh, ow)
    x_flat = _padded(x, hp, wp, ph, pw).reshape(-1)
    cols = np.empty((c * kh * kw, n * length), dtype=x.dtype)
    for r in range(c * kh * kw):
        _im2col_wide_row(x_flat, cols, r, n, c * hp * wp, kh, kw, hp, wp, dh, dw, length)
    return cols


@numba.njit(cache=True, parallel=True)
def im2col_wide_parallel(x, kh, kw, ph, pw, dh, dw, oh, ow):
    """im2col_wide_numba with the rows split over Numba's threads (each row is written by one)."""
    n, c, h, w = x.shape
    hp, wp, length = _wide_geometry(h, w, kh, kw, ph, pw, dh, dw, oh, ow)
    x_flat = _padded(x, hp, wp, ph, pw).reshape(-1)
    cols = np.empty((c * kh * kw, n * length), dtype=x.dtype)
    for r in numba.prange(c * kh * kw):
        _im2col_wide_row(x_flat, cols, r, n, c * hp * wp, kh, kw, hp, wp, dh, dw, length)
    return cols


im2col_wide = dispatch(im2col_wide_reference, im2col_wide_numba, im2col_wide_parallel)


@numba.njit(cache=True)
def _col2im_wide_channel(cols, dx_flat, ch, n, plane, kh, kw, hp, wp, dh, dw, length):
    """dx_flat[:, channel ch] += its rows (ch, i, j) of cols_wide, in order."""
    for i in range(kh):
        for j in range(kw):
            off = ch * hp * wp + i * dh * wp + j * dw
            row = cols[(ch * kh + i) * kw + j]
            for b in range(n):
                dst = dx_flat[b * plane + off:b * plane + off + length]
                src = row[b * length:(b + 1) * length]
                for p in range(length):
                    dst[p] += src[p]


@numba.njit(cache=True)
def _crop(dx_pad, h, w, ph, pw):
    n, c, hp, wp = dx_pad.shape
    if hp == h and wp == w:
        return dx_pad
    dx = np.empty((n, c, h, w), dtype=dx_pad.dtype)
    for b in range(n):
        _crop_sample(dx_pad[b], dx, b, ph, pw)
    return dx


@numba.njit(cache=True)
def col2im_wide_numba(cols, n, c, h, w, kh, kw, ph, pw, dh, dw, oh, ow):
    hp, wp, length = _wide_geometry(h, w, kh, kw, ph, pw, dh, dw, oh, ow)
    cols = np.ascontiguousarray(cols)
    dx_pad = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    dx_flat = dx_pad.reshape(-1)
    for ch in range(c):
        _col2im_wide_channel(cols, dx_flat, ch, n, c * hp * wp, kh, kw, hp, wp, dh, dw, length)
    return _crop(dx_pad, h, w, ph, pw)


@numba.njit(cache=True, parallel=True)
def col2im_wide_parallel(cols, n, c, h, w, kh, kw, ph, pw, dh, dw, oh, ow):
    """col2im_wide_numba with the input channels split over Numba's threads (each channel of dx is
    written by one iteration, in the same order: bit-identical)."""
    hp, wp, length = _wide_geometry(h, w, kh, kw, ph, pw, dh, dw, oh, ow)
    cols = np.ascontiguousarray(cols)
    dx_pad = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    dx_flat = dx_pad.reshape(-1)
    for ch in numba.prange(c):
        _col2im_wide_channel(cols, dx_flat, ch, n, c * hp * wp, kh, kw, hp, wp, dh, dw, length)
    return _crop(dx_pad, h, w, ph, pw)


col2im_wide = dispatch(col2im_wide_reference, col2im_wide_numba, col2im_wide_parallel)


@numba.njit(cache=True)
def wide_to_output_numba(y_wide, bias, wp, out):
    n, o, oh, ow = out.shape
    length = (oh - 1) * wp + ow
    y_wide = np.ascontiguousarray(y_wide)
    for b in range(n):
        for oo in range(o):
            row = y_wide[oo, b * length:(b + 1) * length]
            bo = bias[oo]
            for a in range(oh):
                src = row[a * wp:a * wp + ow]
                dst = out[b, oo, a]
                for q in range(ow):
                    dst[q] = src[q] + bo
    return out


wide_to_output = dispatch(wide_to_output_reference, wide_to_output_numba)


@numba.njit(cache=True)
def output_grad_wide_numba(grad, wp):
    n, o, oh, ow = grad.shape
    length = (oh - 1) * wp + ow
    g_wide = np.zeros((o, n * length), dtype=grad.dtype)  # zeroing first is faster than filling each gap
    for oo in range(o):
        for b in range(n):
            row = g_wide[oo, b * length:(b + 1) * length]
            for a in range(oh):
                src = grad[b, oo, a]
                dst = row[a * wp:a * wp + ow]
                for q in range(ow):
                    dst[q] = src[q]
    return g_wide


output_grad_wide = dispatch(output_grad_wide_reference, output_grad_wide_numba)


# ----------------------------------------------------------------------------- direct convolution
#
# For a small layer (the first layer of an image network: 1 or 3 input channels, a few output
# channels), im2col + GEMM is a poor fit: the GEMM has a short K = C·KH·KW and a handful of rows O, so
# BLAS spends its time packing a matrix that is used only O times, and im2col writes KH·KW copies of
# the input first. The direct loops below read the input where it is. They work on the padded input
# of one sample flattened to one vector of length C·HP·WP: for stride 1, output (a, b) at kernel offset
# (c, i, j) reads element  c·HP·WP + (a + i·d_h)·WP + (b + j·d_w),  so for a fixed (c, i, j) the whole
# output plane is one contiguous run of the input, shifted by off(c, i, j) = c·HP·WP + i·d_h·WP + j·d_w:
#
#     y_wide[o, p] = bias[o] + Σ_{c, i, j} w[o, c, i, j] · x_flat[off(c, i, j) + p],   p = a·WP + b
#
# computed for p in [0, L), L = (OH − 1)·WP + OW; the positions with b ≥ OW ("wide" columns that run
# past the row's end) are computed and dropped, (WP − OW)/WP of the work. The weight gradient is the
# same identity read the other way, a dot product per weight:
#
#     dW[o, c, i, j] = Σ_n Σ_p dY_wide[n, o, p] · x_flat[n, off(c, i, j) + p]     (dY_wide = 0 where b ≥ OW)
#     dbias[o] = Σ_{n, a, b} dY[n, o, a, b]
#
# Which layers take the direct loops (`conv_path`; forward, weight gradient and input gradient alike):
# stride 1 and groups = 1, and either
#   - O·C·KH·KW ≤ DIRECT_MAX_MACS (a small first layer), or
#   - the kernels' parallel twins are on (`tinyopt.set_num_threads(n)`, n > 1), O·C·KH·KW ≤
#     DIRECT_PARALLEL_MAX_MACS and a wide row is at least DIRECT_MIN_LENGTH long: the direct loops
#     on every thread, no im2col matrix and no GEMM (the other layers then take im2col and the
#     split GEMMs, not the wide matrix).
# benchmarks/bench_conv.py times every path.

# The small-layer bound: O·C·KH·KW, the multiply-adds per output position. What the direct loops save
# is im2col's copies and BLAS's packing, which do not grow with O·C·KH·KW; the GEMM blocks the
# products in registers and uses both cores. benchmarks/bench_conv.py times the paths per layer (README
# "Conv2d alone" has the figures): LeNet-5's 1→6 5×5 layer (150) is faster direct on one thread, the
# Keras CNN's 1→32 3×3 layer (288) no longer.
DIRECT_MAX_MACS = 200
# With the twins on, the direct loops also take larger layers, up to this O·C·KH·KW: they won
# (forward + backward, batch 128, 2 threads) for 32→32 3×3 (9,216: 13.3 against 17.3 ms with im2col
# and the split GEMMs) and lost for 32→64 3×3 (18,432: CNN92's conv2 26.7 against 22.9 ms, the Keras
# CNN's 18.9 against 15.0) and 64→64 3×3 (51.3 against 45.3).
DIRECT_PARALLEL_MAX_MACS = 12288
# The bound on the wide row length L = (OH − 1)·WP + OW for the parallel direct forward: each pass over
# a row costs a few slice set-ups, which a short row (a 3×3 output: L = 13) does not amortise.
DIRECT_MIN_LENGTH = 100
# The parallel twins split the batch into blocks of this many samples, one thread per block; the weight
# gradient is summed per block and the blocks are added in order, so serial and parallel agree bit for bit.
DIRECT_BLOCK = 16


def direct_conv_applies(x_shape, w_shape, stride, groups) -> bool:
    """Whether a layer is small enough for the direct loops in forward and weight gradient alike:
    stride 1, one group, O·C·KH·KW ≤ DIRECT_MAX_MACS."""
    o, c, kh, kw = w_shape
    return tuple(stride) == (1, 1) and groups == 1 and o * c * kh * kw <= DIRECT_MAX_MACS


def conv2d_direct_reference(x, w, bias, ph, pw, dh, dw, oh, ow):
    """y[n, o, a, b] = bias[o] + Σ_{c, i, j} w[o, c, i, j] · x_pad[n, c, a + i·dh, b + j·dw] (stride 1)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    hp, wp, _ = _wide_geometry(h, wd, kh, kw, ph, pw, dh, dw, oh, ow)
    x_pad = np.zeros((n, c, hp, wp), dtype=x.dtype)
    x_pad[:, :, ph:ph + h, pw:pw + wd] = x
    y = np.empty((n, o, oh, ow), dtype=x.dtype)
    y[...] = bias.reshape(1, o, 1, 1)
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                window = x_pad[:, ch, i * dh:i * dh + oh, j * dw:j * dw + ow]  # (N, OH, OW)
                y += w[:, ch, i, j].reshape(1, o, 1, 1) * window[:, None]
    return y


def conv2d_direct_weight_grad_reference(x, grad, kh, kw, ph, pw, dh, dw):
    """dW[o, c, i, j] = Σ_{n, a, b} dY[n, o, a, b] · x_pad[n, c, a + i·dh, b + j·dw] (stride 1)."""
    n, c, h, wd = x.shape
    o, oh, ow = grad.shape[1:]
    hp, wp, _ = _wide_geometry(h, wd, kh, kw, ph, pw, dh, dw, oh, ow)
    x_pad = np.zeros((n, c, hp, wp), dtype=x.dtype)
    x_pad[:, :, ph:ph + h, pw:pw + wd] = x
    dwt = np.empty((o, c, kh, kw), dtype=grad.dtype)
    for i in range(kh):
        for j in range(kw):
            window = x_pad[:, :, i * dh:i * dh + oh, j * dw:j * dw + ow]  # (N, C, OH, OW)
            dwt[:, :, i, j] = np.einsum("noab,ncab->oc", grad, window)
    return dwt


# Why fastmath={"contract"} on the row kernel below (and on `_dots_2x4`): it lets LLVM
# fuse each w·x + acc into one FMA instruction (rounded once instead of twice), which doubles the
# multiply-add rate of these loops; nothing else about IEEE arithmetic is relaxed (no reordering,
# NaN and Inf behave as usual). The result differs from the NumPy twin by rounding only.
@numba.njit(cache=True, fastmath={"contract"})
def _direct_rows2(x_flat, offsets, w_taps, r0, r1, oo, length):
    """r0 += Σ_t w_taps[oo, t] · x_flat[offsets[t] + p], r1 the same for channel oo + 1, for p < length:
    two output rows per pass, so every input load feeds two multiply-adds, and eight taps per pass
    (one load and store of each row per eight products)."""
    taps = w_taps.shape[1]
    t = 0
    while t + 8 <= taps:
        s0, s1 = x_flat[offsets[t]:offsets[t] + length], x_flat[offsets[t + 1]:offsets[t + 1] + length]
        s2, s3 = x_flat[offsets[t + 2]:offsets[t + 2] + length], x_flat[offsets[t + 3]:offsets[t + 3] + length]
        s4, s5 = x_flat[offsets[t + 4]:offsets[t + 4] + length], x_flat[offsets[t + 5]:offsets[t + 5] + length]
        s6, s7 = x_flat[offsets[t + 6]:offsets[t + 6] + length], x_flat[offsets[t + 7]:offsets[t + 7] + length]
        a0, a1, a2, a3 = w_taps[oo, t], w_taps[oo, t + 1], w_taps[oo, t + 2], w_taps[oo, t + 3]
        a4, a5, a6, a7 = w_taps[oo, t + 4], w_taps[oo, t + 5], w_taps[oo, t + 6], w_taps[oo, t + 7]
        c0, c1, c2, c3 = w_taps[oo + 1, t], w_taps[oo + 1, t + 1], w_taps[oo + 1, t + 2], w_taps[oo + 1, t + 3]
        c4, c5, c6, c7 = w_taps[oo + 1, t + 4], w_taps[oo + 1, t + 5], w_taps[oo + 1, t + 6], w_taps[oo + 1, t + 7]
        for p in range(length):
            v0, v1, v2, v3, v4, v5, v6, v7 = s0[p], s1[p], s2[p], s3[p], s4[p], s5[p], s6[p], s7[p]
            r0[p] += ((a0 * v0 + a1 * v1) + (a2 * v2 + a3 * v3)) + ((a4 * v4 + a5 * v5) + (a6 * v6 + a7 * v7))
            r1[p] += ((c0 * v0 + c1 * v1) + (c2 * v2 + c3 * v3)) + ((c4 * v4 + c5 * v5) + (c6 * v6 + c7 * v7))
        t += 8
    while t < taps:
        s0 = x_flat[offsets[t]:offsets[t] + length]
        a0, c0 = w_taps[oo, t], w_taps[oo + 1, t]
        for p in range(length):
            v0 = s0[p]
            r0[p] += a0 * v0
            r1[p] += c0 * v0
        t += 1


@numba.njit(cache=True)
def _even_rows(w_taps):
    """w_taps with a zero row appended when its row count is odd, so `_direct_rows2` can always take
    rows in pairs (the odd last row is paired with a scratch row that is thrown away)."""
    if w_taps.shape[0] % 2 == 0:
        return np.ascontiguousarray(w_taps)
    padded = np.zeros((w_taps.shape[0] + 1, w_taps.shape[1]), dtype=w_taps.dtype)
    padded[:w_taps.shape[0]] = w_taps
    return padded


@numba.njit(cache=True)
def _direct_sample(x_flat, offsets, w_pairs, bias, y_wide, scratch, length):
    """y_wide[o, p] = bias[o] + Σ_t w_pairs[o, t] · x_flat[offsets[t] + p] for p < length, one sample
    (t runs over the taps (c, i, j), offsets[t] = off(c, i, j); w_pairs from `_even_rows`). The loops
    are bound by loads and stores, not by multiplications: hence two rows and eight taps per pass."""
    o = y_wide.shape[0]
    for oo in range(o):
        row = y_wide[oo]
        b = bias[oo]
        for p in range(length):
            row[p] = b
    for oo in range(0, o, 2):
        _direct_rows2(x_flat, offsets, w_pairs, y_wide[oo], y_wide[oo + 1] if oo + 1 < o else scratch, oo, length)


@numba.njit(cache=True)
def _tap_offsets(c, kh, kw, hp, wp, dh, dw):
    """off(c, i, j) = c·HP·WP + i·d_h·WP + j·d_w for every tap, in the order of w[o].ravel()."""
    offsets = np.empty(c * kh * kw, dtype=np.int64)
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                offsets[(ch * kh + i) * kw + j] = ch * hp * wp + i * dh * wp + j * dw
    return offsets


@numba.njit(cache=True)
def _direct_samples(x, w, bias, y, first, stop, ph, pw, dh, dw):
    """y[first:stop] by the direct loops, with this call's own padded-sample and wide-output buffers."""
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    o, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    oh, ow = y.shape[2], y.shape[3]
    hp, wp, length = _wide_geometry(h, wd, kh, kw, ph, pw, dh, dw, oh, ow)
    x_pad = np.zeros((c, hp, wp), dtype=x.dtype)
    y_wide = np.empty((o, length), dtype=x.dtype)
    x_flat = x_pad.reshape(-1)
    offsets = _tap_offsets(c, kh, kw, hp, wp, dh, dw)
    w_pairs = _even_rows(np.ascontiguousarray(w).reshape(o, c * kh * kw))
    scratch = np.zeros(length, dtype=x.dtype)
    for s in range(first, stop):
        _pad_sample(x, s, x_pad, ph, pw)
        _direct_sample(x_flat, offsets, w_pairs, bias, y_wide, scratch, length)
        for oo in range(o):
            for a in range(oh):
                src = y_wide[oo, a * wp:a * wp + ow]
                dst = y[s, oo, a]
                for q in range(ow):
                    dst[q] = src[q]


@numba.njit(cache=True)
def conv2d_direct_numba(x, w, bias, ph, pw, dh, dw, oh, ow):
    y = np.empty((x.shape[0], w.shape[0], oh, ow), dtype=x.dtype)
    _direct_samples(x, w, bias, y, 0, x.shape[0], ph, pw, dh, dw)
    return y


@numba.njit(cache=True, parallel=True)
def conv2d_direct_parallel(x, w, bias, ph, pw, dh, dw, oh, ow):
    """conv2d_direct_numba with blocks of samples split over Numba's threads (bit-identical: each
    sample is computed the same way, by one thread)."""
    n = x.shape[0]
    y = np.empty((n, w.shape[0], oh, ow), dtype=x.dtype)
    for k in numba.prange(-(-n // DIRECT_BLOCK)):
        _direct_samples(x, w, bias, y, k * DIRECT_BLOCK, min(n, (k + 1) * DIRECT_BLOCK), ph, pw, dh, dw)
    return y


conv2d_direct = dispatch(conv2d_direct_reference, conv2d_direct_numba, conv2d_direct_parallel)


# Why fastmath={"reassoc"} here and nowhere else in this module: a dot product is a chain of
# dependent additions, and LLVM turns it into SIMD partial sums only if it may reorder them (without
# it the loop runs one scalar addition at a time). The order is fixed by the compiled code, so the result is the same from
# run to run; it differs from the NumPy twin by rounding, as any two summation orders do.
@numba.njit(cache=True, fastmath={"reassoc"})
def _dot(a, b, zero):
    total = zero
    for p in range(a.shape[0]):
        total += a[p] * b[p]
    return total


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dots_2x4(g0, g1, x_flat, t0, t1, t2, t3, length, zero):
    """The eight dot products Σ_p g_r[p] · x_flat[t_k + p] (r = 0, 1; k = 0…3) in one pass: six loads
    per eight multiply-adds, where eight `_dot` calls take sixteen. reassoc and contract as in `_dot`."""
    s0, s1 = x_flat[t0:t0 + length], x_flat[t1:t1 + length]
    s2, s3 = x_flat[t2:t2 + length], x_flat[t3:t3 + length]
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = zero
    for p in range(length):
        u, v = g0[p], g1[p]
        x0, x1, x2, x3 = s0[p], s1[p], s2[p], s3[p]
        a0 += u * x0
        a1 += u * x1
        a2 += u * x2
        a3 += u * x3
        b0 += v * x0
        b1 += v * x1
        b2 += v * x2
        b3 += v * x3
    return a0, a1, a2, a3, b0, b1, b2, b3


@numba.njit(cache=True)
def _weight_grad_sample(x_flat, g_wide, offsets, dw_taps, length, zero):
    """dw_taps[o, t] += Σ_p g_wide[o, p] · x_flat[offsets[t] + p] for one sample: output channels in
    pairs and taps in fours (`_dots_2x4`), the rest by single dot products."""
    o, taps = dw_taps.shape
    t4 = taps - taps % 4
    for oo in range(0, o - 1, 2):
        g0, g1 = g_wide[oo], g_wide[oo + 1]
        for t in range(0, t4, 4):
            a0, a1, a2, a3, b0, b1, b2, b3 = _dots_2x4(g0, g1, x_flat, offsets[t], offsets[t + 1], offsets[t + 2],
                                                       offsets[t + 3], length, zero)
            dw_taps[oo, t] += a0
            dw_taps[oo, t + 1] += a1
            dw_taps[oo, t + 2] += a2
            dw_taps[oo, t + 3] += a3
            dw_taps[oo + 1, t] += b0
            dw_taps[oo + 1, t + 1] += b1
            dw_taps[oo + 1, t + 2] += b2
            dw_taps[oo + 1, t + 3] += b3
        for t in range(t4, taps):
            window = x_flat[offsets[t]:offsets[t] + length]
            dw_taps[oo, t] += _dot(g0, window, zero)
            dw_taps[oo + 1, t] += _dot(g1, window, zero)
    if o % 2:
        g0 = g_wide[o - 1]
        for t in range(taps):
            dw_taps[o - 1, t] += _dot(g0, x_flat[offsets[t]:offsets[t] + length], zero)


@numba.njit(cache=True)
def _direct_weight_grad_block(x, grad, dw_block, first, stop, ph, pw, dh, dw):
    """dw_block = Σ_{s in [first, stop)} the sample's dW (the dot products of the module comment)."""
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    o, kh, kw = dw_block.shape[0], dw_block.shape[2], dw_block.shape[3]
    oh, ow = grad.shape[2], grad.shape[3]
    hp, wp, length = _wide_geometry(h, wd, kh, kw, ph, pw, dh, dw, oh, ow)
    x_pad = np.zeros((c, hp, wp), dtype=x.dtype)
    g_wide = np.zeros((o, length), dtype=grad.dtype)  # the wide columns b ≥ OW stay 0
    x_flat = x_pad.reshape(-1)
    offsets = _tap_offsets(c, kh, kw, hp, wp, dh, dw)
    zero = np.zeros(1, dtype=grad.dtype)[0]
    dw_block[...] = zero
    dw_taps = dw_block.reshape(o, c * kh * kw)
    for s in range(first, stop):
        _pad_sample(x, s, x_pad, ph, pw)
        _wide_sample(grad, s, g_wide, wp)
        _weight_grad_sample(x_flat, g_wide, offsets, dw_taps, length, zero)


@numba.njit(cache=True)
def _sum_blocks(blocks):
    total = blocks[0].copy()
    for k in range(1, blocks.shape[0]):
        total += blocks[k]
    return total


@numba.njit(cache=True)
def conv2d_direct_weight_grad_numba(x, grad, kh, kw, ph, pw, dh, dw):
    n = x.shape[0]
    count = max(1, -(-n // DIRECT_BLOCK))
    blocks = np.empty((count, grad.shape[1], x.shape[1], kh, kw), dtype=grad.dtype)
    for k in range(count):
        _direct_weight_grad_block(x, grad, blocks[k], k * DIRECT_BLOCK, min(n, (k + 1) * DIRECT_BLOCK),
                                  ph, pw, dh, dw)
    return _sum_blocks(blocks)


@numba.njit(cache=True, parallel=True)
def conv2d_direct_weight_grad_parallel(x, grad, kh, kw, ph, pw, dh, dw):
    """The serial twin with its sample blocks split over Numba's threads (same blocks, same sum order)."""
    n = x.shape[0]
    count = max(1, -(-n // DIRECT_BLOCK))
    blocks = np.empty((count, grad.shape[1], x.shape[1], kh, kw), dtype=grad.dtype)
    for k in numba.prange(count):
        _direct_weight_grad_block(x, grad, blocks[k], k * DIRECT_BLOCK, min(n, (k + 1) * DIRECT_BLOCK),
                                  ph, pw, dh, dw)
    return _sum_blocks(blocks)


conv2d_direct_weight_grad = dispatch(conv2d_direct_weight_grad_reference, conv2d_direct_weight_grad_numba,
                                     conv2d_direct_weight_grad_parallel)


# The input gradient by the same identity: dx_flat[n, off(c, i, j) + p] += Σ_o w[o, c, i, j] · dY_wide[n, o, p],
# i.e. per tap t a row r_t = Σ_o W[o, t] · dY_wide[o] (`_direct_rows2` with the roles of taps and
# channels exchanged: the O rows of dY_wide are the "inputs", all at shift 0) added into dx at off(t).
# The wide columns of dY_wide are 0, so they add nothing.


def conv2d_direct_input_grad_reference(grad, w, h, wd, ph, pw, dh, dw):
    """dx[n, c, y, x] = Σ_{o, i, j : y = a + i·dh − ph, x = b + j·dw − pw} w[o, c, i, j] · dY[n, o, a, b] (stride 1)."""
    n, o, oh, ow = grad.shape
    c, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    hp, wp, _ = _wide_geometry(h, wd, kh, kw, ph, pw, dh, dw, oh, ow)
    dx_pad = np.zeros((n, c, hp, wp), dtype=grad.dtype)
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                dx_pad[:, ch, i * dh:i * dh + oh, j * dw:j * dw + ow] += np.einsum("noab,o->nab", grad, w[:, ch, i, j])
    return np.ascontiguousarray(dx_pad[:, :, ph:ph + h, pw:pw + wd])


@numba.njit(cache=True)
def _direct_input_grad_samples(grad, w, dx, first, stop, ph, pw, dh, dw):
    """dx[first:stop] by the per-tap rows of the comment above, with this call's own buffers."""
    o, oh, ow = grad.shape[1], grad.shape[2], grad.shape[3]
    c, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    h, wd = dx.shape[2], dx.shape[3]
    hp, wp, length = _wide_geometry(h, wd, kh, kw, ph, pw, dh, dw, oh, ow)
    taps = c * kh * kw
    offsets = _tap_offsets(c, kh, kw, hp, wp, dh, dw)
    w_t = _even_rows(np.ascontiguousarray(w).reshape(o, taps).T)   # (taps, O), an even number of rows
    g_offsets = np.arange(o) * length
    g_wide = np.zeros((o, length), dtype=grad.dtype)   # the wide columns stay 0
    g_flat = g_wide.reshape(-1)
    rows = np.empty((2, length), dtype=grad.dtype)
    dx_pad = np.empty((c, hp, wp), dtype=grad.dtype)
    dx_flat = dx_pad.reshape(-1)
    for s in range(first, stop):
        _wide_sample(grad, s, g_wide, wp)
        dx_flat[:] = 0
        for t in range(0, taps, 2):
            rows[:] = 0
            _direct_rows2(g_flat, g_offsets, w_t, rows[0], rows[1], t, length)   # row 1 unused past the last tap
            for k in range(min(2, taps - t)):
                dst = dx_flat[offsets[t + k]:offsets[t + k] + length]
                src = rows[k]
                for p in range(length):
                    dst[p] += src[p]
        _crop_sample(dx_pad, dx, s, ph, pw)


@numba.njit(cache=True)
def conv2d_direct_input_grad_numba(grad, w, h, wd, ph, pw, dh, dw):
    dx = np.empty((grad.shape[0], w.shape[1], h, wd), dtype=grad.dtype)
    _direct_input_grad_samples(grad, w, dx, 0, grad.shape[0], ph, pw, dh, dw)
    return dx


@numba.njit(cache=True, parallel=True)
def conv2d_direct_input_grad_parallel(grad, w, h, wd, ph, pw, dh, dw):
    """The serial twin with blocks of samples split over Numba's threads (bit-identical: each sample
    is computed the same way, by one thread)."""
    n = grad.shape[0]
    dx = np.empty((n, w.shape[1], h, wd), dtype=grad.dtype)
    for k in numba.prange(-(-n // DIRECT_BLOCK)):
        _direct_input_grad_samples(grad, w, dx, k * DIRECT_BLOCK, min(n, (k + 1) * DIRECT_BLOCK), ph, pw, dh, dw)
    return dx


conv2d_direct_input_grad = dispatch(conv2d_direct_input_grad_reference, conv2d_direct_input_grad_numba,
                                    conv2d_direct_input_grad_parallel)


# The bias gradient dbias[o] = Σ_{n, a, b} dY[n, o, a, b]: NumPy's sum over axes (0, 2, 3) walks the
# array with strides and took longer than LeNet's whole ReLU backward; one loop per channel, summed
# in float64 (more accurate than the float32 pairwise sum, then rounded once), reads it in order.


def bias_grad_reference(grad):
    """dbias[o] = Σ_{n, a, b} dY[n, o, a, b], in float64, rounded once to dY's dtype."""
    return grad.sum(axis=(0, 2, 3), dtype=np.float64).astype(grad.dtype)


@numba.njit(cache=True, fastmath={"reassoc"})
def _channel_sum(grad, oo):
    """Σ over samples and positions of channel oo, in float64 (reassoc: SIMD partial sums, as `_dot`)."""
    total = 0.0
    for s in range(grad.shape[0]):
        plane = grad[s, oo].reshape(-1)
        for p in range(plane.shape[0]):
            total += np.float64(plane[p])
    return total


@numba.njit(cache=True)
def bias_grad_numba(grad):
    grad = np.ascontiguousarray(grad)
    db = np.empty(grad.shape[1], dtype=grad.dtype)
    for oo in range(grad.shape[1]):
        db[oo] = _channel_sum(grad, oo)
    return db


@numba.njit(cache=True, parallel=True)
def bias_grad_parallel(grad):
    """bias_grad_numba with the channels split over Numba's threads (each summed the same way)."""
    grad = np.ascontiguousarray(grad)
    db = np.empty(grad.shape[1], dtype=grad.dtype)
    for oo in numba.prange(grad.shape[1]):
        db[oo] = _channel_sum(grad, oo)
    return db


bias_grad = dispatch(bias_grad_reference, bias_grad_numba, bias_grad_parallel)


# ----------------------------------------------------------------------------- convolution


def _geometry(x_shape, w_shape, stride, padding, dilation, out_hw):
    kh, kw = w_shape[2], w_shape[3]
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = out_hw
    return kh, kw, sh, sw, ph, pw, dh, dw, oh, ow


# The samples are processed in chunks whose im2col matrix takes about this many bytes, so that
# the matrix is still in the cache when the GEMM reads it (and, in backward, when col2im scatters
# its gradient). One matrix for a whole batch of 256 LeNet images is 20 MB, past this machine's
# caches. Measured (LeNet-5 Adam step, 2 threads, quiet machine): at batch 256, 14.1 ms per step
# with 8 MB chunks and 13.4-13.5 ms with 2-5 MB; at batch 64 all within 3.2-3.3 ms.
CHUNK_BYTES = 2 << 20


def sample_chunks(n: int, bytes_per_sample: int, budget: int | None = None):
    """Equal slices of range(n) whose im2col matrices take at most about `budget` bytes each
    (default CHUNK_BYTES); a single sample larger than that is a chunk of its own."""
    budget = CHUNK_BYTES if budget is None else budget
    if n == 0:
        return [slice(0, 0)]
    count = max(1, min(n, -(-n * bytes_per_sample // budget)))
    size = -(-n // count)
    return [slice(s, min(n, s + size)) for s in range(0, n, size)]


def conv_path(x_shape, w_shape, stride, groups, out_hw=None, padding=(0, 0), dilation=(1, 1)) -> str:
    """Which loops conv2d_forward takes: "direct" (a small layer, `direct_conv_applies`; or, with the
    parallel twins on, a stride-1 layer with O·C·KH·KW ≤ DIRECT_PARALLEL_MAX_MACS whose wide rows are
    at least DIRECT_MIN_LENGTH long), "wide"
    (the other stride-1 layers with the kernels serial: im2col_wide + GEMM) or "im2col" (strided,
    or any other layer with the twins on: im2col + GEMM)."""
    if direct_conv_applies(x_shape, w_shape, stride, groups):
        return "direct"
    if tuple(stride) != (1, 1):
        return "im2col"
    if kernel_threads() > 1:
        o, c, kh, kw = w_shape
        if groups == 1 and out_hw is not None and o * c * kh * kw <= DIRECT_PARALLEL_MAX_MACS:
            _, _, length = wide_geometry(x_shape, kh, kw, padding[0], padding[1], dilation[0], dilation[1], *out_hw)
            if length >= DIRECT_MIN_LENGTH:
                return "direct"
        # With the GEMMs split over the threads, im2col's matrix (no dropped columns) was the faster
        # one in forward + backward: CNN92's 64→128 7×7 layer 16.0 against 18.6 ms at batch 128.
        return "im2col"
    return "wide"


def _weight_rows(w, groups):
    o = w.shape[0]
    return w.reshape(o, -1) if groups == 1 else w.reshape(groups, o // groups, -1)


def _group_product(w_rows, cols, groups):
    """Y = W·cols, per group (rows of cols in contiguous blocks): (O, columns)."""
    if groups == 1:
        return matmul(w_rows, cols)
    return matmul(w_rows, cols.reshape(groups, w_rows.shape[2], -1)).reshape(-1, cols.shape[1])


def conv2d_forward(x, w, bias, stride, padding, dilation, groups, out_hw):
    """y = W·im2col(x) + bias, per group, over chunks of samples.  Returns (y of shape
    (N, O, OH, OW), cols): cols is the list of (samples, im2col matrix) chunks, kept for the weight
    gradient.  `padding` is the top/left padding; `out_hw` = (OH, OW).  The path (`conv_path`):
    a stride-1 layer uses the wide im2col matrix (and drops the wide columns of Y); a small layer
    runs the direct loops instead, and its one "chunk" is x itself."""
    n = x.shape[0]
    o = w.shape[0]
    geo = _geometry(x.shape, w.shape, stride, padding, dilation, out_hw)
    kh, kw, _, _, ph, pw, dh, dw, oh, ow = geo
    x = np.ascontiguousarray(x)
    path = conv_path(x.shape, w.shape, stride, groups, out_hw, padding, dilation)
    dtype = np.result_type(x, w)
    if path != "im2col":  # the direct loops and wide_to_output add a bias array (zeros without one)
        b = np.zeros(o, dtype=dtype) if bias is None else np.ascontiguousarray(bias, dtype=dtype)
    if path == "direct":
        y = conv2d_direct(x, np.ascontiguousarray(w), b, ph, pw, dh, dw, oh, ow)
        return y, [(slice(0, n), x)]  # the backward reads x itself, not columns
    k = w[0].size * groups  # rows of cols: C·KH·KW
    out = np.empty((n, o, oh, ow), dtype=dtype)
    w_rows = _weight_rows(w, groups)
    saved = []
    if path == "wide":
        _, wp, length = wide_geometry(x.shape, kh, kw, ph, pw, dh, dw, oh, ow)
        for part in sample_chunks(n, k * length * x.itemsize):
            cols = im2col_wide(x[part], kh, kw, ph, pw, dh, dw, oh, ow)
            wide_to_output(_group_product(w_rows, cols, groups), b, wp, out[part])
            saved.append((part, cols))
        return out, saved
    for part in sample_chunks(n, k * oh * ow * x.itemsize):
        cols = im2col(x[part], *geo)
        m = part.stop - part.start
        y = _group_product(w_rows, cols, groups)  # (O, m·OH·OW)
        if bias is not None:
            y += bias.reshape(o, 1)
        out[part] = y.reshape(o, m, oh, ow).transpose(1, 0, 2, 3)
        saved.append((part, cols))
    return out, saved


def conv2d_backward(grad, x_shape, w, cols, stride, padding, dilation, groups,
                    need_input=True, need_weight=True, need_bias=True):
    """(dx, dw, dbias) from dy = `grad` (N, O, OH, OW) and the forward's chunks `cols`; each is
    None when not needed.  dW and dbias are summed over the chunks in order."""
    n, c, h, w_in = x_shape
    o = w.shape[0]
    oh, ow = grad.shape[2], grad.shape[3]
    geo = _geometry(x_shape, w.shape, stride, padding, dilation, (oh, ow))
    kh, kw, _, _, ph, pw, dh, dw_, _, _ = geo
    _, wp, length = wide_geometry(x_shape, kh, kw, ph, pw, dh, dw_, oh, ow)
    # The forward's path, from what it saved: the direct loops keep x itself (4-D), the others
    # their 2-D column matrices, m·L columns per chunk of m samples for the wide one and m·OH·OW for
    # im2col (where the two counts are equal, so are the two layouts).
    part0, saved0 = cols[0]
    if len(cols) == 1 and saved0.ndim == 4:
        path = "direct"
    else:
        wide = tuple(stride) == (1, 1) and saved0.shape[1] == (part0.stop - part0.start) * length
        path = "wide" if wide else "im2col"
    dx = dw = db = None
    w_g = w.reshape(groups, o // groups, -1)

    def output_grad(part):  # dY of the samples `part` as the (O, columns) matrix of this path
        if path == "im2col":
            return _output_grad_rows(grad, part)
        return output_grad_wide(np.ascontiguousarray(grad[part]), wp)

    def input_grad(part, g_g):  # dx[part] = col2im(W_gᵀ · dY_g)
        dcols = np.ascontiguousarray(matmul(w_g.transpose(0, 2, 1), g_g).reshape(c * kh * kw, -1))
        m = part.stop - part.start
        if path == "im2col":
            dx[part] = col2im(dcols, m, c, h, w_in, *geo)
        else:
            dx[part] = col2im_wide(dcols, m, c, h, w_in, kh, kw, ph, pw, dh, dw_, oh, ow)

    if path == "direct":
        (_, x), = cols  # conv2d_forward kept the input
        grad = np.ascontiguousarray(grad)
        if need_weight:
            dw = conv2d_direct_weight_grad(x, grad, kh, kw, ph, pw, dh, dw_)
        if need_bias:
            db = bias_grad(grad)
        if need_input:
            dx = conv2d_direct_input_grad(grad, np.ascontiguousarray(w), h, w_in, ph, pw, dh, dw_)
        return dx, dw, db
    dx = np.empty(x_shape, dtype=grad.dtype) if need_input else None
    dw = np.zeros(w.shape, dtype=grad.dtype) if need_weight else None
    db = np.zeros(o, dtype=grad.dtype) if need_bias else None
    for part, cols_part in cols:
        g2 = output_grad(part)
        if need_bias:
            db += g2.sum(axis=1)  # the wide columns of dY_wide are 0
        g_g = g2.reshape(groups, o // groups, -1)
        if need_weight:
            cols_g = cols_part.reshape(groups, w_g.shape[2], -1)
            # dW_gᵀ = cols_g · dY_gᵀ, then transposed: OpenBLAS runs this orientation about 1.7×
            # faster than dY_g · cols_gᵀ (a long-K product of two row-major operands).
            dw += matmul(cols_g, g_g.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(w.shape)
        if need_input:
            input_grad(part, g_g)
    return dx, dw, db


def _output_grad_rows(grad, part):
    """dY of the samples `part` as the (O, m·OH·OW) matrix the GEMMs take."""
    return np.ascontiguousarray(grad[part].transpose(1, 0, 2, 3)).reshape(grad.shape[1], -1)
