"""The recorded graph and the backward pass over it.

Every op call that needs gradients leaves a `Node` (torch's `grad_fn`): the `Function`, its
context (the arrays `forward` saved) and one *edge* per forward argument. An edge points at what
produced that argument when the op ran: the producer's `Node`, or the leaf Tensor itself (where
the gradient is accumulated into `.grad`), or None (no gradient needed). Edges point at nodes, not
at tensors, so an in-place op that gives a tensor a new node later does not rewire the graph that
already used the tensor's old value (torch's design).

Backward (`run_backward`) visits the nodes reachable from the output in reverse topological order
(iteratively: deep graphs never hit Python's recursion limit), sums the gradients arriving at each
node, calls its `backward`, and accumulates at the leaves.

In-place safety: every Tensor has a `VersionCounter`, shared by its views, that each in-place op
bumps. `Function.apply` records the version of every tensor whose array `forward` saved; if one
has changed by the time backward needs it, backward raises instead of computing a wrong gradient
(torch's "modified by an inplace operation" error).
"""
from __future__ import annotations

import numpy as np

# The active `tinyopt.profile()` (set by tinyopt/profiler.py), or None.
_PROFILER = None


class VersionCounter:
    """How many in-place changes a tensor's memory has seen (shared by a tensor and its views)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


class RemovableHandle:
    """What `register_*hook` returns: `handle.remove()` unregisters the hook (torch's name)."""

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class Node:
    """One recorded op call: the Function, its context, the edges to its inputs, and the shape and
    dtype of its output (the gradient arriving here has them)."""

    __slots__ = ("fn", "ctx", "edges", "shape", "dtype", "grad_hooks", "retained", "__weakref__")

    def __init__(self, fn, ctx, edges, shape, dtype):
        self.fn, self.ctx, self.edges = fn, ctx, edges
        self.shape, self.dtype = shape, dtype
        self.grad_hooks = None   # hooks registered on the (non-leaf) output tensor: fn(grad) -> grad | None
        self.retained = None     # the output tensor, when it called retain_grad()

    def name(self) -> str:
        return f"{self.fn.__name__}Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"

    def release(self) -> None:
        """Drop the saved arrays once backward has used them (torch's retain_graph=False)."""
        self.ctx = None


def _check_versions(node: Node) -> None:
    for counter, version, shape in node.ctx.saved_versions:
        if counter.value != version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: a tensor of shape {tuple(shape)} used by {node.name()} is at version "
                f"{counter.value}; expected version {version} instead. Compute the in-place change on a copy "
                "(x = x + 1 instead of x += 1), or after backward()."
            )


def _topological_order(root) -> list:
    """Edge targets (nodes and leaf tensors) reachable from `root`, inputs before outputs."""
    order, expanded = [], set()
    stack = [(root, False)]
    while stack:
        target, children_done = stack.pop()
        if children_done:
            order.append(target)
            continue
        if id(target) in expanded:
            continue
        expanded.add(id(target))
        stack.append((target, True))
        if isinstance(target, Node):
            if target.ctx is None:
                raise RuntimeError(
                    "trying to backward through the graph a second time: its saved arrays were "
                    "released after the first backward(); call backward(retain_graph=True) the first time"
                )
            for edge in target.edges:
                if edge is not None and id(edge) not in expanded:
                    stack.append((edge, False))
    return order


def _run_hooks(hooks, grad: np.ndarray, wrap) -> np.ndarray:
    """torch's tensor hooks: each gets the gradient (as a Tensor) and may return a replacement."""
    for hook in list(hooks):
        result = hook(wrap(grad))
        if result is not None:
            replaced = np.asarray(result)
            if replaced.shape != grad.shape:
                raise RuntimeError(f"hook {hook!r} returned a gradient of shape {replaced.shape}, expected {grad.shape}")
            grad = replaced
    return grad


def run_backward(root_tensor, grad: np.ndarray, retain_graph: bool, wrap) -> None:
    """Backpropagate `grad` (d(something)/d(root_tensor)) to every leaf that requires gradients.

    `wrap(array)` makes a graph-free Tensor (for the hooks, which receive Tensors as in torch)."""
    from_node = root_tensor._node
    root = from_node if from_node is not None else root_tensor
    grads = {id(root): grad}
    for target in reversed(_topological_order(root)):
        g = grads.pop(id(target), None)
        if g is None:
            continue
        if not isinstance(target, Node):          # a leaf: hooks, then accumulate into .grad
            if target._grad_hooks:
                g = _run_hooks(target._grad_hooks, g, wrap)
            target._accumulate_grad(g, owned=True)
            if target._post_accumulate_hooks:
                for hook in list(target._post_accumulate_hooks):
                    hook(target)
            continue
        node = target
        if node.grad_hooks:
            g = _run_hooks(node.grad_hooks, g, wrap)
        if node.retained is not None:
            node.retained._accumulate_grad(g)
        if node.ctx.saved_versions:
            _check_versions(node)
        if _PROFILER is None:
            input_grads = node.fn.backward(node.ctx, g)
        else:
            input_grads = _PROFILER.run_backward(node, g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for edge, pg in zip(node.edges, input_grads):
            if edge is None or pg is None:
                continue
            shape, dtype = (edge.shape, edge.dtype) if type(edge) is Node else (edge.data.shape, edge.data.dtype)
            if type(pg) is not np.ndarray:
                pg = np.asarray(pg)
            if pg.shape != shape:
                pg = unbroadcast(pg, shape)
            if pg.dtype != dtype:
                pg = pg.astype(dtype)
            key = id(edge)
            grads[key] = grads[key] + pg if key in grads else pg
        input_grads = pg = None     # the grads dict holds them now: lets a leaf take its gradient uncopied
        if not retain_graph:
            node.release()


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
