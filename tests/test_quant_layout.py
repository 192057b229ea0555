"""Where the quantization pieces live (issue 9): the fake-quantize op in `tinyopt.ops.quant` with its
functional front end in F, the int8 kernels importable by their documented names, one BatchNorm
folding body for Conv2d and Linear, one explain() stepper for both integer-only layers."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt import quant as Q
from tinyopt.nn import functional as F


def test_fake_quantize_op_lives_in_ops_and_F_is_its_front_end():
    from tinyopt.ops import quant as QO

    x = to.tensor(np.linspace(-2, 2, 9, dtype=np.float32), requires_grad=True)
    y = F.fake_quantize_per_tensor_affine(x, 0.25, 1, -6, 6)
    assert y.grad_fn.fn is QO.FakeQuantizeAffine
    np.testing.assert_array_equal(y.data, Q.fake_quantize_per_tensor_affine(x, 0.25, 1, -6, 6).data)
    assert Q.FakeQuantizeFunction is QO.FakeQuantizeAffine
    w = to.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    per_channel = F.fake_quantize_per_channel_affine(w, np.array([0.5, 1.0, 2.0]), np.zeros(3, np.int64), 0, -8, 7)
    np.testing.assert_array_equal(per_channel.data[0], np.clip(np.rint(np.arange(4) / 0.5), -8, 7) * 0.5)


def test_fake_quantize_module_calls_F(monkeypatch):
    calls = []
    original = F.fake_quantize_per_tensor_affine
    monkeypatch.setattr(F, "fake_quantize_per_tensor_affine", lambda *a, **k: calls.append(a) or original(*a, **k))
    Q.FakeQuantize()(to.tensor(np.linspace(-1, 1, 8, dtype=np.float32)))
    assert len(calls) == 1


def test_public_int8_kernels_import_as_functions():
    from tinyopt.kernels import (conv2d_int8, conv2d_int8_acc, matmul_int8, max_pool2d_int8, pack_b, quantize_multiplier,
                                 requantize)

    from tinyopt.kernels import matmul_u8s8, pack_b_u8s8

    for fn in (conv2d_int8, conv2d_int8_acc, matmul_int8, matmul_u8s8, max_pool2d_int8, pack_b, pack_b_u8s8,
               quantize_multiplier, requantize):
        assert callable(fn) and not isinstance(fn, type(np))
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (7, 33)).astype(np.int8)
    b = rng.integers(-128, 128, (33, 5)).astype(np.int8)
    np.testing.assert_array_equal(matmul_int8(a, b), a.astype(np.int64) @ b.astype(np.int64))
    np.testing.assert_array_equal(matmul_int8(a, pack_b(b)), a.astype(np.int64) @ b.astype(np.int64))


def _bn(n, rng):
    bn = nn.BatchNorm1d(n)
    bn.running_mean = rng.normal(size=n).astype(np.float32)
    bn.running_var = rng.uniform(0.5, 2, n).astype(np.float32)
    bn.weight.data[:] = rng.normal(size=n)
    bn.bias.data[:] = rng.normal(size=n)
    return bn.eval()


def test_fold_linear_bn_equals_bn_of_linear_and_checks_features():
    from tinyopt.quant.quantize import fold_linear_bn

    rng = np.random.default_rng(1)
    lin, bn = nn.Linear(5, 4, rng=rng), _bn(4, rng)
    x = to.tensor(rng.normal(size=(6, 5)).astype(np.float32))
    np.testing.assert_allclose(fold_linear_bn(lin, bn)(x).data, bn(lin(x)).data, rtol=1e-5, atol=1e-5)
    before = {k: v.copy() for k, v in lin.state_dict().items()}
    for wrong in (3, 5, 8):
        with pytest.raises(Q.QuantizationError, match=f"{wrong} features vs 4 output channels"):
            fold_linear_bn(lin, _bn(wrong, rng))
    for k, v in lin.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_explain_is_one_function_for_linear_and_conv():
    from tinyopt.quant import modules as M

    assert not hasattr(M.QuantLinear, "_steps")
    assert callable(M.requantization_steps)
