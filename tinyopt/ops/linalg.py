"""Matrix products."""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.autocast_mode import LOWER
from tinyopt.autograd.function import Function
from tinyopt.kernels.blas import matmul
from tinyopt.autograd.graph import unbroadcast
from tinyopt.ops.precision import low_precision_dtype, narrow, widen


class MatMul(Function):
    """`a @ b` with NumPy's rules: 1-D operands are promoted (and the added axis removed again),
    leading axes broadcast. Gradients: dA = G·Bᵀ, dB = Aᵀ·G, summed over broadcast axes.
    16-bit operands are multiplied with float32 accumulation and the result rounded (ops/precision.py)."""

    autocast_policy = LOWER

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        low = low_precision_dtype(a, b)
        if low is not None:
            return narrow(matmul(widen(a), widen(b)), low)
        return matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        low = low_precision_dtype(a, b, grad)
        if low is not None:
            grads = MatMul._backward(ctx, widen(grad), widen(a), widen(b))
            return tuple(None if g is None else narrow(g, low) for g in grads)
        return MatMul._backward(ctx, grad, a, b)

    @staticmethod
    def _backward(ctx, grad, a, b):
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
            grad_a = matmul(g, np.swapaxes(b2, -1, -2))
            grad_a = unbroadcast(grad_a, a2.shape).reshape(a.shape)
        if need_b:
            grad_b = matmul(np.swapaxes(a2, -1, -2), g)
            grad_b = unbroadcast(grad_b, b2.shape).reshape(b.shape)
        return grad_a, grad_b
