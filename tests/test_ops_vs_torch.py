"""Every op against torch autograd (tinygrad's assert_matches_torch idea): the same function runs on
tinyopt and torch tensors built from the same float64 data; forward values and the gradients of
sum(v · f(x)) for a random cotangent v must agree. Skipped when torch is not installed."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt.nn import functional as F
from conftest import assert_matches_torch, randn

torch = pytest.importorskip("torch")
TF = torch.nn.functional


# ----------------------------------------------------------------------------- arithmetic

ARITH = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "radd": lambda a, b: 2.5 + b,
    "rsub": lambda a, b: 2.5 - b,
    "rmul": lambda a, b: 2.5 * b,
    "rdiv": lambda a, b: 2.5 / b,
    "rpow": lambda a, b: 2.5 ** b,
    "pow_scalar": lambda a, b: a ** 3,
    "pow_fraction": lambda a, b: a ** -0.5,
    "neg": lambda a, b: -a + b,
}


@pytest.mark.parametrize("name", sorted(ARITH))
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,))], ids=str)
def test_arithmetic_vs_torch(name, shapes, rng):
    a = randn(shapes[0], rng, 0.5, 2.0)
    b = randn(shapes[1], rng, 0.5, 2.0)
    assert_matches_torch([a, b], ARITH[name])


def test_arithmetic_non_contiguous_vs_torch(rng):
    a = randn((4, 3), rng, 0.5, 2.0)
    b = randn((3, 8), rng, 0.5, 2.0)
    assert_matches_torch([a, b], lambda x, y: (x.T * y[:, ::2] ** x.T) / (y[:, 1::2] + x.T))


# ----------------------------------------------------------------------------- matmul


@pytest.mark.parametrize(
    "shapes",
    [((4,), (4,)), ((4,), (4, 3)), ((2, 4), (4,)), ((2, 4), (4, 3)), ((5, 2, 4), (5, 4, 3)), ((5, 2, 4), (4, 3)),
     ((2, 4), (5, 4, 3)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (5, 4, 3)), ((5, 2, 4), (4,))],
    ids=str,
)
def test_matmul_vs_torch(shapes, rng):
    assert_matches_torch([randn(shapes[0], rng), randn(shapes[1], rng)], lambda a, b: a @ b, atol=1e-12)


def test_matmul_transposed_vs_torch(rng):
    assert_matches_torch([randn((4, 2), rng), randn((3, 4), rng)], lambda a, b: a.T @ b.T, atol=1e-12)


# ----------------------------------------------------------------------------- elementwise

UNARY = {
    "exp": (lambda t: t.exp(), None, (-2, 2)),
    "log": (lambda t: t.log(), None, (0.1, 3)),
    "sqrt": (lambda t: t.sqrt(), None, (0.1, 3)),
    "abs": (lambda t: t.abs(), None, (-2, 2)),
    "relu": (lambda t: t.relu(), None, (-2, 2)),
    "sigmoid": (lambda t: t.sigmoid(), None, (-6, 6)),
    "tanh": (lambda t: t.tanh(), None, (-3, 3)),
    "clip": (lambda t: t.clip(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5), (-2, 2)),
    "clamp_min": (lambda t: t.clamp(min=0.2), lambda t: t.clamp(min=0.2), (-2, 2)),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.2), lambda t: TF.leaky_relu(t, 0.2), (-2, 2)),
    "softmax": (lambda t: F.softmax(t, axis=1), lambda t: torch.softmax(t, dim=1), (-5, 5)),
    "softmax_axis0": (lambda t: F.softmax(t, axis=0), lambda t: torch.softmax(t, dim=0), (-5, 5)),
    "log_softmax": (lambda t: F.log_softmax(t, axis=-1), lambda t: torch.log_softmax(t, dim=-1), (-5, 5)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_vs_torch(name, rng):
    fn, torch_fn, (low, high) = UNARY[name]
    x = randn((3, 5), rng, low, high)
    assert_matches_torch([x], fn, torch_fn)


def test_kinks_and_boundaries_vs_torch():
    """Gradients at 0 for relu/abs and at the clip boundaries (inclusive) equal torch's."""
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert_matches_torch([x], lambda t: t.relu(), atol=0)
    assert_matches_torch([x], lambda t: t.abs(), atol=0)
    assert_matches_torch([x], lambda t: t.clip(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5), atol=0)


def test_maximum_with_ties_vs_torch():
    a = np.array([1.0, 2.0, 3.0, -1.0])
    b = np.array([1.0, 5.0, 0.0, -1.0])
    assert_matches_torch([a, b], lambda x, y: to.maximum(x, y), lambda x, y: torch.maximum(x, y), atol=0)
    assert_matches_torch([a, b], lambda x, y: to.minimum(x, y), lambda x, y: torch.minimum(x, y), atol=0)
    assert_matches_torch([a, b[:1]], lambda x, y: x.maximum(y), lambda x, y: torch.maximum(x, y), atol=0)  # broadcast tie


