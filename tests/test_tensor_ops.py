"""Every primitive op against central differences (`tinyopt.gradcheck`, float64, random cotangent),
including broadcast operands and non-contiguous (transposed, strided) inputs, plus the forward
conventions that gradcheck cannot see (tie rules, boundaries, dtypes). torch comparisons live in
test_ops_vs_torch.py."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt.nn import functional as F
from conftest import check_grad, randn

# ----------------------------------------------------------------------------- binary arithmetic

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "maximum": lambda a, b: to.maximum(a, b),
    "minimum": lambda a, b: to.minimum(a, b),
}

# (shape of a, shape of b): equal, broadcasting in both directions, scalars against arrays.
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((), (2, 3)), ((4,), ())]


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
def test_binary_op_gradcheck_with_broadcasting(name, shapes, rng):
    a = randn(shapes[0], rng, 0.5, 2.0)  # positive: pow's d/db needs log(a); div needs b away from 0
    b = randn(shapes[1], rng, 0.5, 2.0)
    if name in ("maximum", "minimum"):
        b = randn(shapes[1], rng, 0.4, 2.1)  # mostly no ties; ties have their own test
    check_grad(BINARY[name], a, b)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_gradcheck_non_contiguous(name, rng):
    a = randn((5, 3), rng, 0.5, 2.0).T  # transposed view: F-ordered
    b = randn((3, 10), rng, 0.5, 2.0)[:, ::2]  # strided view
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    check_grad(BINARY[name], a, b)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
def test_binary_op_with_python_scalar(name, rng):
    a = randn((2, 3), rng, 0.5, 2.0)
    op = BINARY[name]
    check_grad(lambda x: op(x, 1.7), a)
    check_grad(lambda x: op(1.7, x), a)
    out = op(to.tensor(a.astype(np.float32)), 2)
    assert out.dtype == np.float32, "a Python scalar must not promote float32 to float64"


def test_pow_scalar_and_tensor_exponent(rng):
    x = randn((3, 4), rng, 0.5, 2.0)
    check_grad(lambda t: t ** 3, x)
    check_grad(lambda t: t ** -1.5, x)
    check_grad(lambda t: t ** 0.5, x)
    check_grad(lambda t, e: t ** e, x, randn((3, 4), rng, -2, 2))
    check_grad(lambda e: 2.0 ** e, randn((3,), rng))


def test_neg_gradcheck(rng):
    check_grad(lambda t: -t, randn((2, 3), rng))
    check_grad(lambda t: -t, randn((4, 3), rng).T)


def test_same_tensor_on_both_sides(rng):
    """x * x and x / x: one leaf, two edges; its gradient is the sum of both."""
    x = randn((3,), rng, 0.5, 2.0)
    check_grad(lambda t: t * t, x)
    check_grad(lambda t: t / (t + 1.0), x)
    t = to.tensor(x, requires_grad=True)
    (t * t).sum().backward()
    np.testing.assert_allclose(t.grad, 2 * x)


# ----------------------------------------------------------------------------- matmul


MATMUL_SHAPES = [
    ((4,), (4,)),  # dot product → scalar
    ((4,), (4, 3)),  # vector @ matrix
    ((2, 4), (4,)),  # matrix @ vector
    ((2, 4), (4, 3)),
    ((5, 2, 4), (5, 4, 3)),  # batched
    ((5, 2, 4), (4, 3)),  # batch broadcast on the left
    ((2, 4), (5, 4, 3)),  # ... and on the right
    ((2, 1, 3, 4), (5, 4, 2)),  # leading axes broadcast against each other
    ((4,), (5, 4, 3)),  # 1-D against a batch
    ((5, 2, 4), (4,)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_gradcheck(shapes, rng):
    a, b = randn(shapes[0], rng), randn(shapes[1], rng)
    out = to.tensor(a) @ to.tensor(b)
    np.testing.assert_allclose(out.data, a @ b, rtol=1e-12)
    check_grad(lambda x, y: x @ y, a, b)


def test_matmul_non_contiguous_and_rmatmul(rng):
    a = randn((4, 2), rng).T  # (2, 4), transposed view
    b = randn((4, 6), rng)[:, ::2]  # (4, 3), strided view
    check_grad(lambda x, y: x @ y, a, b)
    check_grad(lambda x, y: x.T @ y.T, randn((4, 2), rng), randn((3, 4), rng))
    m = randn((3, 2), rng)
    check_grad(lambda y: m @ y, randn((2, 5), rng))  # ndarray @ Tensor goes to __rmatmul__


# ----------------------------------------------------------------------------- unary elementwise

UNARY = {
    "exp": (lambda t: t.exp(), (-2, 2)),
    "log": (lambda t: t.log(), (0.2, 3)),
    "sqrt": (lambda t: t.sqrt(), (0.2, 3)),
    "abs": (lambda t: t.abs(), (-2, 2)),
    "relu": (lambda t: t.relu(), (-2, 2)),
    "sigmoid": (lambda t: t.sigmoid(), (-4, 4)),
    "tanh": (lambda t: t.tanh(), (-3, 3)),
    "clip": (lambda t: t.clip(-0.5, 0.7), (-2, 2)),
    "clip_lo_only": (lambda t: t.clip(min=0.1), (-2, 2)),
    "clip_hi_only": (lambda t: t.clip(max=0.1), (-2, 2)),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), (-2, 2)),
    "softmax": (lambda t: F.softmax(t, axis=-1), (-3, 3)),
    "log_softmax": (lambda t: F.log_softmax(t, axis=0), (-3, 3)),
}


def _away_from_kinks(x):
    """Move values within 1e-3 of the kinks at 0, -0.5, 0.1 and 0.7 (where central differences
    straddle a corner)."""
    for kink in (0.0, -0.5, 0.1, 0.7):
        close = np.abs(x - kink) < 1e-3
        x[close] = kink + 0.01
    return x


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op_gradcheck(name, rng):
    fn, (low, high) = UNARY[name]
    x = _away_from_kinks(randn((3, 4), rng, low, high))
    check_grad(fn, x)
    check_grad(fn, _away_from_kinks(randn((4, 3), rng, low, high)).T)  # non-contiguous


def test_unary_forward_values(rng):
    x = randn((3, 4), rng, 0.1, 2.0)
    t = to.tensor(x)
    np.testing.assert_allclose(t.exp().data, np.exp(x))
    np.testing.assert_allclose(t.log().data, np.log(x))
    np.testing.assert_allclose(t.sqrt().data, np.sqrt(x))
    np.testing.assert_allclose((-t).abs().data, x)
    np.testing.assert_allclose(t.sigmoid().data, 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(t.tanh().data, np.tanh(x))


def test_sigmoid_does_not_overflow():
    t = to.tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    with np.errstate(all="raise"):
        s = t.sigmoid()
        s.sum().backward()
    np.testing.assert_array_equal(s.data, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(t.grad, [0.0, 0.25, 0.0])


def test_clip_boundaries_are_inclusive():
    """Like torch.clamp: the gradient passes where lo <= x <= hi, boundaries included."""
    t = to.tensor(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), requires_grad=True)
    out = t.clip(-1.0, 1.0)
    out.sum().backward()
    np.testing.assert_array_equal(out.data, [-1, -1, 0, 1, 1])
    np.testing.assert_array_equal(t.grad, [0, 1, 1, 1, 0])


def test_relu_and_abs_gradient_at_zero_is_zero():
    t = to.tensor(np.zeros(3), requires_grad=True)
    (t.relu() + t.abs()).sum().backward()
    np.testing.assert_array_equal(t.grad, np.zeros(3))


def test_maximum_ties_split_the_gradient_in_half():
    a = to.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = to.tensor(np.array([1.0, 5.0, 0.0]), requires_grad=True)
    to.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])


def test_where_gradcheck_with_broadcasting(rng):
    cond = rng.random((3, 4)) > 0.5
    check_grad(lambda a, b: to.where(cond, a, b), randn((3, 4), rng), randn((4,), rng))
    check_grad(lambda a: to.where(cond[0], a, 0.0), randn((3, 4), rng))  # condition broadcasts too
    t = to.tensor(np.array([1.0, -1.0]), requires_grad=True)
    to.where(t > 0, t, t * 3).sum().backward()
    np.testing.assert_array_equal(t.grad, [1.0, 3.0])


# ----------------------------------------------------------------------------- reductions


AXES = [None, 0, 1, -1, (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradcheck(op, axis, keepdims, rng):
    x = randn((2, 3, 4), rng)
    expected = getattr(np, op)(x, axis=axis, keepdims=keepdims)
    method = {"max": "amax", "min": "amin"}.get(op, op)  # max(dim)/min(dim) return (values, indices), as torch
    out = getattr(to.tensor(x), method)(axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    check_grad(lambda t: getattr(t, method)(axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reduction_non_contiguous(op, rng):
    x = randn((4, 6), rng)[:, ::2].T
    method = {"max": "amax"}.get(op, op)
    check_grad(lambda t: getattr(t, method)(axis=0), x)


def test_max_ties_share_the_gradient_evenly():
    """torch.amax's rule: k tied maxima each get 1/k of the gradient."""
    t = to.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    t.amax(axis=1).sum().backward()
    np.testing.assert_allclose(t.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    u = to.tensor(np.array([[1.0, 3.0], [3.0, 0.0]]), requires_grad=True)
    u.max().backward()
    np.testing.assert_allclose(u.grad, [[0, 0.5], [0.5, 0]])


def test_var_matches_numpy(rng):
    x = randn((3, 5), rng)
    for axis in (None, 0, 1):
        for ddof in (0, 1):
            np.testing.assert_allclose(to.tensor(x).var(axis=axis, ddof=ddof).data, np.var(x, axis=axis, ddof=ddof))
    check_grad(lambda t: t.var(axis=1, ddof=1), x)


# ----------------------------------------------------------------------------- shape ops


def test_reshape_flatten_squeeze_gradcheck(rng):
    x = randn((2, 3, 4), rng)
    check_grad(lambda t: t.reshape(4, 6), x)
    check_grad(lambda t: t.reshape((3, -1)), x)
    check_grad(lambda t: t.flatten(1), x)
    check_grad(lambda t: t.unsqueeze(1).squeeze(1), x)
    check_grad(lambda t: t.reshape(6, 4), randn((4, 6), rng).T)  # reshape of a non-contiguous input
    assert to.tensor(x).flatten(1).shape == (2, 12)


@pytest.mark.parametrize("axes", [(), (1, 0, 2), (2, 0, 1), (0, 2, 1), (-1, 0, 1)], ids=str)
def test_transpose_gradcheck(axes, rng):
    x = randn((2, 3, 4), rng)
    axes = axes or (2, 1, 0)  # NumPy's transpose() reverses; torch's permute needs the order
    out = to.tensor(x).permute(*axes)
    np.testing.assert_array_equal(out.data, np.transpose(x, axes))
    check_grad(lambda t: t.permute(*axes), x)


def test_T_and_swapaxes(rng):
    x = randn((2, 3, 4), rng)
    np.testing.assert_array_equal(to.tensor(x).T.data, x.T)
    np.testing.assert_array_equal(to.tensor(x).swapaxes(0, 2).data, np.swapaxes(x, 0, 2))
    check_grad(lambda t: t.swapaxes(-1, 0), x)


INDICES = {
    "int": 1,
    "negative_int": -1,
    "slices": (slice(1, None), slice(None, None, 2)),  # x[1:, ::2]
    "ellipsis_newaxis": (Ellipsis, None, 0),
    "int_array_with_repeats": np.array([0, 2, 0, 0]),
    "list_with_repeats": [3, 3, 1],
    "two_int_arrays": (np.array([0, 0, 3]), np.array([1, 1, 2])),
    "array_and_slice": (np.array([2, 2]), slice(None, 2)),
    "boolean_mask": np.array([True, False, True, True]),
}


@pytest.mark.parametrize("name", sorted(INDICES))
def test_getitem_gradcheck(name, rng):
    index = INDICES[name]
    x = randn((4, 5), rng)
    np.testing.assert_array_equal(to.tensor(x)[index].data, x[index])
    check_grad(lambda t: t[index], x)
    check_grad(lambda t: t[index], randn((5, 4), rng).T)


def test_getitem_repeated_indices_accumulate():
    t = to.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    t[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(t.grad, [3.0, 0.0, 1.0])


def test_getitem_with_integer_tensor_index():
    t = to.tensor(np.arange(5.0), requires_grad=True)
    idx = to.tensor(np.array([4, 4, 1]))
    t[idx].sum().backward()
    np.testing.assert_array_equal(t.grad, [0, 1, 0, 0, 2])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_gradcheck(axis, rng):
    shapes = {0: [(1, 3), (2, 3), (4, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 1), (2, 3), (2, 2)]}[axis]
    arrays = [randn(s, rng) for s in shapes]
    out = to.concatenate([to.tensor(a) for a in arrays], axis=axis)
    np.testing.assert_array_equal(out.data, np.concatenate(arrays, axis=axis))
    check_grad(lambda *ts: to.concatenate(ts, axis=axis), *arrays)
    assert to.cat is to.concatenate


def test_concatenate_mixes_constants_and_tensors(rng):
    const = randn((2, 3), rng)
    check_grad(lambda t: to.concatenate([const, t, const], axis=0), randn((1, 3), rng))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_gradcheck(axis, rng):
    arrays = [randn((2, 3), rng) for _ in range(3)]
    np.testing.assert_array_equal(to.stack([to.tensor(a) for a in arrays], axis=axis).data, np.stack(arrays, axis=axis))
    check_grad(lambda *ts: to.stack(ts, axis=axis), *arrays)


def test_stack_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="non-empty"):
        to.stack([])


@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_rows_sum_to_one_and_log_softmax_is_its_log(axis, rng):
    x = randn((4, 5), rng) * 10
    s = F.softmax(to.tensor(x), axis=axis).data
    np.testing.assert_allclose(s.sum(axis=axis), 1.0)
    np.testing.assert_allclose(F.log_softmax(to.tensor(x), axis=axis).data, np.log(s), atol=1e-12)
    np.testing.assert_allclose(F.softmax(to.tensor(x), dim=axis).data, s)  # torch's dim= spelling


def test_log_softmax_of_huge_logits_is_finite():
    x = to.tensor(np.array([[1000.0, -1000.0, 0.0]]), requires_grad=True)
    out = F.log_softmax(x, axis=1)
    out.sum().backward()
    assert np.all(np.isfinite(out.data)) and np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(out.data, [[0.0, -2000.0, -1000.0]])


# ----------------------------------------------------------------------------- dtypes


def test_dtype_conventions():
    assert to.tensor([1.0, 2.0]).dtype == np.float32  # Python floats → float32, like torch
    assert to.tensor(np.zeros(2)).dtype == np.float64  # NumPy float64 stays (gradcheck needs it)
    assert to.tensor([1, 2]).dtype.kind == "i"
    x = to.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (x * 2.5 + 1).exp().sum()
    y.backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_cast_gradient_comes_back_in_the_input_dtype():
    x = to.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [3, 3, 3])


