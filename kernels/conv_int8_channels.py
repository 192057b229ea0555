"""Stride-1 int8 convolution + requantize + max pool with the *output channels* in the vector lanes.

    acc[n, o, y, x] = Σ_{c, i, j} W[o, c, i, j] · X̃[n, c, y + i, x + j]

`conv_int8._conv_s1_vnni_requant_pool` puts output positions in the lanes: it packs the input
into panels (an im2col in L1) and computes whole padded rows (Wp positions for Wo outputs).
For a layer with many output channels and few input channels, like LeNet-5's conv2 (6 → 16,
5×5, 10×10 outputs), that packing and the padded-row waste cost more than the products. Here
the lanes are output channels instead (16 per zmm register with AVX-512 VNNI, 8 per ymm with
AVX-VNNI), and nothing is packed:

- the input is the positions kernel's: shifted to unsigned, u = X̃ + 128, padded, channels first
  (`conv_input_u8`), so four neighbouring taps of one kernel row, u[c, y + i, x + 4j4 : x + 4j4 + 4],
  are four consecutive bytes: one (unaligned) int32;
- for each such quad of taps (c, i, j4), the weights W[o, c, i, 4j4 : 4j4 + 4] of `lanes` output
  channels are one vector, zero past kw (`pack_weight_channels`, once per layer);
- the micro-kernel `_mk_channels` keeps MR = 8 output positions' accumulators in registers and
  walks the tap quads: one `vpdpbusd` per position and quad, acc[r] += u-quad(position r) ·
  W-vector, the u quad broadcast straight from the input;
- only the positions that a pooling window uses are computed, window by window (`window_positions`),
  so the max of each window is a max over consecutive accumulator rows, taken while they are in
  cache, and each window is requantized once (`_requantize_one`, the same arithmetic as every twin).

The cost of reading the input in place is the zero weights past kw: ⌈kw/4⌉·4 taps per kernel row
(8 for 5). Σ u·W = acc + 128 Σ W, so the accumulators start at init[o] = −128 Σ W[o] and end
exact. The NumPy twin is `conv_int8.conv2d_requant_pool_reference`;
`conv_int8.conv2d_requant_pool_numba` chooses this layout or the positions one.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from .fixed_point import INT32_MAX, INT32_MIN, _requantize_one
from .conv_input_u8 import ensure_padded
from .gemm_u8s8 import emit_counted_loop, emit_trap, host_can_emit

MR = 8            # output positions per micro-kernel call (8 accumulators in registers)


def _make_channels_microkernel(lanes: int):
    """_mk(xu, x_off, pos, pos_off, toff, nk, w, w_off, init, init_off, c, c_off, c_stride), a Numba
    intrinsic for `lanes` = 16 (AVX-512 VNNI, `llvm.x86.avx512.vpdpbusd.512`) or 8 (AVX-VNNI):

        acc[r] = init[init_off : init_off + lanes]                       for r < MR
        for t in range(nk):                                              # tap quads
            w_t = w[w_off + lanes·t : … + lanes]                         # int8 × 4 per lane
            for r in range(MR):
                b = x_off + pos[pos_off + r] + toff[t]                   # a byte offset
                acc[r] = vpdpbusd(acc[r], broadcast(xu[b : b + 4] as int32), w_t)
        c[c_off + r·c_stride : … + lanes] = acc[r]

    xu is the unsigned input (bytes), w the packed weights viewed as int32."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    name = "llvm.x86.avx512.vpdpbusd.512" if lanes == 16 else "llvm.x86.avx512.vpdpbusd.256"

    @intrinsic
    def _mk(typingctx, xu, x_off, pos, pos_off, toff, nk, w, w_off, init, init_off, c, c_off, c_stride):
        sig = types.void(xu, x_off, pos, pos_off, toff, nk, w, w_off, init, init_off, c, c_off, c_stride)

        def codegen(context, builder, signature, args):
            if not host_can_emit("vnni512" if lanes == 16 else "vnni256"):
                return emit_trap(context, builder)
            (xu_v, x_off_v, pos_v, pos_off_v, toff_v, nk_v, w_v, w_off_v, init_v, init_off_v, c_v, c_off_v,
             c_stride_v) = args
            data = lambda i, v: cgutils.create_struct_proxy(signature.args[i])(context, builder, value=v).data  # noqa: E731
            x_ptr, pos_ptr, toff_ptr = data(0, xu_v), data(2, pos_v), data(4, toff_v)
            w_ptr, init_ptr, c_ptr = data(6, w_v), data(8, init_v), data(10, c_v)
            i64, i32 = ir.IntType(64), ir.IntType(32)
            vi32 = ir.VectorType(i32, lanes)
            dp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vi32, [vi32, vi32, vi32]), name)
            const = lambda v: ir.Constant(i64, v)  # noqa: E731
            vec_at = lambda ptr, idx: builder.bitcast(builder.gep(ptr, [idx]), vi32.as_pointer())  # noqa: E731

            bases = [builder.add(x_off_v, builder.load(builder.gep(pos_ptr, [builder.add(pos_off_v, const(r))])))
                     for r in range(MR)]
            start = builder.load(vec_at(init_ptr, init_off_v), align=4)

            def tap_quad(t, acc):
                tap = builder.load(builder.gep(toff_ptr, [t]))
                w_t = builder.load(vec_at(w_ptr, builder.add(w_off_v, builder.mul(t, const(lanes)))), align=4)
                new = []
                for r in range(MR):
                    byte = builder.gep(x_ptr, [builder.add(bases[r], tap)])
                    u = builder.load(builder.bitcast(byte, i32.as_pointer()), align=1)
                    splat = builder.insert_element(ir.Constant(vi32, ir.Undefined), u, ir.Constant(i32, 0))
                    splat = builder.shuffle_vector(splat, ir.Constant(vi32, ir.Undefined), ir.Constant(vi32, [0] * lanes))
                    new.append(builder.call(dp, [acc[r], splat, w_t]))
                return new

            totals = emit_counted_loop(builder, nk_v, [start] * MR, tap_quad, "mkc")
            for r in range(MR):
                idx = builder.add(c_off_v, builder.mul(const(r), c_stride_v))
                builder.store(totals[r], vec_at(c_ptr, idx), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return _mk


_mk_channels16 = _make_channels_microkernel(16)     # nothing is emitted until a driver compiles
_mk_channels8 = _make_channels_microkernel(8)


# ----------------------------------------------------------------------------- operands


def pack_weight_channels(w: np.ndarray, lanes: int):
    """W int8 [O, C, kh, kw] → (packed int8 [G, C·kh·KW4, lanes, 4], init int32 [G·lanes]) with
    KW4 = ⌈kw/4⌉, G = ⌈O/lanes⌉ and

        packed[g, (c·kh + i)·KW4 + j4, l, h] = W[g·lanes + l, c, i, 4·j4 + h]   (0 past O or kw)
        init[o] = −128 Σ_{c,i,j} W[o, c, i, j]                                  (0 past O)

    Pack once per layer."""
    o, c, kh, kw = w.shape
    kw4, groups = -(-kw // 4), -(-o // lanes)
    full = np.zeros((groups * lanes, c, kh, kw4 * 4), np.int8)
    full[:o, :, :, :kw] = w
    # [G, lanes, C, kh, KW4, 4] → [G, C, kh, KW4, lanes, 4]
    packed = full.reshape(groups, lanes, c, kh, kw4, 4).transpose(0, 2, 3, 4, 1, 5)
    init = (-128 * full.reshape(groups * lanes, -1).astype(np.int32).sum(axis=1)).astype(np.int32)
    return np.ascontiguousarray(packed).reshape(groups, c * kh * kw4, lanes, 4), init


@functools.lru_cache(maxsize=64)
def window_positions(ho: int, wo: int, c: int, hp: int, wp: int, pool: int, kh: int, kw: int):
    """(pos, toff) as read-only int64 arrays of byte offsets in one `conv_input_u8` image:

    - pos[r]: the r-th computed output position (y, x), y·Wp + x, window by window ((yq, xq)
      row-major, then (i, j) inside the pool × pool window: y = pool·yq + i, x = pool·xq + j),
      padded to a multiple of MR by repeating the last one;
    - toff[t]: tap quad t = (c·kh + i)·KW4 + j4, (c·Hp + i)·Wp + 4·j4.

    Positions that no window uses (the rows and columns a floor-mode pool drops) are skipped."""
    hq, wq = ho // pool, wo // pool
    yq, xq, i, j = np.meshgrid(np.arange(hq), np.arange(wq), np.arange(pool), np.arange(pool), indexing="ij")
    pos = ((pool * yq + i) * wp + (pool * xq + j)).reshape(-1).astype(np.int64)
    if pos.size % MR:
        pos = np.concatenate([pos, np.full(MR - pos.size % MR, pos[-1], np.int64)])
    tc, ti, tj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(-(-kw // 4)), indexing="ij")
    toff = ((tc * hp + ti) * wp + 4 * tj).reshape(-1).astype(np.int64)
    pos.setflags(write=False)
    toff.setflags(write=False)
    return pos, toff


# ----------------------------------------------------------------------------- the drivers


@njit(cache=True, inline="always")
def _pool_requantize_image(acc, win, o_len, offset, m0, shift, zero_point, qmin, qmax, best, q, dst):
    """dst [O, n_win] of one image: for each window w, per channel o, the max of its `win`
    consecutive accumulator rows, requantized once (`_requantize_one`).  Each loop runs over the
    channels, contiguous in acc, best [O_pad] and q [n_win, O_pad], so it is vectorised; the
    channels-first result is one transposed copy at the end."""
    n_win = dst.shape[1]
    o_pad = acc.shape[1]
    for wdx in range(n_win):
        r0 = wdx * win
        qq = q[wdx]
        if win == 4:                                 # the common 2×2 pool: max and requantize in one loop
            a0, a1, a2, a3 = acc[r0], acc[r0 + 1], acc[r0 + 2], acc[r0 + 3]
            for o in range(o_pad):
                m = max(max(a0[o], a1[o]), max(a2[o], a3[o]))
                total = min(max(np.int64(m) + offset[o], INT32_MIN), INT32_MAX)
                qq[o] = _requantize_one(total, m0[o], shift[o], zero_point, qmin, qmax)
            continue
        first = acc[r0]
        for o in range(o_pad):
            best[o] = first[o]
        for t in range(1, win):
            row = acc[r0 + t]
            for o in range(o_pad):
                best[o] = max(best[o], row[o])
        for o in range(o_pad):
            total = min(max(np.int64(best[o]) + offset[o], INT32_MIN), INT32_MAX)
            qq[o] = _requantize_one(total, m0[o], shift[o], zero_point, qmin, qmax)
    for o in range(o_len):
        row = dst[o]
        for wdx in range(n_win):
            row[wdx] = q[wdx, o]


@njit(cache=True, parallel=True)
def _conv_channels(xu, n, image, pos, toff, w, init, lanes, offset, m0, shift, zero_point, qmin, qmax, win, out):
    """Threads over images; per image, each group of `lanes` output channels (16: `_mk_channels16`,
    8: `_mk_channels8`; the CPU's, the other compiles to a trap) over all computed positions into
    acc [positions, G·lanes] (in cache), then `_pool_requantize_image`."""
    groups = init.size // lanes
    nk = toff.size
    o_pad = groups * lanes
    o_len, n_win = out.shape[1], out.shape[2]
    for b in prange(n):
        acc = np.empty((pos.size, o_pad), np.int32)
        acc_flat = acc.ravel()
        best = np.empty(o_pad, np.int32)
        q = np.empty((n_win, o_pad), np.int8)
        for g in range(groups):
            for p0 in range(0, pos.size, MR):
                if lanes == 16:
                    _mk_channels16(xu, b * image, pos, p0, toff, nk, w, g * nk * 16, init, g * 16, acc_flat,
                                   p0 * o_pad + g * 16, o_pad)
                else:
                    _mk_channels8(xu, b * image, pos, p0, toff, nk, w, g * nk * 8, init, g * 8, acc_flat,
                                  p0 * o_pad + g * 8, o_pad)
        _pool_requantize_image(acc, win, o_len, offset, m0, shift, zero_point, qmin, qmax, best, q, out[b])


def conv2d_requant_pool_channels(x, packed, init, kh, kw, padding, pad_value, offset, m0, shift, zero_point,
                                 qmin, qmax, pool, lanes):
    """int8 [N, O, Ho/pool, Wo/pool] of a stride-1 convolution (W packed by `pack_weight_channels`
    with `lanes`), max pool and requantization; offset, m0, shift int64 [O]; x int8 NCHW or a
    `conv_input_u8.PaddedU8`. The caller checks shapes and that the CPU has the `lanes` kernel
    (16: AVX-512 VNNI, 8: AVX-VNNI)."""
    n, c, h, w = x.shape
    o = offset.shape[0]
    ph, pw = padding
    ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    hq, wq = ho // pool, wo // pool
    out = np.empty((n, o, hq, wq), np.int8)
    if out.size == 0:
        return out
    xu = ensure_padded(x, padding, pad_value, slack=4)        # a quad past kw reads ≤ 3 bytes beyond
    hp, wp = xu.hp, xu.wp
    pos, toff = window_positions(ho, wo, c, hp, wp, pool, kh, kw)
    o_pad = init.shape[0]
    pad = lambda v: np.concatenate([v, np.zeros(o_pad - o, np.int64)]) if o_pad > o else v  # noqa: E731
    _conv_channels(xu.flat, n, c * hp * wp, pos, toff, packed.reshape(-1).view(np.int32), init, int(lanes), pad(offset),
                   pad(m0), pad(shift), int(zero_point), int(qmin), int(qmax), pool * pool, out.reshape(n, o, hq * wq))
    return out


__all__ = ["MR", "conv2d_requant_pool_channels", "pack_weight_channels", "window_positions"]
