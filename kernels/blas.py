"""The float matrix product every GEMM of the linear, matmul and convolution ops goes through.

`matmul(a, b)` is `np.matmul(a, b)` (OpenBLAS for float32/float64), with two additions:

- **One place to observe BLAS.** `tinyopt.profile()` sets `_observer` while it runs; with no
  profiler active the cost is one test of a module global per call.
- **The GEMM split across Numba's threads** (`set_gemm_threads(n)`, which
  `tinyopt.set_num_threads(n)` calls). BLAS itself then runs on one thread, and a 2-D product of
  at least `SPLIT_MIN_MACS` multiply-adds is cut into n blocks of C:

      C[:, j0:j1] = A · B[:, j0:j1]        (or C[i0:i1, :] = A[i0:i1, :] · B when M > N)

  Each block is one single-threaded call of the library's own `cblas_?gemm`, made from one thread
  of a `prange` over the blocks. Why not let BLAS run its own threads: then two pools would hold
  the cores (BLAS's and Numba's, which runs the other kernels' parallel twins), both busy-wait
  after their work, and a step that alternates GEMMs and Numba kernels had 4 spinning threads on
  2 cores (tinyopt/threads.py has the measurements). With the split there is one pool, Numba's,
  for everything. Each block sums over k exactly as the whole product does; how OpenBLAS
  blocks a smaller call can still round differently in the last bit, so the split is compared
  with np.matmul to float tolerance, and each thread setting is reproducible on its own.

The split needs the library's CBLAS entry point: it is looked up (threadpoolctl's path of the
BLAS that NumPy loaded, then `cblas_sgemm`/`cblas_dgemm` or NumPy's ILP64 names
`scipy_cblas_sgemm64_`/`scipy_cblas_dgemm64_`) on the first split; where none is found,
`gemm_split_info()` says so and every product stays np.matmul. The `reference` backend
(`TINYOPT_KERNELS=reference`) and `NUMBA_DISABLE_JIT=1` also keep np.matmul.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from numba import njit, prange

from .backend import get_backend

_observer = None   # while profiling: observer(fn, a, b) -> fn(a, b) (and it times the call)
_threads = 1       # blocks per split GEMM; 1 = np.matmul as it is

# Below this many multiply-adds (M·N·K) a product is not split: the plan and the parallel region
# (5-10 µs) would cost more than the second core saves. 2^21 = a 128×128×128 product, about
# 30 µs on one core, where the two broke even.
SPLIT_MIN_MACS = 1 << 21
# Column blocks start at multiples of this (16 float32 = one 64-byte cache line of C, which is
# allocated line-aligned), so two threads never write the same line.
SPLIT_ALIGN = 16
# From this many rows of C on, the blocks are blocks of rows (measured faster than columns there,
# e.g. 256×128 @ 128×784: 160 against 193 µs); below it, blocks of columns.
SPLIT_ROWS_MIN = 256

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112     # the CBLAS enums


def set_gemm_threads(n: int) -> None:
    """Split each large 2-D float GEMM into n single-threaded BLAS calls on Numba's threads (n > 1),
    or leave it whole to BLAS (n = 1). The caller sets BLAS to one thread (tinyopt.set_num_threads does)."""
    global _threads
    if int(n) < 1:
        raise ValueError(f"GEMM threads must be at least 1, got {n}")
    _threads = int(n)


def gemm_threads() -> int:
    return _threads


def matmul(a, b):
    """np.matmul(a, b), split across threads when `set_gemm_threads(n > 1)` and large enough, timed
    when a profiler is active."""
    if _observer is None:
        return _matmul(a, b)
    return _observer(_matmul, a, b)


def _matmul(a, b):
    if (_threads > 1 and a.ndim >= 2 and a.ndim == b.ndim and a.shape[:-2] == b.shape[:-2]
            and a.dtype == b.dtype and a.dtype in (np.float32, np.float64) and a.shape[-1] == b.shape[-2]
            and a.shape[-2] * b.shape[-1] * a.shape[-1] >= SPLIT_MIN_MACS):
        if a.ndim == 2:
            return matmul_split(a, b, _threads)
        # a stack of products of one shape (the convolution's groups, 1 of them for most layers):
        # each product split in turn
        out = np.empty(a.shape[:-1] + b.shape[-1:], dtype=a.dtype)
        for index in np.ndindex(*a.shape[:-2]):
            out[index] = matmul_split(a[index], b[index], _threads)
        return out
    return np.matmul(a, b)


# ----------------------------------------------------------------------------- the split


def matmul_split_reference(a: np.ndarray, b: np.ndarray, parts: int) -> np.ndarray:
    """What `matmul_split` computes: the product itself (how it is split is scheduling, not math)."""
    return np.matmul(a, b)


def _operand(x: np.ndarray):
    """(x, transpose flag, leading dimension) as CBLAS reads a row-major operand, copying x only when
    neither its rows nor its columns are unit-stride."""
    size = x.itemsize
    rows, cols = x.shape
    s0, s1 = x.strides
    if s1 == size and s0 % size == 0 and s0 >= max(1, cols) * size:
        return x, NO_TRANS, s0 // size
    if s0 == size and s1 % size == 0 and s1 >= max(1, rows) * size:
        return x, TRANS, s1 // size
    x = np.ascontiguousarray(x)
    return x, NO_TRANS, max(1, cols)


def _aligned_empty(m: int, n: int, dtype):
    """(an uninitialised C-order [m, n] array starting on a 64-byte cache line, its address). np.empty
    promises 16 bytes; with an unaligned C, two threads' column blocks can share a line at the split."""
    itemsize = np.dtype(dtype).itemsize
    buf = np.empty(m * n + 64 // itemsize, dtype=dtype)
    address = buf.ctypes.data
    start = (-address % 64) // itemsize
    return buf[start:start + m * n].reshape(m, n), address + start * itemsize


def matmul_split_numba(a: np.ndarray, b: np.ndarray, parts: int) -> np.ndarray:
    """a [M, K] @ b [K, N] as `parts` single-threaded cblas_?gemm calls on Numba's threads, one block
    of C each: blocks of rows when M ≥ SPLIT_ROWS_MIN or M > N (measured faster there), else blocks
    of columns (the convolutions' few output channels × many positions)."""
    if (a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.shape[1] != b.shape[0]
            or a.size == 0 or b.size == 0 or parts < 2):       # CBLAS refuses a leading dimension of 0
        return np.matmul(a, b)                                 # (which also raises for mismatched shapes)
    entry = _cblas_entry(a.dtype.char)
    if entry is None:
        return np.matmul(a, b)
    fn, int_type, _ = entry
    m, k = a.shape
    n = b.shape[1]
    a, ta, lda = _operand(a)
    b, tb, ldb = _operand(b)
    c, pc = _aligned_empty(m, n, a.dtype)
    size = a.itemsize
    pa, pb = a.ctypes.data, b.ctypes.data
    plan = [parts, ta, tb, k, lda, ldb, n]
    if m >= SPLIT_ROWS_MIN or m > n:
        step_a = size * (lda if ta == NO_TRANS else 1)           # bytes from row i of A to row i + 1
        start = 0
        for p in range(1, parts + 1):
            end = m * p // parts
            plan += (end - start, n, pa + start * step_a, pb, pc + start * n * size)
            start = end
    else:
        step_b = size * (1 if tb == NO_TRANS else ldb)           # bytes from column j of B to j + 1
        start = 0
        for p in range(1, parts + 1):
            end = n if p == parts else (n * p // parts) // SPLIT_ALIGN * SPLIT_ALIGN
            plan += (m, end - start, pa, pb + start * step_b, pc + start * size)
            start = end
    _gemm_blocks(fn, np.array(plan, dtype=np.int64), a.dtype.type(1), int_type(0))
    return c


def matmul_split(a: np.ndarray, b: np.ndarray, parts: int) -> np.ndarray:
    """The split GEMM of the current backend (the NumPy product for `reference`)."""
    if get_backend() == "reference":
        return matmul_split_reference(a, b, parts)
    return matmul_split_numba(a, b, parts)


# ----------------------------------------------------------------------------- finding CBLAS

_NAMES = {"f": (("scipy_cblas_sgemm64_", np.int64), ("cblas_sgemm64_", np.int64), ("cblas_sgemm", np.int32)),
          "d": (("scipy_cblas_dgemm64_", np.int64), ("cblas_dgemm64_", np.int64), ("cblas_dgemm", np.int32))}


@functools.lru_cache(maxsize=None)
def _cblas_library():
    """(path, ctypes library) of the BLAS NumPy itself uses, or (None, None) without threadpoolctl or
    such a BLAS. Other BLAS libraries may be loaded too (SciPy's OpenBLAS comes in with Numba's
    linear-algebra support while a parallel kernel compiles): they are not NumPy's, their thread
    count is not the one set_num_threads chose, and threadpoolctl lists them in any order, so
    the one inside NumPy's installation is taken (the only one, when just one is loaded)."""
    import os

    import numba

    if numba.config.DISABLE_JIT:          # the intrinsic below cannot run as Python
        return None, None
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None, None
    paths = [info["filepath"] for info in threadpool_info() if info.get("user_api") == "blas" and info.get("filepath")]
    home = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))       # site-packages (or the like)
    mine = [p for p in paths if os.path.relpath(p, home).split(os.sep)[0].startswith("numpy")]
    for path in mine or (paths if len(paths) == 1 else []):
        try:
            return path, ctypes.CDLL(path)
        except OSError:
            continue
    return None, None


