"""Exact u8 × s8 matrix multiplication: uint8 A [M, K] × int8 B [K, N] → int32 [M, N].

    C[i, j] = Σ_k A[i, k] · B[k, j]        (exact, in int32 while K · 255 · 128 < 2³¹)

The operand types of x86's byte dot products: A holds activations shifted to be unsigned
(u = q_x + 128 for int8 activations, or quint8 values as they are), B the int8 weights.  Three
ways to run it, each exact where it is used, each tested against `matmul_u8s8_reference`:

- `vpmaddubsw` (AVX2, `llvm.x86.avx2.pmadd.ub.sw`): for 16 lanes at once,
  s = A[2p]·B[2p] + A[2p+1]·B[2p+1] in int16 with saturation, then `vpmaddwd` by ones
  (`llvm.x86.avx2.pmadd.wd`) adds neighbouring pairs into int32.  The int16 pair sum is exact
  iff it cannot saturate: |s| ≤ 2 · max(A) · 128 ≤ 32767, i.e. **A ≤ 127** — activations
  quantized to 7 bits (torch's `reduce_range=True`, quint8 range [0, 127]).  So this path
  checks max(A) ≤ 127 and refuses larger inputs; a full-range A goes elsewhere.
- `vpdpbusd` (AVX-VNNI on 256-bit registers, `llvm.x86.avx512.vpdpbusd.256`; or AVX-512 VNNI on
  512-bit registers, `llvm.x86.avx512.vpdpbusd.512`): acc[lane] += Σ_{h<4} A[4p+h]·B[4p+h] in
  int32 with no intermediate rounding or saturation: exact for every u8 × s8 input.
- otherwise (full-range A without VNNI): A − 128 as int8 through `gemm_int8`'s exact `vpmaddwd`
  kernel, plus 128 · Σ_k B[k, j] (the same integers).

Layout (four k values per 32-bit lane; NR columns per panel, 16 for ymm kernels, 32 for zmm):

    A_quads[i, p]           = (A[i, 4p], …, A[i, 4p+3])          one int32 per row and quad
    B_pack[jp, p, 4c + h]   = B[4p + h, NR·jp + c]                c < NR, h < 4

The micro-kernel keeps a 6 × NR int32 tile of C in registers (12 of them) while it walks K, the
blocking is `gemm_int8`'s.  Which kernel runs is chosen per call from the CPU (llvmlite's host
features, i.e. /proc/cpuinfo's flags) and the operand: `u8s8_kernel_info()` says what was found;
`TINYOPT_U8S8_KERNEL=maddubs|vnni256|vnni512|int16` forces one (refused if the CPU lacks it).
"""
from __future__ import annotations

import functools
import os
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .backend import dispatch
from .gemm_int8 import KC, MC, MR, _run_threads, matmul_int8_numba, pack_b

MAX_K = (2**31 - 1) // (255 * 128)      # largest K whose worst-case sum fits int32
KERNELS = ("vnni512", "vnni256", "maddubs", "int16")


class PackedU8S8(NamedTuple):
    """B [K, N] int8 kept as given, its column sums, and packed for the byte kernels."""
    original: np.ndarray     # int8 [K, N]
    col_sum: np.ndarray      # int64 [N]: Σ_k B[k, j] (for the A − 128 fallback)
    data: dict               # NR → int8 [ceil(N/NR), ceil(K/4), 4·NR] (see the module docstring), packed on demand

    @property
    def shape(self):
        return self.original.shape


# ----------------------------------------------------------------------------- CPU detection


@functools.lru_cache(maxsize=None)
def host_features() -> dict:
    """The CPU features the kernels care about, as LLVM sees the host (the flags of /proc/cpuinfo)."""
    try:
        import llvmlite.binding as llvm

        f = llvm.get_host_cpu_features()
        return {name: bool(f.get(name, False)) for name in ("avx2", "avxvnni", "avx512vnni", "avx512vl", "avx512bw", "avx512vbmi")}
    except Exception:  # pragma: no cover - unusual llvmlite builds
        return {}


