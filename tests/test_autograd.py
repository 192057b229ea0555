"""The autograd machinery: accumulation, deep graphs, error messages, grad mode, custom Functions."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import tinyopt as to
from tinyopt.autograd import Function


def test_gradient_accumulates_when_a_tensor_is_used_twice():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3 + x.exp()  # two paths from x to y
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 3 + np.exp([1.0, 2.0]))


def test_diamond_graph():
    """x → a, b → c: the shared node gets both contributions before its backward runs."""
    x = to.tensor(np.array(2.0), requires_grad=True)
    h = x * x  # 4, dh/dx = 4
    out = h * 3 + h.sqrt()  # dout/dh = 3 + 1/(2·2)
    out.backward()
    np.testing.assert_allclose(x.grad, (3 + 0.25) * 4)


def test_gradient_accumulates_across_backward_calls():
    x = to.tensor(np.array([1.0, -2.0]), requires_grad=True)
    (x * 2).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 + 2 * np.array([1.0, -2.0]))
    x.zero_grad()
    assert x.grad is None


def test_retain_graph_allows_a_second_backward_and_accumulates():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * 2 * np.array([1.0, 2.0]))


def test_second_backward_without_retain_graph_errors_clearly():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_backward_through_a_released_intermediate_errors():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 2).sum().backward()


def test_deep_chain_backpropagates_without_recursion_error():
    depth = 10_000
    assert depth > sys.getrecursionlimit()
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(2, 1.0001**depth), rtol=1e-9)
    del y  # freeing the 20,000-node chain must not overflow the stack either


def test_backward_on_non_scalar_without_grad_gives_helpful_error():
    x = to.tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"non-scalar.*\(2, 3\).*mean\(\)\.backward\(\)"):
        y.backward()
    y.backward(np.ones((2, 3)))  # an explicit gradient works
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))


def test_backward_with_a_wrong_shape_gradient_errors():
    y = to.tensor(np.ones(3), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"\(2,\).*\(3,\)"):
        y.backward(np.ones(2))


def test_backward_on_a_tensor_without_grad_errors():
    with pytest.raises(RuntimeError, match="does not require gradients"):
        (to.tensor(np.ones(2)) * 2).sum().backward()


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool])
def test_requires_grad_on_integer_tensor_is_refused(dtype):
    with pytest.raises(RuntimeError, match="floating-point"):
        to.tensor(np.array([1, 2], dtype=dtype), requires_grad=True)
    t = to.tensor(np.array([1, 2], dtype=dtype))
    with pytest.raises(RuntimeError, match="floating-point"):
        t.requires_grad = True


def test_no_grad_records_nothing():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with to.no_grad():
        assert not to.is_grad_enabled()
        y = (x * 2).exp().sum()
        with to.enable_grad():
            z = x * 2
    assert to.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._node is None
    assert z.requires_grad  # enable_grad inside no_grad records again
    with pytest.raises(RuntimeError, match="does not require gradients"):
        y.backward()


def test_no_grad_as_decorator_and_restores_on_exception():
    @to.no_grad()
    def f(t):
        return t * 2

    x = to.tensor(np.ones(2), requires_grad=True)
    assert not f(x).requires_grad
    with pytest.raises(ZeroDivisionError):
        with to.no_grad():
            1 / 0
    assert to.is_grad_enabled()


def test_leaf_and_non_leaf_grads():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    k = x * 4
    k.retain_grad()
    ((h + k) * 2).sum().backward()
    assert x.is_leaf and not h.is_leaf
    assert h.grad is None  # non-leaf grads are not kept by default (like torch)
    np.testing.assert_array_equal(k.grad, [2.0, 2.0])
    np.testing.assert_array_equal(x.grad, [14.0, 14.0])


def test_grad_is_not_shared_between_inputs():
    """Add passes the same array to both inputs; each leaf must get its own copy, or an
    optimizer's in-place update of one .grad would change the other."""
    a = to.tensor(np.ones(3), requires_grad=True)
    b = to.tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad *= 10
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_detach_cuts_the_graph_and_shares_memory():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = x * d
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    x2 = to.tensor(np.array([1.0]))
    x2.detach().data[0] = 5.0
    assert x2.data[0] == 5.0


def test_inputs_without_requires_grad_get_no_grad():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = to.tensor(np.array([3.0, 4.0]))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_broadcast_gradient_is_summed_to_the_input_shape():
    x = to.tensor(np.ones((3, 1)), requires_grad=True)
    b = to.tensor(np.ones(4), requires_grad=True)
    (x * b).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((3, 1), 4.0))
    np.testing.assert_array_equal(b.grad, np.full(4, 3.0))


