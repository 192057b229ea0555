"""Element-wise ops: arithmetic, unary functions and activations. Each is a `Function` whose
`backward` is the vector-Jacobian product of its `forward`; broadcasting is undone by the engine
(`unbroadcast`), so a backward may return its gradient at the broadcast shape.

Conventions shared with PyTorch, and tested against it:
- `maximum` splits the gradient in half where both inputs are equal;
- `clip` passes the gradient where `lo <= x <= hi` (inclusive, like `torch.clamp`);
- `abs` has gradient 0 at 0 (`sign(0) == 0`);
- rounding functions (`round`, `floor`, `ceil`, `trunc`, `sign`) have gradient 0 everywhere.
"""
from __future__ import annotations

import math

import numpy as np

from tinyopt.autograd.autocast_mode import FP32
from tinyopt.autograd.function import Function
from tinyopt.kernels.activation import relu as relu_kernel
from tinyopt.kernels.activation import relu_backward as relu_backward_kernel
from tinyopt.kernels.special import erf

# ----------------------------------------------------------------------------- arithmetic


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return np.add(a, b)

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (grad * b if need_a else None), (grad * a if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.divide(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad / b if need_a else None
        grad_b = -grad * a / (b * b) if need_b else None
        return grad_a, grad_b


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return np.negative(a)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    """a ** b. d/da = b·a^(b-1); d/db = a^b·ln(a) (only computed when b is a Tensor needing it).

    At the points where these formulas give 0·∞ we use the limits, as torch does: d/da = 0
    where b = 0 (a^0 is constant, even at a = 0), and d/db = 0 where a = 0 and b >= 0.
    """

    autocast_policy_cuda = FP32   # torch CPU autocast: the inputs' dtypes; CUDA: float32

    @staticmethod
    def forward(ctx, a, b):
        out = np.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_b = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if need_a:
                grad_a = np.where(np.equal(b, 0), 0.0, grad * b * np.power(a, b - 1))
            if need_b:
                grad_b = np.where(np.equal(a, 0) & np.greater_equal(b, 0), 0.0, grad * out * np.log(a))
        return grad_a, grad_b


# ----------------------------------------------------------------------------- unary


class Exp(Function):
    autocast_policy_cuda = FP32

    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    autocast_policy_cuda = FP32

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad * np.sign(a)


class Sin(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.sin(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad * np.cos(a)


class Cos(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.cos(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return -grad * np.sin(a)


class Rounding(Function):
    """round / floor / ceil / trunc / sign: piecewise constant, so the gradient is 0 (as in torch)."""

    FUNCTIONS = {"round": np.round, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "sign": np.sign}

    @staticmethod
    def forward(ctx, a, kind="round", decimals=0):
        ctx.shape = a.shape
        if kind == "round":
            return np.round(a, decimals)
        return Rounding.FUNCTIONS[kind](a)

    @staticmethod
    def backward(ctx, grad):
        return np.zeros(ctx.shape, dtype=grad.dtype)


# ----------------------------------------------------------------------------- activations


class ReLU(Function):
    """y = max(x, 0); ∂L/∂x = 0 where y ≤ 0, else ∂L/∂y (kernels/activation.py: one pass each)."""

    @staticmethod
    def forward(ctx, a):
        out = relu_kernel(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return relu_backward_kernel(grad, out)


class Sigmoid(Function):
    """σ(x) = 1 / (1 + e^(−x)), computed as ½(1 + tanh(x/2)), which never overflows."""

    @staticmethod
    def forward(ctx, a):
        out = 0.5 * (1 + np.tanh(0.5 * a))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


class GELU(Function):
    """GELU(x) = x · Φ(x), Φ the standard normal CDF (Hendrycks & Gimpel 2016), torch's two forms:

        approximate="none":  Φ(x) = ½ (1 + erf(x / √2));           GELU′(x) = Φ(x) + x · φ(x),  φ(x) = e^(−x²/2) / √(2π)
        approximate="tanh":  GELU(x) ≈ ½ x (1 + tanh(u)),  u = √(2/π) (x + 0.044715 x³)
                             GELU′(x) = ½ (1 + tanh u) + ½ x (1 − tanh² u) · √(2/π) (1 + 3 · 0.044715 x²)
    """

    @staticmethod
    def forward(ctx, a, approximate="none"):
        ctx.save_for_backward(a)
        ctx.approximate = approximate
        if approximate == "tanh":
            return (0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))).astype(a.dtype, copy=False)
        return (a * 0.5 * (1 + erf(a / math.sqrt(2)))).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        if ctx.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            t = np.tanh(k * (a + 0.044715 * a ** 3))
            d = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * k * (1 + 3 * 0.044715 * a * a)
        else:
            cdf = 0.5 * (1 + erf(a / math.sqrt(2)))
            d = cdf + a * np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        return (grad * d).astype(grad.dtype, copy=False)


# ----------------------------------------------------------------------------- selection and casting


class Clip(Function):
    @staticmethod
    def forward(ctx, a, lo=None, hi=None):
        ctx.save_for_backward(a)
        ctx.lo, ctx.hi = lo, hi
        return np.clip(a, lo, hi)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        inside = np.ones(a.shape, dtype=bool)
        if ctx.lo is not None:
            inside &= a >= ctx.lo
        if ctx.hi is not None:
            inside &= a <= ctx.hi
        return grad * inside


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        share_a = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0)).astype(grad.dtype, copy=False)
        return grad * share_a, grad * (1 - share_a)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved_tensors
        zero = np.zeros((), dtype=grad.dtype)
        return None, np.where(condition, grad, zero), np.where(condition, zero, grad)


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.dtype)


class Clone(Function):
    """A copy in new memory (torch's `clone`); the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad
