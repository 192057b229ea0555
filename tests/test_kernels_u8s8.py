"""u8 × s8 kernels (`kernels.gemm_u8s8`): vpmaddubsw (exact for A ≤ 127), AVX-VNNI / AVX-512 VNNI
vpdpbusd (exact for all inputs) and the int16 fallback, each bit-exact against the NumPy int64 twin on
the CPUs that have them; and the quantized layers that use them."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt import quant as Q
from tinyopt.kernels import backend
from tinyopt.kernels import gemm_u8s8 as U

BYTE_KERNELS = [k for k in ("maddubs", "vnni256", "vnni512") if k in U.available_kernels()]
SHAPES = [(1, 1, 1), (5, 7, 3), (6, 16, 16), (7, 33, 40), (37, 129, 45), (13, 300, 33), (3, 0, 4), (70, 1030, 17)]


def int64_matmul(a, b):
    """Independent of the reference: a sum of outer products over k."""
    out = np.zeros((a.shape[0], b.shape[1]), np.int64)
    for k in range(a.shape[1]):
        out += np.outer(a[:, k].astype(np.int64), b[k].astype(np.int64))
    return out


def operands(shape, seed, a_max=255):
    m, k, n = shape
    rng = np.random.default_rng(seed)
    return rng.integers(0, a_max + 1, (m, k)).astype(np.uint8), rng.integers(-128, 128, (k, n)).astype(np.int8)


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_is_the_sum(shape):
    a, b = operands(shape, sum(shape))
    np.testing.assert_array_equal(U.matmul_u8s8_reference(a, b), int64_matmul(a, b))


@pytest.mark.parametrize("kind", BYTE_KERNELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_byte_kernels_bit_exact(kind, shape):
    a_max = 127 if kind == "maddubs" else 255
    a, b = operands(shape, sum(shape) + 1, a_max)
    packed = U.pack_b_u8s8(b)
    got = U.matmul_u8s8_kernel(kind, a, packed)
    assert got.dtype == np.int32 and got.shape == shape[::2]
    np.testing.assert_array_equal(got, int64_matmul(a, b))
    np.testing.assert_array_equal(U.matmul_u8s8_kernel(kind, a, packed), got)      # the packed panel is reused


@pytest.mark.parametrize("kind", BYTE_KERNELS)
def test_worst_case_sums_do_not_saturate(kind):
    """maddubs: 127·(−128) + 127·(−128) = −32512 is the largest pair sum allowed (fits int16);
    vnni: 255·(−128) per product, K = 4099 of them."""
    k = 4099
    a = np.full((7, k), 127 if kind == "maddubs" else 255, np.uint8)
    b = np.full((k, 19), -128, np.int8)
    b[:, 1] = 127
    got = U.matmul_u8s8_kernel(kind, a, b)
    np.testing.assert_array_equal(got, int64_matmul(a, b))


@pytest.mark.skipif("maddubs" not in U.available_kernels(), reason="CPU has no AVX2")
@pytest.mark.parametrize("bad", [128, 200, 255])
def test_maddubs_refuses_what_could_saturate(bad):
    a, b = operands((6, 40, 16), 0, 127)
    a[3, 17] = bad
    before = a.copy()
    with pytest.raises(ValueError, match="exact only for A ≤ 127"):
        U.matmul_u8s8_kernel("maddubs", a, b)
    with pytest.raises(ValueError, match="seven_bit=True but max"):
        U.matmul_u8s8(a, b, seven_bit=True)
    with backend("reference"), pytest.raises(ValueError, match="seven_bit=True but max"):
        U.matmul_u8s8(a, b, seven_bit=True)
    np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("forced", ["int16", "maddubs", "vnni256", "vnni512"])
@pytest.mark.parametrize("seven_bit", [False, True])
def test_every_forced_kernel_is_exact_or_refuses(monkeypatch, forced, seven_bit):
    monkeypatch.setenv("TINYOPT_U8S8_KERNEL", forced)
    a, b = operands((29, 70, 35), 4, 127 if seven_bit else 255)
    if forced not in U.available_kernels():
        with pytest.raises(RuntimeError, match="this CPU cannot run it"):
            U.matmul_u8s8_numba(a, b, seven_bit)
        return
    if forced == "maddubs" and not seven_bit:
        with pytest.raises(RuntimeError, match="needs seven_bit=True"):
            U.matmul_u8s8_numba(a, b, seven_bit)
        return
    np.testing.assert_array_equal(U.matmul_u8s8_numba(a, U.pack_b_u8s8(b), seven_bit), int64_matmul(a, b))


def test_bad_forced_name_and_bad_operands(monkeypatch):
    a, b = operands((4, 8, 3), 0)
    with pytest.raises(TypeError, match="a must be a 2-D uint8"):
        U.matmul_u8s8(a.view(np.int8), b)
    with pytest.raises(TypeError, match="b must be a 2-D int8"):
        U.matmul_u8s8(a, b.astype(np.int16))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        U.matmul_u8s8(a, b[:5])
    monkeypatch.setenv("TINYOPT_U8S8_KERNEL", "avx1024")
    with pytest.raises(ValueError, match="TINYOPT_U8S8_KERNEL must be one of"):
        U.matmul_u8s8_numba(a, b)


def test_config_chooses_the_kernel(monkeypatch):
    monkeypatch.delenv("TINYOPT_U8S8_KERNEL", raising=False)
    have = U.available_kernels()
    if "vnni512" in have or "vnni256" in have:
        assert U.choose(False) == U.choose(True) and U.choose(False).startswith("vnni")
    elif "maddubs" in have:
        assert (U.choose(True), U.choose(False)) == ("maddubs", "int16")


# ----------------------------------------------------------------------------- the layers on top


def _mlp(rng=0):
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 20, rng=rng), nn.ReLU(), nn.Linear(20, 5, rng=rng))


def _x(seed, n=32):
    return np.random.default_rng(seed).standard_normal((n, 1, 6, 6)).astype(np.float32)


@pytest.mark.parametrize("reduce_range", [False, True])
def test_static_quant_linear_equals_its_reference_backend(reduce_range):
    prepared = Q.prepare(_mlp().eval(), Q.get_default_qconfig(reduce_range=reduce_range))
    prepared(to.tensor(_x(1)))
    converted = Q.convert(prepared, float_logits=False)
    layer = converted[1]
    assert (layer.input_qmin, layer.input_qmax) == ((-64, 63) if reduce_range else (-128, 127))
    fast = converted(to.tensor(_x(2))).q
    with backend("reference"):
        ref = converted(to.tensor(_x(2))).q
    np.testing.assert_array_equal(fast, ref)
    # and the accumulators are Σ q_x q_w exactly
    acc, q_x, _, _ = layer.accumulate(to.tensor(_x(3).reshape(32, 36)))
    np.testing.assert_array_equal(acc, q_x.astype(np.int64) @ layer.w_int8.T.astype(np.int64))


@pytest.mark.parametrize("reduce_range", [False, True])
def test_dynamic_linear_u8_path_matches_reference_and_float(reduce_range):
    model = _mlp().eval()
    dyn = Q.quantize_dynamic(model, reduce_range=reduce_range)
    x = to.tensor(_x(5))
    fast = dyn(x).data
    with backend("reference"):
        ref = dyn(x).data
    np.testing.assert_array_equal(fast, ref)
    tol = 0.08 if reduce_range else 0.04
    np.testing.assert_allclose(fast, model(x).data, atol=tol * np.abs(model(x).data).max())
    assert ("reduce_range" in repr(dyn)) == reduce_range


# ----------------------------------------------------------------------------- the VNNI direct convolution


@pytest.mark.parametrize("forced", ["", "int16"])
@pytest.mark.parametrize("shape", [(2, 1, 28, 28, 6, 5, 2, -3), (3, 6, 14, 14, 16, 5, 0, 7), (2, 32, 9, 9, 20, 3, 1, -128),
                                   (1, 3, 7, 9, 5, 3, 1, 127), (4, 2, 5, 5, 7, 1, 0, 0), (2, 5, 8, 6, 13, 3, 2, -60)])
def test_stride1_conv_bit_exact_on_either_kernel(monkeypatch, forced, shape):
    """'' is the default (VNNI where the CPU has it), 'int16' forces the vpmaddwd direct kernel."""
    from tinyopt.kernels import conv_int8 as KC

    monkeypatch.setenv("TINYOPT_U8S8_KERNEL", forced)
    n, c, h, w, o, k, pad, z = shape
    rng = np.random.default_rng(sum(shape) + 300)
    x = rng.integers(-128, 128, (n, c, h, w)).astype(np.int8)
    wt = rng.integers(-128, 128, (o, c, k, k)).astype(np.int8)
    x[0, 0, 0, :3] = -128                                   # the extremes, once each
    wt[0, 0, 0, 0] = -128
    expected = KC.conv2d_int8_acc_reference(x, wt, 1, pad, z)
    got = KC.conv2d_int8_acc_numba(x, wt, 1, pad, z, w_pairs=KC.pack_conv_weight_pairs(wt),
                                   w_quads=KC.pack_conv_weight_quads(wt))
    np.testing.assert_array_equal(got, expected)
    assert KC._use_vnni_conv() == (forced == "" and "vnni256" in U.available_kernels())


# ----------------------------------------------------------------------------- the float ends (kernels.affine_u8)


@pytest.mark.parametrize("qmax,scale,zp", [(255, 0.02, 128), (127, 0.05, 3), (255, 1.0, 0), (127, 0.5, 127)])
def test_quantize_u8_twins_agree_including_ties_and_clamps(qmax, scale, zp):
    from tinyopt.kernels import affine_u8 as KA

    rng = np.random.default_rng(qmax + zp)
    x = (rng.standard_normal((33, 17)) * 3).astype(np.float32)
    x[0, :6] = np.array([0.5, 1.5, 2.5, -0.5, 1e9, -1e9], np.float32) * np.float32(scale)   # ties to even, clamps
    np.testing.assert_array_equal(KA.quantize_u8_numba(x, scale, zp, qmax), KA.quantize_u8_reference(x, scale, zp, qmax))


@pytest.mark.parametrize("qmin,qmax,scale,zp", [(-128, 127, 0.02, 0), (-128, 127, 0.05, -128), (-64, 63, 0.5, 3),
                                                (0, 127, 1.0, 0)])
def test_quantize_i8_twins_agree_with_quantize_array_and_flag_non_finite_input(qmin, qmax, scale, zp):
    from tinyopt.kernels import affine_u8 as KA
    from tinyopt.quant.affine import quantize_array

    rng = np.random.default_rng(qmax - qmin + zp)
    x = (rng.standard_normal((2, 1, 9, 7)) * 3).astype(np.float32)
    x[0, 0, 0, :6] = np.array([0.5, 1.5, 2.5, -0.5, 1e9, -1e9], np.float32) * np.float32(scale)   # ties to even, clamps
    want = quantize_array(x, scale, zp, qmin, qmax).astype(np.int8)
    for twin in (KA.quantize_i8_numba, KA.quantize_i8_reference):
        q, finite = twin(x, scale, zp, qmin, qmax)
        assert finite and q.dtype == np.int8 and q.shape == x.shape
        np.testing.assert_array_equal(q, want)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[1, 0, 8, 6] = bad
        assert KA.quantize_i8_numba(y, scale, zp, qmin, qmax)[1] is False
        assert KA.quantize_i8_reference(y, scale, zp, qmin, qmax)[1] is False


@pytest.mark.parametrize("bias", [None, "random"])
@pytest.mark.parametrize("zp", [0, 77, 255])
def test_dequantize_acc_twins_agree(bias, zp):
    from tinyopt.kernels import affine_u8 as KA

    rng = np.random.default_rng(zp)
    acc = rng.integers(-2**24, 2**24, (9, 14)).astype(np.int32)
    w_sum = rng.integers(-5000, 5000, 14)
    scale = rng.uniform(1e-5, 1e-3, 14).astype(np.float32)
    b = rng.standard_normal(14).astype(np.float32) if bias else None
    np.testing.assert_array_equal(KA.dequantize_acc_numba(acc, zp, w_sum, scale, b),
                                  KA.dequantize_acc_reference(acc, zp, w_sum, scale, b))


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_minmax_finite_names_non_finite_inputs(bad):
    from tinyopt.kernels import affine_u8 as KA

    x = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    if bad is not None:
        x[2, 3] = bad
    finite = bool(np.all(np.isfinite(x)))
    assert KA.minmax_finite(x) == ((float(x.min()), float(x.max()), True) if finite else (0.0, 0.0, False))
    assert KA.minmax_finite(np.zeros((0, 3), np.float32)) == (0.0, 0.0, True)


@pytest.mark.parametrize("layout", [None, "positions", "channels", "sliding"])
@pytest.mark.parametrize("forced", ["", "vnni256", "int16"])
@pytest.mark.parametrize("shape", [(2, 1, 28, 28, 6, 5, 2, -3, 2), (3, 6, 14, 14, 16, 5, 0, 7, 2), (2, 5, 9, 9, 13, 3, 1, -128, 1),
                                   (1, 3, 12, 12, 7, 3, 0, 5, 3), (2, 2, 7, 7, 4, 3, 1, 0, 2), (2, 9, 11, 10, 33, 3, 1, 4, 2),
                                   (2, 1, 40, 70, 5, 7, 3, 9, 2), (1, 2, 5, 5, 3, 5, 0, 1, 1), (2, 4, 35, 36, 8, 1, 0, 2, 2),
                                   (2, 6, 5, 5, 16, 5, 0, 0, 2)])
def test_fused_conv_requantize_pool_twins_agree(monkeypatch, layout, forced, shape):
    """Every fused layout (output positions in the lanes with packed panels or sliding windows,
    output channels in the lanes) against the NumPy twin: kernel widths that are and are not
    multiples of 4, channel counts below, at and past a lane group, pools 1-3 with dropped
    rows and columns, outputs empty after pooling, several images per thread."""
    from tinyopt.kernels import conv_input_u8 as KI
    from tinyopt.kernels import conv_int8 as KC
    from tinyopt.kernels import fixed_point as FP

    if forced and forced not in U.available_kernels():
        pytest.skip(f"this CPU has no {forced}")
    monkeypatch.setenv("TINYOPT_U8S8_KERNEL", forced)
    assert KC._vnni_conv_width() == (32 if forced == "" and "vnni512" in U.available_kernels() else 16)
    wide = KC._use_vnni_conv() and KC._vnni_conv_width() == 32
    if layout == "sliding" and KC._use_vnni_conv() and not wide:
        with pytest.raises(RuntimeError, match="AVX-512"):
            KC.conv2d_requant_pool_numba(np.zeros((1, 1, 5, 5), np.int8), np.zeros((1, 1, 3, 3), np.int8), 0, 0,
                                         [0], [1 << 30], [1], 0, -128, 127, 1, layout=layout)
        return
    n, c, h, w, o, k, pad, z, pool = shape
    rng = np.random.default_rng(abs(sum(shape)))
    x = rng.integers(-128, 128, (n, c, h, w)).astype(np.int8)
    wt = rng.integers(-128, 128, (o, c, k, k)).astype(np.int8)
    x[0, 0, 0, :2] = -128                                   # the extremes
    wt[0, 0, 0, 0] = -128
    offset = rng.integers(-5000, 5000, o)
    m0, shift = FP.quantize_multiplier(rng.uniform(1e-4, 1e-2, o))
    packed = {}
    for zp, lo, hi in ((3, -20, 127), (-128, -128, 127), (0, 0, 100)):
        expected = KC.conv2d_requant_pool_reference(x, wt, pad, z, offset, m0, shift, zp, lo, hi, pool)
        for given in (x, KI.pad_u8(x, (pad, pad), z, slack=0), KI.pad_u8(x, (pad, pad), z, slack=KI.SLACK)):
            # int8, or the padded uint8 input (read in place when its slack is enough, else padded again)
            got = KC.conv2d_requant_pool_numba(given, wt, pad, z, offset, m0, shift, zp, lo, hi, pool,
                                               w_quads=KC.pack_conv_weight_quads(wt), w_channels=packed, layout=layout)
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(KC.conv2d_requant_pool_reference(KI.pad_u8(x, (pad, pad), z, 0), wt, pad, z, offset,
                                                                       m0, shift, zp, lo, hi, pool), expected)


def test_fused_conv_layout_choice_and_bad_layout():
    from tinyopt.kernels import conv_int8 as KC

    assert KC.choose_layout(6, 16, 16) == "channels"            # LeNet-5's conv2
    assert KC.choose_layout(6, 16, 8) == "channels"
    assert KC.choose_layout(3, 32, 16) != "channels"            # too few input channels
    assert KC.choose_layout(16, 20, 16) != "channels"           # 20 of 32 lanes busy
    vbmi = U.host_features().get("avx512vbmi")
    assert KC.choose_layout(1, 6, 16) == ("sliding" if vbmi else "positions")   # LeNet-5's conv1
    assert KC.choose_layout(1, 6, 8) == "positions"
    with pytest.raises(ValueError, match="layout must be one of"):
        KC.conv2d_requant_pool_numba(np.zeros((1, 1, 5, 5), np.int8), np.zeros((1, 1, 3, 3), np.int8), 0, 0,
                                     [0], [1 << 30], [1], 0, -128, 127, 1, layout="rows")


def test_intrinsics_compile_to_a_trap_where_the_cpu_lacks_them(monkeypatch):
    """A driver that holds both the 512- and the 256-bit micro-kernel must still compile on a CPU
    with AVX-VNNI but no AVX-512 (LLVM would abort selecting vpdpbusd.512): there the missing
    kernel's body is a trap, never reached because the driver picks by CPU."""
    from numba import njit, types

    monkeypatch.setattr(U, "host_features", lambda: {"avx2": True, "avxvnni": True})
    assert not U.host_can_emit("vnni512") and U.host_can_emit("vnni256")

    @njit
    def both(a, b, c, wide):
        if wide:
            U._mk_vnni512(a, 0, 1, b, 0, c, 0, 32, 1)
        else:
            U._mk_vnni256(a, 0, 1, b, 0, c, 0, 16, 1)

    both.compile((types.int32[::1], types.int8[::1], types.int32[::1], types.boolean))
    llvm_ir = both.inspect_llvm(both.signatures[0])
    assert "llvm.trap" in llvm_ir
    assert "vpdpbusd.512" not in llvm_ir and "vpdpbusd.256" in llvm_ir
