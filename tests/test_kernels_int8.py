"""int8 kernels: matmul, requantize and im2col conv, each bit-exact against its NumPy int64 twin."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyopt.kernels import conv_int8, fixed_point as rq, gemm_int8 as mi

HAS_AVX2 = mi._host_has_avx2()
FAST_KERNELS = [mi.matmul_int8_portable] + ([mi.matmul_int8_avx2] if HAS_AVX2 else [])


def rand_int8(rng, shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


def int64_matmul(a, b):
    """An independent reference: an explicit sum over k of outer products, in Python ints' range."""
    out = np.zeros((a.shape[0], b.shape[1]), np.int64)
    for k in range(a.shape[1]):
        out += np.outer(a[:, k].astype(np.int64), b[k].astype(np.int64))
    return out


# ----------------------------------------------------------------------------- matmul_int8


@pytest.mark.parametrize("kernel", FAST_KERNELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (6, 16, 16), (37, 129, 45), (13, 300, 33), (3, 0, 4)])
def test_matmul_int8_bit_exact(kernel, shape):
    m, k, n = shape
    rng = np.random.default_rng(sum(shape))
    a, b = rand_int8(rng, (m, k)), rand_int8(rng, (k, n))
    expected = int64_matmul(a, b)
    np.testing.assert_array_equal(mi.matmul_int8_reference(a, b), expected)
    got = kernel(a, b)
    assert got.dtype == np.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kernel", [mi.matmul_int8_reference] + FAST_KERNELS, ids=lambda f: f.__name__)
def test_matmul_int8_extremes_large_k(kernel):
    """-128·-128 = 16384 summed over K = 8191: int16 intermediates would overflow at the second term."""
    k = 8191
    a = np.full((7, k), -128, np.int8)
    b = np.full((k, 19), -128, np.int8)
    b[:, 1] = 127                                   # the most negative column: k · (−128 · 127)
    got = kernel(a, b)
    assert got[0, 0] == k * 16384 and got[0, 1] == -k * 128 * 127
    np.testing.assert_array_equal(got, int64_matmul(a, b))


@pytest.mark.skipif(not HAS_AVX2, reason="CPU has no AVX2")
def test_packed_weight_reused():
    rng = np.random.default_rng(3)
    b = rand_int8(rng, (65, 40))
    packed = mi.pack_b(b)
    for m in (1, 6, 11):
        a = rand_int8(rng, (m, 65))
        np.testing.assert_array_equal(mi.matmul_int8_avx2(a, packed), int64_matmul(a, b))
    np.testing.assert_array_equal(mi.matmul_int8_reference(a, packed), int64_matmul(a, b))


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 20), k=st.integers(1, 70), n=st.integers(1, 40), seed=st.integers(0, 2**16),
       transposed=st.booleans())
def test_matmul_int8_hypothesis_shapes(m, k, n, seed, transposed):
    rng = np.random.default_rng(seed)
    a = rand_int8(rng, (m, k))
    b = rand_int8(rng, (n, k)).T if transposed else rand_int8(rng, (k, n))   # non-contiguous b
    expected = int64_matmul(a, b)
    for kernel in FAST_KERNELS:
        np.testing.assert_array_equal(kernel(a, b), expected)


def test_matmul_int8_dispatch_and_errors():
    a = np.ones((2, 3), np.int8)
    assert mi.matmul_int8(a, np.ones((3, 4), np.int8)).tolist() == [[3] * 4] * 2
    with pytest.raises(ValueError, match=r"inner dimensions differ: a \(2, 3\) @ b \(4, 4\)"):
        mi.matmul_int8(a, np.ones((4, 4), np.int8))
    with pytest.raises(TypeError, match="int8"):
        mi.matmul_int8(a.astype(np.float32), np.ones((3, 4), np.int8))
    with pytest.raises(ValueError, match="overflow"):
        mi.matmul_int8_reference(np.ones((1, mi.MAX_K + 1), np.int8), np.ones((mi.MAX_K + 1, 1), np.int8))


def test_kernel_info_reports_features():
    info = mi.int8_kernel_info()
    assert info["kernel"] in ("avx2", "portable")
    assert "avx512vnni" in info


# ----------------------------------------------------------------------------- requantize


@pytest.mark.parametrize("m", [0.0, 1e-6, 0.0123, 0.25, 0.5, 0.7071, 0.999999999, 1.0, 3.7, 1234.5])
def test_quantize_multiplier_normalised(m):
    m0, n = rq.quantize_multiplier(m)
    if m == 0:
        assert (m0, n) == (0, 0)
        return
    assert 2**30 <= m0 < 2**31
    assert rq.multiplier_value(m0, n) == pytest.approx(m, rel=2**-30)


