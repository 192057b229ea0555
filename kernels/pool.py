"""2-D max and average pooling, forward and backward, each as a NumPy reference and a Numba twin.

Notation (NCHW): input x (N, C, H, W), window (k_h, k_w), stride (s_h, s_w), padding (p_h, p_w)
on both sides, dilation (d_h, d_w) (max pooling only), output (N, C, OH, OW).  The window of
output position (a, b) starts at (h₀, w₀) = (a·s_h − p_h, b·s_w − p_w).

Max pooling:  y[n, c, a, b] = max_{i, j} x[n, c, h₀ + i·d_h, w₀ + j·d_w]  over positions inside x
(padding acts as −∞).  The index of the maximum, as a flat index y·W + x into the (H, W) plane, is
kept (`argmax`, torch's `return_indices`): the backward pass routes each output gradient to it,

    dx[n, c, argmax[n, c, a, b]] += dy[n, c, a, b].

Ties go to the first maximum in row-major window order, and a NaN wins (the last NaN when there are
several): the comparison `v > best or isnan(v)` of torch's CPU kernel.

Average pooling (torch's definition, which `ceil_mode` windows make non-trivial):

    h_end = min(h₀ + k_h, H + p_h),  pool = (h_end − h₀)·(w_end − w₀)       (window clipped to the padding)
    h₀ ← max(h₀, 0), h_end ← min(h_end, H)                                (then clipped to x)
    divisor = divisor_override  or  pool               if count_include_pad (torch's default)
                                or  (h_end − h₀)·(w_end − w₀) otherwise
    y[n, c, a, b] = Σ_{h₀ ≤ y < h_end, w₀ ≤ x < w_end} x[n, c, y, x] / divisor
    dx[n, c, y, x] += dy[n, c, a, b] / divisor   for every window containing (y, x)
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .backend import dispatch


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """torch's rule: ⌊ or ⌈(size + 2p − d·(k − 1) − 1) / s⌉ + 1, and with ceil_mode the last window
    must start inside the input or the left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


# ----------------------------------------------------------------------------- max pooling


