"""The `to.<op>(tensor, ...)` forms of the Tensor methods (torch's namespace functions), plus the
ones that take several tensors (`cat`, `stack`, `where`, ...).

Each accepts a Tensor, an ndarray or a number as its first argument (an ndarray is wrapped without
copying) and calls the method of the same name, so the math exists once, in the method's op.
"""
from __future__ import annotations

import numpy as np

from tinyopt.ops import shape as S
from tinyopt.ops.dims import normalize_dim
from tinyopt.tensor import Tensor, where  # noqa: F401 - re-exported as to.where


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x))


def _method(name: str):
    def fn(input, *args, **kwargs):  # noqa: A002 - torch's name
        return getattr(_t(input), name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"`to.{name}(input, ...)` is `input.{name}(...)`: see `Tensor.{name}`."
    return fn


_METHODS = (
    "abs", "absolute", "add", "all", "allclose", "amax", "amin", "any", "argmax", "argmin", "argsort", "bmm",
    "ceil", "chunk", "clamp", "clip", "clone", "cos", "cumsum", "div", "divide", "dot", "equal", "exp", "expm1",
    "flatten", "flip", "floor", "gather", "isclose", "isfinite", "isinf", "isnan", "lerp", "log", "log10",
    "log1p", "log2", "log_softmax", "logical_not", "logsumexp", "matmul", "max", "maximum", "mean", "min",
    "minimum", "mm", "mul", "multiply", "neg", "norm", "numel", "permute", "pow", "prod", "reciprocal", "relu",
    "reshape", "round", "rsqrt", "sigmoid", "sign", "sin", "softmax", "sort", "split", "sqrt", "square",
    "squeeze", "std", "sub", "subtract", "sum", "swapaxes", "t", "tanh", "topk", "transpose", "true_divide",
    "trunc", "unflatten", "unsqueeze", "var",
)
globals().update({name: _method(name) for name in _METHODS})


def _tensors(xs):
    xs = [_t(x) for x in xs]
    if not xs:
        raise ValueError("expected a non-empty list of Tensors")
    return xs


def cat(tensors, dim=0, *, axis=None) -> Tensor:
    """Join tensors along an existing dim (torch.cat)."""
    tensors = _tensors(tensors)
    dim = dim if axis is None else axis
    ndim = tensors[0].ndim
    for i, t in enumerate(tensors):
        if t.ndim != ndim:
            raise RuntimeError(f"cat: tensors must have the same number of dimensions: tensor 0 has {ndim}, "
                               f"tensor {i} has {t.ndim}")
    return S.Concatenate.apply(*tensors, axis=normalize_dim(dim, ndim, "cat"))


concatenate = concat = cat


def stack(tensors, dim=0, *, axis=None) -> Tensor:
    """Join tensors along a new dim: insert it in each, then concatenate (torch.stack)."""
    tensors = _tensors(tensors)
    dim = dim if axis is None else axis
    shape = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.shape != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {tuple(shape)} at entry 0 "
                               f"and {tuple(t.shape)} at entry {i}")
    axis_ = normalize_dim(dim, len(shape) + 1, "stack")
    return S.Concatenate.apply(*[t.unsqueeze(axis_) for t in tensors], axis=axis_)


def numel(input) -> int:  # noqa: A002
    return _t(input).numel()


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def einsum(*args):
    raise NotImplementedError("to.einsum is not supported; write the product with matmul, permute and sum")


__all__ = ["cat", "concat", "concatenate", "einsum", "is_tensor", "numel", "stack", "where", *_METHODS]