def test_where_vs_torch(rng):
    cond = rng.random((3, 4)) > 0.5
    assert_matches_torch(
        [randn((3, 4), rng), randn((4,), rng)],
        lambda a, b: to.where(cond, a, b),
        lambda a, b: torch.where(torch.tensor(cond), a, b),
    )


# ----------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_mean_vs_torch(op, axis, keepdims, rng):
    def torch_fn(t):
        if axis is None:
            out = getattr(t, op)()
            return out.reshape((1, 1, 1)) if keepdims else out
        return getattr(t, op)(dim=axis, keepdim=keepdims)

    assert_matches_torch([randn((2, 3, 4), rng)], lambda t: getattr(t, op)(axis=axis, keepdims=keepdims), torch_fn)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_with_ties_vs_torch_amax(axis, keepdims):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, -1.0], [3.0, 0.0, 1.0, 3.0]])

    def torch_fn(t):
        dims = tuple(range(t.ndim)) if axis is None else axis
        return torch.amax(t, dim=dims, keepdim=keepdims)

    assert_matches_torch([x], lambda t: t.amax(axis=axis, keepdims=keepdims), torch_fn, atol=1e-15)
    assert_matches_torch(
        [x],
        lambda t: t.amin(axis=axis, keepdims=keepdims),
        lambda t: torch.amin(t, dim=tuple(range(t.ndim)) if axis is None else axis, keepdim=keepdims),
        atol=1e-15,
    )


# ----------------------------------------------------------------------------- shape and indexing


def test_reshape_transpose_vs_torch(rng):
    x = randn((2, 3, 4), rng)
    assert_matches_torch([x], lambda t: t.reshape(4, 6))
    assert_matches_torch([x], lambda t: t.permute(2, 0, 1), lambda t: t.permute(2, 0, 1))
    assert_matches_torch([x], lambda t: t.T, lambda t: t.permute(2, 1, 0))
    assert_matches_torch([x], lambda t: t.swapaxes(0, 1), lambda t: t.transpose(0, 1))
    assert_matches_torch([x], lambda t: t.permute(1, 0, 2).reshape(3, 8), lambda t: t.permute(1, 0, 2).reshape(3, 8))


INDEX = {
    "slices": (slice(1, None), slice(None, None, 2)),  # x[1:, ::2]
    "int_then_slice": (1, slice(1, 4)),
    "int_array_with_repeats": np.array([0, 2, 0, 3, 0]),
    "two_arrays_with_repeats": (np.array([0, 0, 3, 3]), np.array([1, 1, 4, 4])),
    "array_and_slice": (np.array([2, 2, 1]), slice(None, 3)),
    "boolean_mask": np.array([True, False, True, True]),
}


@pytest.mark.parametrize("name", sorted(INDEX))
def test_getitem_vs_torch(name, rng):
    index = INDEX[name]
    torch_index = tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index) if isinstance(index, tuple) else (
        torch.tensor(index) if isinstance(index, np.ndarray) else index)
    assert_matches_torch([randn((4, 5), rng)], lambda t: t[index], lambda t: t[torch_index])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack_vs_torch(axis, rng):
    arrays = [randn((2, 3), rng) for _ in range(3)]
    assert_matches_torch(arrays, lambda *ts: to.concatenate(ts, axis=axis), lambda *ts: torch.cat(ts, dim=axis))
    assert_matches_torch(arrays, lambda *ts: to.stack(ts, axis=axis), lambda *ts: torch.stack(ts, dim=axis))


def test_composite_expression_vs_torch(rng):
    """A small network-like expression mixing most ops, to catch interactions."""
    x, w, b = randn((6, 4), rng), randn((4, 3), rng), randn((3,), rng)

    assert_matches_torch(
        [x, w, b],
        lambda xx, ww, bb: F.log_softmax(((xx @ ww + bb).tanh() * 2).exp() / 3, axis=1),
        lambda xx, ww, bb: torch.log_softmax(((xx @ ww + bb).tanh() * 2).exp() / 3, dim=1),
    )


def test_pow_gradient_limits_at_zero_vs_torch():
    """0·∞ points of the power rule: d(x⁰)/dx = 0 even at x = 0; d(0^e)/de = 0 for e >= 0."""
    with np.errstate(divide="ignore"):
        assert_matches_torch([np.array([0.0, 1.5, -2.0])], lambda t: t ** 0, atol=0)
        assert_matches_torch([np.array([0.0, 1.0, 2.0, 0.5])], lambda e: 0.0 ** e, atol=0)
        assert_matches_torch([np.array([0.0, 1.0, 3.0]), np.array([0.0, 2.0, 0.5])], lambda a, e: a ** e, atol=1e-12)