def max_pool2d_forward_reference(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Returns (y, argmax) with argmax[n, c, a, b] the flat index into x[n, c] of the maximum."""
    n, c, h, w = x.shape
    y = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    argmax = np.full((n, c, oh, ow), -1, dtype=np.int64)
    for a in range(oh):
        for b in range(ow):
            h0, w0 = a * sh - ph, b * sw - pw
            for i in range(kh):
                for j in range(kw):
                    yy, xx = h0 + i * dh, w0 + j * dw
                    if not (0 <= yy < h and 0 <= xx < w):
                        continue
                    v = x[:, :, yy, xx]
                    better = (v > y[:, :, a, b]) | np.isnan(v)
                    y[:, :, a, b] = np.where(better, v, y[:, :, a, b])
                    argmax[:, :, a, b] = np.where(better, yy * w + xx, argmax[:, :, a, b])
    return y, argmax


@numba.njit(cache=True)
def _window(start, k, d, size):
    """Kernel taps t in [lo, hi) of a window starting at `start` whose index start + t·d lies in [0, size)."""
    lo = max(0, -(start // d))  # ⌈−start / d⌉
    hi = min(k, -((start - size) // d))  # ⌈(size − start) / d⌉
    return lo, max(lo, hi)


@numba.njit(cache=True)
def _windows(out, s, p, k, d, size):
    """For every output position: its first input index and its valid taps [lo, hi) (computed once
    per call, so the divisions stay out of the per-window loop)."""
    starts = np.empty(out, dtype=np.int64)
    lo = np.empty(out, dtype=np.int64)
    hi = np.empty(out, dtype=np.int64)
    for a in range(out):
        starts[a] = a * s - p
        lo[a], hi[a] = _window(starts[a], k, d, size)
    return starts, lo, hi


# The common case, kernel 2×2, stride 2, no padding, in two passes. Done window by window, the
# output rows are only OW ≤ 14 long at LeNet's sizes, shorter than one AVX-512 vector, so the loop
# never left its scalar remainder (0.27 ms for LeNet's first pool at batch 64). In two passes each
# loop is long or unit-stride and vectorises (0.05 ms):
#   1. vertical: for each pair of input rows (2a, 2a+1) and column q < 2·OW, the winner of the two
#      taps, v[n, c, a, q], and its flat index in the plane;
#   2. horizontal: over the whole flat array, the winner of v[..., 2b] and v[..., 2b+1].
# Same result as the window loop in row-major order (`v > best or isnan(v)`): without NaN the
# first maximum wins, so a tie goes to the smaller flat index; with NaN the last NaN wins, so
# between two NaNs the larger index.


@numba.njit(cache=True)
def _max_pool2d_2x2_vertical(x_flat, v, v_idx, t, h, w, oh, ow):
    """Pass 1 on plane t: v[(t, a), q] = winner of x[t, 2a, q] and x[t, 2a + 1, q], q < 2·OW."""
    width = 2 * ow
    for a in range(oh):
        top0 = (t * h + 2 * a) * w
        top = x_flat[top0:top0 + width]
        bottom = x_flat[top0 + w:top0 + w + width]
        out0 = (t * oh + a) * width
        v_row = v[out0:out0 + width]
        idx_row = v_idx[out0:out0 + width]
        row = 2 * a * w
        for q in range(width):
            up = top[q]
            down = bottom[q]
            take = (down > up) | (down != down)  # down != down: a NaN (NaN wins, as in torch)
            v_row[q] = down if take else up
            idx_row[q] = row + w + q if take else row + q


@numba.njit(cache=True)
def _max_pool2d_2x2_horizontal(v, v_idx, y_flat, idx_flat, lo, hi):
    """Pass 2 on outputs [lo, hi): the winner of v[2i] (left column) and v[2i + 1] (right)."""
    for i in range(lo, hi):
        left = v[2 * i]
        right = v[2 * i + 1]
        i_left = v_idx[2 * i]
        i_right = v_idx[2 * i + 1]
        nan_left = left != left
        nan_right = right != right
        take = ((nan_right & ((not nan_left) | (i_right > i_left)))
                | ((not nan_left) & (not nan_right) & ((right > left) | ((right == left) & (i_right < i_left)))))
        y_flat[i] = right if take else left
        idx_flat[i] = i_right if take else i_left


@numba.njit(cache=True)
def _max_pool2d_2x2_numba(x, oh, ow):
    n, c, h, w = x.shape
    x_flat = np.ascontiguousarray(x).reshape(-1)
    v = np.empty(n * c * oh * 2 * ow, dtype=x.dtype)
    v_idx = np.empty(n * c * oh * 2 * ow, dtype=np.int64)
    for t in range(n * c):
        _max_pool2d_2x2_vertical(x_flat, v, v_idx, t, h, w, oh, ow)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.int64)
    _max_pool2d_2x2_horizontal(v, v_idx, y.reshape(-1), argmax.reshape(-1), 0, n * c * oh * ow)
    return y, argmax


@numba.njit(cache=True, parallel=True)
def _max_pool2d_2x2_parallel(x, oh, ow):
    n, c, h, w = x.shape
    x_flat = np.ascontiguousarray(x).reshape(-1)
    v = np.empty(n * c * oh * 2 * ow, dtype=x.dtype)
    v_idx = np.empty(n * c * oh * 2 * ow, dtype=np.int64)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.int64)
    y_flat, idx_flat = y.reshape(-1), argmax.reshape(-1)
    for t in numba.prange(n * c):
        _max_pool2d_2x2_vertical(x_flat, v, v_idx, t, h, w, oh, ow)
        _max_pool2d_2x2_horizontal(v, v_idx, y_flat, idx_flat, t * oh * ow, (t + 1) * oh * ow)
    return y, argmax


@numba.njit(cache=True)
def _max_pool2d_plane(plane, y, argmax, h0, i_lo, i_hi, w0, j_lo, j_hi, dh, dw, w):
    """One (sample, channel) plane of the general case: y[a, b] = the max over the window's taps
    inside x, argmax[a, b] its flat index."""
    for a in range(y.shape[0]):
        for b in range(y.shape[1]):
            # Start from the first tap inside x (kept in x's dtype); padding never wins.
            yy = h0[a] + i_lo[a] * dh
            xx = w0[b] + j_lo[b] * dw
            best = plane[yy, xx]
            best_idx = yy * w + xx
            for i in range(i_lo[a], i_hi[a]):
                yy = h0[a] + i * dh
                for j in range(j_lo[b], j_hi[b]):
                    xx = w0[b] + j * dw
                    v = plane[yy, xx]
                    better = (v > best) | (v != v)  # v != v: v is NaN; written branch-free
                    best = v if better else best
                    best_idx = yy * w + xx if better else best_idx
            y[a, b] = best
            argmax[a, b] = best_idx


@numba.njit(cache=True)
def _is_2x2(kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, h, w):
    return kh == kw == sh == sw == 2 and ph == pw == 0 and dh == dw == 1 and 2 * oh <= h and 2 * ow <= w


@numba.njit(cache=True)
def max_pool2d_forward_numba(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    if _is_2x2(kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, h, w):
        return _max_pool2d_2x2_numba(x, oh, ow)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.int64)
    h0, i_lo, i_hi = _windows(oh, sh, ph, kh, dh, h)
    w0, j_lo, j_hi = _windows(ow, sw, pw, kw, dw, w)
    for t in range(n * c):
        b_, ch = t // c, t % c
        _max_pool2d_plane(x[b_, ch], y[b_, ch], argmax[b_, ch], h0, i_lo, i_hi, w0, j_lo, j_hi, dh, dw, w)
    return y, argmax


@numba.njit(cache=True, parallel=True)
def max_pool2d_forward_parallel(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """max_pool2d_forward_numba with the (sample, channel) planes split over Numba's threads."""
    n, c, h, w = x.shape
    if _is_2x2(kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, h, w):
        return _max_pool2d_2x2_parallel(x, oh, ow)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.int64)
    h0, i_lo, i_hi = _windows(oh, sh, ph, kh, dh, h)
    w0, j_lo, j_hi = _windows(ow, sw, pw, kw, dw, w)
    for t in numba.prange(n * c):
        b_, ch = t // c, t % c
        _max_pool2d_plane(x[b_, ch], y[b_, ch], argmax[b_, ch], h0, i_lo, i_hi, w0, j_lo, j_hi, dh, dw, w)
    return y, argmax


