"""Stride-1 int8 convolution + requantize + max pool, output positions in the lanes, the input read in place.

    acc[n, o, y, x] = Σ_{c, i, j} W[o, c, i, j] · X̃[n, c, y + i, x + j]

`conv_int8._conv_s1_vnni_requant_pool` gives each 512-bit `vpdpbusd` 16 output positions × 4 taps
from a panel it first packs (an im2col in L1: four 16-byte runs interleaved per tap quad).
For a layer with one input channel, like LeNet-5's conv1 (1 → 6, 5×5 on 28×28), that packing
took five times as long as the products. Here nothing is packed: for output row y, positions
x0 … x0 + 31 and the tap quad (c, i, j4) — four neighbouring taps of one kernel row — the 35
input bytes u[c, y + i, x0 + 4j4 : x0 + 4j4 + 35] hold every value the two vectors need, so one
64-byte load and one byte permute (`vpermb`, AVX-512 VBMI) per vector make them:

    v_h[4l + q] = u[c, y + i, x0 + 4j4 + s_h(l) + q]        q < 4 taps, l < 16 lanes

with s_h(l) = 2l + h (h = 0: even positions, 1: odd ones) before a 2×2 max pool, so a window's
four accumulators are the same lane of four vectors and the pool is element-wise, or
s_h(l) = 16h + l (positions in order) for any other pool. The weights are quads along the kernel
row (`pack_weight_rows`, zero past kw: ⌈kw/4⌉·4 taps per kernel row, 8 for 5) broadcast as the
signed operand, six output channels per call (`_mk_sliding`: 12 accumulators).

u = X̃ + 128 (`conv_input_u8`), and Σ u·W = acc + 128 Σ W, so each image's
accumulators start at init[o] = −128 Σ W[o] and end exact. The NumPy twin is
`conv_int8.conv2d_requant_pool_reference`; `conv_int8.conv2d_requant_pool_numba` chooses.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from .fixed_point import INT32_MAX, INT32_MIN, _requantize_one
from .conv_input_u8 import ensure_padded
from .gemm_u8s8 import emit_counted_loop, emit_trap, host_can_emit

MR = 6            # output channels per micro-kernel call
NR = 32           # output positions per panel: two vectors of 16 int32 lanes
PAIRS = tuple(2 * (b // 4) + h + b % 4 for h in range(2) for b in range(64))     # s_h(l) = 2l + h
IN_ORDER = tuple(16 * h + b // 4 + b % 4 for h in range(2) for b in range(64))   # s_h(l) = 16h + l


def _make_sliding_microkernel(order, rows: int = 1):
    """_mk(w, w_off, w_stride, xu, x_off, row_stride, toff, init, init_off, c, c_off, c_stride, nk),
    a Numba intrinsic. With rows = 1:

        acc[r, h] = init[init_off + r]                        # every lane
        for t in range(nk):                                   # tap quads
            bytes = xu[x_off + toff[t] : … + 64]
            v_h = permute(bytes, order[64h : 64h + 64])       # h = 0, 1: 16 positions × 4 taps
            for r in range(MR):
                a = broadcast(w[w_off + r·w_stride + t])      # 4 signed weights
                acc[r, h] += vpdpbusd(v_h, a)
        c[c_off + r·c_stride + 16h : … + 16] = acc[r, h]

    With rows = 2 (order PAIRS: a 2×2 max pool), the same for output rows y and y + 1 (the second
    reads at x_off + row_stride), 24 accumulators, and only the window maxima are stored:

        c[c_off + r·c_stride : … + 16] = max(acc[r, y, even], acc[r, y, odd], acc[r, y+1, even], acc[r, y+1, odd])

    `order` is PAIRS or IN_ORDER (the byte index of each vector byte, from the module docstring);
    w the packed weights viewed as int32."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _mk(typingctx, w, w_off, w_stride, xu, x_off, row_stride, toff, init, init_off, c, c_off, c_stride, nk):
        sig = types.void(w, w_off, w_stride, xu, x_off, row_stride, toff, init, init_off, c, c_off, c_stride, nk)

        def codegen(context, builder, signature, args):
            if not host_can_emit("vnni512"):
                return emit_trap(context, builder)
            (w_v, w_off_v, w_str_v, xu_v, x_off_v, row_str_v, toff_v, init_v, init_off_v, c_v, c_off_v, c_str_v,
             nk_v) = args
            data = lambda i, v: cgutils.create_struct_proxy(signature.args[i])(context, builder, value=v).data  # noqa: E731
            w_ptr, x_ptr, toff_ptr, init_ptr, c_ptr = data(0, w_v), data(3, xu_v), data(6, toff_v), data(7, init_v), data(9, c_v)
            i64, i32, i8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
            vi32, vi8 = ir.VectorType(i32, 16), ir.VectorType(i8, 64)
            dp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vi32, [vi32, vi32, vi32]),
                                                "llvm.x86.avx512.vpdpbusd.512")
            const = lambda v: ir.Constant(i64, v)  # noqa: E731
            masks = [ir.Constant(ir.VectorType(i32, 64), list(order[64 * h:64 * h + 64])) for h in range(2)]
            per_r = 2 * rows                                         # accumulators per output channel
            starts = []
            for r in range(MR):
                v = builder.load(builder.gep(init_ptr, [builder.add(init_off_v, const(r))]))
                v = builder.insert_element(ir.Constant(vi32, ir.Undefined), v, ir.Constant(i32, 0))
                starts.append(builder.shuffle_vector(v, ir.Constant(vi32, ir.Undefined), ir.Constant(vi32, [0] * 16)))

            def tap_quad(t, acc):
                tap = builder.load(builder.gep(toff_ptr, [t]))
                vecs = []                                            # [row][h]
                for row in range(rows):
                    off = builder.add(x_off_v, tap) if row == 0 else builder.add(builder.add(x_off_v, row_str_v), tap)
                    raw = builder.load(builder.bitcast(builder.gep(x_ptr, [off]), vi8.as_pointer()), align=1)
                    vecs.append([builder.bitcast(builder.shuffle_vector(raw, ir.Constant(vi8, ir.Undefined), m), vi32)
                                 for m in masks])
                new = []
                for r in range(MR):
                    a_idx = builder.add(builder.add(w_off_v, builder.mul(const(r), w_str_v)), t)
                    a = builder.load(builder.gep(w_ptr, [a_idx]), align=4)
                    splat = builder.insert_element(ir.Constant(vi32, ir.Undefined), a, ir.Constant(i32, 0))
                    splat = builder.shuffle_vector(splat, ir.Constant(vi32, ir.Undefined), ir.Constant(vi32, [0] * 16))
                    for row in range(rows):
                        for h in range(2):
                            new.append(builder.call(dp, [acc[per_r * r + 2 * row + h], vecs[row][h], splat]))
                return new

            totals = emit_counted_loop(builder, nk_v, [starts[i // per_r] for i in range(MR * per_r)], tap_quad, "mks")
            vmax = lambda a, b: builder.select(builder.icmp_signed(">", a, b), a, b)  # noqa: E731
            for r in range(MR):
                ptr_at = lambda idx: builder.bitcast(builder.gep(c_ptr, [idx]), vi32.as_pointer())  # noqa: E731
                base = builder.add(c_off_v, builder.mul(const(r), c_str_v))
                mine = totals[per_r * r:per_r * (r + 1)]
                if rows == 2:                                    # the 2×2 window maxima
                    builder.store(vmax(vmax(mine[0], mine[1]), vmax(mine[2], mine[3])), ptr_at(base), align=4)
                    continue
                for h in range(2):
                    builder.store(mine[h], ptr_at(builder.add(base, const(16 * h))), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return _mk


_mk_sliding_pool2 = _make_sliding_microkernel(PAIRS, rows=2)   # nothing is emitted until a driver compiles
_mk_sliding_in_order = _make_sliding_microkernel(IN_ORDER)


# ----------------------------------------------------------------------------- operands


def pack_weight_rows(w: np.ndarray):
    """W int8 [O, C, kh, kw] → (packed int8 [Op, C·kh·KW4·4], init int32 [Op]), Op = ⌈O/6⌉·6,
    KW4 = ⌈kw/4⌉:

        packed[o, 4·((c·kh + i)·KW4 + j4) + q] = W[o, c, i, 4·j4 + q]      (0 past O or kw)
        init[o] = −128 Σ_{c,i,j} W[o, c, i, j]

    Pack once per layer."""
    o, c, kh, kw = w.shape
    op, kw4 = -(-o // MR) * MR, -(-kw // 4)
    full = np.zeros((op, c, kh, kw4 * 4), np.int8)
    full[:o, :, :, :kw] = w
    init = (-128 * full.reshape(op, -1).astype(np.int32).sum(axis=1)).astype(np.int32)
    return np.ascontiguousarray(full.reshape(op, -1)), init


@functools.lru_cache(maxsize=64)
def tap_offsets(c: int, kh: int, kw: int, hp: int, wp: int) -> np.ndarray:
    """toff[t] = (c·Hp + i)·Wp + 4·j4 for tap quad t = (c·kh + i)·KW4 + j4 (read-only int64)."""
    tc, ti, tj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(-(-kw // 4)), indexing="ij")
    toff = ((tc * hp + ti) * wp + 4 * tj).reshape(-1).astype(np.int64)
    toff.setflags(write=False)
    return toff


# ----------------------------------------------------------------------------- the driver


@njit(cache=True, parallel=True)
def _conv_sliding_requant_pool(xu, n, image, wp, w, init, toff, rows, n_panels, offset, m0, shift, zero_point,
                               qmin, qmax, k, out):
    """Threads over images. k = 2: per pair of output rows and panel, `_mk_sliding_pool2` leaves
    the 2×2 window maxima, best [Op, Hq, 16·n_panels] (lane l of panel p is window 16p + l), and
    each channel's are requantized in one contiguous loop.  Otherwise the accumulators of the rows
    a window uses, acc [Op, rows, 32·n_panels] in order (`_mk_sliding_in_order`), then per channel
    the k × k window maxima and one requantization each.  Into out [N, O, Hq, Wq]."""
    op = init.size
    nk = toff.size
    w_flat = w.ravel().view(np.int32)
    o_len, hq, wq = out.shape[1], out.shape[2], out.shape[3]
    for b in prange(n):
        out_img = out[b].ravel()
        if k == 2:
            width = 16 * n_panels
            best = np.empty((op, hq, width), np.int32)             # every element written once by _mk
            best_flat = best.ravel()
            for yq in range(hq):
                for p in range(n_panels):
                    x_off = b * image + 2 * yq * wp + NR * p
                    for strip in range(op // MR):
                        _mk_sliding_pool2(w_flat, strip * MR * nk, nk, xu, x_off, wp, toff, init, strip * MR, best_flat,
                                          (strip * MR * hq + yq) * width + 16 * p, hq * width, nk)
            size = out_img.size
            for o in range(o_len):
                off, mo, sh = offset[o], m0[o], shift[o]
                for yq in range(hq):
                    base = (o * hq + yq) * wq
                    src = best_flat[(o * hq + yq) * width:(o * hq + yq + 1) * width]
                    # all the row's lanes where they fit: those past Wq land on the next rows, which
                    # are written after this one, so nothing is lost; the image's last row exactly
                    span = width if base + width <= size else wq
                    dst = out_img[base:base + span]
                    for t in range(span):
                        total = min(max(np.int64(src[t]) + off, INT32_MIN), INT32_MAX)
                        dst[t] = _requantize_one(total, mo, sh, zero_point, qmin, qmax)
            continue
        row_len = n_panels * NR
        acc = np.empty((op, rows, row_len), np.int32)              # every element written once by _mk
        acc_flat = acc.ravel()
        for y in range(rows):
            for p in range(n_panels):
                x_off = b * image + y * wp + NR * p
                for strip in range(op // MR):
                    _mk_sliding_in_order(w_flat, strip * MR * nk, nk, xu, x_off, wp, toff, init, strip * MR, acc_flat,
                                         (strip * MR * rows + y) * row_len + NR * p, rows * row_len, nk)
        for o in range(o_len):
            off, mo, sh = offset[o], m0[o], shift[o]
            plane = acc_flat[o * rows * row_len:(o + 1) * rows * row_len]
            for yq in range(hq):
                base = (o * hq + yq) * wq
                for xq in range(wq):         # a k × k window from k rows
                    m = plane[yq * k * row_len + xq * k]
                    for i in range(k):
                        for j in range(k):
                            m = max(m, plane[(yq * k + i) * row_len + xq * k + j])
                    total = min(max(np.int64(m) + off, INT32_MIN), INT32_MAX)
                    out_img[base + xq] = _requantize_one(total, mo, sh, zero_point, qmin, qmax)


def conv2d_requant_pool_sliding(x, packed, init, kh, kw, padding, pad_value, offset, m0, shift, zero_point,
                                qmin, qmax, pool):
    """int8 [N, O, Ho/pool, Wo/pool] of a stride-1 convolution (W packed by `pack_weight_rows`),
    max pool and requantization; offset, m0, shift int64 [O]; x int8 NCHW or a
    `conv_input_u8.PaddedU8`. The caller checks shapes and that the CPU has AVX-512 VNNI."""
    n, c, h, w = x.shape
    o = offset.shape[0]
    ph, pw = padding
    ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    hq, wq = ho // pool, wo // pool
    out = np.empty((n, o, hq, wq), np.int8)
    if out.size == 0:
        return out
    hp, wp = h + 2 * ph, w + 2 * pw
    rows, n_panels = hq * pool, -(-(wq * pool) // NR)
    toff = tap_offsets(c, kh, kw, hp, wp)
    image = c * hp * wp
    # the last image's last load starts at (rows − 1)·Wp + 32·(n_panels − 1) + toff[−1] and reads 64 bytes
    slack = max(0, (rows - 1) * wp + NR * (n_panels - 1) + int(toff[-1]) + 64 - image)
    xu = ensure_padded(x, (ph, pw), pad_value, slack)
    _conv_sliding_requant_pool(xu.flat, n, image, wp, packed, init, toff, rows, n_panels, offset, m0, shift,
                               int(zero_point), int(qmin), int(qmax), int(pool), out)
    return out


__all__ = ["IN_ORDER", "MR", "NR", "PAIRS", "conv2d_requant_pool_sliding", "pack_weight_rows", "tap_offsets"]
