"""2-D convolution: the differentiable op `conv2d` and the layer `Conv2d`, with torch's signatures.

    y[n, o, a, b] = bias[o] + Σ_{c, i, j} w[o, c, i, j] · x_pad[n, g·C/G + c, a·s_h + i·d_h, b·s_w + j·d_w]

(cross-correlation, as in torch and Keras; g = o // (O/G) is the group of output channel o).
The forward and both backward passes are im2col + one GEMM (see `tinyopt.kernels.conv` for the
algebra and why); the gather/scatter loops run in Numba, or in their NumPy reference twins with
`TINYOPT_KERNELS=reference`.
"""
from __future__ import annotations

import math

import numpy as np

from tinyopt.autograd.function import Function
from tinyopt.kernels import conv as K
from tinyopt.kernels.memory import tune_malloc
from tinyopt.nn import init
from tinyopt.nn.module import Module, ShapeError
from tinyopt.nn.parameter import Parameter
from tinyopt.random import resolve
from tinyopt.tensor import Tensor

# Reuse freed pages for the large per-step temporaries instead of page-faulting fresh ones
# (kernels/memory.py explains and measures; TINYOPT_MALLOC_TUNING=0 disables).
tune_malloc()


def _pair(value, name: str) -> tuple:
    """An int or a pair of ints → (h, w)."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _same_padding(kernel: tuple, dilation: tuple) -> tuple:
    """'same' with stride 1: total padding d·(k − 1) per axis; when odd, the extra row/column goes
    to the bottom/right (torch's and TensorFlow's choice). Returns ((top, bottom), (left, right))."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)


def conv2d_geometry(x_shape, w_shape, stride, padding, dilation, groups, where: str = "conv2d"):
    """Check shapes and options; return (stride, (pad_top, pad_left), dilation, (OH, OW))."""
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
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
            pads = _same_padding(kernel, dilation)
        else:
            raise ValueError(f"{where}: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    else:
        ph, pw = _pair(padding, "padding")
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


class Conv2dFunction(Function):
    """conv2d as one autograd node; backward returns (dx, dw, dbias) by the im2col identities."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        if weight.dtype != x.dtype:
            raise TypeError(f"conv2d: input is {x.dtype} but weight is {weight.dtype}; convert one of them")
        stride, pad, dilation, out_hw = conv2d_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
        if bias is not None and bias.shape != (weight.shape[0],):
            raise ShapeError(f"conv2d: bias must have shape ({weight.shape[0]},), got {bias.shape}")
        y, cols = K.conv2d_forward(x, weight, bias, stride, pad, dilation, groups, out_hw)
        ctx.save_for_backward(weight, cols)
        ctx.geometry = (x.shape, stride, pad, dilation, groups)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        weight, cols = ctx.saved_tensors
        x_shape, stride, pad, dilation, groups = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad  # one flag per (x, weight, bias)
        dx, dw, db = K.conv2d_backward(
            np.ascontiguousarray(grad), x_shape, weight, cols, stride, pad, dilation, groups,
            need_input=need_x, need_weight=need_w, need_bias=need_b and ctx.has_bias,
        )
        return dx, dw, db


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,  # noqa: A002
           dilation=1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv2d: input (N, C, H, W) or unbatched (C, H, W), weight
    (O, C/groups, kH, kW), bias (O,) or None. `padding` is an int, a pair, 'valid' or 'same'."""
    if input.ndim == 3:
        y = Conv2dFunction.apply(input.reshape((1,) + tuple(input.shape)), weight, bias, stride=stride,
                                 padding=padding, dilation=dilation, groups=groups)
        return y.reshape(y.shape[1:])
    return Conv2dFunction.apply(input, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


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
        self.kernel_size = _pair(kernel_size, "kernel_size")
        if min(self.kernel_size) <= 0:
            raise ValueError(f"kernel_size must be positive, got {self.kernel_size}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, int(groups)
        self.stride, self.dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding")
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
            return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
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
