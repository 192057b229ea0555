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
not vectorise as well (see benchmarks/bench_conv.py, which times a direct Numba kernel too).
The gather (im2col) and scatter-add (col2im) are memory-bound loops; col2im runs in Numba (faster
than its NumPy twin), im2col in NumPy strided copies (faster than its Numba twin, see below;
`benchmarks/bench_conv.py` times them).

Numba practice: `cache=True`, compiled lazily on first call (or by `tinyopt.warmup()`).  col2im has
a `parallel=True` twin (`col2im_parallel`, a `prange` over (sample, channel) planes) that runs only
after `tinyopt.set_num_threads(n > 1)`: on a quiet machine it uses the second core, but on a shared
one every parallel region ends in a barrier that waits for a descheduled thread and its threads
compete with OpenBLAS's, so by default the serial loop runs and the cores go to the GEMMs
(`tinyopt/threads.py` says why; README "Threads" has the measurements).  Inner loops
carry no bounds tests: `_valid_range` computes, per kernel offset, the output rows/columns that
read inside the input, and the padding is written as zeros around them.

Each loop exists twice with the same signature: `<op>_reference` (NumPy slicing, the readable
specification) and `<op>_numba`; the public `<op>` dispatches (see `backend.py`).
"""
from __future__ import annotations

import numba
import numpy as np

from .backend import dispatch
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


@numba.njit(cache=True)
def im2col_numba(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    for r in range(c * kh * kw):  # row r of cols is (channel ch, kernel offset i, j)
        ch = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        a_lo, a_hi = _valid_range(ph, i * dh, sh, h, oh)  # rows a whose input row is inside x
        q_lo, q_hi = _valid_range(pw, j * dw, sw, w, ow)  # columns likewise: no test in the inner loop
        for b in range(n):
            for a in range(oh):
                k0 = b * oh * ow + a * ow
                if a < a_lo or a >= a_hi:
                    cols[r, k0:k0 + ow] = 0
                    continue
                y = a * sh - ph + i * dh
                cols[r, k0:k0 + q_lo] = 0
                cols[r, k0 + q_hi:k0 + ow] = 0
                x0 = q_lo * sw - pw + j * dw
                cols[r, k0 + q_lo:k0 + q_hi] = x[b, ch, y, x0:x0 + (q_hi - q_lo - 1) * sw + 1:sw]
    return cols


# NumPy's strided block copies in im2col_reference beat this Numba loop at the LeNet and Keras-CNN
# shapes (the Numba loop copies rows of only OH·OW ≤ 28 elements, where NumPy's copy loop is faster;
# benchmarks/bench_conv.py compares them).  So the fast path of im2col is the NumPy version; the Numba twin
# stays, tested against it, for the backend comparison and as the loop-level statement of the gather.
im2col = dispatch(im2col_reference, im2col_reference)
im2col.fast_numba = im2col_numba


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
def col2im_numba(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    dx = np.zeros((n, c, h, w), dtype=cols.dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                a_lo, a_hi = _valid_range(ph, i * dh, sh, h, oh)
                for j in range(kw):
                    q_lo, q_hi = _valid_range(pw, j * dw, sw, w, ow)
                    r = (ch * kh + i) * kw + j
                    row = cols[r]
                    for a in range(a_lo, a_hi):
                        out = dx[b, ch, a * sh - ph + i * dh]  # one input row, as a 1-D view
                        k0 = b * oh * ow + a * ow
                        for q in range(q_lo, q_hi):
                            out[q * sw - pw + j * dw] += row[k0 + q]
    return dx


@numba.njit(cache=True, parallel=True)
def col2im_parallel(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """col2im_numba with the (sample, channel) planes split over Numba's threads: each plane of dx
    is written by one iteration only, so there is no race and the sums are in the same order."""
    dx = np.zeros((n, c, h, w), dtype=cols.dtype)
    for t in numba.prange(n * c):
        b = t // c
        ch = t % c
        for i in range(kh):
            a_lo, a_hi = _valid_range(ph, i * dh, sh, h, oh)
            for j in range(kw):
                q_lo, q_hi = _valid_range(pw, j * dw, sw, w, ow)
                r = (ch * kh + i) * kw + j
                row = cols[r]
                for a in range(a_lo, a_hi):
                    out = dx[b, ch, a * sh - ph + i * dh]
                    k0 = b * oh * ow + a * ow
                    for q in range(q_lo, q_hi):
                        out[q * sw - pw + j * dw] += row[k0 + q]
    return dx


col2im = dispatch(col2im_reference, col2im_numba, col2im_parallel)


# ----------------------------------------------------------------------------- convolution


def _geometry(x_shape, w_shape, stride, padding, dilation, out_hw):
    kh, kw = w_shape[2], w_shape[3]
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = out_hw
    return kh, kw, sh, sw, ph, pw, dh, dw, oh, ow


def conv2d_forward(x, w, bias, stride, padding, dilation, groups, out_hw):
    """y = W·im2col(x) + bias, per group.  Returns (y of shape (N, O, OH, OW), cols) — cols is kept
    for the weight gradient.  `padding` is the top/left padding; `out_hw` = (OH, OW)."""
    n = x.shape[0]
    o = w.shape[0]
    geo = _geometry(x.shape, w.shape, stride, padding, dilation, out_hw)
    oh, ow = out_hw
    cols = im2col(np.ascontiguousarray(x), *geo)
    if groups == 1:
        y = matmul(w.reshape(o, -1), cols)  # (O, N·OH·OW)
    else:
        w_g = w.reshape(groups, o // groups, -1)
        y = matmul(w_g, cols.reshape(groups, w_g.shape[2], -1)).reshape(o, -1)
    if bias is not None:
        y += bias.reshape(o, 1)
    out = np.ascontiguousarray(y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3))
    return out, cols


def conv2d_backward(grad, x_shape, w, cols, stride, padding, dilation, groups,
                    need_input=True, need_weight=True, need_bias=True):
    """(dx, dw, dbias) from dy = `grad` (N, O, OH, OW); each is None when not needed."""
    n, c, h, w_in = x_shape
    o = w.shape[0]
    oh, ow = grad.shape[2], grad.shape[3]
    geo = _geometry(x_shape, w.shape, stride, padding, dilation, (oh, ow))
    g2 = np.ascontiguousarray(grad.transpose(1, 0, 2, 3)).reshape(o, -1)  # (O, N·OH·OW)
    dx = dw = db = None
    if need_bias:
        db = g2.sum(axis=1)
    if groups == 1:
        w2 = w.reshape(o, -1)
        if need_weight:
            dw = matmul(g2, cols.T).reshape(w.shape)
        if need_input:
            dcols = matmul(w2.T, g2)
    else:
        og = o // groups
        w_g = w.reshape(groups, og, -1)
        g_g = g2.reshape(groups, og, -1)
        if need_weight:
            cols_g = cols.reshape(groups, w_g.shape[2], -1)
            dw = matmul(g_g, cols_g.transpose(0, 2, 1)).reshape(w.shape)
        if need_input:
            dcols = matmul(w_g.transpose(0, 2, 1), g_g).reshape(c * w.shape[2] * w.shape[3], -1)
    if need_input:
        dx = col2im(np.ascontiguousarray(dcols), n, c, h, w_in, *geo)
    return dx, dw, db