max_pool2d_forward = dispatch(max_pool2d_forward_reference, max_pool2d_forward_numba, max_pool2d_forward_parallel)


def max_pool2d_backward_reference(grad, argmax, h, w):
    """dx[n, c, argmax] += dy: scatter-add (np.add.at, since windows may share a maximum)."""
    n, c = grad.shape[:2]
    dx = np.zeros((n * c, h * w), dtype=grad.dtype)
    rows = np.repeat(np.arange(n * c), grad.shape[2] * grad.shape[3])
    np.add.at(dx, (rows, argmax.reshape(-1)), grad.reshape(-1))
    return dx.reshape(n, c, h, w)


@numba.njit(cache=True)
def _max_pool2d_backward_plane(grad, argmax, dx, t):
    """dx[b, ch, argmax[b, ch, a, b']] += grad[b, ch, a, b'] over plane t = (b, ch) (dx's planes flat)."""
    c = grad.shape[1]
    b_, ch = t // c, t % c
    for a in range(grad.shape[2]):
        for b in range(grad.shape[3]):
            k = argmax[b_, ch, a, b]
            if k >= 0:
                dx[b_, ch, k] += grad[b_, ch, a, b]


@numba.njit(cache=True)
def max_pool2d_backward_numba(grad, argmax, h, w):
    n, c, oh, ow = grad.shape
    dx = np.zeros((n, c, h * w), dtype=grad.dtype)
    for t in range(n * c):
        _max_pool2d_backward_plane(grad, argmax, dx, t)
    return dx.reshape(n, c, h, w)