def test_quantize_multiplier_rejects_bad_input():
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            rq.quantize_multiplier(bad)


def test_srdhm_and_rdbpot_rounding():
    # RDBPOT: ties away from zero; SRDHM (gemmlowp's nudge and truncating division): ties toward +inf
    assert rq.rounding_divide_by_pot_reference(np.array([5, -5, 6, -6, 7, -7]), 1).tolist() == [3, -3, 3, -3, 4, -4]
    assert rq.srdhm_reference(np.int64(-(2**31)), np.int64(-(2**31))) == 2**31 - 1
    half = 2**30                                       # M0/2³¹ = 0.5
    assert rq.srdhm_reference(np.array([3, -3, 4, -5]), half).tolist() == [2, -1, 2, -2]


@pytest.mark.parametrize("per_channel", [False, True])
def test_requantize_numba_equals_reference_and_float_within_one_lsb(per_channel):
    rng = np.random.default_rng(7)
    acc = rng.integers(-(2**20), 2**20, (33, 10), dtype=np.int32)
    acc[0, :3] = [2**31 - 1, -(2**31), 0]
    if per_channel:
        real = rng.uniform(1e-5, 2e-3, 10)
        real[3] = 1.5                                  # a multiplier ≥ 1: left shift
    else:
        real = np.float64(3.1e-4)
    m0, n = rq.quantize_multiplier(real)
    ref = rq.requantize_reference(acc, m0, n, zero_point=-3, axis=1)
    fast = rq.requantize_numba(acc, m0, n, zero_point=-3, axis=1)
    np.testing.assert_array_equal(fast, ref)
    sim = rq.requantize_float(acc, rq.multiplier_value(m0, n), zero_point=-3, axis=1)
    assert np.abs(ref.astype(int) - sim.astype(int)).max() <= 1
    assert ref.dtype == np.int8 and ref.min() >= -128 and ref.max() <= 127


def test_requantize_offset_is_added_first_and_saturates():
    acc = np.array([[5, -7], [2**31 - 10, -(2**31) + 10]], np.int32)
    offset = np.array([100, -100])
    m0, n = rq.quantize_multiplier(np.array([0.5, 0.25]))
    for f in (rq.requantize_reference, rq.requantize_numba):
        got = f(acc, m0, n, offset=offset, qmin=-(2**20), qmax=2**20, out_dtype=np.int32)
        # row 0: (5 + 100)·0.5 = 52.5 → 53 (SRDHM ties up); (−7 − 100)·0.25 = −26.75 → −27
        assert got[0].tolist() == [53, -27]
        assert got[1].tolist() == [2**20, -(2**20)]           # int32 sums saturate, then the clamp
    ref = rq.requantize_reference(acc, m0, n, offset=offset)
    np.testing.assert_array_equal(rq.requantize_numba(acc, m0, n, offset=offset), ref)


def test_conv2d_int8_nhwc_twins_agree():
    rng = np.random.default_rng(11)
    x, w = rand_int8(rng, (2, 3, 7, 7)), rand_int8(rng, (4, 3, 3, 3))
    a = conv_int8.conv2d_int8_nhwc_reference(x, w, 2, 1, -3)
    b = conv_int8.conv2d_int8_nhwc_numba(x, w, 2, 1, -3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a.transpose(0, 3, 1, 2), direct_conv_int64(x, w, 2, 1, -3))


def test_requantize_uint8_and_axis():
    rng = np.random.default_rng(1)
    acc = rng.integers(-5000, 5000, (2, 3, 4, 4), dtype=np.int32)
    m0, n = rq.quantize_multiplier(np.array([0.01, 0.02, 0.03]))
    kw = dict(zero_point=128, qmin=0, qmax=255, axis=1, out_dtype=np.uint8)
    np.testing.assert_array_equal(rq.requantize_numba(acc, m0, n, **kw), rq.requantize_reference(acc, m0, n, **kw))
    sim = rq.requantize_float(acc, rq.multiplier_value(m0, n), **{k: v for k, v in kw.items()})
    assert np.abs(rq.requantize_reference(acc, m0, n, **kw).astype(int) - sim.astype(int)).max() <= 1


# ----------------------------------------------------------------------------- conv2d_int8


