"""Batch normalisation in training mode as one autograd node (formulas in `tinyopt.kernels.batchnorm`).

    y = γ · (x − μ_B) / √(σ²_B + ε) + β     per channel, μ_B and σ²_B (biased) over (N, *spatial)

Forward and backward are one kernel call each, instead of the ~10 composed primitives whose
gradients the chain rule would otherwise combine. Evaluation mode (running statistics) is an affine
map and stays composed in `nn.functional.batch_norm`.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function
from tinyopt.kernels import batchnorm as K


def _as_ncm(x: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) → (N, C, K) without copying when x is contiguous."""
    return x.reshape(x.shape[0], x.shape[1], -1)


class BatchNormTrain(Function):
    """Inputs (x, weight | None, bias | None); `stats_out` (a dict) receives the batch mean and the
    biased variance, float64 arrays of shape (C,), for the running statistics."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5, stats_out=None):
        x3 = _as_ncm(x)
        y, mean, var, inv_std = K.batch_norm_forward(x3, weight, bias, eps)
        ctx.save_for_backward(x, weight)
        ctx.stats = (mean, inv_std)
        if stats_out is not None:
            stats_out["mean"], stats_out["var"] = mean, var
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        mean, inv_std = ctx.stats
        dx, d_weight, d_bias = K.batch_norm_backward(_as_ncm(np.ascontiguousarray(grad)), _as_ncm(x), weight, mean, inv_std)
        need_x, need_w, need_b = ctx.needs_input_grad
        return (dx.reshape(x.shape) if need_x else None, d_weight if need_w else None, d_bias if need_b else None)
