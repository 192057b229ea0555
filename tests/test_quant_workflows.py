"""Workflows: integer-only layers vs their float simulation (≤ 1 LSB), fusion, PTQ, QAT, dynamic,
mixed int8/int4, sizes, step-through, and errors that leave the model unchanged."""
import copy

import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt import quant as Q
from tinyopt.kernels import backend
from tinyopt.models import LeNet5


def small_cnn(rng=0):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, rng=rng), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 3 * 3, 16, rng=rng), nn.ReLU(), nn.Linear(16, 5, rng=rng),
    )


def images(seed, n=16):
    return to.tensor(np.random.default_rng(seed).standard_normal((n, 1, 14, 14)).astype(np.float32))


def randomise_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.normal(0, 0.2, m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = rng.normal(0, 0.2, m.num_features)
    return model


def calibrated(model, seeds=(1, 2, 3), qconfig=None):
    fused = Q.fuse_known(model.eval())
    prepared = Q.prepare(fused, qconfig)
    for s in seeds:
        prepared(images(s))
    return prepared


# ----------------------------------------------------------------------------- integer-only layers


def float_simulation(layer, x_q, s_x, z_x, conv=False):
    """Dequantize input and weights, compute in float64, quantize the result: the layer's math
    without integer tricks (no offsets, no fixed-point multiplier)."""
    x = (x_q.astype(np.float64) - z_x) * s_x
    shape = (-1, 1, 1, 1) if conv else (-1, 1)
    w = layer.w_int8.astype(np.float64) * layer.w_scale.reshape(shape)
    if conv:
        (ph, pw), (sh, sw) = layer.padding, layer.stride
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::sh, ::sw]
        y = np.einsum("ncyxij,ocij->noyx", win, w)
        if layer.bias is not None:
            y = y + layer.bias[None, :, None, None]
    else:
        y = x @ w.T + (0 if layer.bias is None else layer.bias)
    q = np.rint(y / layer.scale) + layer.zero_point
    return np.clip(q, layer.out_qmin, layer.out_qmax)


@pytest.mark.parametrize("kernels", ["numba", "reference"])
def test_integer_layers_equal_float_simulation_within_one_lsb(kernels):
    model = calibrated(randomise_bn(small_cnn()))
    converted = Q.convert(model, float_logits=False)
    x = images(9)
    checked = 0
    with backend(kernels):
        act = x
        for layer in converted:
            if isinstance(layer, (Q.QuantConv2d, Q.QuantLinear)):
                q_in, s_x, z_x = Q.modules.quantize_input(act, layer.input_scale, layer.input_zero_point)
                out = layer(act)
                sim = float_simulation(layer, q_in, s_x, z_x, conv=isinstance(layer, Q.QuantConv2d))
                diff = np.abs(out.q.astype(int) - sim)
                assert diff.max() <= 1, (layer, diff.max())
                assert (diff == 0).mean() > 0.9          # off by one only at near-ties
                checked += 1
                act = out
            else:
                act = layer(act)
    assert checked == 4


def test_backends_give_identical_integers():
    converted = Q.convert(calibrated(small_cnn()), float_logits=False)
    x = images(4)
    with backend("numba"):
        a = converted(x)
    with backend("reference"):
        b = converted(x)
    np.testing.assert_array_equal(a.q, b.q)


