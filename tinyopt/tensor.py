"""`Tensor`: a NumPy array plus the record of how it was computed, for reverse-mode autograd.

A Tensor holds `.data` (an `np.ndarray`; unlike torch's `.data` it is the raw array) and, when it
requires gradients, `.grad` after `backward()`. Every differentiable method is an op of
`tinyopt.ops` applied through `Function.apply`.

The methods follow torch, not NumPy: `dim=` / `keepdim=` (NumPy's `axis=` / `keepdims=` are
accepted as aliases), `transpose(d0, d1)` swaps two dims (`permute` permutes), `max(dim)` returns
`(values, indices)`, `var()` is unbiased, `size()` is a method, and in-place methods (`add_`,
`x += y`, `x[i] = v`, ...) change the tensor's own memory (a version counter refuses a backward
that would need an overwritten value). A torch call tinyopt does not support raises; it never
silently computes something else.
"""
from __future__ import annotations

import collections
import numbers
import sys
import warnings

import numpy as np

from tinyopt import dtypes
from tinyopt.autograd import graph
from tinyopt.autograd.function import Function, bind_tensor_class
from tinyopt.autograd.graph import VersionCounter as _VersionCounter
from tinyopt.autograd.grad_mode import is_grad_enabled as _grad_enabled
from tinyopt.autograd.grad_mode import no_grad
from tinyopt.device import check_device, device as _device
from tinyopt.ops import elementwise as E
from tinyopt.ops import linalg as LA
from tinyopt.ops import nn as NN
from tinyopt.ops import reduce as R
from tinyopt.ops import shape as S
from tinyopt.ops.dims import normalize_dim, normalize_dims
from tinyopt.random import resolve

_DEFAULT_FLOAT = np.float32
_CPU = _device("cpu")

# torch's return types of max(dim), min(dim), sort, topk: named tuples of (values, indices).
MaxResult = collections.namedtuple("max", ["values", "indices"])
MinResult = collections.namedtuple("min", ["values", "indices"])
SortResult = collections.namedtuple("sort", ["values", "indices"])
TopkResult = collections.namedtuple("topk", ["values", "indices"])


class Size(tuple):
    """A shape, as torch.Size: a tuple (it compares equal to one and prints as one) with `numel()`."""

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))


def _as_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, str) or (isinstance(data, (list, tuple)) and _has_str(data)):
        raise TypeError(f"can't make a tensor from {type(data).__name__} {data!r}: expected numbers, a nested "
                        "list of numbers, an ndarray or a Tensor")
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        data = [x.data if isinstance(x, Tensor) else x for x in data]
    if dtype is not None:
        arr = np.array(data, dtype=dtypes.as_dtype(dtype))
    elif isinstance(data, np.ndarray):
        arr = data.copy()
    elif isinstance(data, np.generic):  # a NumPy scalar (e.g. x.mean()) keeps its dtype, like an array
        arr = np.array(data)
    else:
        try:
            arr = np.array(data)
        except ValueError as e:
            raise ValueError(f"can't make a tensor from nested lists of different lengths (every row must have "
                             f"the same length): {e}") from None
        # Python floats become float32 (torch's default); NumPy float arrays keep their dtype.
        if arr.dtype == np.float64:
            arr = arr.astype(_DEFAULT_FLOAT)
    if arr.dtype == object:
        raise TypeError(f"can't make a tensor from {type(data).__name__}: its elements are not numbers "
                        "(or the nested lists are ragged)")
    return arr


def _has_str(seq) -> bool:
    return any(isinstance(x, str) or (isinstance(x, (list, tuple)) and _has_str(x)) for x in seq)


def _dim_arg(dim, axis, name="dim"):
    """torch's `dim=`, with NumPy's `axis=` accepted as an alias (not both)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"got both {name}= and axis=; pass one")
        return axis
    return dim


def _keepdim_arg(keepdim, keepdims):
    return keepdim if keepdims is None else keepdims


def _shape_args(shape) -> tuple:
    """f(2, 3), f((2, 3)), f([2, 3]) and f(Size) all mean the shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, np.ndarray)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)



# References to a gradient array while `_accumulate_grad(g, owned=True)` looks at it: the backward
# engine's local, the method's parameter, _unshared's parameter and getrefcount's argument.
_ENGINE_REFERENCES = 4


def _unshared(g) -> bool:
    """Whether only the backward engine holds `g` (CPython's reference counts; elsewhere False): a
    writable C-contiguous ndarray that owns its buffer, or a view of an ndarray that only it holds."""
    if type(g) is not np.ndarray or not g.flags.writeable or not g.flags.c_contiguous:
        return False
    getrefcount = getattr(sys, "getrefcount", None)
    if getrefcount is None or getrefcount(g) > _ENGINE_REFERENCES:
        return False
    base = g.base
    # a view of a buffer held by nothing else (its references: g.base, the local and getrefcount's argument)
    return base is None or (type(base) is np.ndarray and base.base is None and getrefcount(base) <= 3)

