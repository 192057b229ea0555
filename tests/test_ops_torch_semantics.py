"""The ops added with torch's semantics (issue 9, part 2), each checked two ways: central
differences (`check_grad`) and torch autograd (`assert_matches_torch`), on float64 data."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
import tinyopt.nn.functional as F
from conftest import assert_matches_torch, check_grad, randn

def _tf():
    """torch.nn.functional (only called inside assert_matches_torch, which skips without torch)."""
    import torch.nn.functional as TF

    return TF


# ----------------------------------------------------------------------------- reductions and scans


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_prod(dim, rng):
    x = randn((3, 4), rng, 0.5, 1.5)
    x[1, 2] = 0.0  # a zero: the gradient needs no division
    check_grad(lambda t: t.prod() if dim is None else t.prod(dim), x)
    assert_matches_torch([x], lambda t: t.prod() if dim is None else t.prod(dim))


def test_prod_keepdim(rng):
    x = randn((2, 3, 2), rng, 0.5, 1.5)
    check_grad(lambda t: t.prod(1, keepdim=True), x)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum(dim, rng):
    x = randn((3, 4), rng)
    check_grad(lambda t: t.cumsum(dim), x)
    assert_matches_torch([x], lambda t: t.cumsum(dim))


def test_max_min_dim_route_the_gradient_to_the_index(rng):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 5.0, 1.0]])
    assert_matches_torch([x], lambda t: t.max(1).values, lambda t: t.max(1).values)
    assert_matches_torch([x], lambda t: t.min(0, keepdim=True).values, lambda t: t.min(0, keepdim=True).values)
    values, indices = to.tensor(x).max(dim=1)
    np.testing.assert_array_equal(indices.data, [1, 1])  # the first of the tied maxima, as torch
    assert indices.dtype == np.int64 and values.shape == (2,)


def test_full_max_with_nan_sends_the_gradient_to_the_nan():
    torch = pytest.importorskip("torch")
    x = np.array([1.0, np.nan, 3.0])
    t = to.tensor(x, requires_grad=True)
    t.max().backward()
    r = torch.tensor(x, requires_grad=True)
    r.max().backward()
    np.testing.assert_array_equal(np.asarray(t.grad), r.grad.numpy())


def test_max_dim_with_nan_picks_the_nan_like_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, np.nan, 3.0], [4.0, 2.0, 0.0]])
    ours, theirs = to.tensor(x).max(1), torch.tensor(x).max(1)
    np.testing.assert_array_equal(ours.indices.data, theirs.indices.numpy())
    np.testing.assert_array_equal(ours.values.data, theirs.values.numpy())


@pytest.mark.parametrize("dim", [None, 1])
def test_norm2_and_zero_subgradient(dim, rng):
    x = randn((3, 4), rng)
    check_grad(lambda t: t.norm(dim=dim), x)
    assert_matches_torch([x], lambda t: t.norm(dim=dim))
    zero = np.zeros((2, 3))
    assert_matches_torch([zero], lambda t: t.norm(dim=dim))  # gradient 0 at 0, as torch


@pytest.mark.parametrize("p", [1, 3, float("inf")])
def test_other_norms(p, rng):
    x = randn((3, 4), rng)
    assert_matches_torch([x], lambda t: t.norm(p=p, dim=1))


def test_var_std_logsumexp(rng):
    x = randn((3, 5), rng)
    assert_matches_torch([x], lambda t: t.var(1))
    assert_matches_torch([x], lambda t: t.std(0, unbiased=False))
    assert_matches_torch([x], lambda t: t.var(correction=0))
    assert_matches_torch([x], lambda t: t.logsumexp(1))
    check_grad(lambda t: t.logsumexp(dim=0), x)


def test_gather_sort_topk(rng):
    x = randn((3, 5), rng)
    index = np.array([[0, 4], [2, 2], [1, 3]])

    def gather(t):
        return t.gather(1, to.tensor(index)) if isinstance(t, to.Tensor) else t.gather(1, __import__("torch").tensor(index))

    check_grad(lambda t: t.gather(1, to.tensor(index)), x)  # a repeated index gets the sum of its gradients
    assert_matches_torch([x], gather)
    assert_matches_torch([x], lambda t: t.sort(dim=1, descending=True).values)
    assert_matches_torch([x], lambda t: t.topk(2, dim=1).values)


# ----------------------------------------------------------------------------- elementwise


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate, rng):
    x = randn((4, 5), rng, -4, 4)
    check_grad(lambda t: F.gelu(t, approximate=approximate), x)
    assert_matches_torch([x], lambda t: F.gelu(t, approximate=approximate),
                         lambda t: _tf().gelu(t, approximate=approximate), atol=1e-12)


@pytest.mark.parametrize("name", ["silu", "elu", "softplus", "relu6", "hardtanh", "sin", "cos"])
def test_other_activations(name, rng):
    x = randn((3, 4), rng, -3, 3)
    fn = {"sin": lambda t: t.sin(), "cos": lambda t: t.cos()}.get(name, lambda t, n=name: getattr(F, n)(t))
    torch_fn = {"sin": lambda t: t.sin(), "cos": lambda t: t.cos()}.get(name, lambda t, n=name: getattr(_tf(), n)(t))
    check_grad(fn, x)
    assert_matches_torch([x], fn, torch_fn)


def test_rounding_has_zero_gradient(rng):
    x = randn((5,), rng) * 3
    for name in ("round", "floor", "ceil", "trunc", "sign"):
        t = to.tensor(x, requires_grad=True)
        getattr(t, name)().sum().backward()
        np.testing.assert_array_equal(np.asarray(t.grad), np.zeros(5))


# ----------------------------------------------------------------------------- shape


def test_expand_repeat_permute(rng):
    x = randn((2, 1, 3), rng)
    check_grad(lambda t: t.expand(2, 4, 3), x)
    check_grad(lambda t: t.repeat(2, 3, 1), x)
    check_grad(lambda t: t.repeat(3, 1, 1, 2), x)
    check_grad(lambda t: t.permute(2, 0, 1), x)
    assert_matches_torch([x], lambda t: t.expand(-1, 4, 3))
    assert_matches_torch([x], lambda t: t.repeat(2, 3, 1))
    assert_matches_torch([x], lambda t: t.transpose(0, 2))


def test_flip_split_chunk(rng):
    x = randn((4, 6), rng)
    assert_matches_torch([x], lambda t: t.flip(1))
    assert_matches_torch([x], lambda t: t.split(4, dim=1)[1])
    assert_matches_torch([x], lambda t: t.chunk(3, dim=1)[2])


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad(mode, rng):
    x = randn((1, 2, 3, 4), rng)
    pads = (1, 2, 2, 1)
    check_grad(lambda t: F.pad(t, pads, mode=mode), x)
    assert_matches_torch([x], lambda t: F.pad(t, pads, mode=mode), lambda t: _tf().pad(t, pads, mode=mode))


def test_setitem_in_a_graph(rng):
    x, v = randn((3, 4), rng), randn((4,), rng)

    def fn(a, b):
        y = a * 2
        y[1] = b * 3
        return y * y

    check_grad(fn, x, v)
    assert_matches_torch([x, v], fn)


# ----------------------------------------------------------------------------- layers


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 5), (4, 4)])
def test_adaptive_avg_pool2d(size, rng):
    x = randn((2, 3, 7, 5), rng)
    check_grad(lambda t: F.adaptive_avg_pool2d(t, size), x)
    assert_matches_torch([x], lambda t: F.adaptive_avg_pool2d(t, size), lambda t: _tf().adaptive_avg_pool2d(t, size))


@pytest.mark.parametrize("kwargs", [dict(size=(5, 7), mode="nearest"), dict(scale_factor=2, mode="nearest"),
                                    dict(size=(5, 7), mode="bilinear", align_corners=False),
                                    dict(size=(6, 9), mode="bilinear", align_corners=True),
                                    dict(scale_factor=1.5, mode="bilinear", align_corners=False),
                                    dict(size=(2, 3), mode="bilinear", align_corners=False)], ids=str)
def test_interpolate(kwargs, rng):
    x = randn((2, 2, 4, 5), rng)
    check_grad(lambda t: F.interpolate(t, **kwargs), x)
    assert_matches_torch([x], lambda t: F.interpolate(t, **kwargs), lambda t: _tf().interpolate(t, **kwargs))


def test_layer_norm(rng):
    x, w, b = randn((2, 3, 4), rng), randn((3, 4), rng), randn((3, 4), rng)
    check_grad(lambda t, g, h: F.layer_norm(t, (3, 4), g, h), x, w, b)
    assert_matches_torch([x, w, b], lambda t, g, h: F.layer_norm(t, (3, 4), g, h),
                         lambda t, g, h: _tf().layer_norm(t, (3, 4), g, h))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_weight_ignore_index(reduction, smoothing, rng):
    z = randn((6, 4), rng)
    y = np.array([0, 3, -100, 1, 2, 3])
    w = np.array([1.0, 2.0, 0.5, 3.0])

    def ours(t):
        return F.cross_entropy(t, y, weight=w, ignore_index=-100, reduction=reduction, label_smoothing=smoothing)

    def theirs(t):
        import torch

        return _tf().cross_entropy(t, torch.tensor(y), weight=torch.tensor(w), ignore_index=-100,
                                   reduction=reduction, label_smoothing=smoothing)

    check_grad(ours, z)
    assert_matches_torch([z], ours, theirs)


def test_cross_entropy_of_spatial_outputs(rng):
    z = randn((2, 3, 4, 5), rng)
    y = rng.integers(0, 3, size=(2, 4, 5))

    def theirs(t):
        import torch

        return _tf().cross_entropy(t, torch.tensor(y))

    assert_matches_torch([z], lambda t: F.cross_entropy(t, y), theirs)


def test_nll_loss_with_weights(rng):
    logp = randn((5, 3), rng)
    y = np.array([0, 2, 1, 1, 0])
    w = np.array([0.5, 1.0, 2.0])

    def theirs(t):
        import torch

        return _tf().nll_loss(t, torch.tensor(y), weight=torch.tensor(w))

    assert_matches_torch([logp], lambda t: F.nll_loss(t, y, weight=w), theirs)
