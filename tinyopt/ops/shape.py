"""Shape ops: reshape, permute, indexing (read and write), concatenation, expand, repeat, pad.

Reshape, permute, expand and basic indexing return views of their input (`is_view`), so an
in-place change through a view is seen by the base tensor's version counter as well.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.autocast_mode import PROMOTE
from tinyopt.autograd.function import Function


class Reshape(Function):
    is_view = True

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return np.reshape(a, shape)

    @staticmethod
    def backward(ctx, grad):
        return np.reshape(grad, ctx.shape)


class Permute(Function):
    """Reorder the axes: out = a.transpose(perm); backward applies the inverse permutation."""

    is_view = True

    @staticmethod
    def forward(ctx, a, perm):
        ctx.inverse = tuple(np.argsort(perm))
        return np.transpose(a, perm)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, ctx.inverse)


class GetItem(Function):
    """Indexing. Basic slices scatter by assignment; integer-array (advanced) indices may repeat
    an element, so their gradients are summed with `np.add.at`."""

    # Basic indexing gives a view of `a` (it then shares a's version counter); advanced indexing a copy.
    is_view = "if_shared"

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


class SetItem(Function):
    """out = a with out[index] = value (what `x[index] = value` records in a graph): the gradient
    of a is the upstream gradient with the overwritten positions zeroed; value gets the gradient
    of the positions it was written to (summed over its broadcast)."""

    @staticmethod
    def forward(ctx, a, value, index):
        ctx.index = index
        ctx.value_shape = np.shape(value)
        out = a.copy()
        out[index] = value
        return out

    @staticmethod
    def backward(ctx, grad):
        need_a, need_value = (ctx.needs_input_grad + (False,))[:2]
        grad_a = grad_value = None
        if need_a:
            grad_a = grad.copy()
            grad_a[ctx.index] = 0
        if need_value:
            picked = np.asarray(grad[ctx.index])
            # value was broadcast to the indexed region's shape; sum back to value's own shape
            extra = picked.ndim - len(ctx.value_shape)
            if extra > 0:
                picked = picked.sum(axis=tuple(range(extra)))
            stretched = tuple(i for i, n in enumerate(ctx.value_shape) if n == 1 and picked.shape[i] != 1)
            grad_value = picked.sum(axis=stretched, keepdims=True).reshape(ctx.value_shape) if stretched else picked
        return grad_a, grad_value


class Concatenate(Function):
    autocast_policy = PROMOTE   # mixed 16/32-bit inputs are concatenated as float32 (torch's "promote")

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        ctx.splits = np.cumsum([x.shape[axis] for x in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.splits, axis=ctx.axis))


class Expand(Function):
    """Broadcast to a larger shape without copying (torch's `expand`); the engine sums the gradient
    back over the broadcast axes."""

    is_view = True

    @staticmethod
    def forward(ctx, a, shape):
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, grad):
        return grad


class Repeat(Function):
    """torch's `repeat(*sizes)` (NumPy's `tile`): backward sums the copies of each element."""

    @staticmethod
    def forward(ctx, a, reps):
        ctx.in_shape = (1,) * (len(reps) - a.ndim) + a.shape
        ctx.reps = reps
        ctx.orig_shape = a.shape
        return np.tile(a, reps)

    @staticmethod
    def backward(ctx, grad):
        interleaved = []
        for r, n in zip(ctx.reps, ctx.in_shape):
            interleaved += [r, n]
        g = grad.reshape(interleaved).sum(axis=tuple(range(0, 2 * len(ctx.reps), 2)))
        return g.reshape(ctx.orig_shape)


class Pad(Function):
    """Pad with a constant, or by reflection / replication / circular wrap (torch's `F.pad` modes);
    `pad_width` is NumPy's ((before, after) per axis). Backward: the constant mode crops; the other
    modes sum the gradient of every copy back onto its source element (via NumPy's own index map)."""

    MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}

    @staticmethod
    def forward(ctx, a, pad_width, mode="constant", value=0.0):
        ctx.pad_width, ctx.mode, ctx.shape = pad_width, mode, a.shape
        if mode == "constant":
            return np.pad(a, pad_width, mode="constant", constant_values=value)
        return np.pad(a, pad_width, mode=Pad.MODES[mode])

    @staticmethod
    def backward(ctx, grad):
        if ctx.mode == "constant":
            crop = tuple(slice(b, grad.shape[i] - e) for i, (b, e) in enumerate(ctx.pad_width))
            return grad[crop]
        # Pad the flat positions of the input the same way: each output element then names its source.
        source = np.pad(np.arange(int(np.prod(ctx.shape))).reshape(ctx.shape), ctx.pad_width, mode=Pad.MODES[ctx.mode])
        out = np.zeros(int(np.prod(ctx.shape)), dtype=grad.dtype)
        np.add.at(out, source.reshape(-1), grad.reshape(-1))
        return out.reshape(ctx.shape)