def test_comparisons_are_not_differentiable(rng):
    x = to.tensor(randn((3,), rng), requires_grad=True)
    mask = x > 0
    assert mask.dtype == bool and not mask.requires_grad
    np.testing.assert_array_equal((x <= 0).data, ~mask.data)


def test_where_concatenate_stack_with_non_contiguous_inputs(rng):
    a = randn((4, 3), rng).T  # (3, 4), transposed
    b = randn((3, 8), rng)[:, ::2]  # (3, 4), strided
    cond = rng.random((3, 4)) > 0.5
    check_grad(lambda x, y: to.where(cond, x, y), a, b)
    check_grad(lambda x, y: to.concatenate([x, y], axis=1), a, b)
    check_grad(lambda x, y: to.stack([x, y], axis=-1), a, b)
    check_grad(lambda x, y: x[1:, ::2] * y[[0, 0, 2]][:2, 1::2], a, b)


def test_numpy_scalars_keep_their_dtype_like_arrays():
    """to.tensor(x.mean()) of a float64 array must stay float64 (gradcheck refuses float32)."""
    assert to.tensor(np.float64(3.0)).dtype == np.float64
    assert to.tensor(np.arange(3.0).mean()).dtype == np.float64
    assert to.tensor(np.float32(3.0)).dtype == np.float32
    assert to.tensor(3.0).dtype == np.float32  # a Python float is still float32
