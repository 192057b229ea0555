"""Keep freed memory in the process for reuse: glibc malloc's mmap and trim thresholds.

A training step allocates the same large temporaries every time (im2col columns, activations,
gradients: megabytes each).  glibc serves blocks above its mmap threshold with a fresh `mmap` and
returns them to the OS on `free`, and trims the top of the heap when much of it is free; the next
step then touches brand-new pages, and every 4 KiB page costs a page fault (thousands per CNN
step: README's "Threads and memory" gives the measured cost).  Fixing the thresholds (which also
switches off glibc's dynamic adjustment) keeps those blocks in the heap, so the next step reuses
warm pages.  The price is that the process keeps up to `trim_threshold` bytes of freed memory
instead of returning it; peak RSS is unchanged.

This changes the whole process, so importing tinyopt never does it: the `tinyopt` command line,
the tour and the benchmarks call `tinyopt.tune_malloc()`; a library user may call it too.
`TINYOPT_MALLOC_TUNING=0` makes it a no-op, and so does a system without glibc (macOS, Windows, musl).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3

_tuned = None


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Set glibc's M_MMAP_THRESHOLD (blocks below it come from the reusable heap; 32 MiB is glibc's
    maximum) and M_TRIM_THRESHOLD (free heap kept before returning memory to the OS).  Returns True
    when applied; False when disabled by `TINYOPT_MALLOC_TUNING=0` or when malloc is not glibc's."""
    global _tuned
    _tuned = False
    if os.environ.get("TINYOPT_MALLOC_TUNING", "1").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _tuned = bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    return _tuned


def is_tuned() -> bool | None:
    """True/False after `tune_malloc()` ran (applied or not), None before."""
    return _tuned
