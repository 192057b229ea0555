"""`tinyopt.set_num_threads(n)` / `get_num_threads()`: one thread count for BLAS and Numba together.

tinyopt's time goes to two thread pools: the BLAS library under NumPy (OpenBLAS, MKL or BLIS; the
GEMMs of linear and conv layers) and Numba's (the `parallel=True` kernels: col2im, the pooling
loops). Each sizes itself to every core by default, and they do not know of each other.

Why one knob matters: both pools *busy-wait*. An OpenBLAS worker spins for a while after its GEMM
returns, and every parallel region (a GEMM split in two, a Numba `prange` loop) ends in a barrier
that waits for its slowest thread. On 2 cores, 2 BLAS threads still spinning while 2 Numba threads
start a loop means 4 runnable threads on 2 cores; and on a machine shared with other jobs a thread
of the region is often descheduled, so the other one spins for a whole scheduler slice. That was
why the earlier attempt's `parallel=True` kernels were many times slower under load (it hits BLAS's own 2-thread
GEMMs as much: on a loaded machine one thread is often faster than two).
On a loaded machine the parallel twins with the 'omp' layer were several times slower than the
serial kernels, and with 'workqueue' about as fast (README, "Threads", has the figures). So the parallel
kernel twins (`kernels/backend.py`) run only after `set_num_threads(n > 1)`, which also selects the
'workqueue' layer (its idle threads sleep instead of spinning) unless NUMBA_THREADING_LAYER is set.
With `set_num_threads(1)` nothing spins for a partner and a loaded machine degrades gracefully;
with 2 on a quiet 2-core machine both cores work. On a shared machine the BLAS threads were the
worse offender (OpenBLAS spins; the workqueue kernels sleep), so `blas_threads=1` with n = 2 keeps
the kernels' second thread without OpenBLAS's (README, "Threads", has the measurements).

    tinyopt.set_num_threads(n)   # BLAS (via threadpoolctl) and Numba (numba.set_num_threads) to n
    tinyopt.set_num_threads(2, blas_threads=1)   # Numba's kernels on 2 threads, BLAS on 1
    tinyopt.get_num_threads()    # the count last set, or BLAS's current count

Torch's equivalents: `torch.set_num_threads` / `torch.get_num_threads`. Notes:

- Numba's count is per calling thread (Numba's rule) and cannot exceed `NUMBA_NUM_THREADS` (the
  number of cores unless that variable says otherwise): a larger n is capped for Numba.
- The environment variables OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / NUMBA_NUM_THREADS, set before
  the process starts, do the same without code; this function changes the counts at run time.
- Nothing happens at import: the thread pools are left alone until this is called.
"""
from __future__ import annotations

import numbers

_requested: int | None = None


def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _check_count(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads expects an int for {what}, got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: {what} must be at least 1, got {n}")
    return int(n)


def set_num_threads(n: int, *, blas_threads: int | None = None) -> None:
    """Use `n` threads in Numba's parallel kernels and in BLAS (n ≥ 1); `blas_threads` gives BLAS
    its own count (e.g. `set_num_threads(2, blas_threads=1)` on a shared machine)."""
    global _requested
    n = _check_count(n, "the number of threads")
    blas = n if blas_threads is None else _check_count(blas_threads, "blas_threads")
    import numba

    from tinyopt.kernels.backend import set_kernel_threads

    _choose_threading_layer()
    _blas_controller().limit(limits=blas, user_api="blas")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    set_kernel_threads(n)
    _requested = n


def _choose_threading_layer() -> None:
    """Numba's 'workqueue' threading layer unless the user chose one (NUMBA_THREADING_LAYER):
    its idle threads sleep, while the default 'omp' layer (GNU OpenMP) spins after each parallel
    loop, taking the core from BLAS and from other processes. Only possible before Numba starts
    its threads (the first parallel kernel or numba.set_num_threads); afterwards left as it is."""
    import os

    import numba
    from numba.np.ufunc import parallel

    if "NUMBA_THREADING_LAYER" not in os.environ and not parallel._is_initialized:
        numba.config.THREADING_LAYER = "workqueue"


def get_num_threads() -> int:
    """The count given to `set_num_threads`, or else the BLAS library's current thread count."""
    if _requested is not None:
        return _requested
    counts = [info["num_threads"] for info in _blas_controller().info() if info.get("user_api") == "blas"]
    return max(counts) if counts else 1


def numba_threads() -> int:
    """Numba's current thread count for the calling thread (what a `prange` loop splits into)."""
    import numba

    return numba.get_num_threads()


__all__ = ["get_num_threads", "numba_threads", "set_num_threads"]
