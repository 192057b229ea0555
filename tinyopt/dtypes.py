"""Data types under torch's names, and the one predicate for "can carry a gradient".

`to.float32`, `to.int64`, ... are NumPy scalar types, so `x.dtype == to.float32` works as in torch
and `np.zeros(3, to.float16)` works as in NumPy. `to.bfloat16` comes from `ml_dtypes` (brain float:
float32's 8 exponent bits, 7 mantissa bits).

`ml_dtypes.bfloat16` is not an `np.floating` subtype (its dtype kind is 'V'), so every place that
asks "is this a floating-point tensor?" (requires_grad, recording an op in the graph, optimizers,
autocast) must call `is_floating_point` below, never `np.issubdtype(dtype, np.floating)`.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

float16 = half = np.float16
float32 = float = np.float32  # noqa: A001 - torch's names
float64 = double = np.float64
bfloat16 = ml_dtypes.bfloat16
uint8 = np.uint8
int8 = np.int8
int16 = short = np.int16
int32 = int = np.int32  # noqa: A001
int64 = long = np.int64
bool = np.bool_  # noqa: A001

_BFLOAT16 = np.dtype(bfloat16)

# torch's dtype names, for messages and for `to(dtype)` given as a string ("float32", "torch.half").
_BY_NAME = {
    "float16": float16, "half": float16, "float32": float32, "float": float32, "float64": float64,
    "double": float64, "bfloat16": bfloat16, "uint8": uint8, "int8": int8, "int16": int16, "short": int16,
    "int32": int32, "int": int32, "int64": int64, "long": int64, "bool": bool,
}


def is_floating_point(dtype) -> bool:
    """True for float16, bfloat16, float32, float64 (the dtypes that can require gradients)."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype == _BFLOAT16


def is_dtype_name(name) -> bool:
    return isinstance(name, str) and name.removeprefix("torch.") in _BY_NAME


def as_dtype(dtype) -> np.dtype:
    """A NumPy dtype from a NumPy/tinyopt dtype, a type, or a name ("float32", "torch.long")."""
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        if name not in _BY_NAME:
            raise TypeError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(_BY_NAME))}")
        return np.dtype(_BY_NAME[name])
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not a dtype; use e.g. to.float32 or to.int64") from None


def finfo(dtype):
    """Machine limits of a floating-point dtype (bfloat16 included): eps, max, tiny (smallest normal),
    smallest_subnormal, as `torch.finfo`."""
    dtype = as_dtype(dtype)
    if not is_floating_point(dtype):
        raise TypeError(f"finfo needs a floating-point dtype, got {dtype}")
    return ml_dtypes.finfo(dtype)


def iinfo(dtype):
    return np.iinfo(as_dtype(dtype))
