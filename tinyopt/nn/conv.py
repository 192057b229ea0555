"""The 2-D convolution layer `Conv2d` (torch.nn.Conv2d); the op and its formula are in
`tinyopt.ops.conv_pool`, reached through `F.conv2d`."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn import init
from tinyopt.nn.module import Module, ShapeError
from tinyopt.nn.parameter import Parameter
from tinyopt.ops.conv_pool import as_pair
from tinyopt.random import resolve
from tinyopt.tensor import Tensor


class Conv2d(Module):
    """2-D convolution layer (torch.nn.Conv2d): weight (out_channels, in_channels/groups, kH, kW).

    Initialisation as torch's default: weight ~ kaiming_uniform_(a = √5) = U(−1/√fan_in, 1/√fan_in)
    and bias ~ U(−1/√fan_in, 1/√fan_in), fan_in = in_channels/groups · kH · kW, drawn from `rng`
    (a Generator or a seed; the default generator when omitted).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None, rng=None):
        super().__init__()
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"Conv2d needs positive channel counts, got in_channels={in_channels}, out_channels={out_channels}")
        if not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError(f"groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode != "zeros":
            raise ValueError(f"only padding_mode='zeros' is implemented, got {padding_mode!r}")
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        if min(self.kernel_size) <= 0:
            raise ValueError(f"kernel_size must be positive, got {self.kernel_size}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, int(groups)
        self.stride, self.dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else as_pair(padding, "padding")
        dtype = np.float32 if dtype is None else dtype
        rng = resolve(rng)  # an int seed becomes one Generator, so weight and bias draw different numbers
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=rng)
        if bias:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
            init.uniform_(self.bias, -bound, bound, generator=rng)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ShapeError(
                f"{self!r} expects input of shape (N, {self.in_channels}, H, W) or ({self.in_channels}, H, W), "
                f"got input of shape {tuple(x.shape)}"
            )
        try:
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        except ShapeError as e:
            raise ShapeError(f"{self!r}: {e}") from None

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
