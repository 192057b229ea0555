"""Observers: qparams equal torch.ao.quantization's on the same data; ranges; percentile; errors."""
import warnings

import numpy as np
import pytest

from tinyopt import quant as Q

CASES = [("quint8", "per_tensor_affine", False), ("quint8", "per_tensor_affine", True),
         ("qint8", "per_tensor_affine", False), ("qint8", "per_tensor_symmetric", False),
         ("qint8", "per_tensor_symmetric", True), ("quint8", "per_tensor_symmetric", False)]


def batches(seed, n=3, shape=(4, 5, 6)):
    rng = np.random.default_rng(seed)
    loc, spread = rng.uniform(-2, 2), rng.uniform(0.05, 5)
    return [(rng.standard_normal(shape) * spread + loc + k).astype(np.float32) for k in range(n)]


def torch_names(torch, dtype, qscheme):
    return getattr(torch, dtype), getattr(torch, qscheme)


@pytest.mark.parametrize("dtype,qscheme,reduce_range", CASES)
@pytest.mark.parametrize("seed", range(4))
def test_minmax_and_moving_average_equal_torch(dtype, qscheme, reduce_range, seed):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import observer as tobs
    warnings.filterwarnings("ignore")
    tdtype, tqscheme = torch_names(torch, dtype, qscheme)
    pairs = [(Q.MinMaxObserver(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range),
              tobs.MinMaxObserver(dtype=tdtype, qscheme=tqscheme, reduce_range=reduce_range)),
             (Q.MovingAverageMinMaxObserver(0.3, dtype=dtype, qscheme=qscheme, reduce_range=reduce_range),
              tobs.MovingAverageMinMaxObserver(0.3, dtype=tdtype, qscheme=tqscheme, reduce_range=reduce_range))]
    for ours, theirs in pairs:
        for x in batches(seed):
            ours(x)
            theirs(torch.from_numpy(x))
        scale, zp = ours.calculate_qparams()
        tscale, tzp = theirs.calculate_qparams()
        assert (ours.quant_min, ours.quant_max) == (theirs.quant_min, theirs.quant_max)
        np.testing.assert_array_equal(scale, tscale.numpy())
        np.testing.assert_array_equal(zp, tzp.numpy())


@pytest.mark.parametrize("dtype,qscheme", [("qint8", "per_channel_symmetric"), ("qint8", "per_channel_affine"),
                                           ("quint8", "per_channel_affine")])
@pytest.mark.parametrize("ch_axis", [0, 1, -1])
def test_per_channel_equals_torch(dtype, qscheme, ch_axis):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import observer as tobs
    tdtype, tqscheme = torch_names(torch, dtype, qscheme)
    ours = Q.PerChannelMinMaxObserver(ch_axis=ch_axis, dtype=dtype, qscheme=qscheme)
    theirs = tobs.PerChannelMinMaxObserver(ch_axis=ch_axis, dtype=tdtype, qscheme=tqscheme)
    for x in batches(ch_axis + 7):
        x[..., 0] = 0.0                        # one channel (for ch_axis=-1) is all zeros: S = eps
        ours(x)
        theirs(torch.from_numpy(x))
    scale, zp = ours.calculate_qparams()
    tscale, tzp = theirs.calculate_qparams()
    np.testing.assert_array_equal(scale, tscale.numpy())
    np.testing.assert_array_equal(zp, tzp.numpy())


def test_custom_range_and_low_bit_qmin_qmax():
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import observer as tobs
    x = batches(11)[0]
    ours = Q.MinMaxObserver(dtype="quint8", qscheme="per_tensor_symmetric", quant_min=0, quant_max=15)
    theirs = tobs.MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_symmetric, quant_min=0, quant_max=15)
    ours(x)
    theirs(torch.from_numpy(x))
    np.testing.assert_array_equal(ours.calculate_qparams()[0], theirs.calculate_qparams()[0].numpy())
    np.testing.assert_array_equal(ours.calculate_qparams()[1], theirs.calculate_qparams()[1].numpy())
    assert (Q.MinMaxObserver(dtype="int4").quant_min, Q.MinMaxObserver(dtype="int4").quant_max) == (-8, 7)


def test_minmax_by_hand():
    obs = Q.MinMaxObserver(dtype="quint8")
    obs(np.array([-1.0, 0.5], np.float32))
    obs(np.array([2.0], np.float32))
    scale, zp = obs.calculate_qparams()
    assert scale[0] == np.float32(3.0) / np.float32(255)
    assert zp[0] == 0 - np.rint(np.float32(-1.0) / scale[0])          # = 85
    sym = Q.MinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric")
    sym(np.array([-1.0, 2.0], np.float32))
    assert sym.calculate_qparams()[0][0] == np.float32(2.0) / np.float32(127.5) and sym.calculate_qparams()[1][0] == 0


def test_unobserved_returns_torch_defaults():
    scale, zp = Q.MinMaxObserver().calculate_qparams()
    assert scale.tolist() == [1.0] and zp.tolist() == [0]
    assert not Q.MinMaxObserver().has_observed()


def test_percentile_observer_ignores_outliers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100_000).astype(np.float32)
    x[:5] = [80, -90, 70, 60, -50]
    pct = Q.PercentileObserver(percentile=0.1, dtype="qint8", qscheme="per_tensor_symmetric")
    mm = Q.MinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric")
    for part in np.split(x, 4):            # several batches: the histogram is re-binned as the range grows
        pct(part)
        mm(part)
    lo, hi = pct.percentile_range()
    ref_lo, ref_hi = np.percentile(x, [0.1, 99.9])
    width = (x.max() - x.min()) / pct.bins
    assert abs(lo - ref_lo) < 2 * width and abs(hi - ref_hi) < 2 * width
    assert pct.calculate_qparams()[0][0] < mm.calculate_qparams()[0][0] / 20


def test_percentile_zero_is_minmax():
    x = batches(3)[0]
    pct, mm = Q.PercentileObserver(percentile=0), Q.MinMaxObserver()
    pct(x)
    mm(x)
    np.testing.assert_array_equal(pct.calculate_qparams()[0], mm.calculate_qparams()[0])


def test_observer_errors():
    with pytest.raises(ValueError, match="unsupported qscheme"):
        Q.MinMaxObserver(qscheme="per_tensor_weird")
    with pytest.raises(ValueError, match="PerChannelMinMaxObserver"):
        Q.MinMaxObserver(qscheme="per_channel_affine")
    with pytest.raises(ValueError, match="must contain 0"):
        Q.MinMaxObserver(quant_min=1, quant_max=10)
    with pytest.raises(ValueError, match="averaging_constant"):
        Q.MovingAverageMinMaxObserver(averaging_constant=0)
    with pytest.raises(NotImplementedError, match="symmetric"):
        Q.MinMaxObserver(dtype="quint8", qscheme="per_tensor_symmetric", reduce_range=True)
    obs = Q.PerChannelMinMaxObserver()
    obs(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="saw 3 channels before, now 4"):
        obs(np.zeros((4, 2), np.float32))


def test_observer_state_dict_round_trip():
    a = Q.MovingAverageMinMaxObserver()
    for x in batches(2):
        a(x)
    b = Q.MovingAverageMinMaxObserver()
    b(np.zeros(1, np.float32))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.calculate_qparams()[0], b.calculate_qparams()[0])
