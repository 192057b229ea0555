"""`Function`: the extension point of tinyopt's autograd, shaped like `torch.autograd.Function`.

An op is a subclass with two static methods working on plain NumPy arrays:

    class Square(Function):
        @staticmethod
        def forward(ctx, x):                 # x is an ndarray (the Tensor's .data)
            ctx.save_for_backward(x)
            return x * x                     # return an ndarray

        @staticmethod
        def backward(ctx, grad):             # grad: d(loss)/d(output), same shape as output
            (x,) = ctx.saved_tensors
            return 2 * x * grad              # one gradient per forward argument (None if not needed)

    y = Square.apply(t)                      # call with Tensors; returns a Tensor wired into the graph

`apply` unwraps every Tensor argument to its ndarray, runs `forward`, and, when gradients are
enabled and some input requires them, records the call so that `Tensor.backward` can call
`backward` later.  `backward` returns one value per positional argument of `forward` (a single
value, not a tuple, is accepted for one-argument ops); gradients for non-Tensor arguments are
ignored.  Gradients for broadcast inputs may be returned at the broadcast shape: `apply` sums
them back to each input's shape (see `unbroadcast`).
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


def _set_grad_enabled(mode: bool) -> None:
    _state.grad_enabled = bool(mode)


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, mode: bool):
        self.mode = mode

    def __enter__(self):
        self.prev = is_grad_enabled()
        _set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _set_grad_enabled(self.prev)
        return False


def no_grad() -> _GradMode:
    """Context manager / decorator: ops inside record no graph (like `torch.no_grad`)."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    return _GradMode(True)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` over the axes that NumPy broadcasting added or stretched to reach `grad.shape`
    from `shape`: the adjoint of broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


class Context:
    """What `forward` leaves for `backward`: saved arrays plus any attribute the op sets."""

    def __init__(self):
        self.saved_tensors: tuple = ()
        self.needs_input_grad: tuple = ()

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays


class Function:
    """Base class of every differentiable op. Subclasses define `forward` and `backward`."""

    @staticmethod
    def forward(ctx: Context, *args, **kwargs) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray):  # pragma: no cover - interface
        raise NotImplementedError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs):
        from tinyopt.tensor import Tensor

        ctx = Context()
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        out = cls.forward(ctx, *raw, **kwargs)
        result = Tensor._wrap(out)
        if is_grad_enabled():
            needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
            if any(needs) and np.issubdtype(result.data.dtype, np.floating):
                ctx.needs_input_grad = needs
                result._requires_grad = True
                result._node = Node(cls, ctx, args)
        return result


class Node:
    """One recorded call: which Function, its context and its inputs (the graph's edges)."""

    __slots__ = ("fn", "ctx", "inputs")

    def __init__(self, fn, ctx, inputs):
        from tinyopt.tensor import Tensor

        self.fn = fn
        self.ctx = ctx
        # Keep Tensor inputs only; plain values need no gradient.
        self.inputs = tuple(a if isinstance(a, Tensor) else None for a in inputs)

    def release(self) -> None:
        """Drop saved arrays once backward has used them (like torch's retain_graph=False)."""
        self.ctx = None
        self.inputs = ()

