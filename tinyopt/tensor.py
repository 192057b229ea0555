"""`Tensor`: a NumPy array plus the record of how it was computed, for reverse-mode autograd.

A Tensor holds `.data` (an `np.ndarray`) and, when it requires gradients, `.grad` after
`backward()`. Every op is a `Function` (see `tinyopt.autograd.function`) applied through the
methods below; the methods take NumPy-style arguments (`axis=`, `keepdims=`).
"""
from __future__ import annotations

import numbers

import numpy as np

from tinyopt.autograd import ops
from tinyopt.autograd.function import unbroadcast

_DEFAULT_FLOAT = np.float32


def _as_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=dtype)
    if isinstance(data, np.ndarray):
        return data.copy()
    if isinstance(data, np.generic):  # a NumPy scalar (e.g. x.mean()) keeps its dtype, like an array
        return np.array(data)
    arr = np.array(data)
    # Python floats become float32 (torch's default); NumPy float arrays keep their dtype.
    if arr.dtype == np.float64:
        arr = arr.astype(_DEFAULT_FLOAT)
    return arr


class Tensor:
    """An n-dimensional array that can record the ops applied to it and backpropagate through them.

    Attributes: `data` (ndarray), `grad` (ndarray or None, assignable), `requires_grad`, and
    read-only `shape`, `dtype`, `ndim`, `size`, `is_leaf`.
    """

    # Make NumPy defer to Tensor's reflected operators (ndarray * Tensor → Tensor.__rmul__).
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._node = None  # the Function call that produced this tensor (None for leaves)
        self._retains_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array) -> "Tensor":
        """A Tensor around an existing array, without copying (used by `Function.apply`)."""
        t = cls.__new__(cls)
        t.data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t.grad = None
        t._node = None
        t._retains_grad = False
        t._requires_grad = False
        return t

    # ------------------------------------------------------------------ attributes
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and not np.issubdtype(self.data.dtype, np.floating):
            raise RuntimeError(
                f"only floating-point tensors can require gradients; this one is {self.data.dtype} "
                "(convert it first, e.g. to.tensor(x, dtype=np.float32, requires_grad=True))"
            )
        self._requires_grad = bool(value)

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.dtype != _DEFAULT_FLOAT:
            extra = f", dtype={self.dtype}" + extra
        return f"tensor({body}{extra})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory, like torch)."""
        return Tensor._wrap(self.data)

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retains_grad = True

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires gradients.

        `grad` is the upstream gradient (same shape as self); it may be omitted only for a
        tensor with one element, where it defaults to 1. The graph's saved arrays are released
        afterwards unless `retain_graph=True`.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require gradients: no input of the "
                "computation had requires_grad=True (or it ran under no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() needs an explicit gradient for a non-scalar output of shape "
                    f"{self.shape}: pass grad=np.ones({self.shape}) for the gradient of the sum, "
                    "or reduce the output first (e.g. loss.mean().backward())"
                )
            grad = np.ones(self.shape, dtype=self.dtype)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise RuntimeError(f"backward(grad): grad has shape {grad.shape}, the tensor has shape {self.shape}")

        grads = {id(self): grad}
        for tensor in reversed(self._topological_order()):
            g = grads.pop(id(tensor), None)
            if g is None:
                continue
            node = tensor._node
            if node is None or tensor._retains_grad:
                tensor._accumulate_grad(g)
            if node is None:
                continue
            if node.ctx is None:
                raise RuntimeError(
                    "trying to backward through the graph a second time: its saved arrays were "
                    "released after the first backward(); call backward(retain_graph=True) the first time"
                )
            input_grads = node.fn.backward(node.ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, pg in zip(node.inputs, input_grads):
                if parent is None or pg is None or not parent.requires_grad:
                    continue
                pg = unbroadcast(np.asarray(pg), parent.shape).astype(parent.dtype, copy=False)
                key = id(parent)
                grads[key] = grads[key] + pg if key in grads else pg
            if not retain_graph:
                node.release()

    def _accumulate_grad(self, g: np.ndarray) -> None:
        # Copy on first store: `g` may be shared with other tensors' gradients (Add passes the
        # same array to both inputs), and optimizers and clip_grad_* modify .grad in place.
        if self.grad is None:
            self.grad = np.array(g, dtype=self.dtype, copy=True)
        else:
            self.grad = self.grad + g

    def _topological_order(self) -> list:
        """Tensors reachable from self, inputs before outputs; iterative so deep graphs never
        hit Python's recursion limit."""
        order, expanded = [], set()
        stack = [(self, False)]
        while stack:
            tensor, children_done = stack.pop()
            if children_done:
                order.append(tensor)
                continue
            if id(tensor) in expanded:
                continue
            expanded.add(id(tensor))
            stack.append((tensor, True))
            if tensor._node is not None:
                for parent in tensor._node.inputs:
                    if parent is not None and parent.requires_grad and id(parent) not in expanded:
                        stack.append((parent, False))
        return order

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return ops.Add.apply(self, _operand(other))

    def __radd__(self, other):
        return ops.Add.apply(_operand(other), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, _operand(other))

    def __rsub__(self, other):
        return ops.Sub.apply(_operand(other), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, _operand(other))

    def __rmul__(self, other):
        return ops.Mul.apply(_operand(other), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, _operand(other))

    def __rtruediv__(self, other):
        return ops.Div.apply(_operand(other), self)

    def __pow__(self, exponent):
        return ops.Pow.apply(self, _operand(exponent))

    def __rpow__(self, base):
        return ops.Pow.apply(_operand(base), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, _operand(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(_operand(other), self)

    # Comparisons give boolean tensors and are not differentiable.
    def __lt__(self, other):
        return Tensor._wrap(self.data < _raw(other))

    def __le__(self, other):
        return Tensor._wrap(self.data <= _raw(other))

    def __gt__(self, other):
        return Tensor._wrap(self.data > _raw(other))

    def __ge__(self, other):
        return Tensor._wrap(self.data >= _raw(other))

    def __eq__(self, other):
        return Tensor._wrap(self.data == _raw(other))

    def __ne__(self, other):
        return Tensor._wrap(self.data != _raw(other))

    __hash__ = object.__hash__

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    # ------------------------------------------------------------------ elementwise
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def __abs__(self):
        return self.abs()

    def relu(self):
        return ops.ReLU.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def clip(self, min=None, max=None):  # noqa: A002 - NumPy's and torch's names
        return ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def maximum(self, other):
        return ops.Maximum.apply(self, _operand(other))

    def minimum(self, other):
        return -ops.Maximum.apply(-self, -_operand(other))

    def astype(self, dtype):
        return ops.Cast.apply(self, dtype=np.dtype(dtype))

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    # ------------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims=False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return -ops.Max.apply(-self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        centered = self - self.mean(axis=axis, keepdims=True)
        n = self.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return (centered * centered).sum(axis=axis, keepdims=keepdims) / (n - ddof)

    def argmax(self, axis=None):
        return Tensor._wrap(np.argmax(self.data, axis=axis))

    def argmin(self, axis=None):
        return Tensor._wrap(np.argmin(self.data, axis=axis))

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def flatten(self, start_axis=0):
        return self.reshape(self.shape[:start_axis] + (-1,))

    def transpose(self, *axes):
        """NumPy semantics: no arguments reverses the axes; otherwise a full permutation."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=axes or None)

    def swapaxes(self, axis1, axis2):
        perm = list(range(self.ndim))
        perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
        return self.transpose(perm)

    def expand_dims(self, axis):
        return self.reshape(np.expand_dims(self.data, axis).shape)

    unsqueeze = expand_dims

    def squeeze(self, axis=None):
        return self.reshape(np.squeeze(self.data, axis).shape)

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_raw_index(index))


# ---------------------------------------------------------------------- helpers and free functions


def _operand(x):
    """Python numbers stay Python numbers (NumPy then keeps the tensor's dtype); arrays become
    constant Tensors."""
    if isinstance(x, (Tensor, numbers.Number)):
        return x
    return Tensor._wrap(np.asarray(x))


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _raw_index(index):
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    return _raw(index)


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a Tensor (always copies `data`). Python floats become float32; NumPy float64 arrays
    stay float64, which gradient checks need."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _tensors(xs):
    return [x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x)) for x in xs]


def concatenate(tensors, axis=0) -> Tensor:
    return ops.Concatenate.apply(*_tensors(tensors), axis=axis)


cat = concatenate


def stack(tensors, axis=0) -> Tensor:
    """Join tensors along a new axis: insert the axis in each, then concatenate."""
    tensors = _tensors(tensors)
    if not tensors:
        raise ValueError("stack() needs at least one tensor")
    ndim = tensors[0].ndim + 1
    axis = axis % ndim
    return concatenate([t.expand_dims(axis) for t in tensors], axis=axis)


def where(condition, a, b) -> Tensor:
    return ops.Where.apply(np.asarray(_raw(condition), dtype=bool), _operand(a), _operand(b))


def maximum(a, b) -> Tensor:
    return ops.Maximum.apply(_operand(a), _operand(b))


def minimum(a, b) -> Tensor:
    return -maximum(-_operand(a), -_operand(b))


def zeros(*shape, dtype=_DEFAULT_FLOAT, requires_grad=False) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=_DEFAULT_FLOAT, requires_grad=False) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)