@pytest.mark.parametrize("float_logits", [False, True])
def test_converted_lenet_gives_the_reference_integers_on_every_fused_path(float_logits):
    """LeNet-5 runs the fused kernels end to end on a VNNI CPU (float input quantized straight into
    the padded layout, conv1 sliding, conv2 channels, the fused Linears): the same integers, and
    the same float logits, as the NumPy reference backend."""
    model = LeNet5(rng=4).eval()
    prepared = Q.prepare(Q.fuse_known(model))
    rng = np.random.default_rng(1)
    for _ in range(3):
        prepared(to.tensor(rng.standard_normal((32, 1, 28, 28)).astype(np.float32)))
    converted = Q.convert(prepared, float_logits=float_logits)
    x = to.tensor(rng.standard_normal((61, 1, 28, 28)).astype(np.float32))
    with backend("numba"):
        a = converted(x)
    with backend("reference"):
        b = converted(x)
    np.testing.assert_array_equal(a.data if float_logits else a.q, b.data if float_logits else b.q)
    bad = x.data.copy()
    bad[7, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        converted(to.tensor(bad))


def test_converted_lenet_keeps_predictions_and_is_int8_end_to_end():
    model = LeNet5(rng=3).eval()
    prepared = Q.prepare(Q.fuse_known(model))
    rng = np.random.default_rng(0)
    for _ in range(4):
        prepared(to.tensor(rng.standard_normal((32, 1, 28, 28)).astype(np.float32)))
    converted = Q.convert(prepared, float_logits=False)
    x = to.tensor(rng.standard_normal((200, 1, 28, 28)).astype(np.float32))
    y_float, y_int = model(x), converted(x)
    assert isinstance(y_int, Q.QActivation) and y_int.q.dtype == np.int8
    agree = (y_float.data.argmax(1) == y_int.data.argmax(1)).mean()
    assert agree >= 0.95                                  # random weights: logits are close together
    assert np.abs(y_float.data - y_int.data).max() < 8 * y_int.scale
    # float logits from the last layer's int32 accumulators: the same model up to the last requantize
    float_out = Q.convert(prepared)(x)
    assert not isinstance(float_out, Q.QActivation) and float_out.dtype == np.float32
    inside = (y_int.q > -128) & (y_int.q < 127)           # int8 saturates where float does not
    assert inside.mean() > 0.9
    assert np.abs(float_out.data - y_int.data)[inside].max() <= 0.5 * y_int.scale * 1.001 + 1e-6
    assert (float_out.data.argmax(1) == y_float.data.argmax(1)).mean() >= agree


def test_step_through_matches_forward():
    converted = Q.convert(calibrated(small_cnn()))
    x = images(5)
    conv = converted[0]
    steps = conv.explain(x, (2, 1, 3, 4))
    assert steps["q_out"] == converted[0](x).q[2, 1, 3, 4]
    assert abs(steps["q_out"] - steps["float_simulation_q"]) <= 1
    assert 0.5 <= steps["M0_as_fraction"] < 1
    assert steps["M"] == pytest.approx(steps["M0_as_fraction"] * 2.0 ** -steps["shift"], rel=1e-8)
    text = Q.format_steps(steps)
    assert "M0 =" in text and "accumulator" in text
    lin = converted[7]
    act = x
    for layer in list(converted)[:7]:
        act = layer(act)
    steps = lin.explain(act, (0, 2))
    assert steps["q_out"] == lin(act).q[0, 2]
    last = converted[9]                      # float logits: the explained real value is what it returns
    act = lin(act)
    act = converted[8](act)
    steps = last.explain(act, (1, 3))
    assert last(act).data[1, 3] == pytest.approx(steps["accumulator"] * steps["input_scale"] * steps["weight_scale"],
                                                 rel=1e-6, abs=1e-7)


# ----------------------------------------------------------------------------- fusion


def test_conv_bn_folding_equals_eval_mode_bn():
    model = randomise_bn(small_cnn()).eval()
    fused = Q.fuse_known(model)
    assert isinstance(fused[0], Q.ConvReLU2d) and isinstance(fused[1], nn.Identity)
    x = images(7)
    np.testing.assert_allclose(fused(x).data, model(x).data, atol=1e-5)


def test_fold_matches_torch_fuse_conv_bn_eval():
    torch = pytest.importorskip("torch")
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    model = randomise_bn(small_cnn())
    conv, bn = model[0], model[1]
    tconv = torch.nn.Conv2d(1, 4, 3, padding=1)
    tbn = torch.nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(conv.weight.data))
        tconv.bias.copy_(torch.from_numpy(conv.bias.data))
        for name in ("running_mean", "running_var"):
            getattr(tbn, name).copy_(torch.from_numpy(getattr(bn, name).data))
        tbn.weight.copy_(torch.from_numpy(bn.weight.data))
        tbn.bias.copy_(torch.from_numpy(bn.bias.data))
    ours = Q.fold_conv_bn(conv, bn)
    theirs = fuse_conv_bn_eval(tconv.eval(), tbn)
    np.testing.assert_allclose(ours.weight.data, theirs.weight.detach().numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.bias.data, theirs.bias.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_fuse_modules_by_name_and_errors():
    model = small_cnn().eval()
    fused = Q.fuse_modules(model, [["7", "8"]])
    assert isinstance(fused[7], Q.LinearReLU) and isinstance(model[7], nn.Linear)   # copy by default
    with pytest.raises(Q.QuantizationError, match="cannot fuse"):
        Q.fuse_modules(model, [["3", "4"]])
    with pytest.raises(Q.QuantizationError, match="no submodule '42'"):
        Q.fuse_modules(model, [["42", "8"]])


# ----------------------------------------------------------------------------- QAT


def test_qat_trains_and_converts_consistently():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(8, 16, rng=rng), nn.ReLU(), nn.Linear(16, 3, rng=rng))
    x = to.tensor(rng.standard_normal((128, 8)).astype(np.float32))
    labels = (x.data[:, 0] > 0).astype(np.int64) + (x.data[:, 1] > 0.5)
    qat = Q.prepare_qat(Q.fuse_known(model))
    params = list(qat.parameters())
    assert all(any(p is q for q in model.parameters()) is False for p in params)    # a copy
    opt = to.optim.SGD(params, lr=0.2)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(qat(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    qat.eval()
    fake = qat(x).data
    converted = Q.convert(qat, float_logits=False)
    out = converted(x)
    # the trained fake-quantized model and the integer model agree to a few output steps
    assert np.abs(fake - out.data).max() <= 3 * out.scale
    assert (fake.argmax(1) == out.data.argmax(1)).mean() >= 0.97
    logits = Q.convert(qat)(x)
    assert (logits.data.argmax(1) == fake.argmax(1)).mean() >= 0.97


def test_qat_weight_gradient_is_straight_through():
    model = nn.Sequential(nn.Linear(4, 3, rng=0))
    qat = Q.prepare_qat(model)
    x = to.tensor(np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32))
    qat(x).sum().backward()
    w = qat[0].module.weight
    assert w.grad is not None and np.all(np.isfinite(w.grad)) and np.abs(w.grad).sum() > 0


# ----------------------------------------------------------------------------- dynamic, mixed bits, sizes


def test_dynamic_quantization_close_to_float():
    model = LeNet5(rng=1).eval()
    dyn = Q.quantize_dynamic(model, {nn.Linear, nn.Conv2d})
    assert isinstance(dyn.classifier[1], Q.DynamicQuantLinear) and isinstance(model.classifier[1], nn.Linear)
    x = to.tensor(np.random.default_rng(2).standard_normal((50, 1, 28, 28)).astype(np.float32))
    y, yq = model(x).data, dyn(x).data
    assert np.abs(y - yq).max() < 0.05 * np.abs(y).max()
    assert (y.argmax(1) == yq.argmax(1)).mean() >= 0.95


def test_dynamic_linear_close_to_torch_dynamic():
    torch = pytest.importorskip("torch")
    import warnings
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    ours = nn.Sequential(nn.Linear(64, 32, rng=rng))
    tl = torch.nn.Linear(64, 32)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(ours[0].weight.data))
        tl.bias.copy_(torch.from_numpy(ours[0].bias.data))
    tq = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(tl), {torch.nn.Linear})
    x = rng.standard_normal((20, 64)).astype(np.float32)
    y_ours = Q.quantize_dynamic(ours)(to.tensor(x)).data
    y_torch = tq(torch.from_numpy(x)).detach().numpy()
    y_float = tl(torch.from_numpy(x)).detach().numpy()
    # both are int8 approximations of the same float layer (torch: per-tensor weights, 7-bit activations)
    assert np.abs(y_ours - y_float).max() < 0.02
    assert np.abs(y_ours - y_torch).max() < 0.04


