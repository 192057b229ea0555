"""Matrix products."""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function
from tinyopt.kernels.blas import matmul
from tinyopt.autograd.graph import unbroadcast


class MatMul(Function):
    """`a @ b` with NumPy's rules: 1-D operands are promoted (and the added axis removed again),
    leading axes broadcast. Gradients: dA = G·Bᵀ, dB = Aᵀ·G, summed over broadcast axes."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return matmul(a, b)

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
            grad_a = matmul(g, np.swapaxes(b2, -1, -2))
            grad_a = unbroadcast(grad_a, a2.shape).reshape(a.shape)
        if need_b:
            grad_b = matmul(np.swapaxes(a2, -1, -2), g)
            grad_b = unbroadcast(grad_b, b2.shape).reshape(b.shape)
        return grad_a, grad_b