@functools.lru_cache(maxsize=None)
def _cblas_entry(char: str):
    """(address of cblas_?gemm, its integer type, its name) for dtype char 'f' or 'd', or None."""
    _, lib = _cblas_library()
    if lib is None or char not in _NAMES:
        return None
    for name, int_type in _NAMES[char]:
        symbol = getattr(lib, name, None)
        if symbol is not None:
            return ctypes.cast(symbol, ctypes.c_void_p).value, int_type, name
    return None


def gemm_split_info() -> dict:
    """Which library and entry points the split calls (None where the split falls back to np.matmul)."""
    entries = {dtype: _cblas_entry(char) for char, dtype in (("f", "float32"), ("d", "float64"))}
    return {"library": _cblas_library()[0], "threads": _threads,
            "entry_points": {dtype: None if entry is None else entry[2] for dtype, entry in entries.items()}}


# ----------------------------------------------------------------------------- the call


def _make_cblas_gemm():
    """_cblas_gemm(fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc, int_like): the C call
    `cblas_?gemm(row-major, ta, tb, m, n, k, alpha, a, lda, b, ldb, 0, c, ldc)` of the function at
    address fn, as LLVM IR. Every integer and address comes in as int64; the integers are passed as
    the type of `int_like` (the library's: int32, or int64 for an ILP64 build), the floats as
    alpha's type. The address is an argument, not a ctypes global, so the callers stay cacheable."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def _cblas_gemm(typingctx, fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc, int_like):
        if not isinstance(alpha, types.Float) or not isinstance(int_like, types.Integer):
            return None
        sig = types.void(fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc, int_like)

        def codegen(context, builder, signature, args):
            fn_v, ta_v, tb_v, m_v, n_v, k_v, alpha_v, a_v, lda_v, b_v, ldb_v, c_v, ldc_v, _ = args
            i32 = ir.IntType(32)
            int_t = context.get_value_type(signature.args[-1])
            float_t = alpha_v.type
            ptr_t = float_t.as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, int_t, int_t, int_t, float_t, ptr_t, int_t,
                                                   ptr_t, int_t, float_t, ptr_t, int_t])
            callee = builder.inttoptr(fn_v, fnty.as_pointer())
            cast = lambda v, t: v if v.type == t else builder.trunc(v, t)  # noqa: E731
            ptr = lambda v: builder.inttoptr(v, ptr_t)  # noqa: E731
            builder.call(callee, [ir.Constant(i32, ROW_MAJOR), cast(ta_v, i32), cast(tb_v, i32),
                                  cast(m_v, int_t), cast(n_v, int_t), cast(k_v, int_t), alpha_v,
                                  ptr(a_v), cast(lda_v, int_t), ptr(b_v), cast(ldb_v, int_t),
                                  ir.Constant(float_t, 0.0), ptr(c_v), cast(ldc_v, int_t)])
            return context.get_dummy_value()

        return sig, codegen

    return _cblas_gemm


_cblas_gemm = _make_cblas_gemm()


@njit(cache=True, parallel=True)
def _gemm_blocks(fn, plan, alpha, int_like):
    """One block of C per prange iteration, C_p = alpha · op(A_p) · op(B_p), from the plan
    [blocks, ta, tb, k, lda, ldb, ldc, then per block m, n, address of A_p, of B_p, of C_p]."""
    ta, tb, k, lda, ldb, ldc = plan[1], plan[2], plan[3], plan[4], plan[5], plan[6]
    for p in prange(plan[0]):
        m, n, pa, pb, pc = plan[7 + 5 * p], plan[8 + 5 * p], plan[9 + 5 * p], plan[10 + 5 * p], plan[11 + 5 * p]
        _cblas_gemm(fn, ta, tb, m, n, k, alpha, pa, lda, pb, ldb, pc, ldc, int_like)
