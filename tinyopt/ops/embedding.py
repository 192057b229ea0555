"""Embedding lookup: rows of a weight matrix picked by integer indices (torch's F.embedding)."""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function


class Embedding(Function):
    """out[…] = W[idx[…]]: a row lookup. Backward scatters: ∂W[k] = Σ_{positions with idx = k} ∂out,
    ∂W[padding_idx] = 0 (that row never learns), and with scale_grad_by_freq each row's gradient is
    divided by how often its index occurs in this batch (torch's option)."""

    @staticmethod
    def forward(ctx, weight, indices, padding_idx=None, scale_grad_by_freq=False):
        ctx.indices, ctx.shape, ctx.padding_idx, ctx.scale = indices, weight.shape, padding_idx, scale_grad_by_freq
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):
        idx = ctx.indices.reshape(-1)
        rows = grad.reshape(idx.size, -1)
        if ctx.scale:
            counts = np.bincount(idx, minlength=ctx.shape[0])
            rows = rows / counts[idx][:, None]
        dw = np.zeros(ctx.shape, dtype=grad.dtype)
        np.add.at(dw, idx, rows)
        if ctx.padding_idx is not None:
            dw[ctx.padding_idx] = 0
        return dw, None
