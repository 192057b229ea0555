"""kernels.linear_int8: the fused integer Linear (u8 × s8 GEMM + requantization) against its NumPy twin."""
import numpy as np
import pytest

from tinyopt.kernels import fixed_point as FP
from tinyopt.kernels import gemm_u8s8 as U
from tinyopt.kernels import linear_int8 as L

SHAPES = [(256, 400, 120), (256, 120, 84), (256, 84, 10), (1, 3, 1), (50, 7, 33), (97, 1030, 65), (6, 4, 32), (49, 16, 31)]
RANGES = [(-128, 127), (-128, 0), (0, 127), (-5, 100), (-128, -1)]


def _case(rng, m, k, n, qmin_x, qmax_x):
    q = rng.integers(qmin_x, qmax_x + 1, (m, k)).astype(np.int8)
    q.flat[:2] = (qmin_x, qmax_x)                          # both ends of the range
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    w.flat[0] = -128
    offset = rng.integers(-50_000, 50_000, n)
    m0, shift = FP.quantize_multiplier(rng.uniform(1e-5, 1e-2, n))
    return q, U.pack_b_u8s8(w), offset, m0, shift


@pytest.mark.parametrize("forced", ["", "vnni256", "maddubs", "int16"])
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_linear_twins_agree(monkeypatch, forced, shape):
    """Every kernel this CPU has (VNNI fused; maddubs and int16: the unfused fallback) on sizes that
    are and are not multiples of the 6-row strip, the 48-row task, the 4-byte quad and the panel."""
    if forced and forced not in U.available_kernels():
        pytest.skip(f"this CPU has no {forced}")
    monkeypatch.setenv("TINYOPT_U8S8_KERNEL", forced)
    rng = np.random.default_rng(sum(shape))
    for qmin_x, qmax_x in RANGES:
        if forced == "maddubs" and qmax_x - qmin_x > 127:
            continue                                       # maddubs refuses full-range inputs
        q, packed, offset, m0, shift = _case(rng, *shape, qmin_x, qmax_x)
        for zp, lo, hi in ((-3, -128, 127), (-128, -128, 127), (5, 5, 90)):
            np.testing.assert_array_equal(L.linear_int8_numba(q, packed, qmin_x, qmax_x, offset, m0, shift, zp, lo, hi),
                                          L.linear_int8_reference(q, packed, qmin_x, qmax_x, offset, m0, shift, zp, lo, hi))
        scale = rng.uniform(1e-4, 1e-2, shape[2])
        np.testing.assert_array_equal(L.linear_int8_float_numba(q, packed, qmin_x, qmax_x, offset, scale),
                                      L.linear_int8_float_reference(q, packed, qmin_x, qmax_x, offset, scale))


def test_reference_is_the_requantized_product():
    """The twin's formula written out: requantize(q_x · W + offset) element by element."""
    rng = np.random.default_rng(7)
    q, packed, offset, m0, shift = _case(rng, 5, 9, 4, -128, 127)
    acc = q.astype(np.int64) @ packed.original.astype(np.int64)
    want = FP.requantize_reference(acc.astype(np.int32), m0, shift, 2, -128, 127, axis=-1, offset=offset)
    np.testing.assert_array_equal(L.linear_int8_reference(q, packed, -128, 127, offset, m0, shift, 2, -128, 127), want)


def test_fused_linear_rejects_bad_operands():
    rng = np.random.default_rng(0)
    q, packed, offset, m0, shift = _case(rng, 4, 8, 3, -128, 127)
    for twin in (L.linear_int8_numba, L.linear_int8_reference):
        with pytest.raises(TypeError, match="PackedU8S8"):
            twin(q, packed.original, -128, 127, offset, m0, shift, 0, -128, 127)
        with pytest.raises(TypeError, match="2-D int8"):
            twin(q.astype(np.int16), packed, -128, 127, offset, m0, shift, 0, -128, 127)
        with pytest.raises(ValueError, match="9 features, the weight expects 8"):
            twin(np.zeros((4, 9), np.int8), packed, -128, 127, offset, m0, shift, 0, -128, 127)
        with pytest.raises(ValueError, match=r"offset must have shape \(3,\)"):
            twin(q, packed, -128, 127, offset[:2], m0, shift, 0, -128, 127)
    with pytest.raises(ValueError, match=r"scale must have shape \(3,\)"):
        L.linear_int8_float_numba(q, packed, -128, 127, offset, np.ones(4))
