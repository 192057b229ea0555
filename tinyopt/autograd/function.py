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
enabled and some input requires them, records a `Node` (see `graph.py`) so that `Tensor.backward`
can call `backward` later. `backward` returns one value per positional argument of `forward` (a
single value, not a tuple, is accepted for one-argument ops); gradients for non-Tensor arguments
are ignored. Gradients for broadcast inputs may be returned at the broadcast shape: the engine sums
them back to each input's shape (`unbroadcast`).

A Function whose output is a view of its first input (reshape, transpose) sets `is_view = True`
(or "if_shared" when only some calls give a view, as indexing), so the view shares the input's
version counter and an in-place change through either is seen by both.

`apply_` runs an op in place on its first argument (what `x.add_(y)`, `x += y`, `x[i] = v` use).

Inside a `tinyopt.amp.autocast` region, `apply` first casts the Tensor arguments as the class's
`autocast_policy` says (torch's autocast lists; autograd/autocast_mode.py): the one place where
mixed precision touches the op layer.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd import autocast_mode as _autocast
from tinyopt.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad  # noqa: F401 (no_grad: old import path)
from tinyopt.autograd.graph import Node, VersionCounter, unbroadcast
from tinyopt.dtypes import is_floating_point

# The Tensor class, handed over by tinyopt/tensor.py when it is defined (`bind_tensor_class`):
# the ops, which tensor.py imports, build on this module, so it cannot import tensor.py itself.
_Tensor = None

# The float dtypes NumPy has natively (a set test, cheaper than `is_floating_point`, which also
# knows bfloat16): the outputs that record a graph.
_FLOAT_DTYPES = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64))

# The active `tinyopt.profile()` (set by tinyopt/profiler.py), or None: then `apply` pays one test.
_PROFILER = None


def bind_tensor_class(cls) -> None:
    global _Tensor
    _Tensor = cls


class Context:
    """What `forward` leaves for `backward`: saved arrays plus any attribute the op sets."""

    # Class-level defaults (immutable tuples), so that making a Context costs no __init__ call: one
    # is made per op call. An op's forward sets instance attributes over them.
    saved_tensors: tuple = ()
    needs_input_grad: tuple = ()
    saved_versions: tuple = ()   # (counter, version, shape) of the tensors whose arrays were saved

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays


def _saved_versions(ctx: Context, tensors: list, result) -> tuple:
    """Versions of the tensors (inputs or the output) whose very arrays `forward` saved."""
    out = []
    for saved in ctx.saved_tensors:
        if saved is result.data:
            out.append((result._version, result._version.value, saved.shape))
            continue
        for t in tensors:
            if saved is t.data:
                out.append((t._version, t._version.value, saved.shape))
                break
    return tuple(out)


def _edge(t):
    """What a Node's edge for input `t` points at: its producer Node, or the leaf Tensor itself."""
    return t._node if t._node is not None else t


class Function:
    """Base class of every differentiable op. Subclasses define `forward` and `backward`."""

    is_view = False
    # torch's autocast list this op is on ("lower_precision_fp", "fp32", "promote" or None): see
    # autograd/autocast_mode.py. Only read while a `tinyopt.amp.autocast` region is active.
    autocast_policy = None

    @staticmethod
    def forward(ctx: Context, *args, **kwargs) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray):  # pragma: no cover - interface
        raise NotImplementedError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs):
        Tensor = _Tensor
        ctx = Context()
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        if _autocast.active and _autocast.state.dtype is not None:   # inside autocast: the op's list casts
            policy = _autocast.policy_of(cls)
            if policy is not None:
                raw = _autocast.cast_inputs(policy, args, raw, Tensor)
        if _PROFILER is None:
            out = cls.forward(ctx, *raw, **kwargs)
        else:
            out = _PROFILER.run_forward(cls, ctx, raw, kwargs)
        result = Tensor._wrap(out)
        if cls.is_view and (cls.is_view is True or np.may_share_memory(out, raw[0])):
            result._version = args[0]._version
        if is_grad_enabled():
            needs = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
            dtype = result.data.dtype
            if True in needs and (dtype in _FLOAT_DTYPES or is_floating_point(dtype)):
                ctx.needs_input_grad = needs
                if ctx.saved_tensors:
                    tensors = [a for a in args if isinstance(a, Tensor)]
                    ctx.saved_versions = _saved_versions(ctx, tensors, result)
                edges = tuple(_edge(a) if need else None for a, need in zip(args, needs))
                result._requires_grad = True
                result._node = Node(cls, ctx, edges, result.data.shape, result.data.dtype)
        return result

    @classmethod
    def apply_(cls, target, *args, **kwargs):
        """Run the op on (target, *args) and write the result into `target`'s own memory.

        Without a graph to record this is a plain in-place update. With one, the op is recorded
        out of place on target's current value and `target` takes over the new node, as torch does;
        a leaf that requires grad refuses (torch: "a leaf Variable that requires grad is being used
        in an in-place operation")."""
        Tensor = _Tensor
        records = is_grad_enabled() and (target._requires_grad or any(
            isinstance(a, Tensor) and a._requires_grad for a in args))
        if records and target._requires_grad and target._node is None:
            raise RuntimeError(
                "a leaf tensor that requires grad is being used in an in-place operation; do it under "
                "`with to.no_grad():` (e.g. a parameter update) or on a copy (x = x + 1)"
            )
        if not records:
            raw = [a.data if isinstance(a, Tensor) else a for a in args]
            if _PROFILER is None:
                out = cls.forward(Context(), target.data, *raw, **kwargs)
            else:
                out = _PROFILER.run_forward(cls, Context(), [target.data, *raw], kwargs)
            _write_into(target, out)
            target._version.value += 1
            return target
        result = cls.apply(target, *args, **kwargs)
        node = result._node
        if node is not None and any(s is target.data for s in node.ctx.saved_tensors):
            # backward needs target's value from before this write: keep a copy of it.
            before = target.data.copy()
            node.ctx.saved_tensors = tuple(before if s is target.data else s for s in node.ctx.saved_tensors)
            node.ctx.saved_versions = tuple(v for v in node.ctx.saved_versions if v[0] is not target._version)
        _write_into(target, result.data)
        target._version.value += 1
        target._node = node
        target._requires_grad = node is not None
        return target


def _write_into(target, out) -> None:
    out = np.asarray(out)
    if out.shape != target.data.shape:
        raise RuntimeError(
            f"output with shape {target.data.shape} doesn't match the broadcast shape {out.shape} "
            "of this in-place operation"
        )
    try:
        np.copyto(target.data, out, casting="same_kind")
    except TypeError:
        raise RuntimeError(
            f"result type {out.dtype} can't be cast to the desired output type {target.data.dtype} "
            "of this in-place operation"
        ) from None


__all__ = ["Context", "Function", "bind_tensor_class", "unbroadcast"]
