"""Network-level ops fused into one node each because they are hot: softmax, log-softmax, the
linear layer and softmax cross-entropy with integer labels."""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.autocast_mode import FP32, LOWER
from tinyopt.autograd.function import Function
from tinyopt.ops.precision import low_precision_dtype, narrow, widen
from tinyopt.kernels import cross_entropy as KCE
from tinyopt.kernels.blas import matmul


class LogSoftmax(Function):
    """log softmax(x)_i = x_i − max(x) − log Σ_j exp(x_j − max(x)); subtracting the max keeps
    exp() finite for logits of any size. Backward: g − softmax(x)·Σ_j g_j."""

    autocast_policy_cuda = FP32   # torch CPU autocast runs it in the input's dtype, CUDA in float32

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

    autocast_policy_cuda = FP32

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
    16-bit x, W, b: float32 accumulation, each result rounded once to 16 bits (ops/precision.py).
    """

    autocast_policy = LOWER

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        low = low_precision_dtype(x, weight, bias)
        if low is not None:
            out = matmul(widen(x), widen(weight).T)
            if bias is not None:
                out += widen(bias)
            return narrow(out, low)
        out = matmul(x, weight.T)
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        low = low_precision_dtype(x, weight, grad)
        if low is not None:
            grads = Linear._backward(ctx, widen(grad), widen(x), widen(weight))
            return tuple(None if g is None else narrow(g, low) for g in grads)
        return Linear._backward(ctx, grad, x, weight)

    @staticmethod
    def _backward(ctx, grad, x, weight):
        need_x, need_w, need_b = (ctx.needs_input_grad + (False,))[:3]
        rows = grad.reshape(-1, grad.shape[-1])
        grad_x = matmul(grad, weight) if need_x else None
        grad_w = matmul(rows.T, x.reshape(-1, x.shape[-1])) if need_w else None
        grad_b = rows.sum(axis=0) if need_b else None
        return grad_x, grad_w, grad_b


class CrossEntropy(Function):
    """Softmax cross-entropy of logits z (N, C) with integer labels y, optional class weights w and an
    ignored label (torch's `weight`, `ignore_index`):

        ℓ_n = −w_{y_n} log softmax(z_n)[y_n]
            = w_{y_n} (log Σ_c exp(z_{n,c} − max_c z_n) − (z_{n,y_n} − max_c z_n)),   ℓ_n = 0 where y_n is ignored
        mean: Σ_n ℓ_n / Σ_{n not ignored} w_{y_n}      sum: Σ_n ℓ_n      none: (ℓ_n)
        ∂ℓ_n/∂z_n = w_{y_n} (softmax(z_n) − onehot(y_n))

    One node instead of LogSoftmax → index → negate → mean; the gradient needs no scatter.
    On the fp32 autocast list (torch's cross_entropy_loss): under autocast the logits arrive in float32.
    """

    autocast_policy = FP32

    @staticmethod
    def forward(ctx, logits, labels, reduction="mean", weight=None, ignore_index=-100):
        log_p, safe, w, losses = KCE.forward(logits, labels, weight, ignore_index)   # kernels.cross_entropy
        ctx.save_for_backward(log_p, safe, w)
        ctx.reduction = reduction
        if reduction == "mean":
            ctx.total = w.sum()
            return np.asarray(losses.sum() / ctx.total, dtype=logits.dtype)
        if reduction == "sum":
            return np.asarray(losses.sum(), dtype=logits.dtype)
        return losses

    @staticmethod
    def backward(ctx, grad):
        log_p, labels, w = ctx.saved_tensors
        if ctx.reduction == "mean":
            scale = w * (grad / ctx.total)
        else:
            scale = w * grad
        return KCE.backward(log_p, labels, np.asarray(scale, log_p.dtype).reshape(-1)), None