def available_kernels() -> tuple:
    """The byte kernels this CPU can run (`int16` is the fallback that needs only AVX2)."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return ()
    f = host_features()
    out = []
    if f.get("avx512vnni") and f.get("avx512bw"):
        out.append("vnni512")
    if f.get("avxvnni") or (f.get("avx512vnni") and f.get("avx512vl")):
        out.append("vnni256")
    if f.get("avx2"):
        out += ["maddubs", "int16"]
    return tuple(out)


def host_can_emit(kind: str) -> bool:
    """Whether LLVM can compile `kind`'s instructions for this CPU ('vnni512', 'vnni256', 'maddubs').
    A driver may hold calls to several micro-kernels and pick one at run time; the intrinsics
    emit a trap instead of an instruction the CPU lacks (LLVM would abort the process trying to
    select it), so such a driver still compiles everywhere and only the chosen branch runs."""
    f = host_features()
    if kind == "vnni512":
        return bool(f.get("avx512vnni") and f.get("avx512bw"))
    if kind == "vnni256":
        return bool(f.get("avxvnni") or (f.get("avx512vnni") and f.get("avx512vl")))
    return bool(f.get("avx2"))


def emit_trap(context, builder):
    """The body of an intrinsic whose instructions this CPU lacks (see `host_can_emit`)."""
    from llvmlite import ir
    from numba.core import cgutils

    trap = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.trap")
    builder.call(trap, [])
    return context.get_dummy_value()


def emit_counted_loop(builder, count, starts, body, name):
    """LLVM IR for `acc = starts; for t in range(count): acc = body(t, acc)`, the micro-kernels'
    loop over k: returns the final values (the starts when count ≤ 0). `body(t, acc)` emits one
    iteration at the builder's position and returns the new values, one per start."""
    from llvmlite import ir

    i64 = ir.IntType(64)
    entry = builder.block
    loop = builder.append_basic_block(name + ".loop")
    done = builder.append_basic_block(name + ".done")
    builder.cbranch(builder.icmp_signed(">", count, ir.Constant(i64, 0)), loop, done)
    builder.position_at_end(loop)
    t = builder.phi(i64)
    t.add_incoming(ir.Constant(i64, 0), entry)
    acc = []
    for start in starts:
        phi = builder.phi(start.type)
        phi.add_incoming(start, entry)
        acc.append(phi)
    new = body(t, acc)
    t_next = builder.add(t, ir.Constant(i64, 1))
    body_end = builder.block
    t.add_incoming(t_next, body_end)
    for phi, value in zip(acc, new):
        phi.add_incoming(value, body_end)
    builder.cbranch(builder.icmp_signed("<", t_next, count), loop, done)
    builder.position_at_end(done)
    totals = []
    for start, value in zip(starts, new):     # phi nodes only: LLVM wants them at the top of the block
        total = builder.phi(start.type)
        total.add_incoming(start, entry)
        total.add_incoming(value, body_end)
        totals.append(total)
    return totals


def u8s8_kernel_info() -> dict:
    return {"available": available_kernels(), "full_range": choose(False), "seven_bit": choose(True),
            **host_features()}


def choose(seven_bit: bool) -> str:
    """The kernel for an A known to be ≤ 127 (`seven_bit`) or full range; 'portable' without AVX2."""
    have = available_kernels()
    forced = os.environ.get("TINYOPT_U8S8_KERNEL", "").strip().lower()
    if forced:
        if forced not in KERNELS:
            raise ValueError(f"TINYOPT_U8S8_KERNEL must be one of {', '.join(KERNELS)}, got {forced!r}")
        if forced not in have:
            raise RuntimeError(f"TINYOPT_U8S8_KERNEL={forced}: this CPU cannot run it (it can: {', '.join(have) or 'none'})")
        return forced
    for name in ("vnni512", "vnni256"):
        if name in have:
            return name
    if "maddubs" in have:
        return "maddubs" if seven_bit else "int16"
    return "portable"


# ----------------------------------------------------------------------------- checks and reference


def _check(a, b, name="matmul_u8s8"):
    b_orig = b.original if isinstance(b, PackedU8S8) else b
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 2:
        desc = f"{a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name}: a must be a 2-D uint8 ndarray, got {desc}")
    if not isinstance(b_orig, np.ndarray) or b_orig.dtype != np.int8 or b_orig.ndim != 2:
        desc = f"{b_orig.dtype} array of shape {b_orig.shape}" if isinstance(b_orig, np.ndarray) else type(b_orig).__name__
        raise TypeError(f"{name}: b must be a 2-D int8 ndarray (or a PackedU8S8), got {desc}")
    if a.shape[1] != b_orig.shape[0]:
        raise ValueError(f"{name}: inner dimensions differ: a {a.shape} @ b {b_orig.shape}")
    if a.shape[1] > MAX_K:
        raise ValueError(f"{name}: K = {a.shape[1]} > {MAX_K}: the int32 accumulator could overflow")
    return b_orig


