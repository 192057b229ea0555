"""Exact int8 matrix multiplication: int8 [M, K] × int8 [K, N] → int32 [M, N].

    C[i, j] = Σ_k A[i, k] · B[k, j]        (every product and every partial sum exact)

Each product lies in [−128·127, (−128)·(−128)] = [−16256, 16384], so it fits int16 but a sum of
two of them does not: 16-bit accumulators overflow as soon as two −128·−128 terms meet.  The sum
over K fits int32 while K·16384 < 2³¹, i.e. K ≤ 131071; larger K raises ValueError.

Three implementations, tested bit-exact against each other:

- `matmul_int8_reference` — NumPy in int64 (the specification; slow: NumPy has no integer BLAS).
- the portable Numba kernel — int32 accumulation in a loop LLVM vectorises on any CPU.
- the AVX2 Numba kernel — GotoBLAS-style blocking around a 6×16 micro-kernel written in LLVM IR
  that calls `vpmaddwd` (`llvm.x86.avx2.pmadd.wd`): for one pair of k values it computes
  a[2p]·b[2p] + a[2p+1]·b[2p+1] for 8 columns at once, exactly, in int32.  Operands are widened
  to int16 and packed so that each 32-bit lane holds a (k = 2p, k = 2p+1) pair:

      A_pairs[i, p]      = (A[i, 2p], A[i, 2p+1])                as one int32 (low half first)
      B_pack[jp, p, 2c+h] = B[2p+h, 16·jp + c]                    c in 0..15, h in 0..1

  The micro-kernel keeps a 6×16 int32 tile of C in 12 ymm registers while it walks K.
  Chosen at run time when the host CPU has AVX2; `TINYOPT_INT8_KERNEL=portable` forces the
  portable kernel (and `NUMBA_DISABLE_JIT=1` always uses it, since an LLVM intrinsic cannot run
  as Python).  `int8_kernel_info()` reports what was detected.

This is the general exact path for two signed operands.  The quantized layers use the u8 × s8
kernels of `gemm_u8s8` (activations made unsigned): `vpmaddubsw` for 7-bit activations and
VNNI's `vpdpbusd` where the CPU has it, with this kernel as their full-range fallback.

`pack_b(b)` packs B once (a layer's weight) so repeated products skip that work; every
function accepting `b` accepts a `PackedB` as well.
"""
from __future__ import annotations

import functools
import os
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .backend import dispatch

MAX_K = (2**31 - 1) // 16384  # largest K whose worst-case sum (K · (−128)·(−128)) fits int32

# Micro-kernel tile (rows × columns of C held in registers) and cache blocking.
MR, NR = 6, 16
KC = 1024           # k values per block: a 6×KC strip of A (12 KB) in L1, a KC×16 panel of B (32 KB) in L1/L2;
                    # a larger KC means fewer C-tile loads and stores per multiply-add (the best of
                    # 128..1024 in `benchmarks/bench_int8.py`)
MC = MR * 12        # rows per block: an MC×KC block of A (144 KB as int16) stays in L2


class PackedB(NamedTuple):
    """B [K, N] int8, kept as given (`original`) and packed for the AVX2 kernel (`data`)."""
    original: np.ndarray     # int8 [K, N]
    data: np.ndarray         # int16 [ceil(N/16), ceil(K/2), 32]  (see module docstring)

    @property
    def shape(self):
        return self.original.shape


# ----------------------------------------------------------------------------- checks


def _check(a, b, name="matmul_int8"):
    b_orig = b.original if isinstance(b, PackedB) else b
    for what, x in (("a", a), ("b", b_orig)):
        if not isinstance(x, np.ndarray) or x.dtype != np.int8 or x.ndim != 2:
            desc = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(f"{name}: {what} must be a 2-D int8 ndarray, got {desc}")
    if a.shape[1] != b_orig.shape[0]:
        raise ValueError(f"{name}: inner dimensions differ: a {a.shape} @ b {b_orig.shape}")
    if a.shape[1] > MAX_K:
        raise ValueError(f"{name}: K = {a.shape[1]} > {MAX_K}: the int32 accumulator could overflow")
    return b_orig


# ----------------------------------------------------------------------------- reference


def matmul_int8_reference(a: np.ndarray, b) -> np.ndarray:
    """C = A·B computed in int64 by NumPy, then cast to int32 (exact: |C| < 2³¹ by MAX_K)."""
    b = _check(a, b)
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


# ----------------------------------------------------------------------------- portable Numba kernel


@njit(cache=True, parallel=True)
def _matmul_portable(a, b, c):
    """c += a @ b. Row i of C is built as Σ_k a[i, k] · B[k, :] (an axpy per k), which LLVM
    vectorises over j with int32 lanes; k is blocked so a block of B rows stays in cache."""
    m, k = a.shape
    n = b.shape[1]
    for i in prange(m):
        for k0 in range(0, k, KC):
            k1 = min(k0 + KC, k)
            for kk in range(k0, k1):
                aik = np.int32(a[i, kk])
                if aik == 0:
                    continue
                for j in range(n):
                    c[i, j] += aik * np.int32(b[kk, j])


