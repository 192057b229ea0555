"""conv2d and nn.Conv2d: gradients against central differences (float64) and torch autograd, for
the configurations the issue names (stride 2 with padding 1, dilation 2, groups 2, 1×1 kernels,
non-square inputs, batch of 1), under both kernel backends; plus init, shapes and error messages."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tinyopt as to
from tinyopt import kernels
from tinyopt.nn import functional as F
from conftest import check_grad, assert_matches_torch, randn

# (input shape, weight shape, stride, padding, dilation, groups)
CONFIGS = {
    "stride2_pad1": ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, 1, 1),
    "dilation2": ((2, 2, 8, 7), (3, 2, 3, 3), 1, 0, 2, 1),
    "groups2": ((2, 4, 6, 6), (6, 2, 3, 3), 1, 1, 1, 2),
    "kernel1x1": ((2, 3, 5, 4), (5, 3, 1, 1), 1, 0, 1, 1),
    "non_square": ((2, 2, 5, 9), (3, 2, 2, 4), (1, 2), (0, 1), 1, 1),
    "batch1": ((1, 2, 6, 5), (3, 2, 3, 3), 1, 1, 1, 1),
    "mixed": ((2, 4, 9, 8), (4, 2, 3, 2), (2, 1), (1, 2), (1, 2), 2),
    "same": ((1, 2, 6, 5), (2, 2, 4, 3), 1, "same", 1, 1),
}


@pytest.fixture(params=["numba", "reference"])
def backend(request):
    with kernels.backend(request.param):
        yield request.param


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_conv2d_gradcheck(name, backend, rng):
    x_shape, w_shape, stride, padding, dilation, groups = CONFIGS[name]
    x, w, b = randn(x_shape, rng), randn(w_shape, rng), randn(w_shape[0], rng)
    check_grad(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), x, w, b)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_conv2d_vs_torch(name, backend, rng):
    torch = pytest.importorskip("torch")
    x_shape, w_shape, stride, padding, dilation, groups = CONFIGS[name]
    x, w, b = randn(x_shape, rng), randn(w_shape, rng), randn(w_shape[0], rng)
    assert_matches_torch(
        [x, w, b],
        lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
        lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride, padding, dilation, groups),
    )


def test_conv2d_without_bias_and_unbatched_vs_torch(rng):
    torch = pytest.importorskip("torch")
    x, w = randn((3, 6, 5), rng), randn((2, 3, 3, 3), rng)
    assert_matches_torch([x, w], lambda x, w: F.conv2d(x, w, None, 1, 1),
                   lambda x, w: torch.nn.functional.conv2d(x, w, None, 1, 1))


def test_conv2d_float32_matches_torch(rng):
    """The float32 training path (BLAS sgemm) agrees with torch to float32 accuracy."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((8, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    y = F.conv2d(to.tensor(x), to.tensor(w), to.tensor(b))
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, ref.numpy(), rtol=1e-4, atol=1e-4)


def test_only_needed_gradients_are_computed(rng):
    """A frozen input (requires_grad=False) gets no gradient, the others still do."""
    x = to.tensor(randn((1, 2, 5, 5), rng))
    w = to.tensor(randn((3, 2, 3, 3), rng), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad is not None
    # d(sum y)/dw[o, c, i, j] = sum of the input window the kernel tap (i, j) sees.
    np.testing.assert_allclose(w.grad[1, 0, 0, 0], x.data[0, 0, :3, :3].sum())


def test_conv2d_module_init_matches_torch_bounds():
    """kaiming_uniform_(a=√5) gives weights in ±1/√fan_in, bias in ±1/√fan_in, as torch."""
    conv = to.nn.Conv2d(6, 16, 5, rng=np.random.default_rng(0))
    bound = 1 / math.sqrt(6 * 5 * 5)
    assert conv.weight.shape == (16, 6, 5, 5) and conv.bias.shape == (16,)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.9 * bound  # spread over the whole interval
    grouped = to.nn.Conv2d(4, 6, 3, groups=2, bias=False, rng=1)
    assert grouped.weight.shape == (6, 2, 3, 3) and grouped.bias is None
    assert np.abs(grouped.weight.data).max() <= 1 / math.sqrt(2 * 9)


def test_conv2d_module_seeded_init_is_reproducible_and_weight_differs_from_bias():
    a, b = to.nn.Conv2d(1, 3, 1, rng=7), to.nn.Conv2d(1, 3, 1, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.allclose(a.weight.data.ravel(), a.bias.data)


def test_conv2d_module_forward_matches_functional(rng):
    conv = to.nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), rng=0)
    x = to.tensor(rng.standard_normal((2, 3, 8, 9)).astype(np.float32))
    y = conv(x)
    np.testing.assert_array_equal(y.data, F.conv2d(x, conv.weight, conv.bias, (2, 1), 1, (1, 2)).data)
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]