class Cube(Function):
    @staticmethod
    def forward(ctx, x, scale=1.0):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * ctx.scale * x**2 * grad


class MulAdd(Function):
    """x * y + z with a constant non-Tensor third argument allowed."""

    @staticmethod
    def forward(ctx, x, y, z):
        ctx.save_for_backward(x, y)
        return x * y + z

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        assert len(ctx.needs_input_grad) == 3
        return (grad * y if ctx.needs_input_grad[0] else None), (grad * x if ctx.needs_input_grad[1] else None), grad


def test_custom_function_single_output_and_options():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = Cube.apply(x, scale=2.0)
    np.testing.assert_array_equal(y.data, [2.0, 16.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 24.0])
    assert to.gradcheck(lambda t: Cube.apply(t, scale=0.5), [to.tensor(np.array([0.3, -1.2]), requires_grad=True)])


def test_custom_function_needs_input_grad_and_constant_arguments():
    x = to.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = to.tensor(np.array([3.0, 4.0]))
    out = MulAdd.apply(x, y, 10.0)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    assert y.grad is None


def test_ops_on_integer_tensors_record_nothing():
    i = to.tensor(np.array([1, 2, 3]))
    out = i * 2 + 1
    assert out.dtype.kind == "i" and not out.requires_grad


def test_tensor_basics():
    t = to.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and t.ndim == 2 and t.numel() == 4 and len(t) == 2
    assert t.sum().item() == 10.0 and float(t[0, 1]) == 2.0
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="one element"):
        t.item()
    assert "requires_grad=True" in repr(to.tensor([1.0], requires_grad=True))
    assert to.zeros(2, 3).shape == (2, 3) and to.ones((4,)).data.sum() == 4
    source = np.array([1.0, 2.0])
    copy = to.tensor(source)
    source[0] = 9.0
    assert copy.data[0] == 1.0, "to.tensor must copy its input"


# ----------------------------------------------------------------------------- .grad without a copy


class _GiveGrad(Function):
    """y = x; backward returns a fresh array (kept weakly in `made`) and, with `keep`, holds it too."""
    made: list = []
    kept: list = []

    @staticmethod
    def forward(ctx, x, keep=False, readonly=False):
        ctx.keep, ctx.readonly = keep, readonly
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        import weakref

        g = np.array(grad, copy=True)
        if ctx.readonly:
            g.flags.writeable = False
        _GiveGrad.made.append(weakref.ref(g))
        if ctx.keep:
            _GiveGrad.kept.append(g)
        return g


@pytest.mark.skipif(not hasattr(sys, "getrefcount"), reason="needs CPython's reference counts")
def test_a_leaf_takes_a_gradient_nobody_else_holds_without_copying():
    """As torch's AccumulateGrad: the array becomes .grad as it is, and later backwards add into it."""
    _GiveGrad.made.clear()
    x = to.tensor(np.arange(4.0), requires_grad=True)
    _GiveGrad.apply(x).sum().backward()
    assert x.grad.data is _GiveGrad.made[-1]()
    _GiveGrad.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(4, 2.0))


@pytest.mark.parametrize("keep, readonly", [(True, False), (False, True)])
def test_a_gradient_someone_else_holds_or_read_only_is_copied(keep, readonly):
    _GiveGrad.made.clear()
    _GiveGrad.kept.clear()
    x = to.tensor(np.arange(4.0), requires_grad=True)
    _GiveGrad.apply(x, keep, readonly).sum().backward()
    assert x.grad.data is not _GiveGrad.made[-1]()
    assert x.grad.data.flags.writeable
    x.grad.data[:] = 7.0                       # in place, as an optimizer does: the other holder is untouched
    if keep:
        np.testing.assert_array_equal(_GiveGrad.kept[-1], np.ones(4))


def test_inputs_of_one_add_get_separate_gradients():
    """Add passes one array to both inputs: the first store copies it, so changing one .grad in
    place leaves the other alone."""
    a = to.tensor(np.ones(3), requires_grad=True)
    b = to.tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data[0] = 5.0
    np.testing.assert_array_equal(b.grad, np.ones(3))
    c = to.tensor(np.ones((2, 3)), requires_grad=True)
    d = to.tensor(np.ones((2, 3)), requires_grad=True)
    (c * 1.0 + d).sum().backward()
    assert not np.shares_memory(c.grad.data, d.grad.data)