def test_mixed_int8_int4_per_layer_and_sizes():
    model = LeNet5(rng=2).eval()
    qconfig = {"": Q.get_default_qconfig(), "classifier.1": Q.get_default_qconfig(weight_bits=4)}
    prepared = Q.prepare(Q.fuse_known(model), qconfig)
    x = to.tensor(np.random.default_rng(0).standard_normal((32, 1, 28, 28)).astype(np.float32))
    prepared(x)
    mixed = Q.convert(prepared)
    int4_layer = mixed.classifier[1]
    assert int4_layer.weight_q.qdtype.name == "qint4"
    assert int4_layer.w_int8.min() >= -8 and int4_layer.w_int8.max() <= 7
    assert mixed.features[0].weight_q.qdtype.name == "qint8"
    int8 = Q.convert(calibrated_lenet(model, x))
    fp32 = Q.model_size_bytes(model)["total"]
    s8, smixed = Q.model_size_bytes(int8)["total"], Q.model_size_bytes(mixed)["total"]
    assert 3.5 < fp32 / s8 <= 4.0                  # int8 weights + int32 bias + scales
    assert smixed < s8 - 0.45 * 400 * 120          # the 400×120 layer halves: 4 bits a weight
    out = mixed(x)
    assert np.all(np.isfinite(out.data))