@numba.njit(cache=True, parallel=True)
def max_pool2d_backward_parallel(grad, argmax, h, w):
    """max_pool2d_backward_numba with the planes split over Numba's threads (argmax stays in its plane)."""
    n, c, oh, ow = grad.shape
    dx = np.zeros((n, c, h * w), dtype=grad.dtype)
    for t in numba.prange(n * c):
        _max_pool2d_backward_plane(grad, argmax, dx, t)
    return dx.reshape(n, c, h, w)


max_pool2d_backward = dispatch(max_pool2d_backward_reference, max_pool2d_backward_numba, max_pool2d_backward_parallel)


# ----------------------------------------------------------------------------- average pooling


def _avg_window(a, b, kh, kw, sh, sw, ph, pw, h, w, count_include_pad, divisor_override):
    """Window (h0, h1, w0, w1) of output position (a, b), clipped to the input, and its divisor:
    `divisor_override` if > 0; else the window's size counting padding (`count_include_pad`,
    torch's default), or without it. One definition for both twins: the references call it as
    Python, the Numba kernels through `_avg_window_jit`."""
    h0 = a * sh - ph
    h1 = min(h0 + kh, h + ph)
    pool_h = h1 - h0
    h0, h1 = max(h0, 0), min(h1, h)
    w0 = b * sw - pw
    w1 = min(w0 + kw, w + pw)
    pool_w = w1 - w0
    w0, w1 = max(w0, 0), min(w1, w)
    if divisor_override > 0:
        divisor = divisor_override
    elif count_include_pad:
        divisor = pool_h * pool_w
    else:
        divisor = (h1 - h0) * (w1 - w0)
    return h0, h1, w0, w1, divisor


_avg_window_jit = numba.njit(cache=True)(_avg_window)


def avg_pool2d_forward_reference(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad, divisor_override):
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for a in range(oh):
        for b in range(ow):
            h0, h1, w0, w1, divisor = _avg_window(a, b, kh, kw, sh, sw, ph, pw, h, w, count_include_pad, divisor_override)
            y[:, :, a, b] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / divisor
    return y


@numba.njit(cache=True)
def avg_pool2d_forward_numba(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad, divisor_override):
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for t in range(n * c):
        b_ = t // c
        ch = t % c
        for a in range(oh):
            for b in range(ow):
                h0, h1, w0, w1, divisor = _avg_window_jit(a, b, kh, kw, sh, sw, ph, pw, h, w, count_include_pad, divisor_override)
                acc = 0.0
                for yy in range(h0, h1):
                    for xx in range(w0, w1):
                        acc += x[b_, ch, yy, xx]
                y[b_, ch, a, b] = acc / divisor
    return y


avg_pool2d_forward = dispatch(avg_pool2d_forward_reference, avg_pool2d_forward_numba)


def avg_pool2d_backward_reference(grad, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    n, c, oh, ow = grad.shape
    dx = np.zeros((n, c, h, w), dtype=grad.dtype)
    for a in range(oh):
        for b in range(ow):
            h0, h1, w0, w1, divisor = _avg_window(a, b, kh, kw, sh, sw, ph, pw, h, w, count_include_pad, divisor_override)
            dx[:, :, h0:h1, w0:w1] += (grad[:, :, a, b] / divisor)[:, :, None, None]
    return dx


@numba.njit(cache=True)
def avg_pool2d_backward_numba(grad, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    n, c, oh, ow = grad.shape
    dx = np.zeros((n, c, h, w), dtype=grad.dtype)
    for t in range(n * c):
        b_ = t // c
        ch = t % c
        for a in range(oh):
            for b in range(ow):
                h0, h1, w0, w1, divisor = _avg_window_jit(a, b, kh, kw, sh, sw, ph, pw, h, w, count_include_pad, divisor_override)
                g = grad[b_, ch, a, b] / divisor
                for yy in range(h0, h1):
                    for xx in range(w0, w1):
                        dx[b_, ch, yy, xx] += g
    return dx


avg_pool2d_backward = dispatch(avg_pool2d_backward_reference, avg_pool2d_backward_numba)
