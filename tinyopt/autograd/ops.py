"""The differentiable primitives. Each is a `Function` whose `backward` is the vector-Jacobian
product of its `forward`; everything else in tinyopt (losses, layers, activations' variants)
composes these.

Conventions shared with PyTorch, and tested against it:
- `maximum` splits the gradient in half where both inputs are equal;
- `max(axis)` spreads the gradient evenly over tied maxima (torch's `amax`);
- `clip` passes the gradient where `lo <= x <= hi` (inclusive, like `torch.clamp`);
- `abs` has gradient 0 at 0 (`sign(0) == 0`).
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function, unbroadcast

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


class MatMul(Function):
    """`a @ b` with NumPy's rules: 1-D operands are promoted (and the added axis removed again),
    leading axes broadcast. Gradients: dA = G·Bᵀ, dB = Aᵀ·G, summed over broadcast axes."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # Put back the axes NumPy removed for 1-D operands: b's trailing axis first, so that
        # for 1-D @ 1-D the 0-d gradient becomes (1,) and then (1, 1).
        g = grad
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        grad_a = grad_b = None
        if need_a:
            grad_a = np.matmul(g, np.swapaxes(b2, -1, -2))
            grad_a = unbroadcast(grad_a, a2.shape).reshape(a.shape)
        if need_b:
            grad_b = np.matmul(np.swapaxes(a2, -1, -2), g)
            grad_b = unbroadcast(grad_b, b2.shape).reshape(b.shape)
        return grad_a, grad_b


# ----------------------------------------------------------------------------- elementwise


class Exp(Function):
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


class ReLU(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.maximum(a, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (out > 0)


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


# ----------------------------------------------------------------------------- reductions


def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(sorted(ax % ndim for ax in axes)) if ndim else ()


def _expand_reduced(grad, shape, axes, keepdims):
    """Put back the reduced axes (as length 1) so `grad` broadcasts against the input."""
    if not keepdims:
        grad = np.reshape(grad, [1 if i in axes else n for i, n in enumerate(shape)])
    return grad


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _normalize_axes(axis, a.ndim), keepdims
        return np.asarray(np.sum(a, axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad):
        grad = _expand_reduced(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return np.broadcast_to(grad, ctx.shape)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _normalize_axes(axis, a.ndim), keepdims
        ctx.count = int(np.prod([a.shape[i] for i in ctx.axes])) if a.ndim else 1
        return np.asarray(np.mean(a, axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad):
        grad = _expand_reduced(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return np.broadcast_to(grad / ctx.count, ctx.shape)


class Max(Function):
    """Maximum over axes. Ties share the gradient evenly (torch.amax's rule)."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        out = np.asarray(np.max(a, axis=axis, keepdims=keepdims))
        ctx.axes, ctx.keepdims = _normalize_axes(axis, a.ndim), keepdims
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, out = ctx.saved_tensors
        out = _expand_reduced(out, a.shape, ctx.axes, ctx.keepdims)
        grad = _expand_reduced(grad, a.shape, ctx.axes, ctx.keepdims)
        mask = a == out
        count = mask.sum(axis=ctx.axes, keepdims=True)
        return mask * (grad / count)


# ----------------------------------------------------------------------------- shape


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return np.reshape(a, shape)

    @staticmethod
    def backward(ctx, grad):
        return np.reshape(grad, ctx.shape)


class Transpose(Function):
    @staticmethod
    def forward(ctx, a, axes=None):
        axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(ax % a.ndim for ax in axes)
        ctx.inverse = tuple(np.argsort(axes))
        return np.transpose(a, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, ctx.inverse)


class GetItem(Function):
    """Indexing. Basic slices scatter by assignment; integer-array (advanced) indices may repeat
    an element, so their gradients are summed with `np.add.at`."""

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return np.asarray(a[index])

    @staticmethod
    def backward(ctx, grad):
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        if _is_advanced(ctx.index):
            np.add.at(out, ctx.index, grad)
        else:
            out[ctx.index] = grad
        return out


def _is_advanced(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, np.ndarray)) for p in parts)


class Concatenate(Function):
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        ctx.splits = np.cumsum([x.shape[axis] for x in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.splits, axis=ctx.axis))


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.dtype)


# ----------------------------------------------------------------------------- fused (hot) ops


class LogSoftmax(Function):
    """log softmax(x)_i = x_i − max(x) − log Σ_j exp(x_j − max(x)); subtracting the max keeps
    exp() finite for logits of any size. Backward: g − softmax(x)·Σ_j g_j."""

    @staticmethod
    def forward(ctx, a, axis=-1):
        shifted = a - np.max(a, axis=axis, keepdims=True)
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad - np.exp(out) * np.sum(grad, axis=ctx.axis, keepdims=True)


class Softmax(Function):
    """softmax(x)_i = exp(x_i − max x) / Σ_j exp(x_j − max x). Backward: s·(g − Σ_j g_j s_j)."""

    @staticmethod
    def forward(ctx, a, axis=-1):
        e = np.exp(a - np.max(a, axis=axis, keepdims=True))
        out = e / np.sum(e, axis=axis, keepdims=True)
        ctx.axis = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return out * (grad - np.sum(grad * out, axis=ctx.axis, keepdims=True))


class Linear(Function):
    """y = x Wᵀ + b over the last axis of x (W has shape (out, in), like torch).

    One node instead of Transpose → MatMul → Add. Backward, with G the upstream gradient and the
    leading axes of x and G flattened into rows: dx = G W, dW = Gᵀ x, db = Σ_rows G.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        out = np.matmul(x, weight.T)
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = (ctx.needs_input_grad + (False,))[:3]
        rows = grad.reshape(-1, grad.shape[-1])
        grad_x = np.matmul(grad, weight) if need_x else None
        grad_w = np.matmul(rows.T, x.reshape(-1, x.shape[-1])) if need_w else None
        grad_b = rows.sum(axis=0) if need_b else None
        return grad_x, grad_w, grad_b


class CrossEntropy(Function):
    """Mean (or summed, or per-row) softmax cross-entropy of logits z (N, C) with integer labels y.

        ℓ_n = −log softmax(z_n)[y_n] = log Σ_c exp(z_{n,c} − max_c z_n) − (z_{n,y_n} − max_c z_n)
        ∂ℓ_n/∂z_n = softmax(z_n) − onehot(y_n)

    One node instead of LogSoftmax → index → negate → mean; the gradient needs no scatter.
    """

    @staticmethod
    def forward(ctx, logits, labels, reduction="mean"):
        shifted = logits - np.max(logits, axis=1, keepdims=True)
        log_sum = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        log_p = shifted - log_sum
        rows = np.arange(logits.shape[0])
        losses = -log_p[rows, labels]
        ctx.save_for_backward(log_p, labels)
        ctx.reduction = reduction
        if reduction == "mean":
            return np.asarray(losses.mean())
        if reduction == "sum":
            return np.asarray(losses.sum())
        return losses

    @staticmethod
    def backward(ctx, grad):
        log_p, labels = ctx.saved_tensors
        d_logits = np.exp(log_p)
        d_logits[np.arange(len(labels)), labels] -= 1
        if ctx.reduction == "mean":
            d_logits *= grad / len(labels)
        elif ctx.reduction == "sum":
            d_logits *= grad
        else:
            d_logits *= grad[:, None]
        return d_logits, None
