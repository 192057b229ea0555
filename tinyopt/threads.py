"""`tinyopt.set_num_threads(n)` / `get_num_threads()`: one thread count, one thread pool.

tinyopt's time goes to two kinds of work: the GEMMs of linear and conv layers (the BLAS library
under NumPy, OpenBLAS here) and the Numba kernels (whose `parallel=True` twins run the direct
convolution, im2col/col2im, ReLU, max pooling and the conv bias gradient on several threads).
Each library has its own thread pool, sized to every core by default, and they do not know of
each other.

Why they must not both hold the cores: both *busy-wait*. An OpenBLAS worker spins for a long
while after its GEMM returns (its THREAD_TIMEOUT, about 2^28 cycles by default), and every parallel
region ends in a barrier that waits for its slowest thread. With 2 BLAS threads still spinning
while 2 Numba threads start a loop, 4 runnable threads share 2 cores; on a machine shared with
other jobs a thread of a region is often descheduled too, and its partner spins for a whole
scheduler slice. Measured on 2 cores: a LeNet-5 training step with both pools on 2 threads was
10-17× slower than with either pool alone.

So one pool does all the work, Numba's:

    tinyopt.set_num_threads(n)                   # Numba's n threads: the kernels' twins, and every large
                                                 # GEMM split into n one-thread BLAS calls (kernels.blas)
    tinyopt.set_num_threads(n, blas_threads=1)   # the twins on n, each GEMM whole on one BLAS thread
    tinyopt.set_num_threads(n, blas_threads=n)   # BLAS's own pool on n, the Numba kernels serial
    tinyopt.set_num_threads(1)                   # everything on one thread
    tinyopt.get_num_threads()                    # the count last set, or BLAS's current count

The first is the one to use. Against BLAS's own pool (the third), ms per step on the 2-core Intel
VM (2026-12-04; README, "Threads", has the tables): a LeNet-5 Adam step at batch 64 / 256 3.05 / 10.2
against 4.34 / 15.5 (torch: 3.80 / 11.2), the Keras CNN 28.7 against 32.5, CNN92 88 against 94. Under
load (one busy loop beside it) it held up best: LeNet-5 at 64 8.1-9.3 ms against 9.4-10.1. With the
twins on, the stride-1 convolutions up to O·C·KH·KW = 12,288 with long enough rows take the direct
loops (`kernels.conv.conv_path`); the larger ones and the linear layers run split GEMMs, as fast as
BLAS's own two threads. The exception is a network of GEMMs alone on a quiet machine: an SGD step of
the MLP 784-256-10 took 1.32-1.48 ms against 0.97-1.06 on BLAS's pool, whose workers spin between
GEMMs for about 0.1 s where OpenMP's (below) sleep after 0.1-0.2 ms and take some 60 µs to wake.

The parallel twins run on Numba's 'omp' layer (GNU OpenMP) unless NUMBA_THREADING_LAYER says
otherwise: its regions start in microseconds, where the 'workqueue' layer took about 0.25 ms per
region and made every kernel at these sizes slower than the serial loop. OpenMP's threads spin
after a region too, so unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is set, `set_num_threads` sets
GOMP_SPINCOUNT=10000 (here 0.1-0.2 ms of spinning, then sleep) before Numba loads OpenMP:
nearly as fast as the default spin on a quiet machine (an MLP step 1.10 against 1.07 ms: a region
that starts after more than about 0.2 ms of Python wakes its threads, some 60 µs), and it gives the
core back under load, where GNU's default of 300,000 spins made the LeNet-5 step 2-8 times and
the MLP step 7-8 times slower. That environment variable is the one process-wide effect, and only of
this call (never of the import).

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
    """Use `n` threads (n ≥ 1), all from Numba's pool: the kernels' parallel twins run on n threads
    and each large GEMM is split into n single-threaded BLAS calls on them (BLAS's own pool is set
    to one thread). With `blas_threads=m`, BLAS's own pool gets m threads instead and no GEMM is
    split; the twins then run on n only if m < n (the module docstring says why the two pools
    never both get the cores)."""
    global _requested
    n = _check_count(n, "the number of threads")
    if blas_threads is None:
        blas, kernel_threads, gemm_threads = 1, n, n
    else:
        blas = _check_count(blas_threads, "blas_threads")
        kernel_threads, gemm_threads = (n if blas < n else 1), 1
    import numba

    from tinyopt.kernels.backend import set_kernel_threads
    from tinyopt.kernels.blas import set_gemm_threads

    _choose_threading_layer()
    _blas_controller().limit(limits=blas, user_api="blas")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    set_kernel_threads(kernel_threads)
    set_gemm_threads(min(gemm_threads, numba.config.NUMBA_NUM_THREADS))
    _requested = n


# A few microseconds of spinning before an idle OpenMP thread sleeps (GNU's default is 300,000
# spins, or much longer with OMP_WAIT_POLICY=active); measured as fast on a quiet machine.
GOMP_SPINCOUNT = "10000"


def _choose_threading_layer() -> None:
    """Numba's 'omp' threading layer (then 'workqueue' if OpenMP is missing) unless the user chose
    one with NUMBA_THREADING_LAYER, and OpenMP's short spin (GOMP_SPINCOUNT) unless the user set
    its wait policy. Only possible before Numba starts its threads (the first parallel kernel or
    numba.set_num_threads); afterwards left as it is."""
    import os

    import numba
    from numba.np.ufunc import parallel

    if parallel._is_initialized:
        return
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "default"
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT


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
