"""Reductions and scans: sum, mean, amax, prod, cumsum, gather (behind `max(dim)`), norm.

The forwards take already-normalised axes (`tinyopt.ops.dims`); `keepdims` keeps reduced axes as
length 1. Conventions, as torch's:
- `amax` over axes spreads the gradient evenly over tied maxima;
- the full `max()` does too, and when the maximum is NaN the gradient goes to the NaN elements
  (torch's `evenly_distribute_backward`);
- `max(dim)` / `min(dim)` route the whole gradient to the returned index (a `Gather`).
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.autocast_mode import FP32
from tinyopt.autograd.function import Function


def _expand_reduced(grad, shape, axes, keepdims):
    """Put back the reduced axes (as length 1) so `grad` broadcasts against the input."""
    if not keepdims:
        grad = np.reshape(grad, [1 if i in axes else n for i, n in enumerate(shape)])
    return grad


class Sum(Function):
    autocast_policy_cuda = FP32   # torch CPU autocast: the input's dtype; CUDA: float32

    @staticmethod
    def forward(ctx, a, axes=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, tuple(range(a.ndim)) if axes is None else axes, keepdims
        return np.asarray(np.sum(a, axis=axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad):
        grad = _expand_reduced(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return np.broadcast_to(grad, ctx.shape)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axes=None, keepdims=False):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, tuple(range(a.ndim)) if axes is None else axes, keepdims
        ctx.count = int(np.prod([a.shape[i] for i in ctx.axes])) if a.ndim else 1
        return np.asarray(np.mean(a, axis=axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad):
        grad = _expand_reduced(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return np.broadcast_to(grad / ctx.count, ctx.shape)


class Amax(Function):
    """Maximum over axes (torch.amax). Ties share the gradient evenly; with `nan_to_nan=True` (the
    full `max()`), a NaN maximum sends the gradient to the NaN elements."""

    @staticmethod
    def forward(ctx, a, axes=None, keepdims=False, nan_to_nan=False):
        out = np.asarray(np.max(a, axis=axes, keepdims=keepdims))
        ctx.axes, ctx.keepdims, ctx.nan_to_nan = tuple(range(a.ndim)) if axes is None else axes, keepdims, nan_to_nan
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, out = ctx.saved_tensors
        out = _expand_reduced(out, a.shape, ctx.axes, ctx.keepdims)
        grad = _expand_reduced(grad, a.shape, ctx.axes, ctx.keepdims)
        if ctx.nan_to_nan and np.isnan(out).any():
            mask = np.isnan(a)
        else:
            mask = a == out
        count = mask.sum(axis=ctx.axes, keepdims=True)
        return mask * (grad / count)


class Prod(Function):
    """Product over one axis (or all). ∂/∂a_i = Π_{j≠i} a_j, computed from exclusive cumulative
    products from the left and from the right, so zeros in the input need no division."""

    autocast_policy = FP32

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        ctx.save_for_backward(a)
        return np.asarray(np.prod(a, axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        axis = ctx.axis
        x = a.reshape(-1) if axis is None else np.moveaxis(a, axis, -1)
        ones = np.ones(x.shape[:-1] + (1,), dtype=x.dtype)
        left = np.concatenate([ones, np.cumprod(x, axis=-1)[..., :-1]], axis=-1)
        right = np.concatenate([np.cumprod(x[..., ::-1], axis=-1)[..., :-1][..., ::-1], ones], axis=-1)
        others = left * right
        if axis is None:
            return (others * grad).reshape(ctx.shape)
        g = np.asarray(grad)
        if ctx.keepdims:
            g = np.squeeze(g, axis=axis)
        return np.moveaxis(others * g[..., None], -1, axis)


class Cumsum(Function):
    autocast_policy_cuda = FP32

    @staticmethod
    def forward(ctx, a, axis=0):
        ctx.axis = axis
        return np.cumsum(a, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        flipped = np.flip(grad, axis=ctx.axis)
        return np.flip(np.cumsum(flipped, axis=ctx.axis), axis=ctx.axis)


class Gather(Function):
    """out[i][j][k] = a[i][index[i][j][k]][k] for axis 1 (torch.gather); backward scatter-adds."""

    @staticmethod
    def forward(ctx, a, index, axis=0):
        ctx.shape, ctx.axis, ctx.index = a.shape, axis, index
        return np.take_along_axis(a, index, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        np.add.at(out, _along_axis_index(ctx.index, ctx.axis), grad)
        return out, None


def _along_axis_index(index, axis):
    """The fancy index that `take_along_axis(a, index, axis)` uses, for scatter-adding."""
    grids = list(np.ogrid[tuple(slice(n) for n in index.shape)])
    grids[axis] = index
    return tuple(grids)


class Norm2(Function):
    """‖a‖₂ over axes (Frobenius for a matrix): √(Σ a²). ∂/∂a = a / ‖a‖, and 0 where ‖a‖ = 0 (torch's
    subgradient choice)."""

    autocast_policy_cuda = FP32

    @staticmethod
    def forward(ctx, a, axes=None, keepdims=False):
        out = np.sqrt(np.sum(a * a, axis=axes, keepdims=keepdims))
        ctx.axes, ctx.keepdims = tuple(range(a.ndim)) if axes is None else axes, keepdims
        ctx.save_for_backward(a, out)
        return np.asarray(out)

    @staticmethod
    def backward(ctx, grad):
        a, out = ctx.saved_tensors
        out = _expand_reduced(out, a.shape, ctx.axes, ctx.keepdims)
        grad = _expand_reduced(grad, a.shape, ctx.axes, ctx.keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(out == 0, 0.0, grad / out)
        return (a * scale).astype(a.dtype, copy=False)
