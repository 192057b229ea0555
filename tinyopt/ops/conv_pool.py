"""Convolution and pooling ops, with their geometry checks (torch's signatures and messages).

    conv2d:  y[n, o, a, b] = bias[o] + Σ_{c, i, j} w[o, c, i, j] · x_pad[n, g·C/G + c, a·s_h + i·d_h, b·s_w + j·d_w]
             (cross-correlation, as in torch and Keras; g = o // (O/G) is the group of output channel o).
             Forward and both backward passes are im2col + one GEMM (the wide im2col matrix at
             stride 1; direct loops for a small first layer: `tinyopt.kernels.conv` has the
             algebra and why).
    max:     y[n, c, a, b] = max_{i, j} x[n, c, a·s_h − p_h + i·d_h, b·s_w − p_w + j·d_w]   (padding = −∞);
             backward routes dy to the argmax of each window (torch's `return_indices`)
    avg:     y[n, c, a, b] = Σ_{window ∩ x} x / divisor, divisor = k_h·k_w with count_include_pad
             (clipped to the padded input in ceil_mode), the count of real elements without it,
             or `divisor_override`
    adaptive avg: output cell (a, b) averages rows ⌊a·H/OH⌋ … ⌈(a+1)·H/OH⌉ − 1 and the matching columns
             (torch's `adaptive_avg_pool2d`)

The loops are in `tinyopt.kernels.conv` / `tinyopt.kernels.pool` (Numba kernels with NumPy
reference twins; `TINYOPT_KERNELS=reference` runs the twins).
"""
from __future__ import annotations

import math

import numpy as np

from tinyopt.autograd.autocast_mode import LOWER
from tinyopt.autograd.function import Function
from tinyopt.errors import ShapeError
from tinyopt.kernels import conv as K
from tinyopt.ops.precision import low_precision_dtype, narrow, widen
from tinyopt.kernels import pool as P

# ----------------------------------------------------------------------------- geometry


def as_pair(value, name: str) -> tuple:
    """An int or a pair of ints → (h, w)."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def same_padding(kernel: tuple, dilation: tuple) -> tuple:
    """'same' with stride 1: total padding d·(k − 1) per axis; when odd, the extra row/column goes
    to the bottom/right (torch's and TensorFlow's choice). Returns ((top, bottom), (left, right))."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)


