"""Which twin runs: the Numba kernel or its readable NumPy reference.

Every hot op in `kernels/` exists twice with the same signature: `<op>_reference` (plain NumPy,
the specification) and `<op>_numba` (the fast path). `dispatch(reference, fast)` returns a
function that calls one of them, chosen at call time:

- environment variable `TINYOPT_KERNELS=reference` (or `numba`, the default), read when a kernel
  is first used (a bad value is an error then, naming the allowed ones, not an import crash);
- `set_backend("reference" | "numba")`, or the `backend("reference")` context manager, at run time.

Numba compiles lazily (on first call) and caches to disk (`cache=True`; `NUMBA_CACHE_DIR` moves
the cache). `NUMBA_DISABLE_JIT=1` runs the `_numba` twins as plain Python for debugging.
"""
from __future__ import annotations

import contextlib
import functools
import os

BACKENDS = ("numba", "reference")


def _from_env() -> str:
    name = os.environ.get("TINYOPT_KERNELS", "numba").strip().lower() or "numba"
    if name not in BACKENDS:
        raise ValueError(f"the environment variable TINYOPT_KERNELS must be one of {', '.join(BACKENDS)}, got "
                         f"{name!r}: unset it or set TINYOPT_KERNELS=reference")
    return name


_current = None  # chosen from the environment on first use


def get_backend() -> str:
    global _current
    if _current is None:
        _current = _from_env()
    return _current


def set_backend(name: str) -> None:
    global _current
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    _current = name


@contextlib.contextmanager
def backend(name: str):
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def dispatch(reference, fast):
    """One public function that routes to `reference` or `fast` by the current backend."""

    @functools.wraps(reference)
    def op(*args, **kwargs):
        impl = reference if (_current or get_backend()) == "reference" else fast
        return impl(*args, **kwargs)

    op.reference = reference
    op.fast = fast
    return op
