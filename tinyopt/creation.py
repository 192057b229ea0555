"""Making tensors, with torch's names, signatures and default dtypes.

Defaults as torch: floating-point results are float32 (`zeros`, `ones`, `rand`, `randn`, `eye`,
`linspace`, `empty`); `arange` of integers and `randint`/`randperm` give int64; `full` takes its
dtype from the fill value. Random functions draw from `generator=` (a `tinyopt.Generator`, a NumPy
Generator or a seed) or from the default generator (`to.manual_seed`). The numbers differ from
torch's for the same seed (another random number generator); their distributions do not.
"""
from __future__ import annotations

import numbers

import numpy as np

from tinyopt import dtypes
from tinyopt.device import check_device
from tinyopt.random import resolve
from tinyopt.tensor import Tensor, _shape_args

_FLOAT = np.float32


def _dtype(dtype, default) -> np.dtype:
    return dtypes.as_dtype(default if dtype is None else dtype)


def _make(array, dtype=None, requires_grad=False, device=None) -> Tensor:
    if device is not None:
        check_device(device)
    if dtype is not None:
        array = array.astype(dtypes.as_dtype(dtype), copy=False)
    t = Tensor._wrap(array)
    t.requires_grad = requires_grad
    return t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor (always a copy of `data`). Python floats become float32; NumPy float64 arrays
    stay float64 (what gradient checks need); Python ints become int64."""
    if device is not None:
        check_device(device)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like `tensor`, but shares memory with an ndarray (or returns a Tensor) when no conversion is needed."""
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or dtypes.as_dtype(dtype) == data.dtype):
        return _make(data, device=device)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing `array`'s memory: changing one changes the other (torch.from_numpy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects an np.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(np.zeros(_shape_args(size), dtype=_dtype(dtype, _FLOAT)), None, requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(np.ones(_shape_args(size), dtype=_dtype(dtype, _FLOAT)), None, requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zero-filled (NumPy's uninitialised memory would make results depend on what was there before)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:
        dtype = (np.bool_ if isinstance(fill_value, bool) else np.int64 if isinstance(fill_value, numbers.Integral)
                 else _FLOAT)
    return _make(np.full(_shape_args((size,)), fill_value, dtype=dtypes.as_dtype(dtype)), None, requires_grad, device)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(np.eye(n, m, dtype=_dtype(dtype, _FLOAT)), None, requires_grad, device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """[start, end) in steps of `step`; int64 when all three are integers, else float32 (torch)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = np.int64 if ints else _FLOAT
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    return _make(np.arange(start, end, step).astype(dtypes.as_dtype(dtype)), None, requires_grad, device)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make(np.linspace(start, end, steps).astype(_dtype(dtype, _FLOAT)), None,
                 requires_grad, device)


def zeros_like(input, dtype=None, requires_grad=False) -> Tensor:  # noqa: A002 - torch's names
    return _make(np.zeros(np.shape(input), dtype=_dtype(dtype, np.asarray(input).dtype)),
                 None, requires_grad)


def ones_like(input, dtype=None, requires_grad=False) -> Tensor:  # noqa: A002
    return _make(np.ones(np.shape(input), dtype=_dtype(dtype, np.asarray(input).dtype)),
                 None, requires_grad)


def empty_like(input, dtype=None, requires_grad=False) -> Tensor:  # noqa: A002
    return zeros_like(input, dtype=dtype, requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, requires_grad=False) -> Tensor:  # noqa: A002
    return _make(np.full(np.shape(input), fill_value, dtype=_dtype(dtype, np.asarray(input).dtype)),
                 None, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1)."""
    array = resolve(generator).random(_shape_args(size))
    return _make(array.astype(_dtype(dtype, _FLOAT)), None, requires_grad, device)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal."""
    array = resolve(generator).standard_normal(_shape_args(size))
    return _make(array.astype(_dtype(dtype, _FLOAT)), None, requires_grad, device)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    """Integers uniform on [low, high): randint(high, size) or randint(low, high, size)."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint() needs a size: randint(high, size) or randint(low, high, size)")
        low, high, size = 0, low, high
    array = resolve(generator).integers(low, high, size=_shape_args((size,)))
    return _make(array.astype(_dtype(dtype, np.int64)), None, False, device)


def randperm(n: int, *, generator=None, dtype=None, device=None) -> Tensor:
    return _make(resolve(generator).permutation(n).astype(_dtype(dtype, np.int64)), None,
                 False, device)


def rand_like(input, generator=None, dtype=None) -> Tensor:  # noqa: A002
    return rand(*np.shape(input), generator=generator, dtype=dtype or np.asarray(input).dtype)


def randn_like(input, generator=None, dtype=None) -> Tensor:  # noqa: A002
    return randn(*np.shape(input), generator=generator, dtype=dtype or np.asarray(input).dtype)


def normal(mean, std, size, *, generator=None) -> Tensor:
    return _make(resolve(generator).normal(mean, std, _shape_args((size,))).astype(_FLOAT))
