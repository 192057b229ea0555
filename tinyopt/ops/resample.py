"""Resampling of images (torch's `F.interpolate` for 4-D input, modes "nearest" and "bilinear").

Both modes are linear maps applied separably along H and W, so one op covers them:

    y[n, c] = R_h · x[n, c] · R_wᵀ,      R_h of shape (OH, H), R_w of shape (OW, W)
    backward:  dx[n, c] = R_hᵀ · dy[n, c] · R_w

`nearest` (torch's legacy "nearest"): row o of R_h is one-hot at ⌊o · H / OH⌋ (⌊o / s⌋ for a given
scale factor s). `bilinear`, with align_corners=False: source coordinate u = (o + ½) · H/OH − ½,
clamped at 0; with align_corners=True: u = o · (H − 1)/(OH − 1); the row puts 1 − (u − ⌊u⌋) on ⌊u⌋
and u − ⌊u⌋ on ⌊u⌋ + 1 (clamped to the last row), as torch's upsample_bilinear2d does.
"""
from __future__ import annotations

import math

import numpy as np

from tinyopt.autograd.function import Function


def resize_matrix(in_size: int, out_size: int, mode: str, align_corners: bool, scale=None) -> np.ndarray:
    """The (out_size, in_size) interpolation matrix of one axis (see the module docstring)."""
    m = np.zeros((out_size, in_size), dtype=np.float64)
    # torch uses 1/scale_factor when one was given, else in/out
    ratio = (1.0 / scale) if scale is not None else in_size / out_size
    for o in range(out_size):
        if mode == "nearest":
            m[o, min(int(math.floor(o * ratio)), in_size - 1)] = 1.0
            continue
        if align_corners:
            u = o * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        else:
            u = max((o + 0.5) * ratio - 0.5, 0.0)
        i0 = min(int(math.floor(u)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        frac = u - i0
        m[o, i0] += 1.0 - frac
        m[o, i1] += frac
    return m


class Resize2d(Function):
    @staticmethod
    def forward(ctx, x, rows, cols):
        rows, cols = rows.astype(x.dtype), cols.astype(x.dtype)
        ctx.save_for_backward(rows, cols)
        return np.matmul(np.matmul(rows, x), cols.T)

    @staticmethod
    def backward(ctx, grad):
        rows, cols = ctx.saved_tensors
        return np.matmul(np.matmul(rows.T, grad), cols), None, None
