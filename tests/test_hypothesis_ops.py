"""Hypothesis-drawn shapes for elementwise, broadcasting and reduction ops (minitorch's
tensor_strategies idea): shapes that broadcast, random axes, transposed (non-contiguous) inputs.
Each example is checked against central differences and, when torch is importable, torch."""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import tinyopt as to  # noqa: E402
from conftest import assert_matches_torch, check_grad, leaf  # noqa: E402

try:
    import torch
except ImportError:  # the gradcheck half still runs
    torch = None

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


@st.composite
def broadcastable_pair(draw):
    """Two shapes that broadcast together (hypothesis' mutually_broadcastable_shapes)."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4))
    return shapes.input_shapes


@st.composite
def array_data(draw, shape, low=-2.0, high=2.0, transposed=None):
    """float64 data of `shape` from a drawn seed; optionally stored transposed (non-contiguous)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if transposed is None:
        transposed = draw(st.booleans())
    if transposed and len(shape) >= 2:
        return rng.uniform(low, high, size=shape[::-1]).T
    return rng.uniform(low, high, size=shape)


def compare(fn, arrays, torch_fn=None):
    """gradcheck, then (if torch is installed) forward + gradient equality with torch. Without
    torch the gradcheck still runs (assert_matches_torch alone would skip the example)."""
    check_grad(fn, *arrays)
    if torch is not None:
        assert_matches_torch(arrays, fn, torch_fn, rtol=1e-10, atol=1e-12)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(data=st.data())
def test_binary_broadcasting(name, data):
    shape_a, shape_b = data.draw(broadcastable_pair())
    a = data.draw(array_data(shape_a, 0.5, 2.0))  # positive: pow's log(a), division away from 0
    b = data.draw(array_data(shape_b, 0.5, 2.0))
    expected = BINARY[name](a, b)
    out = BINARY[name](to.tensor(a), to.tensor(b))
    assert out.shape == np.shape(expected)
    compare(BINARY[name], [a, b])


UNARY = {
    "exp": (lambda t: t.exp(), -2, 2),
    "log": (lambda t: t.log(), 0.3, 3),
    "sqrt": (lambda t: t.sqrt(), 0.3, 3),
    "tanh": (lambda t: t.tanh(), -2, 2),
    "sigmoid": (lambda t: t.sigmoid(), -4, 4),
    "neg_square": (lambda t: -(t * t), -2, 2),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(data=st.data())
def test_unary_elementwise(name, data):
    fn, low, high = UNARY[name]
    shape = data.draw(small_shapes)
    compare(fn, [data.draw(array_data(shape, low, high))])


@st.composite
def shape_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True).map(tuple)))
    return shape, axis, draw(st.booleans())


def _torch_reduce(op, axis, keepdims):
    def fn(t):
        dims = tuple(range(t.ndim)) if axis is None else axis
        if op == "max":
            return torch.amax(t, dim=dims, keepdim=keepdims)
        return getattr(torch, op)(t, dim=dims, keepdim=keepdims)

    return fn


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
@SETTINGS
@given(data=st.data())
def test_reductions(op, data):
    shape, axis, keepdims = data.draw(shape_and_axis())
    x = data.draw(array_data(shape))
    if op == "max" and data.draw(st.booleans()):
        x = np.round(x)  # integer-valued data: ties, which torch.amax splits evenly
    expected = getattr(np, op)(x, axis=axis, keepdims=keepdims)
    method = "amax" if op == "max" else op  # max(dim) returns (values, indices), as torch
    out = getattr(to.tensor(x), method)(axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    fn = lambda t: getattr(t, method)(axis=axis, keepdims=keepdims)  # noqa: E731
    if op == "max" and len(np.unique(x)) < x.size:
        # Ties: central differences straddle a kink, so compare with torch only.
        if torch is not None:
            ours, theirs = leaf(x.copy()), torch.tensor(x, requires_grad=True)
            v = np.random.default_rng(0).standard_normal(out.shape)
            (fn(ours) * to.tensor(v)).sum().backward()
            (_torch_reduce(op, axis, keepdims)(theirs) * torch.tensor(v)).sum().backward()
            np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12)
        return
    compare(fn, [x], _torch_reduce(op, axis, keepdims))


@SETTINGS
@given(data=st.data())
def test_transpose_and_reshape(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    x = data.draw(array_data(shape))
    compare(lambda t: t.permute(*perm).reshape(-1) * 2.0, [x], lambda t: t.permute(*perm).reshape(-1) * 2.0)


@SETTINGS
@given(data=st.data())
def test_matmul_shapes(data):
    """NumPy's matmul signature (m?,n),(n,p?)->(m?,p?): 1-D operands, batches, broadcast batches."""
    shapes = data.draw(hnp.mutually_broadcastable_shapes(
        signature="(m?,n),(n,p?)->(m?,p?)", max_dims=4, min_side=1, max_side=3))
    a = data.draw(array_data(shapes.input_shapes[0]))
    b = data.draw(array_data(shapes.input_shapes[1]))
    assert (to.tensor(a) @ to.tensor(b)).shape == shapes.result_shape == np.matmul(a, b).shape
    compare(lambda x, y: x @ y, [a, b])