def calibrated_lenet(model, x):
    prepared = Q.prepare(Q.fuse_known(model))
    prepared(x)
    return prepared


# ----------------------------------------------------------------------------- errors leave the model unchanged


def snapshot(model):
    return [(n, type(m).__name__) for n, m in model.named_modules()]


def test_convert_before_calibration_raises_and_changes_nothing():
    prepared = Q.prepare(small_cnn().eval())
    before = snapshot(prepared)
    with pytest.raises(Q.QuantizationError, match=r"convert\(\) before calibration.*'0'"):
        Q.convert(prepared, inplace=True)
    assert snapshot(prepared) == before


def test_zero_range_observer_raises():
    model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU())
    prepared = Q.prepare(model)
    prepared(to.tensor(np.zeros((4, 3), np.float32)))          # every input is 0: min = max
    before = snapshot(prepared)
    with pytest.raises(Q.QuantizationError, match="zero range"):
        Q.convert(prepared, inplace=True)
    assert snapshot(prepared) == before


def test_unsupported_layers_raise_before_any_change():
    model = nn.Sequential(nn.Linear(4, 4, rng=0), nn.Tanh(), nn.Conv2d(2, 4, 3, groups=2, rng=0))
    before = snapshot(model)
    with pytest.raises(Q.QuantizationError, match=r"'2'.*groups=2"):
        Q.prepare(model, inplace=True)
    assert snapshot(model) == before
    with pytest.raises(Q.QuantizationError, match="Tanh"):
        Q.prepare(model, {nn.Tanh: Q.default_qconfig}, inplace=True)
    with pytest.raises(Q.QuantizationError, match="Tanh"):
        Q.quantize_dynamic(model, {nn.Tanh})
    assert snapshot(model) == before


def test_nan_inputs_raise_clear_errors():
    converted = Q.convert(calibrated(small_cnn()))
    bad = images(1).data.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        converted(to.tensor(bad))
    dyn = Q.quantize_dynamic(small_cnn().eval())
    with pytest.raises(ValueError, match="NaN or Inf"):
        dyn(to.tensor(bad))
    with pytest.raises(ValueError, match="NaN or Inf"):
        Q.quantize_per_tensor(bad, 0.1, 0)


def test_shape_error_names_layer():
    converted = Q.convert(calibrated(small_cnn()))
    with pytest.raises(nn.ShapeError, match=r"'0' expects input of shape \(N, 1, H, W\)"):
        converted[0](to.tensor(np.zeros((2, 3, 8, 8), np.float32)))


# ----------------------------------------------------------------------------- against torch's quantized layers


def _torch_quantized(torch, layer_q, float_layer, conv):
    """torch's quantized Linear/Conv2d with our qparams (activations quint8 = our int8 + 128)."""
    qw = torch.quantize_per_channel(torch.from_numpy(float_layer.weight.data),
                                    torch.from_numpy(layer_q.w_scale.astype(np.float64)),
                                    torch.zeros(layer_q.w_scale.size, dtype=torch.long), 0, torch.qint8)
    assert np.array_equal(qw.int_repr().numpy(), layer_q.w_int8)
    if conv:
        tq = torch.ao.nn.quantized.Conv2d(float_layer.in_channels, float_layer.out_channels, float_layer.kernel_size,
                                          stride=float_layer.stride, padding=layer_q.padding)
    else:
        tq = torch.ao.nn.quantized.Linear(float_layer.in_features, float_layer.out_features, dtype=torch.qint8)
    tq.set_weight_bias(qw, torch.from_numpy(float_layer.bias.data))
    tq.scale, tq.zero_point = layer_q.scale, layer_q.zero_point + 128
    return tq


