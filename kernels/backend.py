"""Which twin runs: the Numba kernel or its readable NumPy reference.

Every hot op in `kernels/` exists twice with the same signature: `<op>_reference` (plain NumPy,
the specification) and `<op>_numba` (the fast path). `dispatch(reference, fast)` returns a
function that calls one of them, chosen at call time:

- environment variable `TINYOPT_KERNELS=reference` (or `numba`, the default), read when a kernel
  is first used (a bad value is an error then, naming the allowed ones, not an import crash);
- `set_backend("reference" | "numba")`, or the `backend("reference")` context manager, at run time.

A kernel may also have a `<op>_parallel` twin (`parallel=True`, a `prange` over independent
(sample, channel) planes, same result bit for bit): it runs instead of `<op>_numba` only when
`set_kernel_threads(n)` with n > 1 was called (`tinyopt.set_num_threads(n)` with n > 1 does), never
at import. `tinyopt/threads.py` says why Numba's pool then does all the work, the GEMMs included
(`kernels.blas` splits them), while BLAS's own pool stays on one thread.

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
_threads = 1      # threads the `_parallel` twins may use; 1 = the serial `_numba` twins run


def set_kernel_threads(n: int) -> None:
    """Let the `_parallel` twins run (n > 1) or not (n = 1). Numba's own count is set by the caller."""
    global _threads
    if int(n) < 1:
        raise ValueError(f"kernel threads must be at least 1, got {n}")
    _threads = int(n)


def kernel_threads() -> int:
    return _threads


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


def dispatch(reference, fast, parallel=None):
    """One public function that routes to `reference` or `fast` by the current backend (and to
    `parallel`, when given, instead of `fast` while kernel threads > 1)."""

    @functools.wraps(reference)
    def op(*args, **kwargs):
        if (_current or get_backend()) == "reference":
            return reference(*args, **kwargs)
        if parallel is not None and _threads > 1:
            return parallel(*args, **kwargs)
        return fast(*args, **kwargs)

    op.reference = reference
    op.fast = fast
    op.parallel = parallel
    return op
