"""Affine quantization: round trip ≤ S/2, saturation, ties to even, low-bit packing, errors, torch."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyopt as to
from tinyopt import quant as Q


@pytest.mark.parametrize("dtype", ["qint8", "quint8", "int4", "uint4", "int2", "uint2"])
def test_round_trip_error_at_most_half_scale_inside_range(dtype):
    qd = Q.as_qdtype(dtype)
    rng = np.random.default_rng(qd.bits)
    scale, zp = 0.037, (qd.qmin + qd.qmax + 1) // 2
    lo, hi = scale * (qd.qmin - zp), scale * (qd.qmax - zp)
    x = rng.uniform(lo, hi, 1000).astype(np.float32)
    q = Q.quantize_per_tensor(x, scale, zp, dtype)
    assert q.int_repr().min() >= qd.qmin and q.int_repr().max() <= qd.qmax
    err = np.abs(q.dequantize().data - x)
    assert err.max() <= scale / 2 * (1 + 1e-5)


def test_saturation_outside_range():
    q = Q.quantize_per_tensor(np.array([-1e6, -3.0, 0.0, 3.0, 1e6], np.float32), 0.01, 0, "qint8")
    assert q.int_repr().tolist() == [-128, -128, 0, 127, 127]
    q = Q.quantize_per_tensor(np.array([-5.0, 5.0], np.float32), 0.01, 10, "quint8")
    assert q.int_repr().tolist() == [0, 255]


def test_ties_round_half_to_even_after_adding_zero_point():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5], np.float32)       # S = 1: x/S exactly halfway
    assert Q.quantize_per_tensor(x, 1.0, 0, "qint8").int_repr().tolist() == [0, 2, 2, 0, -2]
    # with Z = 1 the sum x/S + Z is rounded: 0.5 + 1 = 1.5 → 2, 1.5 + 1 = 2.5 → 2
    assert Q.quantize_per_tensor(x, 1.0, 1, "qint8").int_repr().tolist() == [2, 2, 4, 0, 0]


@pytest.mark.parametrize("bits,signed", [(4, True), (4, False), (2, True), (2, False), (1, False)])
def test_pack_unpack_round_trip_and_size(bits, signed):
    rng = np.random.default_rng(bits)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    v = rng.integers(lo, hi, 37)
    packed = Q.pack_bits(v, bits)
    assert packed.dtype == np.uint8 and packed.size == -(-37 * bits // 8)
    np.testing.assert_array_equal(Q.unpack_bits(packed, bits, signed, 37), v)


def test_low_bit_storage_is_packed():
    x = np.random.default_rng(0).standard_normal((16, 10)).astype(np.float32)
    q8 = Q.quantize_per_tensor(x, 0.1, 0, "qint8")
    q4 = Q.quantize_per_tensor(x, 0.1, 0, "int4")
    q2 = Q.quantize_per_tensor(x, 0.1, 0, "int2")
    assert (q8.nbytes, q4.nbytes, q2.nbytes) == (160, 80, 40)
    assert q4.int_repr().dtype == np.int8 and q4.int_repr().shape == (16, 10)
    np.testing.assert_array_equal(q4.int_repr(), np.clip(np.rint(x / np.float32(0.1)), -8, 7))


def test_per_channel_uses_each_channels_scale():
    x = np.array([[1.0, -1.0], [10.0, -10.0], [0.05, 0.2]], np.float32)
    scales = np.array([1 / 127, 10 / 127, 0.2 / 127], np.float32)
    q = Q.quantize_per_channel(x, scales, [0, 0, 0], axis=0, dtype="qint8")
    assert q.int_repr().tolist() == [[127, -127], [127, -127], [32, 127]]
    assert q.q_per_channel_axis() == 0
    err = np.abs(q.dequantize().data - x)
    assert np.all(err <= scales[:, None] / 2 * 1.0001)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_raise_clear_error(bad):
    x = np.array([0.0, 1.0, bad], np.float32)
    with pytest.raises(ValueError, match=r"NaN or Inf \(first at index \(2,\)"):
        Q.quantize_per_tensor(x, 0.1, 0, "qint8")
    with pytest.raises(ValueError, match="NaN or Inf"):
        Q.quantize_per_channel(x.reshape(1, 3), [0.1], [0], 0, "qint8")


def test_bad_qparams_raise():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        Q.quantize_per_tensor(x, 0.0, 0, "qint8")
    with pytest.raises(ValueError, match=r"zero_point 300 is outside the qint8 range \[-128, 127\]"):
        Q.quantize_per_tensor(x, 0.1, 300, "qint8")
    with pytest.raises(ValueError, match="has 2 channels, got 3 scales"):
        Q.quantize_per_channel(np.zeros((2, 4), np.float32), [1, 1, 1], [0, 0, 0], 0)
    with pytest.raises(ValueError, match="unsupported quantized dtype"):
        Q.quantize_per_tensor(x, 0.1, 0, "int7")
    with pytest.raises(TypeError, match="floating-point"):
        Q.quantize_per_tensor(np.zeros(3, np.int32), 0.1, 0)


def test_accepts_tensors_and_returns_tensor():
    q = Q.quantize_per_tensor(to.tensor([0.1, 0.2]), 0.1, 0, "qint8")
    out = Q.dequantize(q)
    assert isinstance(out, to.Tensor) and out.dtype == np.float32
    assert q.q_scale() == pytest.approx(0.1) and q.q_zero_point() == 0


@pytest.mark.parametrize("symmetric,unsigned", [(False, False), (False, True), (True, False), (True, True)])
def test_choose_qparams_maps_range_onto_grid(symmetric, unsigned):
    qmin, qmax = (0, 255) if unsigned else (-128, 127)
    s, z = Q.choose_qparams(-0.7, 2.3, qmin, qmax, symmetric=symmetric, unsigned=unsigned)
    # the real 0 is exactly representable, and the range's ends land within half a step of the grid
    assert qmin <= z <= qmax
    for r in (-0.7, 2.3):
        q = r / float(s) + z
        assert qmin - 0.5 - 1e-4 <= q <= qmax + 0.5 + 1e-4


# ----------------------------------------------------------------------------- against torch


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(1e-3, 1.0), zp=st.integers(-30, 30),
       unsigned=st.booleans(), shape=st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_quantize_per_tensor_equals_torch(seed, scale, zp, unsigned, shape):
    torch = pytest.importorskip("torch")
    warnings.filterwarnings("ignore", category=UserWarning)
    x = (np.random.default_rng(seed).standard_normal(shape) * 2).astype(np.float32)
    dtype, tdtype, z = ("quint8", torch.quint8, zp + 128) if unsigned else ("qint8", torch.qint8, zp)
    expected = torch.quantize_per_tensor(torch.from_numpy(x), scale, z, tdtype).int_repr().numpy()
    np.testing.assert_array_equal(Q.quantize_per_tensor(x, scale, z, dtype).int_repr(), expected)


def test_quantize_ties_and_per_channel_equal_torch():
    torch = pytest.importorskip("torch")
    warnings.filterwarnings("ignore", category=UserWarning)
    x = ((np.arange(-200, 200) + 0.5) * np.float32(0.25)).astype(np.float32)
    for z in (0, 3, -7):
        expected = torch.quantize_per_tensor(torch.from_numpy(x), 0.25, z, torch.qint8).int_repr().numpy()
        np.testing.assert_array_equal(Q.quantize_per_tensor(x, 0.25, z, "qint8").int_repr(), expected)
    rng = np.random.default_rng(5)
    w = rng.standard_normal((6, 4, 3)).astype(np.float32)
    scales = rng.uniform(0.01, 0.1, 4).astype(np.float32)
    zps = rng.integers(-4, 4, 4)
    expected = torch.quantize_per_channel(torch.from_numpy(w), torch.from_numpy(scales.astype(np.float64)),
                                          torch.from_numpy(zps), 1, torch.qint8)
    got = Q.quantize_per_channel(w, scales, zps, 1, "qint8")
    np.testing.assert_array_equal(got.int_repr(), expected.int_repr().numpy())
    np.testing.assert_array_equal(got.dequantize().data, expected.dequantize().numpy())
