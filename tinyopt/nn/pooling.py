"""2-D max and average pooling: the ops `max_pool2d`, `avg_pool2d` and the layers `MaxPool2d`,
`AvgPool2d`, with torch's signatures and defaults (stride = kernel_size, count_include_pad=True).

    max:  y[n, c, a, b] = max_{i, j} x[n, c, a·s_h − p_h + i·d_h, b·s_w − p_w + j·d_w]   (padding = −∞)
          backward routes dy to the argmax of each window (torch's `return_indices`)
    avg:  y[n, c, a, b] = Σ_{window ∩ x} x / divisor, divisor = k_h·k_w with count_include_pad
          (clipped to the padded input in ceil_mode), the count of real elements without it,
          or `divisor_override`

The loops are in `tinyopt.kernels.pool` (formulas in its docstring), as Numba kernels with NumPy
reference twins.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function
from tinyopt.kernels import pool as P
from tinyopt.nn.conv import _pair
from tinyopt.nn.module import Module, ShapeError
from tinyopt.tensor import Tensor


def _pool_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode, where):
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding"), _pair(dilation, "dilation")
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


class MaxPool2dFunction(Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, indices_out=None):
        """`indices_out`, a dict or None, receives the argmax array under "indices" (return_indices)."""
        kernel, stride, padding, dilation, (oh, ow) = _pool_geometry(
            x.shape, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
        y, argmax = P.max_pool2d_forward(np.ascontiguousarray(x), *kernel, *stride, *padding, *dilation, oh, ow)
        ctx.save_for_backward(argmax)
        ctx.in_hw = x.shape[2:]
        if indices_out is not None:
            indices_out["indices"] = argmax
        return y

    @staticmethod
    def backward(ctx, grad):
        (argmax,) = ctx.saved_tensors
        h, w = ctx.in_hw
        return P.max_pool2d_backward(np.ascontiguousarray(grad), argmax, h, w)


class AvgPool2dFunction(Function):
    @staticmethod
    def forward(ctx, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
        kernel, stride, padding, _, (oh, ow) = _pool_geometry(
            x.shape, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
        if divisor_override is not None and divisor_override <= 0:
            raise ValueError(f"avg_pool2d: divisor_override must be positive, got {divisor_override}")
        divisor = 0 if divisor_override is None else int(divisor_override)
        ctx.options = (x.shape[2], x.shape[3], *kernel, *stride, *padding, bool(count_include_pad), divisor)
        return P.avg_pool2d_forward(np.ascontiguousarray(x), *kernel, *stride, *padding, oh, ow,
                                    bool(count_include_pad), divisor)

    @staticmethod
    def backward(ctx, grad):
        return P.avg_pool2d_backward(np.ascontiguousarray(grad), *ctx.options)


def _unbatched(fn, input: Tensor, *args, **kwargs) -> Tensor:  # noqa: A002
    if input.ndim == 3:
        y = fn.apply(input.reshape((1,) + tuple(input.shape)), *args, **kwargs)
        return y.reshape(y.shape[1:])
    return fn.apply(input, *args, **kwargs)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,  # noqa: A002
               return_indices: bool = False):
    """torch.nn.functional.max_pool2d. With `return_indices=True` also returns the flat index
    (y·W + x) of each maximum in its (H, W) plane, as an int64 ndarray (torch's convention)."""
    holder = {} if return_indices else None
    y = _unbatched(MaxPool2dFunction, input, kernel_size=kernel_size, stride=stride, padding=padding,
                   dilation=dilation, ceil_mode=ceil_mode, indices_out=holder)
    if not return_indices:
        return y
    return y, holder["indices"].reshape(y.shape)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,  # noqa: A002
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """torch.nn.functional.avg_pool2d (count_include_pad=True by default, as torch)."""
    return _unbatched(AvgPool2dFunction, input, kernel_size=kernel_size, stride=stride, padding=padding,
                      ceil_mode=ceil_mode, count_include_pad=count_include_pad, divisor_override=divisor_override)


class _Pool2d(Module):
    def _check(self, x):
        if x.ndim not in (3, 4):
            raise ShapeError(f"{self!r} expects input of shape (N, C, H, W) or (C, H, W), got input of shape {tuple(x.shape)}")


class MaxPool2d(_Pool2d):
    """torch.nn.MaxPool2d: stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x: Tensor):
        self._check(x)
        try:
            return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                              self.return_indices)
        except ShapeError as e:
            raise ShapeError(f"{self!r}: {e}") from None

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(_Pool2d):
    """torch.nn.AvgPool2d: stride defaults to kernel_size, count_include_pad=True."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        try:
            return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override)
        except ShapeError as e:
            raise ShapeError(f"{self!r}: {e}") from None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
