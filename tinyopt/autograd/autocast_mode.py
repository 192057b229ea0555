"""Autocast state, and the one function `Function.apply` calls to cast an op's inputs under autocast.

The user-facing context manager is `tinyopt.amp.autocast`; this module only holds what the op layer
needs, so that `autograd.function` does not import `tinyopt.amp`.

Each op class declares torch's autocast list it belongs to in the class attribute `autocast_policy`:

    "lower_precision_fp"  floating inputs are rounded to the autocast dtype (float16 / bfloat16):
                          matmul, linear, conv2d (torch CPU's `lower_precision_fp` list)
    "fp32"                floating inputs are cast to float32: the losses, prod (torch CPU's `fp32` list)
    "promote"             floating inputs are cast to the widest floating dtype among them: cat
    None                  nothing is cast; the op runs in its inputs' dtypes (torch: "not listed")

Ops whose list differs on CUDA also declare `autocast_policy_cuda` (softmax, log_softmax, sum, cumsum,
exp, log, pow and norm run in float32 there); `autocast(..., op_lists="cuda")` uses those.

As in torch, float64 inputs are never cast ("eligible" means floating and not double), non-floating
inputs are never cast, and only Tensor arguments are cast (an op's constant arrays are the op's).
A cast goes through `astype`; the engine casts each gradient back to its input's dtype
(`graph.run_backward`), which is what torch's recorded `to()` does in its backward.
"""
from __future__ import annotations

import threading

import numpy as np

from tinyopt.dtypes import is_floating_point

LOWER, FP32, PROMOTE = "lower_precision_fp", "fp32", "promote"
POLICIES = (LOWER, FP32, PROMOTE, None)
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


class _State(threading.local):
    """Per thread, as torch's. `dtype` is None when autocast is off: `Function.apply` tests only that."""

    dtype = None           # the low-precision dtype of the innermost enabled autocast region
    op_lists = "cpu"       # which of torch's lists: "cpu" or "cuda"
    cache = None           # id(leaf tensor) -> (tensor, version, dtype, cast array) while cache_enabled
    depth = 0              # nesting depth of autocast regions (the cache is cleared when it returns to 0)


state = _State()
# How many enabled autocast regions are open, in all threads: a plain module global, so that
# `Function.apply` pays one attribute lookup when autocast is off (the thread-local is read only
# when some region is open).
active = 0   # (also counts enabled=False regions: it only gates the thread-local check)


def policy_of(cls) -> str | None:
    """The autocast list an op class belongs to under the active op lists."""
    if state.op_lists == "cuda":
        return getattr(cls, "autocast_policy_cuda", cls.autocast_policy)
    return cls.autocast_policy


def _eligible(arr) -> bool:
    return is_floating_point(arr.dtype) and arr.dtype != _FLOAT64


def cast_inputs(policy: str, args: tuple, raw: list, tensor_cls) -> list:
    """`raw` (the arrays forward will see) with every eligible Tensor argument cast per `policy`."""
    if policy == PROMOTE:
        # the widest of float16, bfloat16, float32 is float32 (float16 with bfloat16 also gives float32)
        floats = {r.dtype for a, r in zip(args, raw) if isinstance(a, tensor_cls) and _eligible(r)}
        if len(floats) < 2:
            return raw
        target = _FLOAT32
    else:
        target = np.dtype(state.dtype) if policy == LOWER else _FLOAT32
    out = list(raw)
    cache = state.cache
    with np.errstate(over="ignore"):     # float32 values past float16's max round to ±inf, as in torch
        return _cast(policy, args, raw, out, target, cache, tensor_cls)


def _cast(policy, args, raw, out, target, cache, tensor_cls) -> list:
    for i, (a, r) in enumerate(zip(args, raw)):
        if not isinstance(a, tensor_cls) or r.dtype == target or not _eligible(r):
            continue
        # torch caches the low-precision copy of a leaf that requires grad (a parameter) for the
        # whole region, so a weight used by many ops is rounded once.
        if cache is not None and a._node is None and a._requires_grad and policy == LOWER:
            hit = cache.get(id(a))
            if hit is not None and hit[0] is a and hit[1] == a._version.value and hit[2] == target:
                out[i] = hit[3]
                continue
            out[i] = r.astype(target)
            cache[id(a)] = (a, a._version.value, target, out[i])
        else:
            out[i] = r.astype(target)
    return out


__all__ = ["FP32", "LOWER", "POLICIES", "PROMOTE", "cast_inputs", "policy_of", "state"]
