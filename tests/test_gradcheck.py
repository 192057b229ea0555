"""`tinyopt.gradcheck` itself: it must pass correct gradients and catch wrong ones."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tinyopt as to
from tinyopt.autograd import Function, GradcheckError


class GoodSquare(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class WrongAtOneElement(GoodSquare):
    """Square, with the gradient of element (1, 2) off by 0.5 (a realistic indexing bug)."""

    @staticmethod
    def backward(ctx, grad):
        g = GoodSquare.backward(ctx, grad)
        g[1, 2] += 0.5
        return g


class WrongInSomeDirections(Function):
    """y = A x for a 2×2 matrix, with the classic bug: backward uses A instead of Aᵀ."""

    A = np.array([[1.0, 2.0], [0.0, 1.0]])

    @staticmethod
    def forward(ctx, x):
        return WrongInSomeDirections.A @ x

    @staticmethod
    def backward(ctx, grad):
        return WrongInSomeDirections.A @ grad  # should be A.T @ grad


def leaf64(shape, seed=0):
    return to.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_passes_for_a_correct_custom_function():
    assert to.gradcheck(GoodSquare.apply, [leaf64((3, 4))]) is True


def test_passes_for_composite_expressions_with_several_inputs():
    a, b = leaf64((3, 4), 1), leaf64((4,), 2)
    assert to.gradcheck(lambda x, y: (x * y).tanh().sum(axis=0) @ y, [a, b])


def test_fails_for_a_wrong_function_and_names_the_worst_element():
    with pytest.raises(GradcheckError) as info:
        to.gradcheck(WrongAtOneElement.apply, [leaf64((3, 4))])
    message = str(info.value)
    assert "input 0" in message and "(3, 4)" in message
    assert "element (1, 2)" in message, message
    assert re.search(r"1 of 12 elements", message), message


def test_is_an_assertion_error_and_can_return_false():
    assert issubclass(GradcheckError, AssertionError)
    assert to.gradcheck(WrongAtOneElement.apply, [leaf64((3, 4))], raise_exception=False) is False


def test_random_cotangent_catches_a_transposed_jacobian():
    x = leaf64((2,))
    with pytest.raises(GradcheckError):
        to.gradcheck(WrongInSomeDirections.apply, [x])


def test_names_the_failing_input_among_several():
    good = leaf64((2, 2), 3)
    bad = leaf64((3, 4), 4)
    with pytest.raises(GradcheckError, match="input 1"):
        to.gradcheck(lambda g, b: GoodSquare.apply(g).sum() + WrongAtOneElement.apply(b).sum(), [good, bad])


def test_refuses_float32_inputs():
    x = to.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="float64"):
        to.gradcheck(GoodSquare.apply, [x])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        to.gradcheck(GoodSquare.apply, [to.tensor(np.ones(3))])


def test_accepts_a_single_tensor_and_ignores_constant_inputs():
    x = leaf64((3,))
    c = to.tensor(np.arange(3.0))  # no requires_grad: not checked
    assert to.gradcheck(GoodSquare.apply, x)
    assert to.gradcheck(lambda a, b: a * b, [x, c])


def test_restores_the_inputs_after_perturbing_them():
    x = leaf64((2, 3))
    before = x.data.copy()
    to.gradcheck(lambda t: t.exp(), [x])
    np.testing.assert_array_equal(x.data, before)


def test_perturbs_non_contiguous_inputs_in_place():
    """A transposed leaf: perturbing through a flat copy would leave the input unchanged and
    give a numeric gradient of 0, which a correct op would then fail."""
    x = to.tensor(np.zeros(0))
    x.data = np.random.default_rng(5).standard_normal((4, 3)).T
    x.requires_grad = True
    assert not x.data.flags.c_contiguous
    assert to.gradcheck(lambda t: t * t.exp(), [x])
