"""kernels/activation.py: the ReLU loops agree with their NumPy twins bit for bit, on the awkward
values too (NaN, ±inf, ±0), and F.relu's forward and backward equal torch's."""
from __future__ import annotations

import numpy as np
import pytest

from tinyopt import kernels
from tinyopt.kernels import activation as A


def awkward(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0]
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5, 4), (2, 6, 9, 9)])
def test_relu_twins_agree_bit_for_bit(dtype, shape):
    x = awkward(shape, dtype, sum(shape))
    y = A.relu_numba(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, A.relu_reference(x))
    assert np.isnan(y.reshape(-1)[0]) and y.reshape(-1)[1] == np.inf and y.reshape(-1)[2] == 0
    grad = awkward(shape, dtype, 1 + sum(shape))[::-1].copy()
    dx = A.relu_backward_numba(grad, y)
    np.testing.assert_array_equal(dx, A.relu_backward_reference(grad, y))
    assert np.all(dx[y <= 0] == 0)            # an infinite gradient where y <= 0 gives 0, not NaN
    np.testing.assert_array_equal(dx[np.isnan(y)], grad[np.isnan(y)])  # NaN y passes the gradient


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, A.RELU_BLOCK, 3 * A.RELU_BLOCK + 17])
def test_relu_parallel_twins_are_bit_identical_to_the_serial_ones(dtype, size):
    """Blocks of RELU_BLOCK elements over Numba's threads, a partial last block included."""
    x = awkward((size,), dtype, size)
    y = A.relu_parallel(x)
    np.testing.assert_array_equal(y, A.relu_numba(x))
    grad = awkward((size,), dtype, size + 1)[::-1].copy()
    np.testing.assert_array_equal(A.relu_backward_parallel(grad, y), A.relu_backward_numba(grad, y))
    assert A.relu.parallel is A.relu_parallel and A.relu_backward.parallel is A.relu_backward_parallel


@pytest.mark.parametrize("make", [
    lambda: np.array([-2, 0, 3], dtype=np.int64),
    lambda: np.array([-1.5, 0.5, np.nan], dtype=np.float16),
    lambda: awkward((4, 6), np.float32, 3)[:, ::2],  # a strided view
])
def test_other_inputs_take_the_numpy_twin_with_the_same_result(make):
    x = make()
    np.testing.assert_array_equal(A.relu_numba(x), A.relu_reference(x))
    assert A.relu_numba(x).dtype == x.dtype
    y = A.relu_reference(x)
    g = np.ones_like(y)
    np.testing.assert_array_equal(A.relu_backward_numba(g, y), A.relu_backward_reference(g, y))


def test_relu_dispatches_to_its_twins():
    assert A.relu.reference is A.relu_reference and A.relu.fast is A.relu_numba
    assert A.relu_backward.reference is A.relu_backward_reference and A.relu_backward.fast is A.relu_backward_numba
    x = awkward((5, 5), np.float32, 0)
    with kernels.backend("reference"):
        ref = A.relu(x)
    np.testing.assert_array_equal(A.relu(x), ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_forward_and_backward_equal_torch(dtype):
    torch = pytest.importorskip("torch")
    import tinyopt as to
    import tinyopt.nn.functional as F

    x = awkward((4, 3, 8, 8), dtype, 9)
    g = awkward((4, 3, 8, 8), dtype, 10)
    xt = to.tensor(x, requires_grad=True)
    y = F.relu(xt)
    y.backward(to.tensor(g))
    X = torch.from_numpy(x).requires_grad_()
    Y = torch.relu(X)
    Y.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(y.data, Y.detach().numpy())
    np.testing.assert_array_equal(xt.grad.data, X.grad.numpy())