@pytest.mark.parametrize("conv", [False, True])
def test_integer_layers_within_one_lsb_of_torch_qnnpack(conv):
    """torch's QNNPACK engine requantizes in float from exact int32 sums: ours must be within 1 LSB.
    (fbgemm/x86 differ by up to ~50 LSB on the same data unless activations use reduce_range:
    vpmaddubsw saturates int16 pair sums of u8·s8 products.)"""
    torch = pytest.importorskip("torch")
    import warnings
    warnings.filterwarnings("ignore")
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("torch built without QNNPACK")
    rng = np.random.default_rng(8)
    if conv:
        float_layer = nn.Conv2d(3, 5, 3, stride=1, padding=1, rng=1)
        shape = (4, 3, 9, 9)
    else:
        float_layer = nn.Linear(40, 12, rng=1)
        shape = (64, 40)
    prepared = Q.prepare(nn.Sequential(float_layer))
    prepared(to.tensor(rng.standard_normal(shape).astype(np.float32)))
    layer_q = Q.convert(prepared, float_logits=False)[0]
    x = rng.standard_normal(shape).astype(np.float32)
    ours = layer_q(to.tensor(x)).q.astype(int)
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = "qnnpack"
    try:
        tq = _torch_quantized(torch, layer_q, float_layer, conv)
        xq = torch.quantize_per_tensor(torch.from_numpy(x), layer_q.input_scale, layer_q.input_zero_point + 128,
                                       torch.quint8)
        theirs = tq(xq).int_repr().numpy().astype(int) - 128
    finally:
        torch.backends.quantized.engine = previous
    diff = np.abs(ours - theirs)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.95


def test_layer_left_in_float_by_qconfig_none():
    model = small_cnn().eval()
    qconfig = {"": Q.default_qconfig, "7": None}                 # the first Linear stays float
    prepared = Q.prepare(Q.fuse_known(model), qconfig)
    for s in (1, 2):
        prepared(images(s))
    converted = Q.convert(prepared)
    assert type(converted[7]).__name__ == "LinearReLU" and isinstance(converted[9], Q.QuantLinear)
    x = images(3)
    y, yq = model(x).data, converted(x).data                      # float layer fed by dequantized int8
    assert np.abs(y - yq).max() < 0.1 * np.abs(y).max()


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 9), n_in=st.integers(1, 40), n_out=st.integers(1, 20), seed=st.integers(0, 2**16),
       relu=st.booleans(), spread=st.floats(0.01, 100.0))
def test_quant_linear_hypothesis_within_one_lsb(batch, n_in, n_out, seed, relu, spread):
    rng = np.random.default_rng(seed)
    layer = nn.Linear(n_in, n_out, rng=rng)
    layer.weight.data *= np.float32(spread)
    model = nn.Sequential(Q.LinearReLU(layer) if relu else layer)
    prepared = Q.prepare(model)
    prepared(to.tensor((rng.standard_normal((32, n_in)) * spread).astype(np.float32)))
    prepared(to.tensor((rng.standard_normal((1, n_in)) * spread + 1).astype(np.float32)))
    # No zero range after ReLU: row o is along W[o], scaled so that output o is |b_o| + 1 + b_o ≥ 1 > 0
    # (random inputs alone can leave every output negative, e.g. n_in = n_out = 1).
    w, b = layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64)
    along = w * ((np.abs(b) + 1) / np.sum(w * w, axis=1))[:, None]
    prepared(to.tensor(along.astype(np.float32)))
    q_layer = Q.convert(prepared, float_logits=False)[0]
    x = (rng.standard_normal((batch, n_in)) * spread).astype(np.float32)
    q_in, s_x, z_x = Q.modules.quantize_input(to.tensor(x), q_layer.input_scale, q_layer.input_zero_point)
    out = q_layer(to.tensor(x)).q
    assert out.shape == (batch, n_out) and out.dtype == np.int8
    assert np.abs(out.astype(int) - float_simulation(q_layer, q_in, s_x, z_x)).max() <= 1


@pytest.mark.parametrize("kernels", ["numba", "reference"])
def test_conv_then_pool_fused_equals_unfused(kernels):
    """QuantConv2d → QuantMaxPool2d pools the accumulators and requantizes once per window;
    the integers equal requantizing every position first and pooling the int8 values."""
    converted = Q.convert(calibrated(small_cnn()))
    x = images(7)
    conv, pool = converted[0], converted[3]
    assert type(pool).__name__ == "QuantMaxPool2d"
    with backend(kernels):
        fused = pool(conv(x))
        q_full = conv(x).q                                  # requantized at every position
    expected = q_full.reshape(16, 4, 7, 2, 7, 2).max(axis=(3, 5))
    assert isinstance(fused, Q.QActivation) and fused.q.dtype == np.int8
    np.testing.assert_array_equal(fused.q, expected)
    assert (fused.scale, fused.zero_point) == (conv.scale, conv.zero_point)