# ----------------------------------------------------------------------------- AVX2 Numba kernel


@functools.lru_cache(maxsize=None)
def _host_has_avx2() -> bool:
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
        return bool(features.get("avx2", False))
    except Exception:  # pragma: no cover - unusual llvmlite builds
        return False


def _host_features() -> dict:
    try:
        import llvmlite.binding as llvm

        f = llvm.get_host_cpu_features()
        return {name: bool(f.get(name, False)) for name in ("avx2", "avxvnni", "avx512vnni", "avx512bw")}
    except Exception:  # pragma: no cover
        return {}


def _make_microkernel():
    """The 6×16 micro-kernel as a Numba intrinsic emitting LLVM IR (see the module docstring).

    _microkernel(a_pairs, a_off, a_stride, b_pack, b_off, c, c_off, c_stride, npairs):
        for p in range(npairs):                    # one pair of k values per step
            b0, b1 = b_pack[b_off + 32p : +16], b_pack[b_off + 32p + 16 : +16]   # 8 columns each
            for r in range(6):
                a = broadcast(a_pairs[a_off + r·a_stride + p])                  # (A[i,2p], A[i,2p+1])
                acc[r, 0] += vpmaddwd(a, b0);  acc[r, 1] += vpmaddwd(a, b1)
        c[c_off + r·c_stride + 8h : +8] += acc[r, h]
    """
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _microkernel(typingctx, ap, a_off, a_stride, bp, b_off, c, c_off, c_stride, npairs):
        sig = types.void(ap, a_off, a_stride, bp, b_off, c, c_off, c_stride, npairs)

        def codegen(context, builder, signature, args):
            ap_v, a_off_v, a_str_v, bp_v, b_off_v, c_v, c_off_v, c_str_v, n_v = args
            aty, bty, cty = signature.args[0], signature.args[3], signature.args[5]
            a_ptr = cgutils.create_struct_proxy(aty)(context, builder, value=ap_v).data
            b_ptr = cgutils.create_struct_proxy(bty)(context, builder, value=bp_v).data
            c_ptr = cgutils.create_struct_proxy(cty)(context, builder, value=c_v).data
            i64, i32, i16 = ir.IntType(64), ir.IntType(32), ir.IntType(16)
            v8i32, v16i16 = ir.VectorType(i32, 8), ir.VectorType(i16, 16)
            pmadd = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v8i32, [v16i16, v16i16]), "llvm.x86.avx2.pmadd.wd")
            zero = ir.Constant(v8i32, [0] * 8)
            const = lambda v: ir.Constant(i64, v)  # noqa: E731

            entry = builder.block
            loop = builder.append_basic_block("mk.loop")
            done = builder.append_basic_block("mk.done")
            builder.cbranch(builder.icmp_signed(">", n_v, const(0)), loop, done)

            builder.position_at_end(loop)
            p = builder.phi(i64)
            p.add_incoming(const(0), entry)
            acc = []
            for _ in range(MR * 2):
                phi = builder.phi(v8i32)
                phi.add_incoming(zero, entry)
                acc.append(phi)
            b_row = builder.add(b_off_v, builder.mul(p, const(2 * NR)))
            b_vec = []
            for h in range(2):
                ptr = builder.gep(b_ptr, [builder.add(b_row, const(16 * h))])
                b_vec.append(builder.load(builder.bitcast(ptr, v16i16.as_pointer()), align=2))
            new = []
            for r in range(MR):
                a_idx = builder.add(builder.add(a_off_v, builder.mul(const(r), a_str_v)), p)
                a = builder.load(builder.gep(a_ptr, [a_idx]), align=4)
                splat = builder.insert_element(ir.Constant(v8i32, ir.Undefined), a, ir.Constant(i32, 0))
                splat = builder.shuffle_vector(splat, ir.Constant(v8i32, ir.Undefined), ir.Constant(v8i32, [0] * 8))
                a16 = builder.bitcast(splat, v16i16)
                for h in range(2):
                    new.append(builder.add(acc[2 * r + h], builder.call(pmadd, [a16, b_vec[h]])))
            p_next = builder.add(p, const(1))
            body_end = builder.block
            p.add_incoming(p_next, body_end)
            for phi, value in zip(acc, new):
                phi.add_incoming(value, body_end)
            builder.cbranch(builder.icmp_signed("<", p_next, n_v), loop, done)

            builder.position_at_end(done)
            totals = []
            for value in new:  # all phi nodes first: LLVM wants them at the top of the block
                total = builder.phi(v8i32)
                total.add_incoming(zero, entry)
                total.add_incoming(value, body_end)
                totals.append(total)
            for r in range(MR):
                for h in range(2):
                    total = totals[2 * r + h]
                    c_idx = builder.add(builder.add(c_off_v, builder.mul(const(r), c_str_v)), const(8 * h))
                    c_vec_ptr = builder.bitcast(builder.gep(c_ptr, [c_idx]), v8i32.as_pointer())
                    builder.store(builder.add(builder.load(c_vec_ptr, align=4), total), c_vec_ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return _microkernel


_microkernel = _make_microkernel()  # builds nothing yet: the IR is emitted when _driver compiles


def _make_pack_pair16():
    """_pack_pair16(x, s0, s1, out, d): out[d + 2c] = x[s0 + c], out[d + 2c + 1] = x[s1 + c] for
    c in 0..15 — two rows of 16 int8 widened to int16 and interleaved into one 32-value row of a
    B panel (the layout in the module docstring).  Two 16-byte loads, two sign extensions, one
    shuffle and one 64-byte store, as LLVM IR (a plain loop was not vectorised)."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _pack_pair16(typingctx, x, s0, s1, out, d):
        sig = types.void(x, s0, s1, out, d)

        def codegen(context, builder, signature, args):
            x_v, s0_v, s1_v, out_v, d_v = args
            x_ptr = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=x_v).data
            o_ptr = cgutils.create_struct_proxy(signature.args[3])(context, builder, value=out_v).data
            i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
            v16i8, v16i16, v32i16 = ir.VectorType(i8, 16), ir.VectorType(i16, 16), ir.VectorType(i16, 32)
            rows = []
            for s_v in (s0_v, s1_v):
                ptr = builder.bitcast(builder.gep(x_ptr, [s_v]), v16i8.as_pointer())
                rows.append(builder.sext(builder.load(ptr, align=1), v16i16))
            mask = [v for c in range(16) for v in (c, 16 + c)]
            inter = builder.shuffle_vector(rows[0], rows[1], ir.Constant(ir.VectorType(i32, 32), mask))
            dst = builder.bitcast(builder.gep(o_ptr, [d_v]), v32i16.as_pointer())
            builder.store(inter, dst, align=2)
            return context.get_dummy_value()

        return sig, codegen

    return _pack_pair16


_pack_pair16 = _make_pack_pair16()


@njit(cache=True, parallel=True)
def _driver(a_pairs, b_pack, c):
    """c += A·B on padded operands: a_pairs int32 [Mp, Kp/2], b_pack int16 [Np/16, Kp/2, 32],
    c int32 [Mp, Np] (Mp a multiple of 6, Np of 16).  Loops, outer to inner: row blocks of MC
    (split across threads), K blocks of KC, column panels of 16, row strips of 6."""
    mp, kp2 = a_pairs.shape
    n_panels = b_pack.shape[0]
    np_ = c.shape[1]
    a_flat = a_pairs.ravel()
    b_flat = b_pack.ravel()
    c_flat = c.ravel()
    kcp = KC // 2
    n_blocks = (mp + MC - 1) // MC
    for block in prange(n_blocks):
        i0 = block * MC
        i1 = min(i0 + MC, mp)
        for p0 in range(0, kp2, kcp):
            npairs = min(kcp, kp2 - p0)
            for jp in range(n_panels):
                b_off = jp * kp2 * 2 * NR + p0 * 2 * NR
                for i in range(i0, i1, MR):
                    _microkernel(a_flat, i * kp2 + p0, kp2, b_flat, b_off, c_flat, i * np_ + jp * NR, np_, npairs)


@njit(cache=True)
def _pack_a(a, mp, kp):
    """int8 [M, K] → int16 [mp, kp] zero-padded (viewed as int32 pairs by the caller)."""
    out = np.zeros((mp, kp), np.int16)
    for i in range(a.shape[0]):
        for k in range(a.shape[1]):
            out[i, k] = a[i, k]
    return out


@njit(cache=True)
def _pack_b(b, n_panels, kp2):
    """int8 [K, N] → int16 [n_panels, kp2, 32] with out[jp, p, 2c + h] = b[2p + h, 16 jp + c]."""
    k, n = b.shape
    out = np.zeros((n_panels, kp2, 2 * NR), np.int16)
    for kk in range(k):
        p, h = kk // 2, kk % 2
        for j in range(n):
            out[j // NR, p, 2 * (j % NR) + h] = b[kk, j]
    return out


def pack_b(b: np.ndarray) -> PackedB:
    """Pack an int8 [K, N] matrix once for repeated products (e.g. a quantized layer's weight)."""
    if not isinstance(b, np.ndarray) or b.dtype != np.int8 or b.ndim != 2:
        raise TypeError(f"pack_b: b must be a 2-D int8 ndarray, got {getattr(b, 'dtype', type(b))}")
    k, n = b.shape
    n_panels = -(-n // NR)
    kp2 = -(-k // 2)
    return PackedB(np.ascontiguousarray(b), _pack_b(np.ascontiguousarray(b), n_panels, kp2))


# Below this many multiply-adds one thread is faster (thread start-up and, on a shared 2-core
# machine, contention cost more than they save); LeNet's conv2 (61 M padded MACs) is above it.
PARALLEL_MIN_MACS = 32 * 2**20


def _run_threads(parallel: bool, fn, *args):
    """Run a `parallel=True` kernel on all Numba threads, or on one for small problems."""
    import numba

    if parallel:
        return fn(*args)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(previous)


def _matmul_avx2(a, b):
    m, k = a.shape
    if not isinstance(b, PackedB):
        b = pack_b(b)
    n = b.original.shape[1]
    n_panels, kp2 = b.data.shape[0], b.data.shape[1]
    mp = -(-m // MR) * MR
    a_pairs = _pack_a(np.ascontiguousarray(a), mp, 2 * kp2).view(np.int32)
    c = np.zeros((mp, n_panels * NR), np.int32)
    if k > 0:
        _run_threads(m * n * k >= PARALLEL_MIN_MACS, _driver, a_pairs, b.data, c)
    return c[:m, :n] if (mp, n_panels * NR) != (m, n) else c


def matmul_int8_avx2_pairs(a16: np.ndarray, b: PackedB, parallel=None) -> np.ndarray:
    """The AVX2 kernel on an A that is already widened and padded: int16 [Mp, 2·ceil(K/2)] with Mp a
    multiple of 6 and zero padding (e.g. written by `conv_int8`'s im2col, which so skips the
    `_pack_a` pass).  Returns the padded int32 C [Mp, 16·ceil(N/16)]; C[:M, :N] is A·B.
    `parallel`: None chooses by size (`PARALLEL_MIN_MACS`), True/False forces."""
    if not isinstance(b, PackedB):
        raise TypeError("matmul_int8_avx2_pairs: b must be a PackedB (see pack_b)")
    n_panels, kp2 = b.data.shape[0], b.data.shape[1]
    mp = a16.shape[0]
    if a16.dtype != np.int16 or a16.ndim != 2 or a16.shape[1] != 2 * kp2 or mp % MR:
        raise ValueError(f"matmul_int8_avx2_pairs: a must be int16 [6·r, {2 * kp2}], got {a16.dtype} {a16.shape}")
    c = np.zeros((mp, n_panels * NR), np.int32)
    if kp2 > 0:
        if parallel is None:
            parallel = mp * n_panels * NR * 2 * kp2 >= PARALLEL_MIN_MACS
        _run_threads(parallel, _driver, np.ascontiguousarray(a16).view(np.int32), b.data, c)
    return c


def _matmul_portable_call(a, b):
    m, k = a.shape
    c = np.zeros((m, b.shape[1]), np.int32)
    _run_threads(m * b.shape[1] * k >= PARALLEL_MIN_MACS, _matmul_portable,
                 np.ascontiguousarray(a), np.ascontiguousarray(b), c)
    return c


def int8_kernel_info() -> dict:
    """Which int8 kernel `matmul_int8_numba` uses on this machine, and the CPU features seen."""
    return {"kernel": _choose(), **_host_features()}


def _choose() -> str:
    forced = os.environ.get("TINYOPT_INT8_KERNEL", "").strip().lower()
    if forced in ("portable", "avx2"):
        return forced
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return "portable"
    return "avx2" if _host_has_avx2() else "portable"


def matmul_int8_portable(a: np.ndarray, b) -> np.ndarray:
    """The portable Numba kernel (any CPU)."""
    b = _check(a, b)
    return _matmul_portable_call(a, b)


def matmul_int8_avx2(a: np.ndarray, b) -> np.ndarray:
    """The AVX2 `vpmaddwd` kernel; raises RuntimeError on a CPU without AVX2."""
    _check(a, b)
    if not _host_has_avx2():
        raise RuntimeError("matmul_int8_avx2: this CPU has no AVX2; use matmul_int8_portable")
    return _matmul_avx2(a, b)


def matmul_int8_numba(a: np.ndarray, b) -> np.ndarray:
    """The fastest Numba kernel this CPU supports (AVX2 if present, else portable)."""
    if _choose() == "avx2":
        return matmul_int8_avx2(a, b)
    return matmul_int8_portable(a, b)


matmul_int8 = dispatch(matmul_int8_reference, matmul_int8_numba)
matmul_int8.__doc__ = """int8 [M, K] × int8 [K, N] → exact int32 [M, N] (b may be a `PackedB`).

Routes to `matmul_int8_reference` (NumPy int64) or `matmul_int8_numba` by the kernel backend."""