class Tensor:
    """An n-dimensional array that can record the ops applied to it and backpropagate through them.

    Attributes: `data` (ndarray), `grad`, `requires_grad`, `grad_fn`, `is_leaf`, `shape`, `dtype`,
    `device` (always cpu), `ndim`.
    """

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        """NumPy ufuncs on Tensors. The arithmetic and common unary ufuncs are the Tensor ops (so
        `ndarray * tensor` and `np.exp(tensor)` stay in the graph); any other ufunc (or `out=`)
        runs on the arrays and returns a Tensor without a graph, which is refused when it would
        silently drop a tensor that requires grad from the graph."""
        op = _UFUNC_OPS.get(ufunc) if method == "__call__" and out is None and not kwargs else None
        if op is not None:
            return op(*[_operand(x) for x in inputs])
        tensors = [x for x in inputs + (out or ()) if isinstance(x, Tensor)]
        result = getattr(ufunc, method)(*[_raw(x) for x in inputs],
                                         **({"out": tuple(_raw(o) for o in out)} if out else {}), **kwargs)
        if (any(t._requires_grad for t in tensors) and _grad_enabled()
                and any(dtypes.is_floating_point(r.dtype) for r in (result if isinstance(result, tuple) else (result,))
                        if isinstance(r, np.ndarray))):
            raise TypeError(f"np.{ufunc.__name__} on a tensor that requires grad would drop it from the graph; use "
                            f"the tinyopt operation (e.g. to.{ufunc.__name__}) or call .detach() first")
        if out:
            for o in out:
                if isinstance(o, Tensor):
                    o._version.value += 1
            return out[0] if len(out) == 1 else out
        if isinstance(result, tuple):
            return tuple(Tensor._wrap(r) if isinstance(r, np.ndarray) else r for r in result)
        return Tensor._wrap(result) if isinstance(result, np.ndarray) else result

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        self._init_graph_fields()
        self.requires_grad = requires_grad

    def _init_graph_fields(self) -> None:
        """The autograd state of a fresh tensor (for subclasses that build `.data` themselves)."""
        self._grad = None
        self._node = None  # the Node that produced this tensor (None for leaves)
        self._version = graph.VersionCounter()
        self._grad_hooks = None
        self._post_accumulate_hooks = None
        self._requires_grad = False

    @classmethod
    def _wrap(cls, array) -> "Tensor":
        """A Tensor around an existing array, without copying (used by `Function.apply`)."""
        t = cls.__new__(cls)
        t.data = array if isinstance(array, np.ndarray) else np.asarray(array)
        # _init_graph_fields, inlined: this runs once per op call (the hottest path of the engine).
        t._grad = None
        t._node = None
        t._version = _VersionCounter()
        t._grad_hooks = None
        t._post_accumulate_hooks = None
        t._requires_grad = False
        return t

    # ------------------------------------------------------------------ attributes
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"requires_grad must be a bool, got {type(value).__name__} {value!r}")
        if value and not dtypes.is_floating_point(self.data.dtype):
            raise RuntimeError(
                f"only floating-point tensors can require gradients; this one is {self.data.dtype} "
                "(convert it first, e.g. to.tensor(x, dtype=to.float32, requires_grad=True))"
            )
        if not value and self._node is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf tensors; use detach() for a "
                               "tensor without a graph")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self):
        """The accumulated gradient: a Tensor without a graph (as torch), or None before backward.
        Assigning an ndarray wraps it (sharing memory); its shape and dtype must be this tensor's (torch)."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, (Tensor, np.ndarray)):
                raise TypeError(f"assigned grad expected to be a Tensor (or an ndarray) or None but got grad of type "
                                f"{type(value).__name__}")
            grad = value if isinstance(value, Tensor) else Tensor._wrap(value)
            if grad.data.shape != self.data.shape:
                raise RuntimeError(f"assigned grad has data of a different size: {grad.data.shape} for a tensor of "
                                   f"shape {self.data.shape}")
            if grad.data.dtype != self.data.dtype:
                raise TypeError(f"assigned grad has data of a different type: {grad.data.dtype} for a {self.data.dtype} "
                                f"tensor (cast it first: .astype(np.{self.data.dtype}))")
            value = grad
        self._grad = value

    @property
    def grad_fn(self):
        return self._node

    @property
    def shape(self) -> Size:
        return Size(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self):
        return _CPU

    @property
    def is_cuda(self) -> bool:
        return False

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def T(self) -> "Tensor":
        """All dims reversed (torch's `.T`; for a matrix, its transpose)."""
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> "Tensor":
        """The last two dims swapped (a batch of matrices transposed)."""
        return self.transpose(-2, -1)

    def size(self, dim=None):
        """The shape (a `Size`), or the length of dim `dim`."""
        if dim is None:
            return self.shape
        return self.data.shape[normalize_dim(dim, self.ndim, "size")]

    def dim(self) -> int:
        return self.data.ndim

    ndimension = dim

    def numel(self) -> int:
        return int(self.data.size)

    nelement = numel

    def element_size(self) -> int:
        return self.data.itemsize

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    def is_floating_point(self) -> bool:
        return dtypes.is_floating_point(self.data.dtype)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self.data, dtype=np.float32) if self.dtype == dtypes.bfloat16 else self.data,
                               separator=", ", prefix="tensor(")
        extra = ""
        if self._node is not None:
            extra += f", grad_fn=<{self._node.name()}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        if self.dtype not in (_DEFAULT_FLOAT, np.int64, np.bool_):
            extra = f", dtype={self.dtype}" + extra
        return f"tensor({body}{extra})"

    def __format__(self, spec: str) -> str:
        # torch: a 0-d tensor formats as its number; any other tensor only with an empty spec.
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __array__(self, dtype=None, copy=None):
        """np.asarray(tensor) gives its data (so NumPy functions and `register_buffer` take Tensors)."""
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {tuple(self.shape)}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory and the version counter, like torch)."""
        t = Tensor._wrap(self.data)
        t._version = self._version
        return t

    def detach_(self) -> "Tensor":
        self._node = None
        self._requires_grad = False
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        if self._node is not None:
            self._node.retained = self

    @property
    def retains_grad(self) -> bool:
        return self._node is not None and self._node.retained is self

    def zero_grad(self) -> None:
        self._grad = None

    # ------------------------------------------------------------------ device and dtype
    def to(self, *args, **kwargs) -> "Tensor":
        """to(dtype), to(device), to(device, dtype), to(other_tensor), with `dtype=`/`device=` keywords.
        Returns self when nothing changes (as torch). The only device is the CPU."""
        dtype, copy = kwargs.pop("dtype", None), kwargs.pop("copy", False)
        kwargs.pop("non_blocking", None)
        if "device" in kwargs:
            check_device(kwargs.pop("device"))
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, (str, _device)) and not dtypes.is_dtype_name(a):
                check_device(a)
            elif a is not None:
                dtype = a
        if dtype is None or dtypes.as_dtype(dtype) == self.dtype:
            return self.clone() if copy else self
        return self.type(dtype)

    def cpu(self) -> "Tensor":
        return self

    def cuda(self, *args, **kwargs):
        check_device("cuda")

    def type(self, dtype=None):
        """The dtype's name (no argument), or a copy converted to `dtype` (differentiable between floats)."""
        if dtype is None:
            return f"tinyopt.{self.dtype}"
        return E.Cast.apply(self, dtype=dtypes.as_dtype(dtype))

    def astype(self, dtype):  # NumPy's name, kept for array-minded code
        return self.type(dtype)

    def type_as(self, other) -> "Tensor":
        return self.to(other.dtype)

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def half(self):
        return self.to(dtypes.float16)

    def bfloat16(self):
        return self.to(dtypes.bfloat16)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int32)

    def short(self):
        return self.to(dtypes.int16)

    def bool(self):
        return self.to(dtypes.bool)

    def byte(self):
        return self.to(dtypes.uint8)

    # ------------------------------------------------------------------ backward and hooks
    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires gradients.

        `gradient` is the upstream gradient (same shape as self); it may be omitted only for a
        tensor with one element, where it defaults to 1. The graph's saved arrays are released
        afterwards unless `retain_graph=True`. (`create_graph` and `inputs` are not supported.)
        """
        if create_graph:
            raise NotImplementedError("backward(create_graph=True) (higher-order gradients) is not supported; "
                                      "use finite differences of gradients (see tinyopt.landscape)")
        if inputs is not None:
            raise NotImplementedError("backward(inputs=...) is not supported; read .grad of the tensors you need")
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require gradients (element 0 of tensors does not require "
                "grad and does not have a grad_fn): no input of the computation had requires_grad=True (or it ran "
                "under no_grad())"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() needs an explicit gradient for a non-scalar output of shape {tuple(self.shape)} "
                    "(grad can be implicitly created only for scalar outputs): pass backward(to.ones_like(out)) "
                    "for the gradient of the sum, or reduce the output first (e.g. loss.mean().backward())"
                )
            gradient = np.ones(self.data.shape, dtype=self.dtype)
        else:
            gradient = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.dtype)
            if gradient.shape != self.data.shape:
                raise RuntimeError(f"backward(grad): grad has shape {gradient.shape}, the tensor has shape "
                                   f"{self.data.shape}")
        graph.run_backward(self, gradient, bool(retain_graph), Tensor._wrap)

    def _accumulate_grad(self, g: np.ndarray, owned: bool = False) -> None:
        # The first store copies `g` unless nothing else can see it: it may be shared with other
        # tensors' gradients (Add passes the same array to both inputs), and optimizers and
        # clip_grad_* modify .grad in place. `owned=True` (the backward engine's call for a leaf)
        # means the caller's reference is its last one; then, as torch's AccumulateGrad steals a
        # gradient nobody else holds, an array whose only references are the caller's and ours
        # (and whose buffer, if it is a view, only it holds) becomes .grad as it is (an MLP's
        # 784×256 weight gradient: 48 µs of copying per step saved). Later gradients are added
        # into that memory, as torch does (a view of .grad sees them).
        if self._grad is None:
            if owned and _unshared(g) and g.dtype == self.dtype:
                self._grad = Tensor._wrap(g)
            else:
                self._grad = Tensor._wrap(np.array(g, dtype=self.dtype, copy=True))
            return
        existing = self._grad.data
        if existing.flags.writeable and existing.shape == np.shape(g):
            np.add(existing, g, out=existing, casting="same_kind")
        else:
            self._grad = Tensor._wrap(existing + g)

    def register_hook(self, hook):
        """`hook(grad) -> Tensor | None`, called with the gradient w.r.t. this tensor during backward;
        a returned tensor replaces the gradient. Returns a handle with `.remove()` (torch's API)."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._node is not None:
            if self._node.grad_hooks is None:
                self._node.grad_hooks = []
            hooks = self._node.grad_hooks
        else:
            if self._grad_hooks is None:
                self._grad_hooks = []
            hooks = self._grad_hooks
        hooks.append(hook)
        return graph.RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """`hook(tensor)`, called on a leaf after its `.grad` has been accumulated in backward (what
        data-parallel training uses to start reducing a gradient as soon as it is ready)."""
        if self._node is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = []
        self._post_accumulate_hooks.append(hook)
        return graph.RemovableHandle(self._post_accumulate_hooks, hook)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return E.Add.apply(self, _operand(other))

    def __radd__(self, other):
        return E.Add.apply(_operand(other), self)

    def __sub__(self, other):
        return E.Sub.apply(self, _operand(other))

    def __rsub__(self, other):
        return E.Sub.apply(_operand(other), self)

    def __mul__(self, other):
        return E.Mul.apply(self, _operand(other))

    def __rmul__(self, other):
        return E.Mul.apply(_operand(other), self)

    def __truediv__(self, other):
        return E.Div.apply(self, _operand(other))

    def __rtruediv__(self, other):
        return E.Div.apply(_operand(other), self)

    def __floordiv__(self, other):
        return E.Rounding.apply(E.Div.apply(self, _operand(other)), kind="floor")

    def __mod__(self, other):
        return Tensor._wrap(np.mod(self.data, _raw(other)))

    def __pow__(self, exponent):
        return E.Pow.apply(self, _operand(exponent))

    def __rpow__(self, base):
        return E.Pow.apply(_operand(base), self)

    def __neg__(self):
        return E.Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return LA.MatMul.apply(self, _operand(other))

    def __rmatmul__(self, other):
        return LA.MatMul.apply(_operand(other), self)

    def add(self, other, *, alpha=1):
        return self + (other if alpha == 1 else _operand(other) * alpha)

    def sub(self, other, *, alpha=1):
        return self - (other if alpha == 1 else _operand(other) * alpha)

    subtract = sub

    def mul(self, other):
        return self * other

    multiply = mul

    def div(self, other, *, rounding_mode=None):
        if rounding_mode is None:
            return self / other
        if rounding_mode not in ("floor", "trunc"):
            raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found {rounding_mode!r}")
        return E.Rounding.apply(self / other, kind=rounding_mode)

    divide = true_divide = div

    def pow(self, exponent):
        return self ** exponent

    def matmul(self, other):
        return self @ other

    def mm(self, other):
        if self.ndim != 2 or _operand(other).ndim != 2:
            raise RuntimeError(f"mm: both arguments must be matrices, got {self.ndim}-D and {_operand(other).ndim}-D")
        return self @ other

    def bmm(self, other):
        if self.ndim != 3 or _operand(other).ndim != 3:
            raise RuntimeError(f"bmm: both arguments must be 3-D batches of matrices, got {self.ndim}-D and "
                               f"{_operand(other).ndim}-D")
        return self @ other

    def dot(self, other):
        if self.ndim != 1 or _operand(other).ndim != 1:
            raise RuntimeError("dot: 1D tensors expected")
        return self @ other

    def neg(self):
        return -self

    def reciprocal(self):
        return 1.0 / self

    def square(self):
        return self * self

    # Comparisons and logic give boolean tensors and are not differentiable.
    def __lt__(self, other):
        return Tensor._wrap(np.less(self.data, _raw(other)))

    def __le__(self, other):
        return Tensor._wrap(np.less_equal(self.data, _raw(other)))

    def __gt__(self, other):
        return Tensor._wrap(np.greater(self.data, _raw(other)))

    def __ge__(self, other):
        return Tensor._wrap(np.greater_equal(self.data, _raw(other)))

    def __eq__(self, other):
        return Tensor._wrap(np.equal(self.data, _raw(other)))

    def __ne__(self, other):
        return Tensor._wrap(np.not_equal(self.data, _raw(other)))

    lt, le, gt, ge, eq, ne = __lt__, __le__, __gt__, __ge__, __eq__, __ne__

    def __and__(self, other):
        return Tensor._wrap(np.bitwise_and(self.data, _raw(other)))

    def __or__(self, other):
        return Tensor._wrap(np.bitwise_or(self.data, _raw(other)))

    def __xor__(self, other):
        return Tensor._wrap(np.bitwise_xor(self.data, _raw(other)))

    def __invert__(self):
        return Tensor._wrap(np.invert(self.data))

    logical_and, logical_or = __and__, __or__

    def logical_not(self):
        return Tensor._wrap(np.logical_not(self.data))

    __hash__ = object.__hash__

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous (shape {tuple(self.shape)})")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.size != 1 or not np.issubdtype(self.dtype, np.integer):
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def equal(self, other) -> bool:
        other = _raw(other)
        return bool(np.shape(other) == self.data.shape and np.array_equal(self.data, other))

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        return bool(np.allclose(self.data, _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return Tensor._wrap(np.isclose(self.data, _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def isfinite(self):
        return Tensor._wrap(np.isfinite(self.data))

    def isnan(self):
        return Tensor._wrap(np.isnan(self.data))

    def isinf(self):
        return Tensor._wrap(np.isinf(self.data))

    def all(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        return self._logical_reduce(np.all, _dim_arg(dim, axis), _keepdim_arg(keepdim, keepdims), out)

    def any(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        return self._logical_reduce(np.any, _dim_arg(dim, axis), _keepdim_arg(keepdim, keepdims), out)

    def _logical_reduce(self, fn, dim, keepdim, out):
        if out is not None:  # NumPy calls x.all(axis=..., out=...) for np.all(x)
            raise TypeError("all()/any(): out= is not supported")
        axes = None if dim is None else normalize_dims(dim, self.ndim, fn.__name__)
        return Tensor._wrap(np.asarray(fn(self.data, axis=axes, keepdims=keepdim)))

    # ------------------------------------------------------------------ elementwise
    def exp(self):
        return E.Exp.apply(self)

    def log(self):
        return E.Log.apply(self)

    def log1p(self):
        return (1 + self).log()

    def expm1(self):
        return self.exp() - 1

    def log2(self):
        return self.log() / np.log(2.0)

    def log10(self):
        return self.log() / np.log(10.0)

    def sqrt(self):
        return E.Sqrt.apply(self)

    def rsqrt(self):
        return 1.0 / E.Sqrt.apply(self)

    def abs(self):
        return E.Abs.apply(self)

    __abs__ = abs
    absolute = abs

    def sin(self):
        return E.Sin.apply(self)

    def cos(self):
        return E.Cos.apply(self)

    def sign(self):
        return E.Rounding.apply(self, kind="sign")

    def round(self, decimals: int = 0):
        return E.Rounding.apply(self, kind="round", decimals=decimals)

    def floor(self):
        return E.Rounding.apply(self, kind="floor")

    def ceil(self):
        return E.Rounding.apply(self, kind="ceil")

    def trunc(self):
        return E.Rounding.apply(self, kind="trunc")

    def relu(self):
        return E.ReLU.apply(self)

    def sigmoid(self):
        return E.Sigmoid.apply(self)

    def tanh(self):
        return E.Tanh.apply(self)

    def softmax(self, dim=None, *, axis=None):
        return NN.Softmax.apply(self, axis=_softmax_dim(_dim_arg(dim, axis), self.ndim, "softmax"))

    def log_softmax(self, dim=None, *, axis=None):
        return NN.LogSoftmax.apply(self, axis=_softmax_dim(_dim_arg(dim, axis), self.ndim, "log_softmax"))

    def clamp(self, min=None, max=None):  # noqa: A002 - torch's names
        if min is None and max is None:
            raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
        return E.Clip.apply(self, lo=_raw(min), hi=_raw(max))

    clip = clamp

    def maximum(self, other):
        return E.Maximum.apply(self, _operand(other))

    def minimum(self, other):
        return -E.Maximum.apply(-self, -_operand(other))

    def where(self, condition, other):
        return where(condition, self, other)

    def lerp(self, end, weight):
        return self + (_operand(end) - self) * weight

    # ------------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None, out=None):
        _no_out(out, "sum")
        x = self if dtype is None else self.to(dtype)
        axes = normalize_dims(_dim_arg(dim, axis), self.ndim, "sum") if _dim_arg(dim, axis) is not None else None
        return R.Sum.apply(x, axes=axes, keepdims=_keepdim_arg(keepdim, keepdims))

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None, out=None):
        _no_out(out, "mean")
        x = self if dtype is None else self.to(dtype)
        if not dtypes.is_floating_point(x.dtype):
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, got "
                               f"{x.dtype} (use .float().mean())")
        axes = normalize_dims(_dim_arg(dim, axis), self.ndim, "mean") if _dim_arg(dim, axis) is not None else None
        return R.Mean.apply(x, axes=axes, keepdims=_keepdim_arg(keepdim, keepdims))

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim = _dim_arg(dim, axis)
        axes = normalize_dims(dim, self.ndim, "amax") if dim is not None and dim != () else None
        return R.Amax.apply(self, axes=axes, keepdims=_keepdim_arg(keepdim, keepdims))

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return -(-self).amax(dim, keepdim, axis=axis, keepdims=keepdims)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """max() → the largest element (0-d); max(dim) → (values, indices) along dim; max(other) →
        the element-wise maximum (torch's three forms)."""
        _no_out(out, "max")
        dim = _dim_arg(dim, axis)
        if isinstance(dim, (Tensor, np.ndarray)):
            return self.maximum(dim)
        if dim is None:
            return R.Amax.apply(self, axes=None, keepdims=False, nan_to_nan=True)
        return MaxResult(*self._select_along(dim, _keepdim_arg(keepdim, keepdims), np.argmax))

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out(out, "min")
        dim = _dim_arg(dim, axis)
        if isinstance(dim, (Tensor, np.ndarray)):
            return self.minimum(dim)
        if dim is None:
            return -R.Amax.apply(-self, axes=None, keepdims=False, nan_to_nan=True)
        return MinResult(*self._select_along(dim, _keepdim_arg(keepdim, keepdims), np.argmin))

    def _select_along(self, dim, keepdim, arg):
        """(values, indices) of the element `arg` (argmax/argmin) picks along `dim`; the gradient goes to it.
        A NaN is the maximum and the minimum, as in torch."""
        axis = normalize_dim(dim, self.ndim, "max/min")
        data = self.data
        has_nan = dtypes.is_floating_point(data.dtype) and np.isnan(data).any()
        index = np.argmax(np.isnan(data), axis=axis) if has_nan else None
        picked = arg(data, axis=axis)
        if has_nan:
            picked = np.where(np.isnan(data).any(axis=axis), index, picked)
        picked = np.expand_dims(picked, axis) if data.ndim else picked.reshape(())
        values = R.Gather.apply(self, picked, axis=axis) if data.ndim else self.reshape(())
        if not keepdim and data.ndim:
            values, picked = values.squeeze(axis), np.squeeze(picked, axis)
        return values, Tensor._wrap(picked.astype(np.int64))

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        dim = _dim_arg(dim, axis)
        if dim is None:
            return Tensor._wrap(np.asarray(np.argmax(self.data), dtype=np.int64))
        return self.max(dim, keepdim).indices

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        dim = _dim_arg(dim, axis)
        if dim is None:
            return Tensor._wrap(np.asarray(np.argmin(self.data), dtype=np.int64))
        return self.min(dim, keepdim).indices

    def prod(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None, out=None):
        _no_out(out, "prod")
        x = self if dtype is None else self.to(dtype)
        dim = _dim_arg(dim, axis)
        axis_ = None if dim is None else normalize_dim(dim, self.ndim, "prod")
        return R.Prod.apply(x, axis=axis_, keepdims=_keepdim_arg(keepdim, keepdims))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None, ddof=None):
        """Σ (x − mean)² / (N − correction); correction = 1 (unbiased, torch's default) unless
        `unbiased=False` or `correction=0` (NumPy's `ddof=` is accepted as the same thing)."""
        dim = _dim_arg(dim, axis)
        if isinstance(dim, bool):  # torch's old positional form var(unbiased)
            dim, unbiased = None, dim
        given = [c for c in (correction, ddof) if c is not None]
        if unbiased is not None:
            given.append(1 if unbiased else 0)
        if len(given) > 1:
            raise TypeError("var/std: pass only one of unbiased=, correction=, ddof=")
        c = given[0] if given else 1
        keep = _keepdim_arg(keepdim, keepdims)
        axes = normalize_dims(dim, self.ndim, "var")
        n = int(np.prod([self.data.shape[a] for a in axes])) if axes else self.data.size
        centered = self - self.mean(dim=axes or None, keepdim=True)
        return (centered * centered).sum(dim=axes or None, keepdim=keep) / max(n - c, 0)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None, ddof=None):
        return self.var(dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims, ddof=ddof).sqrt()

    def logsumexp(self, dim, keepdim=False):
        axes = normalize_dims(dim, self.ndim, "logsumexp")
        m = Tensor._wrap(np.max(self.data, axis=axes, keepdims=True))
        m = Tensor._wrap(np.where(np.isfinite(m.data), m.data, 0).astype(self.dtype))
        out = (self - m).exp().sum(dim=axes, keepdim=True).log() + m
        return out if keepdim else out.squeeze(axes)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        """p-norm over `dim` (all elements by default): 2 / 'fro' → √Σx², 1 → Σ|x|, inf → max|x|,
        other p → (Σ|x|^p)^(1/p)."""
        x = self if dtype is None else self.to(dtype)
        axes = normalize_dims(dim, self.ndim, "norm") if dim is not None else None
        if p in ("fro", 2, 2.0):
            return R.Norm2.apply(x, axes=axes, keepdims=keepdim)
        if p in (float("inf"), "inf"):
            return x.abs().amax(dim=axes, keepdim=keepdim)
        if p in (1, 1.0):
            return x.abs().sum(dim=axes, keepdim=keepdim)
        if isinstance(p, str):
            raise ValueError(f"norm: p={p!r} is not supported (use 'fro', or a number)")
        return (x.abs() ** p).sum(dim=axes, keepdim=keepdim) ** (1.0 / p)

    def cumsum(self, dim=None, *, axis=None, dtype=None):
        dim = _dim_arg(dim, axis)
        if dim is None:
            raise TypeError("cumsum() missing required argument 'dim'")
        x = self if dtype is None else self.to(dtype)
        return R.Cumsum.apply(x, axis=normalize_dim(dim, self.ndim, "cumsum"))

    def sort(self, dim=-1, descending=False, stable=False):
        axis = normalize_dim(dim, self.ndim, "sort")
        order = np.argsort(-self.data if descending else self.data, axis=axis, kind="stable")
        return SortResult(R.Gather.apply(self, order, axis=axis), Tensor._wrap(order.astype(np.int64)))

    def argsort(self, dim=-1, descending=False, stable=False):
        return self.sort(dim, descending, stable).indices

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - torch's name
        axis = normalize_dim(dim, self.ndim, "topk")
        if not 0 <= k <= self.data.shape[axis]:
            raise RuntimeError(f"topk: selected index k={k} out of range for dim of size {self.data.shape[axis]}")
        order = np.argsort(-self.data if largest else self.data, axis=axis, kind="stable")
        order = np.take(order, np.arange(k), axis=axis)
        return TopkResult(R.Gather.apply(self, order, axis=axis), Tensor._wrap(order.astype(np.int64)))

    def gather(self, dim, index):
        return R.Gather.apply(self, _raw(index).astype(np.int64), axis=normalize_dim(dim, self.ndim, "gather"))

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        return S.Reshape.apply(self, shape=_shape_args(shape))

    def view(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (tuple, list, numbers.Integral)):
            raise NotImplementedError(f"view({shape[0]!r}) (reinterpreting the bytes as another dtype) is not supported")
        return self.reshape(*shape)

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        start = normalize_dim(start_dim, self.ndim, "flatten")
        end = normalize_dim(end_dim, self.ndim, "flatten")
        if start > end:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        return self.reshape(self.data.shape[:start] + (-1,) + self.data.shape[end + 1:])

    def ravel(self):
        return self.reshape(-1)

    def unflatten(self, dim, sizes):
        axis = normalize_dim(dim, self.ndim, "unflatten")
        return self.reshape(self.data.shape[:axis] + tuple(sizes) + self.data.shape[axis + 1:])

    def permute(self, *dims):
        dims = _shape_args(dims)
        if len(dims) != self.ndim:
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                               f"length of the desired ordering of dimensions i.e. input.dim() = {self.ndim} is not "
                               f"equal to len(dims) = {len(dims)}")
        perm = tuple(normalize_dim(d, self.ndim, "permute") for d in dims)
        if len(set(perm)) != len(perm):
            raise RuntimeError(f"permute(): duplicate dims are not allowed, got {dims}")
        return S.Permute.apply(self, perm=perm)

    def transpose(self, dim0, dim1):
        """Swap dims dim0 and dim1 (torch's meaning; NumPy's full permutation is `permute`)."""
        a, b = normalize_dim(dim0, self.ndim, "transpose"), normalize_dim(dim1, self.ndim, "transpose")
        perm = list(range(self.ndim))
        perm[a], perm[b] = perm[b], perm[a]
        return S.Permute.apply(self, perm=tuple(perm))

    swapaxes = swapdims = transpose

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.transpose(0, 1) if self.ndim == 2 else self

    def unsqueeze(self, dim):
        axis = normalize_dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.data.shape[:axis] + (1,) + self.data.shape[axis:])

    def squeeze(self, dim=None, *, axis=None):
        """Remove length-1 dims (all, or those in `dim`); a named dim of another length stays (torch)."""
        dim = _dim_arg(dim, axis)
        if dim is None:
            return self.reshape(tuple(n for n in self.data.shape if n != 1))
        axes = normalize_dims(dim, self.ndim, "squeeze")
        return self.reshape(tuple(n for i, n in enumerate(self.data.shape) if not (i in axes and n == 1)))

    def expand(self, *sizes):
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
                               f"number of dimensions in the tensor ({self.ndim})")
        own = (1,) * (len(sizes) - self.ndim) + self.data.shape
        target = tuple(o if s == -1 else s for s, o in zip(sizes, own))
        for s, o in zip(target, own):
            if o != 1 and s != o:
                raise RuntimeError(f"expand: the expanded size {s} must match the existing size {o} of a "
                                   f"non-singleton dimension (shape {tuple(self.shape)} to {sizes})")
        return S.Expand.apply(self, shape=target)

    def expand_as(self, other):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
        return S.Repeat.apply(self, reps=sizes)

    def split(self, split_size_or_sections, dim=0):
        axis = normalize_dim(dim, self.ndim, "split")
        n = self.data.shape[axis]
        if isinstance(split_size_or_sections, numbers.Integral):
            step = int(split_size_or_sections)
            bounds = [(s, min(s + step, n)) for s in range(0, n, step)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n}, got {sizes}")
            edges = np.cumsum([0] + sizes)
            bounds = list(zip(edges[:-1], edges[1:]))
        return tuple(self[(slice(None),) * axis + (slice(int(a), int(b)),)] for a, b in bounds)

    def chunk(self, chunks, dim=0):
        n = self.data.shape[normalize_dim(dim, self.ndim, "chunk")]
        return self.split(-(-n // chunks), dim)

    def flip(self, dims):
        axes = normalize_dims(dims, self.ndim, "flip")
        index = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(self.ndim))
        return self[index]

    def clone(self, memory_format=None):
        return E.Clone.apply(self)

    def contiguous(self, memory_format=None):
        return self if self.data.flags.c_contiguous else self.clone()

    def __getitem__(self, index):
        return S.GetItem.apply(self, index=_raw_index(index))

    # ------------------------------------------------------------------ in place
    def __setitem__(self, index, value):
        S.SetItem.apply_(self, _operand(value) if isinstance(value, Tensor) else _raw(value), index=_raw_index(index))

    def __iadd__(self, other):
        return E.Add.apply_(self, _operand(other))

    def __isub__(self, other):
        return E.Sub.apply_(self, _operand(other))

    def __imul__(self, other):
        return E.Mul.apply_(self, _operand(other))

    def __itruediv__(self, other):
        return E.Div.apply_(self, _operand(other))

    def add_(self, other, *, alpha=1):
        return E.Add.apply_(self, _operand(other) if alpha == 1 else _operand(other) * alpha)

    def sub_(self, other, *, alpha=1):
        return E.Sub.apply_(self, _operand(other) if alpha == 1 else _operand(other) * alpha)

    def mul_(self, other):
        return E.Mul.apply_(self, _operand(other))

    def div_(self, other):
        return E.Div.apply_(self, _operand(other))

    def pow_(self, exponent):
        return E.Pow.apply_(self, _operand(exponent))

    def clamp_(self, min=None, max=None):  # noqa: A002
        if min is None and max is None:
            raise RuntimeError("clamp_: at least one of 'min' or 'max' must not be None")
        return E.Clip.apply_(self, lo=_raw(min), hi=_raw(max))

    clip_ = clamp_

    def relu_(self):
        return E.ReLU.apply_(self)

    def neg_(self):
        return E.Neg.apply_(self)

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        S.SetItem.apply_(self, _raw(value), index=Ellipsis)
        return self

    def copy_(self, src, non_blocking=False):
        """Copy `src` (broadcast to this shape, cast to this dtype) into this tensor's memory."""
        src = _operand(src) if isinstance(src, Tensor) else np.asarray(src)
        S.SetItem.apply_(self, src, index=Ellipsis)
        return self

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        with no_grad():
            return self.copy_(resolve(generator).uniform(a, b, self.data.shape).astype(self.dtype))

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        with no_grad():
            return self.copy_(resolve(generator).normal(mean, std, self.data.shape).astype(self.dtype))

    # ------------------------------------------------------------------ new tensors like this one
    def new_tensor(self, data, dtype=None, requires_grad=False):
        return Tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, requires_grad=False):
        return Tensor._from_new(np.zeros(_shape_args(size), dtype=dtype or self.dtype), requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad=False):
        return Tensor._from_new(np.ones(_shape_args(size), dtype=dtype or self.dtype), requires_grad)

    def new_full(self, size, fill_value, dtype=None, requires_grad=False):
        return Tensor._from_new(np.full(_shape_args((size,)), fill_value, dtype=dtype or self.dtype), requires_grad)

    def new_empty(self, *size, dtype=None, requires_grad=False):
        return self.new_zeros(*size, dtype=dtype, requires_grad=requires_grad)

    @classmethod
    def _from_new(cls, array, requires_grad=False) -> "Tensor":
        t = cls._wrap(array)
        t.requires_grad = requires_grad
        return t


