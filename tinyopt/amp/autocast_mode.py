"""`autocast`: run the ops torch runs in 16 bits in float16 or bfloat16, the rest in float32.

    with to.amp.autocast(device_type="cpu", dtype=to.float16):
        logits = model(x)                  # linear / conv / matmul: 16-bit outputs
        loss = F.cross_entropy(logits, y)  # losses: float32
    scaler.scale(loss).backward()          # backward outside the region, as in torch

Mixed precision as Micikevicius et al. 2018 ("Mixed Precision Training", ICLR) describe it: the
weights stay float32 (the master copy the optimizer updates); inside the region each op on the
`lower_precision_fp` list rounds its floating inputs to 16 bits, multiplies them with float32
accumulation and rounds its result to 16 bits; the ops on the `fp32` list (losses, prod) cast their
inputs to float32; the rest run in whatever dtype their inputs have (NumPy/torch promotion: a 16-bit
and a 32-bit input give 32 bits). The backward of each op runs in the dtype its forward ran in, and
each gradient is cast back to its input's dtype, so float32 parameters get float32 `.grad`s.

The op lists are torch's CPU lists (`torch.autocast("cpu")`), declared on each op class in
`tinyopt/ops/` as `autocast_policy`; `Function.apply` applies them (autograd/autocast_mode.py).
torch's CUDA lists also keep softmax, log_softmax, sum, cumsum, exp, log, pow and norm in float32:
`autocast(..., op_lists="cuda")` uses those (tinyopt still computes on the CPU).

On a CPU the 16-bit arithmetic is emulated on float32 BLAS (ops/precision.py): results are those of
16-bit hardware up to the order of float32 additions, the memory saved for backward is halved, but
nothing runs faster (every lower-precision op pays for two casts). The 2–8× speed-ups of the paper
need tensor-core hardware.

`dtype=None` means bfloat16, torch's default for the CPU. `cache_enabled` (default True) rounds each
parameter once per outermost region, as torch does. Nested regions restore the outer state on exit;
`enabled=False` turns autocast off inside an enabled region.
"""
from __future__ import annotations

import functools

import numpy as np

from tinyopt import dtypes
from tinyopt.autograd import autocast_mode as _mode
from tinyopt.autograd.autocast_mode import state
from tinyopt.device import check_device

_LOW = (np.dtype(np.float16), np.dtype(dtypes.bfloat16))


class autocast:  # noqa: N801 - torch's name
    """Context manager and decorator (torch.amp.autocast's signature; `op_lists` is tinyopt's)."""

    def __init__(self, device_type: str = "cpu", dtype=None, enabled: bool = True, cache_enabled=None,
                 *, op_lists: str = "cpu"):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        check_device(device_type)
        if not isinstance(enabled, bool):
            raise TypeError(f"autocast(enabled=...) takes a bool, got {type(enabled).__name__}")
        dtype = np.dtype(dtypes.bfloat16) if dtype is None else dtypes.as_dtype(dtype)
        if enabled and dtype not in _LOW:
            # torch warns and turns autocast off; tinyopt refuses, so that a typo is not a silent fp32 run
            raise RuntimeError(f"CPU autocast supports to.float16 and to.bfloat16, got dtype {dtype}")
        if op_lists not in ("cpu", "cuda"):
            raise ValueError(f"op_lists must be 'cpu' (torch's CPU autocast lists) or 'cuda', got {op_lists!r}")
        self.device = device_type
        self.fast_dtype = dtype
        self._enabled = enabled
        self._cache_enabled = True if cache_enabled is None else bool(cache_enabled)
        self._op_lists = op_lists
        self._saved = []

    def __enter__(self):
        self._saved.append((state.dtype, state.op_lists, state.cache))
        state.depth += 1
        _mode.active += 1
        if self._enabled:
            state.dtype = self.fast_dtype
            state.op_lists = self._op_lists
            if self._cache_enabled and state.cache is None:
                state.cache = {}
            elif not self._cache_enabled:
                state.cache = None
        else:
            state.dtype = None
        return self

    def __exit__(self, *exc):
        state.dtype, state.op_lists, outer_cache = self._saved.pop()
        state.depth -= 1
        _mode.active -= 1
        # torch empties the cast cache when the outermost region exits
        state.cache = outer_cache if state.depth else None
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled, op_lists=self._op_lists):
                return fn(*args, **kwargs)
        return wrapper


def is_autocast_available(device_type: str) -> bool:
    return device_type == "cpu"


def is_autocast_enabled(device_type: str = "cpu") -> bool:
    """True inside an enabled autocast region (torch.is_autocast_enabled)."""
    return device_type == "cpu" and state.dtype is not None


def get_autocast_dtype(device_type: str = "cpu"):
    """The dtype of the innermost enabled region, bfloat16 outside any (torch.get_autocast_dtype)."""
    return state.dtype if state.dtype is not None else np.dtype(dtypes.bfloat16)


__all__ = ["autocast", "get_autocast_dtype", "is_autocast_available", "is_autocast_enabled"]