def test_numba_and_reference_backends_agree_through_the_layer(rng):
    conv = to.nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=0)
    x_data = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    results = {}
    for name in ("numba", "reference"):
        with kernels.backend(name):
            x = to.tensor(x_data, requires_grad=True)
            conv.zero_grad()
            (conv(x) ** 2).sum().backward()
            results[name] = (x.grad, conv.weight.grad, conv.bias.grad)
    for fast, ref in zip(results["numba"], results["reference"]):
        np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)


def test_wrong_channel_count_names_layer_and_both_shapes():
    conv = to.nn.Conv2d(3, 8, 3)
    with pytest.raises(to.nn.ShapeError) as info:
        conv(to.zeros(2, 5, 10, 10))
    message = str(info.value)
    assert "Conv2d(3, 8" in message and "(2, 5, 10, 10)" in message and "(N, 3, H, W)" in message


def test_functional_channel_mismatch_names_both_shapes():
    with pytest.raises(to.nn.ShapeError) as info:
        F.conv2d(to.zeros(1, 4, 6, 6), to.zeros(2, 3, 3, 3))
    assert "(2, 3, 3, 3)" in str(info.value) and "(1, 4, 6, 6)" in str(info.value)


def test_input_smaller_than_kernel_is_an_error():
    with pytest.raises(to.nn.ShapeError, match="smaller than the dilated kernel"):
        F.conv2d(to.zeros(1, 1, 4, 4), to.zeros(1, 1, 3, 3), dilation=2)


def test_error_inside_sequential_names_the_layer():
    model = to.nn.Sequential(to.nn.Conv2d(1, 4, 3), to.nn.ReLU(), to.nn.Conv2d(5, 2, 3))
    with pytest.raises(to.nn.ShapeError, match=r"layer \(2\)"):
        model(to.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("kwargs", [
    dict(in_channels=3, out_channels=4, kernel_size=3, groups=2),
    dict(in_channels=4, out_channels=3, kernel_size=3, groups=2),
    dict(in_channels=0, out_channels=3, kernel_size=3),
    dict(in_channels=3, out_channels=3, kernel_size=0),
    dict(in_channels=3, out_channels=3, kernel_size=3, padding_mode="reflect"),
])
def test_invalid_hyperparameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        to.nn.Conv2d(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(stride=0), dict(padding=-1), dict(dilation=0), dict(padding="full"),
                                    dict(stride=2, padding="same")])
def test_invalid_functional_options_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        F.conv2d(to.zeros(1, 1, 6, 6), to.zeros(1, 1, 3, 3), **kwargs)


def test_non_contiguous_input_and_weight_vs_torch(rng):
    """Transposed views (not C-contiguous) go through the same path as copies."""
    torch = pytest.importorskip("torch")
    x = randn((2, 3, 6, 7), rng).transpose(0, 1, 3, 2)  # (2, 3, 7, 6), non-contiguous
    w = randn((4, 3, 3, 3), rng).transpose(0, 1, 3, 2)
    assert_matches_torch([x, w], lambda x, w: F.conv2d(x, w, None, 2, 1),
                   lambda x, w: torch.nn.functional.conv2d(x, w, None, 2, 1))


def test_mixed_dtypes_are_refused():
    with pytest.raises(TypeError, match="float64"):
        F.conv2d(to.zeros(1, 1, 5, 5), to.tensor(np.zeros((1, 1, 3, 3))))