bind_tensor_class(Tensor)

# NumPy ufuncs that are Tensor ops (see Tensor.__array_ufunc__).
_UFUNC_OPS = {
    np.add: lambda a, b: _as_t(a) + b, np.subtract: lambda a, b: _as_t(a) - b, np.multiply: lambda a, b: _as_t(a) * b,
    np.true_divide: lambda a, b: _as_t(a) / b, np.power: lambda a, b: _as_t(a) ** b, np.matmul: lambda a, b: _as_t(a) @ b,
    np.negative: lambda a: -a, np.exp: lambda a: a.exp(), np.log: lambda a: a.log(), np.sqrt: lambda a: a.sqrt(),
    np.absolute: lambda a: a.abs(), np.tanh: lambda a: a.tanh(), np.sin: lambda a: a.sin(), np.cos: lambda a: a.cos(),
    np.maximum: lambda a, b: _as_t(a).maximum(b), np.minimum: lambda a, b: _as_t(a).minimum(b),
}


def _as_t(x):
    return x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x))


# ---------------------------------------------------------------------- helpers


def _softmax_dim(dim, ndim: int, name: str) -> int:
    if dim is None:
        # torch's legacy implicit choice (with its warning): dim 0 for 0-, 1- and 3-D input, else 1
        dim = 0 if ndim in (0, 1, 3) else 1
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include "
                      f"dim=X as an argument (dim={dim} was used, as in torch).", UserWarning, stacklevel=3)
    return normalize_dim(dim, ndim, name)


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
    if isinstance(index, list) and any(isinstance(i, Tensor) for i in index):
        return [_raw(i) for i in index]
    return _raw(index)


def where(condition, input=None, other=None) -> Tensor:  # noqa: A002 - torch's names
    """Element-wise `input` where `condition` holds, else `other` (torch.where; scalars keep the
    tensor's dtype). With only `condition`, the indices where it holds (as torch.nonzero(as_tuple=True))."""
    cond = np.asarray(_raw(condition), dtype=bool)
    if input is None and other is None:
        return tuple(Tensor._wrap(i.astype(np.int64)) for i in np.nonzero(cond))
    a, b = _operand(input), _operand(other)
    if isinstance(a, numbers.Number) and isinstance(b, Tensor):
        a = np.asarray(a, dtype=b.dtype)
    if isinstance(b, numbers.Number) and isinstance(a, Tensor):
        b = np.asarray(b, dtype=a.dtype)
    return E.Where.apply(cond, a, b)


def _no_out(out, name: str) -> None:
    """NumPy's np.sum/np.max/... call x.sum(axis=..., out=None) on a Tensor: accept that, refuse a real out=."""
    if out is not None:
        raise TypeError(f"{name}(): out= is not supported")
