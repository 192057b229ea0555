"""FakeQuantize: forward on the grid, straight-through gradient (1 inside the range, 0 outside), torch."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import quant as Q


def test_forward_snaps_to_grid_and_saturates():
    x = to.tensor(np.array([-3.0, -0.26, 0.0, 0.12, 0.26, 3.0], np.float32))
    y = Q.fake_quantize_per_tensor_affine(x, 0.1, 0, -10, 10)
    np.testing.assert_allclose(y.data, [-1.0, -0.3, 0.0, 0.1, 0.3, 1.0], atol=1e-6)


def test_ste_gradient_mask_by_hand():
    x = to.tensor(np.array([-3.0, -0.26, 0.0, 0.12, 0.26, 3.0], np.float32), requires_grad=True)
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], np.float32)     # a random-ish cotangent, not .sum()
    y = Q.fake_quantize_per_tensor_affine(x, 0.1, 0, -10, 10)
    (y * to.tensor(v)).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 2, 3, 4, 5, 0])   # saturated ends get no gradient


def test_ste_boundary_is_inclusive():
    # round(x/S) + Z == q_max exactly → inside (gradient 1); one step beyond → outside
    x = to.tensor(np.array([1.0, 1.1], np.float32), requires_grad=True)
    Q.fake_quantize_per_tensor_affine(x, 0.1, 0, -10, 10).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("zp", [0, 3, -5])
def test_per_tensor_equals_torch(zp):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(zp + 10)
    x = (rng.standard_normal((5, 7)) * 2).astype(np.float32)
    v = rng.standard_normal((5, 7)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.fake_quantize_per_tensor_affine(tx, 0.05, zp, -20, 20)
    ty.backward(torch.from_numpy(v))
    ox = to.tensor(x, requires_grad=True)
    oy = Q.fake_quantize_per_tensor_affine(ox, 0.05, zp, -20, 20)
    oy.backward(v)
    np.testing.assert_array_equal(oy.data, ty.detach().numpy())
    np.testing.assert_array_equal(ox.grad, tx.grad.numpy())


def test_per_channel_equals_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3, 4, 5))).astype(np.float32)
    scales = rng.uniform(0.01, 0.05, 4).astype(np.float32)
    zps = rng.integers(-3, 3, 4)
    v = rng.standard_normal(x.shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.fake_quantize_per_channel_affine(tx, torch.from_numpy(scales), torch.from_numpy(zps).int(), 1, -64, 63)
    ty.backward(torch.from_numpy(v))
    ox = to.tensor(x, requires_grad=True)
    oy = Q.fake_quantize_per_channel_affine(ox, scales, zps, 1, -64, 63)
    oy.backward(v)
    np.testing.assert_array_equal(oy.data, ty.detach().numpy())
    np.testing.assert_array_equal(ox.grad, tx.grad.numpy())


def test_fake_quantize_module_equals_torch_over_batches():
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import FakeQuantize as TFQ, MovingAverageMinMaxObserver as TMA
    ours = Q.FakeQuantize(Q.MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype="quint8")
    theirs = TFQ(TMA, quant_min=0, quant_max=255, dtype=torch.quint8)
    rng = np.random.default_rng(0)
    for k in range(4):
        x = (rng.standard_normal((8, 6)) + 0.3 * k).astype(np.float32)
        ty = theirs(torch.from_numpy(x))
        oy = ours(to.tensor(x))
        np.testing.assert_array_equal(oy.data, ty.numpy())
    np.testing.assert_array_equal(ours.scale, theirs.scale.numpy())
    np.testing.assert_array_equal(ours.zero_point, theirs.zero_point.numpy())


def test_fake_quantize_switches():
    fq = Q.FakeQuantize(dtype="qint8", quant_min=-128, quant_max=127)
    x = to.tensor(np.linspace(-1, 1, 11, dtype=np.float32))
    fq(x)
    scale_before = fq.scale.clone()
    fq.disable_observer()
    fq(x * 10)                                   # not observed: the scale stays
    np.testing.assert_array_equal(fq.scale, scale_before)
    fq.disable_fake_quant()
    assert fq(x) is x
    per_channel = Q.FakeQuantize(Q.PerChannelMinMaxObserver, dtype="qint8", qscheme="per_channel_symmetric")
    # largest magnitudes negative: symmetric S = max|w| / 127.5 puts +max|w| at 127.5, which rounds to
    # 128 and saturates (gradient 0, as in torch), while -max|w| lands at -127.5 → -128, inside
    w = to.tensor(np.array([[-1.0, 0.5], [0.01, -0.02]], np.float32), requires_grad=True)
    out = per_channel(w)
    out.sum().backward()
    np.testing.assert_allclose(out.data, w.data, atol=float(per_channel.scale.max()) / 2 + 1e-7)
    np.testing.assert_array_equal(w.grad, np.ones((2, 2)))
