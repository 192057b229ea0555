"""max_pool2d / avg_pool2d and their modules: gradients against central differences and torch,
argmax routing, torch's padding/ceil_mode/count_include_pad conventions, and error messages."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt import kernels
from tinyopt.nn import functional as F
from conftest import check_grad, assert_matches_torch, randn

# (input shape, kernel_size, stride, padding, extra keyword arguments)
MAX_CONFIGS = {
    "k2": ((2, 3, 6, 6), 2, None, 0, {}),
    "k3_s2_p1": ((2, 2, 7, 7), 3, 2, 1, {}),
    "non_square": ((1, 2, 5, 8), (2, 3), (1, 2), (1, 1), {}),
    "dilation2": ((1, 2, 8, 7), 2, 1, 0, dict(dilation=2)),
    "ceil_mode": ((2, 1, 7, 6), 2, 2, 0, dict(ceil_mode=True)),
    "batch1_overlap": ((1, 3, 5, 5), 3, 1, 1, {}),
}
AVG_CONFIGS = {
    "k2": ((2, 3, 6, 6), 2, None, 0, {}),
    "k3_s2_p1": ((2, 2, 7, 7), 3, 2, 1, {}),
    "no_pad_count": ((2, 2, 7, 7), 3, 2, 1, dict(count_include_pad=False)),
    "ceil_mode": ((1, 2, 7, 8), 3, 2, 1, dict(ceil_mode=True)),
    "divisor_override": ((1, 2, 6, 6), 2, 1, 0, dict(divisor_override=3)),
    "non_square": ((1, 1, 5, 9), (2, 3), (2, 1), (1, 0), {}),
}


@pytest.fixture(params=["numba", "reference"])
def backend(request):
    with kernels.backend(request.param):
        yield request.param


@pytest.mark.parametrize("name", sorted(MAX_CONFIGS))
def test_max_pool2d_gradcheck(name, backend, rng):
    shape, k, s, p, extra = MAX_CONFIGS[name]
    # Distinct values far apart compared with eps, so no window has a near-tie that central
    # differences would straddle.
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    check_grad(lambda x: F.max_pool2d(x, k, s, p, **extra), x)


@pytest.mark.parametrize("name", sorted(MAX_CONFIGS))
def test_max_pool2d_vs_torch(name, backend, rng):
    torch = pytest.importorskip("torch")
    shape, k, s, p, extra = MAX_CONFIGS[name]
    assert_matches_torch([randn(shape, rng)], lambda x: F.max_pool2d(x, k, s, p, **extra),
                   lambda x: torch.nn.functional.max_pool2d(x, k, s, p, **extra))


@pytest.mark.parametrize("name", sorted(AVG_CONFIGS))
def test_avg_pool2d_gradcheck(name, backend, rng):
    shape, k, s, p, extra = AVG_CONFIGS[name]
    check_grad(lambda x: F.avg_pool2d(x, k, s, p, **extra), randn(shape, rng))


@pytest.mark.parametrize("name", sorted(AVG_CONFIGS))
def test_avg_pool2d_vs_torch(name, backend, rng):
    torch = pytest.importorskip("torch")
    shape, k, s, p, extra = AVG_CONFIGS[name]
    assert_matches_torch([randn(shape, rng)], lambda x: F.avg_pool2d(x, k, s, p, **extra),
                   lambda x: torch.nn.functional.avg_pool2d(x, k, s, p, **extra))


def test_max_pool_routes_gradient_to_argmax_only():
    x = to.tensor(np.array([[[[1.0, 5.0], [3.0, 2.0]]]]), requires_grad=True)
    y = F.max_pool2d(x, 2)
    y.backward(np.array([[[[7.0]]]]))
    np.testing.assert_array_equal(x.grad, [[[[0.0, 7.0], [0.0, 0.0]]]])


def test_overlapping_windows_sharing_a_maximum_accumulate():
    """With stride 1 the centre maximum wins all four 2×2 windows: its gradient is their sum."""
    x = to.tensor(np.array([[[[0, 0, 0], [0, 9.0, 0], [0, 0, 0]]]]), requires_grad=True)
    F.max_pool2d(x, 2, stride=1).backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    assert x.grad[0, 0, 1, 1] == 10.0 and x.grad.sum() == 10.0


def test_ties_go_to_first_maximum_like_torch():
    torch = pytest.importorskip("torch")
    x = np.ones((1, 1, 4, 4))
    _, idx = F.max_pool2d(to.tensor(x), 2, return_indices=True)
    _, ref = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(idx, ref.numpy())


def test_return_indices_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    y, idx = F.max_pool2d(to.tensor(x), 3, 2, 1, return_indices=True)
    ref_y, ref_idx = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y.data, ref_y.numpy())
    np.testing.assert_array_equal(idx, ref_idx.numpy())


def test_nan_propagates_like_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[[[1.0, np.nan, 3.0, 2.0], [0.0, 4.0, 1.0, 1.0]]]])
    y = F.max_pool2d(to.tensor(x), 2)
    np.testing.assert_array_equal(y.data, torch.nn.functional.max_pool2d(torch.tensor(x), 2).numpy())


def test_avg_pool_count_include_pad_default_is_torchs():
    """A 3×3 window at the corner of a padded 2×2 input of ones sees 4 ones: 4/9 by default."""
    y = F.avg_pool2d(to.ones(1, 1, 2, 2), 3, stride=1, padding=1)
    np.testing.assert_allclose(y.data, np.full((1, 1, 2, 2), 4 / 9), rtol=1e-6)
    y = F.avg_pool2d(to.ones(1, 1, 2, 2), 3, stride=1, padding=1, count_include_pad=False)
    np.testing.assert_allclose(y.data, np.ones((1, 1, 2, 2)), rtol=1e-6)


@pytest.mark.parametrize("module, functional", [
    (lambda: to.nn.MaxPool2d(3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1)),
    (lambda: to.nn.AvgPool2d(2), lambda x: F.avg_pool2d(x, 2, 2)),
])
def test_modules_match_functional_and_accept_unbatched(module, functional, rng):
    x = to.tensor(rng.standard_normal((2, 3, 8, 7)).astype(np.float32))
    layer = module()
    np.testing.assert_array_equal(layer(x).data, functional(x).data)
    np.testing.assert_array_equal(layer(x[0]).data, functional(x).data[0])
    assert list(layer.parameters()) == []


def test_max_pool2d_module_return_indices():
    y, idx = to.nn.MaxPool2d(2, return_indices=True)(to.tensor(np.arange(16.0).reshape(1, 1, 4, 4)))
    np.testing.assert_array_equal(idx[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(y.data[0, 0], [[5, 7], [13, 15]])


def test_pool_error_names_layer_and_shape():
    with pytest.raises(to.nn.ShapeError) as info:
        to.nn.MaxPool2d(2)(to.zeros(4, 8))
    assert "MaxPool2d(kernel_size=2" in str(info.value) and "(4, 8)" in str(info.value)
    with pytest.raises(to.nn.ShapeError, match=r"\(1, 1, 2, 2\)"):
        to.nn.AvgPool2d(3)(to.zeros(1, 1, 2, 2))


@pytest.mark.parametrize("kwargs", [dict(kernel_size=0), dict(kernel_size=2, stride=0), dict(kernel_size=2, padding=2),
                                    dict(kernel_size=2, padding=-1)])
def test_invalid_options_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        F.max_pool2d(to.zeros(1, 1, 6, 6), **kwargs)
    with pytest.raises(ValueError):
        F.avg_pool2d(to.zeros(1, 1, 6, 6), **kwargs)


def test_non_contiguous_input_vs_torch(rng):
    torch = pytest.importorskip("torch")
    x = randn((2, 3, 7, 8), rng).transpose(0, 1, 3, 2)
    assert_matches_torch([x], lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: torch.nn.functional.max_pool2d(x, 3, 2, 1))
    assert_matches_torch([x], lambda x: F.avg_pool2d(x, 2), lambda x: torch.nn.functional.avg_pool2d(x, 2))
