"""BatchNorm1d/2d: outputs, gradients and running statistics against torch, train/eval behaviour,
state_dict round trip, gradcheck of the composed backward pass, and errors."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt.nn import functional as F
from conftest import check_grad, randn


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (3, 3, 4, 5)])
def test_batch_norm_training_gradcheck(shape, rng):
    x, w, b = randn(shape, rng), randn(3, rng), randn(3, rng)
    check_grad(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)


def test_batch_norm_eval_gradcheck(rng):
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    check_grad(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False),
               randn((4, 3, 2, 2), rng), randn(3, rng), randn(3, rng))


@pytest.mark.parametrize("cls_name, shape", [("BatchNorm1d", (8, 4)), ("BatchNorm1d", (6, 4, 5)),
                                             ("BatchNorm2d", (5, 4, 3, 3))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_module_matches_torch_over_train_and_eval_steps(cls_name, shape, momentum, rng):
    torch = pytest.importorskip("torch")
    ours = getattr(to.nn, cls_name)(4, momentum=momentum)
    ref = getattr(torch.nn, cls_name)(4, momentum=momentum).double()
    ours.weight.data[...] = rng.uniform(0.5, 1.5, 4)
    ours.bias.data[...] = rng.standard_normal(4)
    ours.weight.data = ours.weight.data.astype(np.float64)
    ours.bias.data = ours.bias.data.astype(np.float64)
    ours.running_mean = ours.running_mean.astype(np.float64)
    ours.running_var = ours.running_var.astype(np.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ours.weight.data))
        ref.bias.copy_(torch.tensor(ours.bias.data))
    for step in range(3):
        x = randn(shape, rng) * (step + 1) + step
        v = randn(shape, rng)
        xt, xr = to.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours.zero_grad()
        ref.zero_grad()
        (ours(xt) * to.tensor(v)).sum().backward()
        (ref(xr) * torch.tensor(v)).sum().backward()
        np.testing.assert_allclose(xt.grad, xr.grad.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(ours.weight.grad, ref.weight.grad.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(ours.bias.grad, ref.bias.grad.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ours.running_mean, ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var, ref.running_var.numpy(), rtol=1e-12)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 3
    ours.eval()
    ref.eval()
    x = randn(shape, rng)
    np.testing.assert_allclose(ours(to.tensor(x)).data, ref(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_training_output_is_normalised_per_channel(rng):
    bn = to.nn.BatchNorm2d(3)
    x = to.tensor((rng.standard_normal((16, 3, 4, 4)) * [[[[2.0]], [[5.0]], [[0.1]]]] + 3).astype(np.float32))
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


def test_running_statistics_formula():
    """running ← (1 − m)·running + m·batch statistic, the variance unbiased (m/(m−1))."""
    bn = to.nn.BatchNorm1d(1, momentum=0.5)
    x = np.array([[1.0], [3.0]], dtype=np.float32)  # mean 2, biased var 1, unbiased var 2
    bn(to.tensor(x))
    np.testing.assert_allclose(bn.running_mean, [0.5 * 0 + 0.5 * 2])
    np.testing.assert_allclose(bn.running_var, [0.5 * 1 + 0.5 * 2])


def test_eval_uses_running_stats_and_does_not_update_them(rng):
    bn = to.nn.BatchNorm1d(2)
    bn.running_mean[...] = [1.0, -1.0]
    bn.running_var[...] = [4.0, 0.25]
    bn.eval()
    x = rng.standard_normal((3, 2)).astype(np.float32)
    y = bn(to.tensor(x)).data
    np.testing.assert_allclose(y, (x - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5), rtol=1e-5)
    np.testing.assert_array_equal(bn.running_mean, [1.0, -1.0])
    assert int(bn.num_batches_tracked) == 0


def test_state_dict_holds_running_stats_and_round_trips(rng):
    model = to.nn.Sequential(to.nn.Conv2d(1, 2, 3, rng=0), to.nn.BatchNorm2d(2))
    model(to.tensor(rng.standard_normal((4, 1, 5, 5)).astype(np.float32)))
    state = model.state_dict()
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked", "1.weight", "1.bias"} <= set(state)
    assert int(state["1.num_batches_tracked"]) == 1
    fresh = to.nn.Sequential(to.nn.Conv2d(1, 2, 3, rng=1), to.nn.BatchNorm2d(2))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh[1].running_mean, model[1].running_mean)
    np.testing.assert_array_equal(fresh[1].running_var, model[1].running_var)
    x = to.tensor(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    model.eval()
    fresh.eval()
    np.testing.assert_array_equal(fresh(x).data, model(x).data)


def test_without_running_stats_eval_uses_batch_statistics(rng):
    bn = to.nn.BatchNorm1d(3, track_running_stats=False, affine=False).eval()
    assert len(bn.state_dict()) == 0
    y = bn(to.tensor(rng.standard_normal((10, 3)).astype(np.float32))).data
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)


def test_errors():
    with pytest.raises(to.nn.ShapeError) as info:
        to.nn.BatchNorm2d(3)(to.zeros(2, 4, 5, 5))
    assert "BatchNorm2d(3" in str(info.value) and "(2, 4, 5, 5)" in str(info.value) and "(N, 3, H, W)" in str(info.value)
    with pytest.raises(to.nn.ShapeError):
        to.nn.BatchNorm1d(3)(to.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        to.nn.BatchNorm1d(3)(to.zeros(1, 3))
    for kwargs in (dict(num_features=0), dict(num_features=3, eps=0), dict(num_features=3, momentum=1.5)):
        with pytest.raises(ValueError):
            to.nn.BatchNorm1d(**kwargs)