def direct_conv_int64(x, w, stride, padding, pad_value):
    """Loops over output positions: independent of both twins."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.full((n, c, h + 2 * padding, wd + 2 * padding), pad_value, np.int64)
    xp[:, :, padding:padding + h, padding:padding + wd] = x
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, ho, wo), np.int64)
    for y in range(ho):
        for xx in range(wo):
            patch = xp[:, :, y * stride:y * stride + kh, xx * stride:xx * stride + kw]
            out[:, :, y, xx] = np.tensordot(patch, w.astype(np.int64), axes=([1, 2, 3], [1, 2, 3]))
    return out


@pytest.mark.parametrize("stride,padding,pad_value", [(1, 0, 0), (1, 1, -7), (2, 2, 5), (3, 1, -128)])
def test_conv2d_int8_bit_exact(stride, padding, pad_value):
    rng = np.random.default_rng(stride * 10 + padding)
    x = rand_int8(rng, (2, 3, 9, 8))
    w = rand_int8(rng, (5, 3, 3, 3))
    expected = direct_conv_int64(x, w, stride, padding, pad_value)
    ref = conv_int8.conv2d_int8_reference(x, w, stride, padding, pad_value)
    fast = conv_int8.conv2d_int8_numba(x, w, stride, padding, pad_value)
    packed = conv_int8.conv2d_int8_numba(x, w, stride, padding, pad_value, packed_w=conv_int8.pack_conv_weight(w))
    for got in (ref, fast, packed):
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, expected)


def test_conv2d_int8_channel_mismatch_message():
    with pytest.raises(ValueError, match="input has 2 channels but the weight"):
        conv_int8.conv2d_int8(np.zeros((1, 2, 5, 5), np.int8), np.zeros((4, 3, 3, 3), np.int8))


@pytest.mark.parametrize("k", [2, 3])
def test_max_pool_int8_twins(k):
    rng = np.random.default_rng(k)
    q = rand_int8(rng, (2, 3, 7, 8))
    ref = conv_int8.max_pool2d_int8_reference(q, k)
    np.testing.assert_array_equal(conv_int8.max_pool2d_int8_numba(q, k), ref)
    expected = np.array([[[[q[b, c, y * k:(y + 1) * k, x * k:(x + 1) * k].max() for x in range(8 // k)]
                           for y in range(7 // k)] for c in range(3)] for b in range(2)])
    np.testing.assert_array_equal(ref, expected)


# ----------------------------------------------------------------------------- fused conv path (rows, requantize + pool)


@pytest.mark.parametrize("shape,wshape,stride,padding", [
    ((3, 1, 12, 12), (6, 1, 5, 5), 1, 2),        # LeNet conv1-like: K = 25 (odd), O = 6
    ((2, 6, 9, 9), (16, 6, 5, 5), 1, 0),         # conv2-like: K = 150, O = 16
    ((2, 3, 9, 8), (20, 3, 3, 3), 2, 1),         # O > 16 (two column panels), stride 2
    ((1, 2, 4, 4), (3, 2, 4, 4), 1, 0),          # one output position (M = 1: padded to 6 rows)
])
def test_conv2d_int8_rows_bit_exact(shape, wshape, stride, padding):
    rng = np.random.default_rng(sum(shape) + stride)
    x, w = rand_int8(rng, shape), rand_int8(rng, wshape)
    expected = direct_conv_int64(x, w, stride, padding, -5).transpose(0, 2, 3, 1).reshape(-1, wshape[0])
    ref = conv_int8.conv2d_int8_rows_reference(x, w, stride, padding, -5)
    fast = conv_int8.conv2d_int8_rows_numba(x, w, stride, padding, -5, packed_w=conv_int8.pack_conv_weight(w))
    for got in (ref, fast):
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, expected)


def test_im2col_pairs_layout():
    """The int16 im2col equals the int8 one, zero-padded to 6-row and even-column multiples."""
    rng = np.random.default_rng(5)
    x = rand_int8(rng, (2, 3, 6, 7))
    xp = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-2))
    ho, wo = conv_int8.conv_output_size(6, 7, 3, 3, 1, 1)
    cols = conv_int8._im2col(xp, 3, 3, 1, 1, ho, wo)                    # [2·6·7, 27]
    pairs = conv_int8._im2col_pairs(xp, 3, 3, 1, 1, ho, wo, 90, 28)
    assert pairs.dtype == np.int16 and pairs.shape == (90, 28)
    np.testing.assert_array_equal(pairs[:84, :27], cols)
    assert not pairs[84:].any() and not pairs[:, 27].any()


@pytest.mark.parametrize("shape,wshape,padding", [
    ((3, 1, 28, 28), (6, 1, 5, 5), 2),           # LeNet conv1: K = 25 (odd), O = 6
    ((2, 6, 14, 14), (16, 6, 5, 5), 0),          # LeNet conv2: K = 150, O = 16 (3 strips of 6)
    ((2, 3, 9, 8), (20, 3, 3, 3), 1),            # odd sizes, Ho·Wp not a multiple of 16
    ((1, 2, 4, 4), (3, 2, 4, 4), 0),             # one output position
    ((2, 1, 5, 5), (1, 1, 1, 1), 0),             # 1×1 kernel, K = 1
])
def test_conv2d_int8_acc_stride1_bit_exact(shape, wshape, padding):
    """The stride-1 direct kernel (weights as A, input panels as B) against loops in int64."""
    rng = np.random.default_rng(sum(shape) + sum(wshape))
    x, w = rand_int8(rng, shape), rand_int8(rng, wshape)
    x.reshape(-1)[-7:] = -128                     # extremes at the end: the spare bytes must not leak in
    w.reshape(-1)[:3] = -128
    expected = direct_conv_int64(x, w, 1, padding, -128)
    ref = conv_int8.conv2d_int8_acc_reference(x, w, 1, padding, -128)
    fast = conv_int8.conv2d_int8_acc_numba(x, w, 1, padding, -128, w_pairs=conv_int8.pack_conv_weight_pairs(w))
    unpacked = conv_int8.conv2d_int8_acc_numba(x, w, 1, padding, -128)
    for got in (ref, fast, unpacked):
        assert got.dtype == np.int32 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_conv2d_int8_acc_strided_falls_back():
    rng = np.random.default_rng(8)
    x, w = rand_int8(rng, (2, 3, 9, 8)), rand_int8(rng, (5, 3, 3, 3))
    np.testing.assert_array_equal(conv_int8.conv2d_int8_acc_numba(x, w, 2, 1, 3), direct_conv_int64(x, w, 2, 1, 3))


def test_pack_conv_weight_pairs_layout():
    w = rand_int8(np.random.default_rng(0), (7, 3, 3, 3))                # O = 7 → 12 rows, K = 27 → 28
    pairs = conv_int8.pack_conv_weight_pairs(w)
    assert pairs.dtype == np.int16 and pairs.shape == (12, 28)
    np.testing.assert_array_equal(pairs[:7, :27], w.reshape(7, 27))
    assert not pairs[7:].any() and not pairs[:, 27].any()


@pytest.mark.parametrize("pool", [1, 2, 3])
def test_requantize_pool_nchw_twins(pool):
    """Fused max-then-requantize equals requantize-then-max (requantization is non-decreasing),
    incl. saturation, a large multiplier and a ReLU clamp at Z; on a strided view too."""
    rng = np.random.default_rng(pool)
    n, o, ho, wo = 2, 5, 7, 6
    acc = rng.integers(-2**31, 2**31, (n, o, ho, wo), dtype=np.int64).astype(np.int32)
    acc[:, :, ::3] //= 50000
    m0, shift = rq.quantize_multiplier(np.array([0.001, 0.02, 0.5, 3.0, 1e-6]))
    offset = rng.integers(-1000, 1000, o)
    zp, qmin, qmax = -20, -20, 127
    ref = conv_int8.requantize_pool_nchw_reference(acc, offset, m0, shift, zp, qmin, qmax, pool)
    fast = conv_int8.requantize_pool_nchw_numba(acc, offset, m0, shift, zp, qmin, qmax, pool)
    big = np.zeros((n, o + 3, ho, wo + 5), np.int32)
    big[:, :o, :, :wo] = acc
    fast_view = conv_int8.requantize_pool_nchw_numba(big[:, :o, :, :wo], offset, m0, shift, zp, qmin, qmax, pool)
    q = rq.requantize_reference(acc, m0, shift, zp, qmin, qmax, axis=1, offset=offset)
    expected = np.array([[[[q[b, c, y * pool:(y + 1) * pool, x * pool:(x + 1) * pool].max()
                            for x in range(wo // pool)] for y in range(ho // pool)] for c in range(o)]
                         for b in range(n)], dtype=np.int8)
    assert ref.shape == (n, o, ho // pool, wo // pool)
    for got in (ref, fast, fast_view):
        np.testing.assert_array_equal(got, expected)