def matmul_u8s8_reference(a: np.ndarray, b, seven_bit: bool = False) -> np.ndarray:
    """C = A·B in int64 by NumPy, cast to int32 (exact by MAX_K). `seven_bit` (accepted for parity
    with the fast twin) asserts A ≤ 127, and is checked."""
    b = _check(a, b)
    if seven_bit and a.size and a.max() > 127:
        raise ValueError(f"matmul_u8s8: seven_bit=True but max(a) = {a.max()} > 127")
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


# ----------------------------------------------------------------------------- micro-kernels (LLVM IR)


def _make_microkernel(kind: str, signed_broadcast: bool = False):
    """The 6 × NR micro-kernel for `kind` in ('maddubs', 'vnni256', 'vnni512'), a Numba intrinsic
    (`signed_broadcast=True`, VNNI only: the broadcast quads are the *signed* operand and the panel
    the unsigned one — the convolution's layout, weights broadcast over input positions):

    _mk(a_quads, a_off, a_stride, b_pack, b_off, c, c_off, c_stride, nquads):
        for p in range(nquads):                              # four k values per step
            b_h = b_pack[b_off + 4·NR·p + 4·(NR/2)·h : …]     # NR/2 columns × 4 bytes, h = 0, 1
            for r in range(6):
                a = broadcast(a_quads[a_off + r·a_stride + p])
                acc[r, h] += dot4(a, b_h)                     # vpdpbusd, or vpmaddwd(vpmaddubsw(a, b_h), 1)
        c[c_off + r·c_stride + (NR/2)·h : …] += acc[r, h]
    """
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    lanes = 16 if kind == "vnni512" else 8          # int32 lanes per register
    nr = 2 * lanes

    @intrinsic
    def _mk(typingctx, ap, a_off, a_stride, bp, b_off, c, c_off, c_stride, nquads):
        sig = types.void(ap, a_off, a_stride, bp, b_off, c, c_off, c_stride, nquads)

        def codegen(context, builder, signature, args):
            if not host_can_emit(kind):
                return emit_trap(context, builder)
            ap_v, a_off_v, a_str_v, bp_v, b_off_v, c_v, c_off_v, c_str_v, n_v = args
            aty, bty, cty = signature.args[0], signature.args[3], signature.args[5]
            a_ptr = cgutils.create_struct_proxy(aty)(context, builder, value=ap_v).data
            b_ptr = cgutils.create_struct_proxy(bty)(context, builder, value=bp_v).data
            c_ptr = cgutils.create_struct_proxy(cty)(context, builder, value=c_v).data
            i64, i32, i16, i8 = ir.IntType(64), ir.IntType(32), ir.IntType(16), ir.IntType(8)
            vi32, vi8 = ir.VectorType(i32, lanes), ir.VectorType(i8, 4 * lanes)
            mod = builder.module
            if kind == "maddubs":
                v16i16 = ir.VectorType(i16, 16)
                ubsw = cgutils.get_or_insert_function(mod, ir.FunctionType(v16i16, [vi8, vi8]), "llvm.x86.avx2.pmadd.ub.sw")
                wd = cgutils.get_or_insert_function(mod, ir.FunctionType(vi32, [v16i16, v16i16]), "llvm.x86.avx2.pmadd.wd")
                ones = ir.Constant(v16i16, [1] * 16)
            else:
                name = "llvm.x86.avx512.vpdpbusd.512" if kind == "vnni512" else "llvm.x86.avx512.vpdpbusd.256"
                dp = cgutils.get_or_insert_function(mod, ir.FunctionType(vi32, [vi32, vi32, vi32]), name)
            zero = ir.Constant(vi32, [0] * lanes)
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
                phi = builder.phi(vi32)
                phi.add_incoming(zero, entry)
                acc.append(phi)
            b_row = builder.add(b_off_v, builder.mul(p, const(4 * nr)))
            b_vec = []
            for h in range(2):
                ptr = builder.gep(b_ptr, [builder.add(b_row, const(4 * lanes * h))])
                b_vec.append(builder.load(builder.bitcast(ptr, vi32.as_pointer()), align=1))
            new = []
            for r in range(MR):
                a_idx = builder.add(builder.add(a_off_v, builder.mul(const(r), a_str_v)), p)
                a = builder.load(builder.gep(a_ptr, [a_idx]), align=4)
                splat = builder.insert_element(ir.Constant(vi32, ir.Undefined), a, ir.Constant(i32, 0))
                splat = builder.shuffle_vector(splat, ir.Constant(vi32, ir.Undefined), ir.Constant(vi32, [0] * lanes))
                for h in range(2):
                    if kind == "maddubs":
                        pairs = builder.call(ubsw, [builder.bitcast(splat, vi8), builder.bitcast(b_vec[h], vi8)])
                        new.append(builder.add(acc[2 * r + h], builder.call(wd, [pairs, ones])))
                    elif signed_broadcast:
                        new.append(builder.call(dp, [acc[2 * r + h], b_vec[h], splat]))
                    else:
                        new.append(builder.call(dp, [acc[2 * r + h], splat, b_vec[h]]))
            p_next = builder.add(p, const(1))
            body_end = builder.block
            p.add_incoming(p_next, body_end)
            for phi, value in zip(acc, new):
                phi.add_incoming(value, body_end)
            builder.cbranch(builder.icmp_signed("<", p_next, n_v), loop, done)

            builder.position_at_end(done)
            totals = []
            for value in new:          # all phi nodes first: LLVM wants them at the top of the block
                total = builder.phi(vi32)
                total.add_incoming(zero, entry)
                total.add_incoming(value, body_end)
                totals.append(total)
            for r in range(MR):
                for h in range(2):
                    c_idx = builder.add(builder.add(c_off_v, builder.mul(const(r), c_str_v)), const(lanes * h))
                    c_vec_ptr = builder.bitcast(builder.gep(c_ptr, [c_idx]), vi32.as_pointer())
                    builder.store(builder.add(builder.load(c_vec_ptr, align=4), totals[2 * r + h]), c_vec_ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return _mk


_mk_maddubs = _make_microkernel("maddubs")      # nothing is emitted until a driver compiles
_mk_vnni256 = _make_microkernel("vnni256")
_mk_vnni512 = _make_microkernel("vnni512")
_mk_vnni256_sw = _make_microkernel("vnni256", signed_broadcast=True)    # used by conv_int8
_mk_vnni512_sw = _make_microkernel("vnni512", signed_broadcast=True)


def _make_pack_quad16():
    """_pack_quad16(x, s0, s1, s2, s3, out, d): out[d + 4c + h] = x[s_h + c] for c < 16, h < 4 — four
    runs of 16 bytes interleaved into one 64-byte row of a quad panel (the layout in the module
    docstring).  Four 16-byte loads, three shuffles, one store, as LLVM IR."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _pack_quad16(typingctx, x, s0, s1, s2, s3, out, d):
        sig = types.void(x, s0, s1, s2, s3, out, d)

        def codegen(context, builder, signature, args):
            x_v, s0_v, s1_v, s2_v, s3_v, out_v, d_v = args
            x_ptr = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=x_v).data
            o_ptr = cgutils.create_struct_proxy(signature.args[5])(context, builder, value=out_v).data
            i8, i32 = ir.IntType(8), ir.IntType(32)
            v16, v64 = ir.VectorType(i8, 16), ir.VectorType(i8, 64)
            rows = [builder.load(builder.bitcast(builder.gep(x_ptr, [s]), v16.as_pointer()), align=1)
                    for s in (s0_v, s1_v, s2_v, s3_v)]
            cat = lambda lo, hi, n: builder.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(i32, n), list(range(n))))  # noqa: E731
            lo, hi = cat(rows[0], rows[1], 32), cat(rows[2], rows[3], 32)
            mask = [h * 16 + c for c in range(16) for h in range(4)]
            inter = builder.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(i32, 64), mask))
            builder.store(inter, builder.bitcast(builder.gep(o_ptr, [d_v]), v64.as_pointer()), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return _pack_quad16


_pack_quad16 = _make_pack_quad16()


# The drivers: GotoBLAS loops around a micro-kernel (as `gemm_int8._driver`), one per kernel since
# each calls its own intrinsic.  c += A·B on padded operands: a_quads int32 [Mp, Kp/4], b_pack int8
# [Np/NR, Kp/4, 4·NR], c int32 [Mp, Np].  Row blocks of MC go to threads.

@njit(cache=True, parallel=True)
def _driver_maddubs(a_quads, b_pack, c):
    mp, kq = a_quads.shape
    n_panels, nr4 = b_pack.shape[0], b_pack.shape[2]
    nr = nr4 // 4
    np_ = c.shape[1]
    a_flat, b_flat, c_flat = a_quads.ravel(), b_pack.ravel(), c.ravel()
    kcq = KC // 4
    for block in prange((mp + MC - 1) // MC):
        i0 = block * MC
        i1 = min(i0 + MC, mp)
        for p0 in range(0, kq, kcq):
            nq = min(kcq, kq - p0)
            for jp in range(n_panels):
                b_off = (jp * kq + p0) * nr4
                for i in range(i0, i1, MR):
                    _mk_maddubs(a_flat, i * kq + p0, kq, b_flat, b_off, c_flat, i * np_ + jp * nr, np_, nq)


@njit(cache=True, parallel=True)
def _driver_vnni256(a_quads, b_pack, c):
    mp, kq = a_quads.shape
    n_panels, nr4 = b_pack.shape[0], b_pack.shape[2]
    nr = nr4 // 4
    np_ = c.shape[1]
    a_flat, b_flat, c_flat = a_quads.ravel(), b_pack.ravel(), c.ravel()
    kcq = KC // 4
    for block in prange((mp + MC - 1) // MC):
        i0 = block * MC
        i1 = min(i0 + MC, mp)
        for p0 in range(0, kq, kcq):
            nq = min(kcq, kq - p0)
            for jp in range(n_panels):
                b_off = (jp * kq + p0) * nr4
                for i in range(i0, i1, MR):
                    _mk_vnni256(a_flat, i * kq + p0, kq, b_flat, b_off, c_flat, i * np_ + jp * nr, np_, nq)


@njit(cache=True, parallel=True)
def _driver_vnni512(a_quads, b_pack, c):
    mp, kq = a_quads.shape
    n_panels, nr4 = b_pack.shape[0], b_pack.shape[2]
    nr = nr4 // 4
    np_ = c.shape[1]
    a_flat, b_flat, c_flat = a_quads.ravel(), b_pack.ravel(), c.ravel()
    kcq = KC // 4
    for block in prange((mp + MC - 1) // MC):
        i0 = block * MC
        i1 = min(i0 + MC, mp)
        for p0 in range(0, kq, kcq):
            nq = min(kcq, kq - p0)
            for jp in range(n_panels):
                b_off = (jp * kq + p0) * nr4
                for i in range(i0, i1, MR):
                    _mk_vnni512(a_flat, i * kq + p0, kq, b_flat, b_off, c_flat, i * np_ + jp * nr, np_, nq)


_DRIVERS = {"maddubs": (_driver_maddubs, 16), "vnni256": (_driver_vnni256, 16), "vnni512": (_driver_vnni512, 32)}


# ----------------------------------------------------------------------------- packing


@njit(cache=True)
def _pack_b4(b, nr, n_panels, kq):
    """int8 [K, N] → int8 [n_panels, kq, 4·nr] with out[jp, p, 4c + h] = b[4p + h, nr·jp + c], zero-padded."""
    k, n = b.shape
    out = np.zeros((n_panels, kq, 4 * nr), np.int8)
    for kk in range(k):
        p, h = kk // 4, kk % 4
        for j in range(n):
            out[j // nr, p, 4 * (j % nr) + h] = b[kk, j]
    return out


def pack_b_u8s8(b: np.ndarray) -> PackedU8S8:
    """Pack an int8 [K, N] weight once for repeated products (the layout is made per kernel on first use)."""
    if not isinstance(b, np.ndarray) or b.dtype != np.int8 or b.ndim != 2:
        raise TypeError(f"pack_b_u8s8: b must be a 2-D int8 ndarray, got {getattr(b, 'dtype', type(b))}")
    b = np.ascontiguousarray(b)
    return PackedU8S8(b, b.astype(np.int64).sum(axis=0), {})


def _panels(b: PackedU8S8, nr: int) -> np.ndarray:
    if nr not in b.data:
        k, n = b.original.shape
        b.data[nr] = _pack_b4(b.original, nr, -(-n // nr), -(-k // 4))
    return b.data[nr]


def _pack_a(a, mp, kp):
    """uint8 [M, K] → uint8 [mp, kp] zero-padded, viewed as int32 quads."""
    if a.shape == (mp, kp) and a.flags.c_contiguous:
        return a.view(np.int32)
    out = np.zeros((mp, kp), np.uint8)
    out[:a.shape[0], :a.shape[1]] = a
    return out.view(np.int32)


# ----------------------------------------------------------------------------- entry points


def _run(kind, a, b: PackedU8S8):
    driver, nr = _DRIVERS[kind]
    m, k = a.shape
    n = b.original.shape[1]
    panels = _panels(b, nr)
    mp = -(-m // MR) * MR
    kp = 4 * panels.shape[1]
    c = np.zeros((mp, panels.shape[0] * nr), np.int32)
    if k > 0:
        _run_threads(m * n * k >= 2 * 32 * 2**20, driver, _pack_a(a, mp, kp), panels, c)
    return c[:m, :n]


def matmul_u8s8_numba(a: np.ndarray, b, seven_bit: bool = False) -> np.ndarray:
    """`matmul_u8s8_reference` by the fastest exact kernel for this CPU and this A: VNNI when the CPU
    has it (any A); else `vpmaddubsw` when A ≤ 127 (`seven_bit=True` says so: checked, one pass over
    A); else the int16 `vpmaddwd` kernel on A − 128.  Without AVX2: the portable int8 kernel."""
    b_orig = _check(a, b)
    if seven_bit and a.size and a.max() > 127:
        raise ValueError(f"matmul_u8s8: seven_bit=True but max(a) = {a.max()} > 127 (the vpmaddubsw pair sums "
                         "could saturate); quantize activations with reduce_range=True or pass seven_bit=False")
    packed = b if isinstance(b, PackedU8S8) else pack_b_u8s8(b_orig)
    kind = choose(seven_bit)
    if kind == "maddubs" and not seven_bit:
        raise RuntimeError("TINYOPT_U8S8_KERNEL=maddubs needs seven_bit=True (A ≤ 127) to be exact")
    if kind in _DRIVERS:
        return _run(kind, np.ascontiguousarray(a), packed)
    # A − 128 as int8, times B, + 128 Σ_k B[k, j]: the same integers by the exact int8 kernel
    if "int8" not in packed.data:
        packed.data["int8"] = pack_b(packed.original)
    shifted = (a.view(np.int8) ^ np.int8(-128))          # u − 128 in two's complement: flip the top bit
    c = matmul_int8_numba(shifted, packed.data["int8"])
    return (c + (128 * packed.col_sum).astype(np.int32)).astype(np.int32, copy=False)


def matmul_u8s8_kernel(kind: str, a: np.ndarray, b, seven_bit: bool = False) -> np.ndarray:
    """One named kernel ('maddubs', 'vnni256', 'vnni512'), for tests and benchmarks; refuses what
    it cannot do exactly (maddubs on A > 127) and what the CPU lacks."""
    b_orig = _check(a, b)
    if kind not in _DRIVERS:
        raise ValueError(f"kind must be one of {sorted(_DRIVERS)}, got {kind!r}")
    if kind not in available_kernels():
        raise RuntimeError(f"this CPU cannot run the {kind} kernel (it can: {', '.join(available_kernels()) or 'none'})")
    if kind == "maddubs" and a.size and a.max() > 127:
        raise ValueError(f"the maddubs kernel is exact only for A ≤ 127, got max(a) = {a.max()}")
    packed = b if isinstance(b, PackedU8S8) else pack_b_u8s8(b_orig)
    return _run(kind, np.ascontiguousarray(a), packed)


matmul_u8s8 = dispatch(matmul_u8s8_reference, matmul_u8s8_numba)
matmul_u8s8.__doc__ = """uint8 [M, K] × int8 [K, N] → exact int32 [M, N] (b may be a `PackedU8S8`); `seven_bit=True`
promises (and checks) A ≤ 127, which lets an AVX2 CPU without VNNI use `vpmaddubsw`."""

__all__ = ["PackedU8S8", "available_kernels", "choose", "emit_counted_loop", "emit_trap", "host_can_emit", "host_features", "matmul_u8s8", "matmul_u8s8_kernel",
           "matmul_u8s8_numba", "matmul_u8s8_reference", "pack_b_u8s8", "u8s8_kernel_info"]