def conv2d_geometry(x_shape, w_shape, stride, padding, dilation, groups, where: str = "conv2d"):
    """Check shapes and options; return (stride, (pad_top, pad_left), dilation, (OH, OW))."""
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    if min(stride) <= 0:
        raise ValueError(f"{where}: stride must be positive, got {stride}")
    if min(dilation) <= 0:
        raise ValueError(f"{where}: dilation must be positive, got {dilation}")
    if not isinstance(groups, (int, np.integer)) or groups <= 0:
        raise ValueError(f"{where}: groups must be a positive integer, got {groups!r}")
    if len(w_shape) != 4:
        raise ShapeError(f"{where}: weight must have shape (out_channels, in_channels/groups, kH, kW), got {tuple(w_shape)}")
    if len(x_shape) != 4:
        raise ShapeError(
            f"{where}: expected input of shape (N, C, H, W) (or (C, H, W)), got {tuple(x_shape)} "
            f"for weight of shape {tuple(w_shape)}"
        )
    kernel = (w_shape[2], w_shape[3])
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{where}: padding='same' is not supported for strided convolutions (stride {stride})")
            pads = same_padding(kernel, dilation)
        else:
            raise ValueError(f"{where}: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    else:
        ph, pw = as_pair(padding, "padding")
        if min(ph, pw) < 0:
            raise ValueError(f"{where}: padding must be non-negative, got {(ph, pw)}")
        pads = ((ph, ph), (pw, pw))
    out_channels, in_per_group = w_shape[0], w_shape[1]
    if out_channels % groups:
        raise ValueError(f"{where}: out_channels ({out_channels}) must be divisible by groups ({groups})")
    if x_shape[1] != in_per_group * groups:
        raise ShapeError(
            f"{where}: weight of shape {tuple(w_shape)} with groups={groups} expects input with "
            f"{in_per_group * groups} channels, got input of shape {tuple(x_shape)}"
        )
    oh = K.conv_output_size(x_shape[2], kernel[0], stride[0], *pads[0], dilation[0])
    ow = K.conv_output_size(x_shape[3], kernel[1], stride[1], *pads[1], dilation[1])
    if oh <= 0 or ow <= 0:
        raise ShapeError(
            f"{where}: input of shape {tuple(x_shape)} (padded by {pads}) is smaller than the "
            f"dilated kernel of weight {tuple(w_shape)} (dilation {dilation})"
        )
    return stride, (pads[0][0], pads[1][0]), dilation, (oh, ow)


def pool2d_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode, where):
    kernel = as_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else as_pair(stride, "stride")
    padding, dilation = as_pair(padding, "padding"), as_pair(dilation, "dilation")
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise ValueError(f"{where}: kernel_size, stride and dilation must be positive, got {kernel}, {stride}, {dilation}")
    if min(padding) < 0 or padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{where}: padding must be between 0 and half the kernel size {kernel}, got {padding}")
    if len(x_shape) != 4:
        raise ShapeError(f"{where}: expected input of shape (N, C, H, W) or (C, H, W), got {tuple(x_shape)}")
    oh = P.pool_output_size(x_shape[2], kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = P.pool_output_size(x_shape[3], kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    if oh <= 0 or ow <= 0:
        raise ShapeError(
            f"{where}: input of shape {tuple(x_shape)} is too small for kernel {kernel} "
            f"(padding {padding}, dilation {dilation}): output would be {(oh, ow)}"
        )
    return kernel, stride, padding, dilation, (oh, ow)


def kernel_input(x: np.ndarray) -> np.ndarray:
    """The pooling kernels are compiled for float32/float64 (and integers); float16 and bfloat16 run
    on a float32 copy (exact for max; for averages the sum is accumulated in float32, as torch's CPU
    kernels do) and the result is rounded back to the input's dtype."""
    x = np.ascontiguousarray(x)
    return x.astype(np.float32) if x.dtype.itemsize == 2 and x.dtype.kind in "fV" else x


# ----------------------------------------------------------------------------- ops


class Conv2dFunction(Function):
    """conv2d as one autograd node; backward returns (dx, dw, dbias) by the im2col identities.

    float16/bfloat16 input, weight and bias run on the float32 kernels (float32 accumulation) and each
    result is rounded once to 16 bits (ops/precision.py); the im2col columns are saved in 16 bits (exact,
    they are copies of 16-bit inputs), so the memory kept for backward is halved. The kernels work
    on chunks of samples (`kernels.conv.sample_chunks`); ctx keeps each chunk's columns."""

    autocast_policy = LOWER

    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        if weight.dtype != x.dtype:
            raise TypeError(f"conv2d: input is {x.dtype} but weight is {weight.dtype}; convert one of them")
        stride, pad, dilation, out_hw = conv2d_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
        if bias is not None and bias.shape != (weight.shape[0],):
            raise ShapeError(f"conv2d: bias must have shape ({weight.shape[0]},), got {bias.shape}")
        low = low_precision_dtype(x, weight, bias)
        if low is not None:
            y, chunks = K.conv2d_forward(widen(x), widen(weight), widen(bias), stride, pad, dilation, groups, out_hw)
            y, chunks = narrow(y, low), [(part, cols.astype(low)) for part, cols in chunks]
        else:
            y, chunks = K.conv2d_forward(x, weight, bias, stride, pad, dilation, groups, out_hw)
        ctx.save_for_backward(weight, *(cols for _, cols in chunks))  # each chunk's im2col matrix
        ctx.parts = [part for part, _ in chunks]
        ctx.geometry = (x.shape, stride, pad, dilation, groups)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        weight, *cols = ctx.saved_tensors
        x_shape, stride, pad, dilation, groups = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad  # one flag per (x, weight, bias)
        low = low_precision_dtype(weight, cols[0], grad)
        if low is not None:
            grad, weight, cols = widen(grad), widen(weight), [widen(c) for c in cols]
        dx, dw, db = K.conv2d_backward(
            np.ascontiguousarray(grad), x_shape, weight, list(zip(ctx.parts, cols)), stride, pad, dilation, groups,
            need_input=need_x, need_weight=need_w, need_bias=need_b and ctx.has_bias,
        )
        if low is not None:
            return tuple(None if g is None else narrow(g, low) for g in (dx, dw, db))
        return dx, dw, db


class MaxPool2dFunction(Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, indices_out=None):
        """`indices_out`, a dict or None, receives the argmax array under "indices" (return_indices)."""
        kernel, stride, padding, dilation, (oh, ow) = pool2d_geometry(
            x.shape, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
        y, argmax = P.max_pool2d_forward(kernel_input(x), *kernel, *stride, *padding, *dilation, oh, ow)
        ctx.save_for_backward(argmax)
        ctx.in_hw = x.shape[2:]
        if indices_out is not None:
            indices_out["indices"] = argmax
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (argmax,) = ctx.saved_tensors
        h, w = ctx.in_hw
        return P.max_pool2d_backward(kernel_input(grad), argmax, h, w).astype(grad.dtype, copy=False)


class AvgPool2dFunction(Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
        kernel, stride, padding, _, (oh, ow) = pool2d_geometry(
            x.shape, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
        if divisor_override is not None and divisor_override <= 0:
            raise ValueError(f"avg_pool2d: divisor_override must be positive, got {divisor_override}")
        divisor = 0 if divisor_override is None else int(divisor_override)
        ctx.options = (x.shape[2], x.shape[3], *kernel, *stride, *padding, bool(count_include_pad), divisor)
        y = P.avg_pool2d_forward(kernel_input(x), *kernel, *stride, *padding, oh, ow, bool(count_include_pad), divisor)
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return P.avg_pool2d_backward(kernel_input(grad), *ctx.options).astype(grad.dtype, copy=False)


class AdaptiveAvgPool2dFunction(Function):
    """Average over adaptive windows: rows ⌊a·H/OH⌋ ≤ r < ⌈(a+1)·H/OH⌉ for output row a (columns alike).
    When OH divides H (and OW divides W) this is avg_pool2d with kernel = stride = H/OH."""

    @staticmethod
    def forward(ctx, x, output_size):
        oh, ow = output_size
        h, w = x.shape[2:]
        rows = [(math.floor(a * h / oh), math.ceil((a + 1) * h / oh)) for a in range(oh)]
        cols = [(math.floor(b * w / ow), math.ceil((b + 1) * w / ow)) for b in range(ow)]
        ctx.windows, ctx.in_shape = (rows, cols), x.shape
        out = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
        for a, (r0, r1) in enumerate(rows):
            for b, (c0, c1) in enumerate(cols):
                out[:, :, a, b] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
        return out

    @staticmethod
    def backward(ctx, grad):
        rows, cols = ctx.windows
        dx = np.zeros(ctx.in_shape, dtype=grad.dtype)
        for a, (r0, r1) in enumerate(rows):
            for b, (c0, c1) in enumerate(cols):
                dx[:, :, r0:r1, c0:c1] += grad[:, :, a, b][:, :, None, None] / ((r1 - r0) * (c1 - c0))
        return dx, None
