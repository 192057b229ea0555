"""Pooling layers with torch's signatures and defaults (stride = kernel_size, count_include_pad=True):
`MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`. The ops and their formulas are in
`tinyopt.ops.conv_pool`, reached through `F`."""
from __future__ import annotations

from tinyopt.nn import functional as F
from tinyopt.nn.module import Module, ShapeError
from tinyopt.tensor import Tensor


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
            return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
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
            return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override)
        except ShapeError as e:
            raise ShapeError(f"{self!r}: {e}") from None

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(_Pool2d):
    """torch.nn.AdaptiveAvgPool2d: average-pool to `output_size` (an int, a pair, None keeps a dim)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
