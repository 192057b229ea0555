"""kernels.conv_input_u8: the fused convolutions' padded uint8 input, from int8 and straight from float."""
import numpy as np
import pytest

from tinyopt.kernels import affine_u8 as KA
from tinyopt.kernels import conv_input_u8 as KI


def _expected(q, padding, pad_value):
    """u = X̃ + 128 written out with np.pad."""
    ph, pw = padding
    padded = np.pad(q.astype(np.int16), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    return (padded + 128).astype(np.uint8)


@pytest.mark.parametrize("padding", [(0, 0), (2, 2), (1, 3), (0, 1)])
def test_pad_u8_layout_slack_and_round_trip(padding):
    rng = np.random.default_rng(sum(padding))
    q = rng.integers(-128, 128, (3, 2, 5, 7)).astype(np.int8)
    xu = KI.pad_u8(q, padding, -7, slack=9)
    np.testing.assert_array_equal(xu.padded(), _expected(q, padding, -7))
    assert xu.slack == 9 and not xu.flat[-9:].any()
    assert (xu.hp, xu.wp) == (5 + 2 * padding[0], 7 + 2 * padding[1])
    np.testing.assert_array_equal(xu.int8(), q)


@pytest.mark.parametrize("qmin,qmax,scale,zp,padding", [(-128, 127, 0.02, -128, (2, 2)), (-128, 127, 0.05, 3, (0, 0)),
                                                        (-64, 63, 0.5, 0, (1, 2)), (0, 127, 1.0, 0, (3, 0))])
def test_quantize_pad_u8_twins_are_quantize_then_pad(qmin, qmax, scale, zp, padding):
    """The one-pass twin writes the bytes of quantize_i8 (ties to even, clamps) padded with Z."""
    rng = np.random.default_rng(qmax - qmin + zp)
    x = (rng.standard_normal((4, 3, 9, 6)) * 3).astype(np.float32)
    x[0, 0, 0, :6] = np.array([0.5, 1.5, 2.5, -0.5, 1e9, -1e9], np.float32) * np.float32(scale)
    q, _ = KA.quantize_i8_reference(x, scale, zp, qmin, qmax)
    want = _expected(q, padding, zp)
    for twin in (KI.quantize_pad_u8_numba, KI.quantize_pad_u8_reference):
        xu, finite = twin(x, scale, zp, qmin, qmax, padding)
        assert finite and xu.padding == padding and xu.pad_value == zp and xu.slack == KI.SLACK
        np.testing.assert_array_equal(xu.padded(), want)
        np.testing.assert_array_equal(xu.int8(), q)
    strided = np.asfortranarray(x)                       # any memory layout
    np.testing.assert_array_equal(KI.quantize_pad_u8_numba(strided, scale, zp, qmin, qmax, padding)[0].padded(), want)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_pad_u8_flags_non_finite_input(bad):
    x = np.zeros((3, 1, 4, 4), np.float32)
    x[2, 0, 3, 1] = bad
    for twin in (KI.quantize_pad_u8_numba, KI.quantize_pad_u8_reference):
        assert twin(x, 0.1, 0, -128, 127, (1, 1))[1] is False


def test_ensure_padded_reuses_or_repads():
    q = np.random.default_rng(0).integers(-128, 128, (2, 3, 4, 4)).astype(np.int8)
    xu = KI.pad_u8(q, (1, 1), 5, slack=16)
    assert KI.ensure_padded(xu, (1, 1), 5, 8) is xu                 # enough of everything: as it is
    for padding, pad_value, slack in (((1, 1), 5, 32), ((0, 0), 5, 0), ((1, 1), 6, 0)):
        again = KI.ensure_padded(xu, padding, pad_value, slack)
        assert again is not xu and again.slack >= slack
        np.testing.assert_array_equal(again.padded(), _expected(q, padding, pad_value))
    np.testing.assert_array_equal(KI.ensure_padded(q, (2, 0), -1, 3).padded(), _expected(q, (2, 0), -1))
