"""Bad input to the quantization API (issue 10): each class tried with several inputs, asserting the
error and that nothing changed — arguments, observers' statistics, models and their weights."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt import quant as Q
from tinyopt.nn import functional as F
from tinyopt.quant.observer import NonFiniteBatch


def _model(rng=0):
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=rng), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 6 * 6, 8, rng=rng), nn.ReLU(), nn.Linear(8, 4, rng=rng))


def _images(seed, n=8):
    return np.random.default_rng(seed).standard_normal((n, 1, 6, 6)).astype(np.float32)


def _state(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def _same_state(model, before):
    after = model.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        np.testing.assert_array_equal(np.asarray(after[k]), v, err_msg=k)


# ----------------------------------------------------------------------------- fake_quantize arguments


@pytest.mark.parametrize("scale,zp,qmin,qmax,match", [
    (0.0, 0, -10, 10, "scale must be finite and > 0"),
    (-0.1, 0, -10, 10, "scale must be finite and > 0"),
    (np.nan, 0, -10, 10, "scale must be finite and > 0"),
    (np.inf, 0, -10, 10, "scale must be finite and > 0"),
    (0.1, 0, 10, -10, r"quant_min \(10\) must be <= quant_max \(-10\)"),
    (0.1, 0, 1, 0, r"quant_min \(1\) must be <= quant_max \(0\)"),
    (0.1, 11, -10, 10, r"zero_point must lie in \[quant_min, quant_max\]"),
    (0.1, -200, -128, 127, r"zero_point must lie in"),
])
def test_fake_quantize_per_tensor_refuses_bad_arguments(scale, zp, qmin, qmax, match):
    x = to.tensor(np.linspace(-1, 1, 7, dtype=np.float32), requires_grad=True)
    before = x.data.copy()
    with pytest.raises(ValueError, match=match):
        F.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
    with pytest.raises(ValueError, match=match):
        Q.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


@pytest.mark.parametrize("scales,zps,qmin,qmax,match", [
    ([0.1, 0.0, 0.1], [0, 0, 0], -8, 7, "scale must be finite and > 0"),
    ([0.1, np.nan, 0.1], [0, 0, 0], -8, 7, "scale must be finite and > 0"),
    ([0.1, 0.1, -1.0], [0, 0, 0], -8, 7, "scale must be finite and > 0"),
    ([0.1, 0.1, 0.1], [0, 0, 0], 7, -8, "quant_min"),
    ([0.1, 0.1, 0.1], [0, 9, 0], -8, 7, "zero_point must lie in"),
    ([0.1, 0.1], [0, 0], -8, 7, "3 channels, but 2 scales"),
])
def test_fake_quantize_per_channel_refuses_bad_arguments(scales, zps, qmin, qmax, match):
    x = to.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
    before = x.data.copy()
    with pytest.raises(ValueError, match=match):
        F.fake_quantize_per_channel_affine(x, np.array(scales), np.array(zps), 1, qmin, qmax)
    np.testing.assert_array_equal(x.data, before)


# ----------------------------------------------------------------------------- out-of-range axes


@pytest.mark.parametrize("axis", [2, 5, -3, -7])
def test_out_of_range_axis_raises_instead_of_wrapping(axis):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    with pytest.raises(IndexError, match=f"Dimension out of range.*got {axis}"):
        Q.quantize_per_channel(x, np.ones(4), np.zeros(4, np.int64), axis=axis)
    with pytest.raises(IndexError, match=f"got {axis}"):
        F.fake_quantize_per_channel_affine(to.tensor(x), np.ones(3), np.zeros(3, np.int64), axis, -8, 7)
    obs = Q.PerChannelMinMaxObserver(ch_axis=axis)
    with pytest.raises(IndexError, match=f"got {axis}"):
        obs(x)
    assert not obs.has_observed()
    np.testing.assert_array_equal(x, np.arange(12, dtype=np.float32).reshape(3, 4))


@pytest.mark.parametrize("axis", [1, -1])
def test_in_range_negative_axis_still_works(axis):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    q = Q.quantize_per_channel(x, np.full(4, 0.5), np.zeros(4, np.int64), axis=axis)
    assert q.q_per_channel_axis() == 1


# ----------------------------------------------------------------------------- NaN/Inf calibration batches


OBSERVERS = [
    lambda: Q.MinMaxObserver(), lambda: Q.MovingAverageMinMaxObserver(), lambda: Q.PercentileObserver(percentile=1.0),
    lambda: Q.PerChannelMinMaxObserver(ch_axis=1),
]


@pytest.mark.parametrize("make", OBSERVERS)
@pytest.mark.parametrize("bad,where", [(np.nan, (0, 0)), (np.inf, (3, 2)), (-np.inf, (5, 1))])
def test_observer_names_a_non_finite_batch_and_keeps_its_statistics(make, bad, where):
    obs = make()
    good = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    obs(good)
    before = _state(obs)
    batch = good.copy()
    batch[where] = bad
    kind = "1 NaN and 0" if np.isnan(bad) else "0 NaN and 1"
    with pytest.raises(NonFiniteBatch, match=rf"holds {kind} ±Inf values \(first at index \({where[0]}, {where[1]}\)"):
        obs(batch)
    _same_state(obs, before)
    assert obs.has_observed()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_calibration_with_a_non_finite_batch_names_the_layer(bad):
    prepared = Q.prepare(_model().eval())
    prepared(to.tensor(_images(1)))
    before = _state(prepared)
    batch = _images(2)
    batch[1, 0, 2, 3] = bad
    with pytest.raises(NonFiniteBatch, match=r"layer '0', input observer: .*NaN"):
        prepared(to.tensor(batch))
    _same_state(prepared, before)
    Q.convert(prepared)                     # the good calibration is intact and usable


def test_non_finite_first_batch_is_not_reported_as_no_data():
    prepared = Q.prepare(_model().eval())
    batch = np.full((1, 1, 6, 6), np.nan, np.float32)
    with pytest.raises(NonFiniteBatch, match="holds 36 NaN and 0 ±Inf values"):
        prepared(to.tensor(batch))
    with pytest.raises(Q.QuantizationError, match="has seen no data"):     # nothing was recorded
        Q.convert(prepared)


# ----------------------------------------------------------------------------- pack_bits


@pytest.mark.parametrize("bits,values,signed", [
    (4, [0, 16], None), (4, [-9, 0], None), (4, [-1, 15], None), (4, [8], True), (4, [-1], False),
    (2, [4], None), (2, [-3], None), (2, [2], True), (1, [2], None), (1, [-1], False),
])
def test_pack_bits_refuses_values_outside_the_bit_width(bits, values, signed):
    v = np.array(values, np.int64)
    before = v.copy()
    with pytest.raises(ValueError, match=f"do not fit {bits} "):
        Q.pack_bits(v, bits, signed)
    np.testing.assert_array_equal(v, before)


@pytest.mark.parametrize("bits,signed", [(1, False), (2, True), (2, False), (4, True), (4, False)])
def test_pack_bits_round_trips_the_full_range(bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    v = np.arange(lo, hi + 1)
    np.testing.assert_array_equal(Q.unpack_bits(Q.pack_bits(v, bits, signed), bits, signed, v.size), v)
    np.testing.assert_array_equal(Q.unpack_bits(Q.pack_bits(v, bits), bits, signed, v.size), v)


# ----------------------------------------------------------------------------- NaN weights


@pytest.mark.parametrize("layer,param,bad", [("0", "weight", np.nan), ("3", "weight", np.inf),
                                              ("5", "bias", -np.inf), ("5", "weight", np.nan)])
@pytest.mark.parametrize("inplace", [False, True])
def test_quantize_dynamic_names_the_layer_and_the_weight(layer, param, bad, inplace):
    model = _model().eval()
    getattr(model[int(layer)], param).data.reshape(-1)[1] = bad
    before, modules = _state(model), [type(m).__name__ for m in model.modules()]
    with pytest.raises(Q.QuantizationError, match=rf"layer '{layer}': the {param} contains NaN or Inf"):
        Q.quantize_dynamic(model, {nn.Linear, nn.Conv2d}, inplace=inplace)
    _same_state(model, before)
    assert [type(m).__name__ for m in model.modules()] == modules


@pytest.mark.parametrize("layer,param", [("0", "weight"), ("5", "bias")])
def test_static_convert_names_a_non_finite_weight(layer, param):
    prepared = Q.prepare(_model().eval())
    prepared(to.tensor(_images(1)))
    getattr(prepared[int(layer)].layer, param).data.reshape(-1)[0] = np.nan
    before = _state(prepared)
    with pytest.raises(Q.QuantizationError, match=rf"layer '{layer}': the {param} contains NaN or Inf"):
        Q.convert(prepared, inplace=True)
    _same_state(prepared, before)
    assert all(type(prepared[i]).__name__ != "QuantLinear" for i in range(len(prepared)))
