"""kernels.cross_entropy: the fused softmax cross-entropy twins agree, and with torch."""
import numpy as np
import pytest

from tinyopt.kernels import cross_entropy as K


def _case(rng, n, c, dtype, ignored=0):
    z = (rng.standard_normal((n, c)) * 4).astype(dtype)
    z[0, :] = np.linspace(-1000, 1000, c).astype(dtype)           # large logits stay finite
    y = rng.integers(0, c, n)
    y[1:1 + ignored] = -100
    return z, y


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-13)])   # sums of up to 1000 terms, in two orders
@pytest.mark.parametrize("n,c", [(1, 1), (7, 3), (128, 10), (33, 1000)])
@pytest.mark.parametrize("weighted", [False, True])
def test_twins_agree(dtype, tol, n, c, weighted):
    rng = np.random.default_rng(n * c)
    z, y = _case(rng, n, c, dtype, ignored=min(2, n - 1))
    weight = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
    got, want = K.forward_numba(z, y, weight, -100), K.forward_reference(z, y, weight, -100)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_array_equal(got[1], want[1])                # the labels, ignored ones → 0
    scale = rng.uniform(-1, 1, n).astype(dtype)
    np.testing.assert_allclose(K.backward_numba(want[0], want[1], scale), K.backward_reference(want[0], want[1], scale),
                               rtol=tol, atol=tol)


def test_against_torch_in_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z, y = _case(rng, 40, 9, np.float64, ignored=3)
    weight = rng.uniform(0.1, 2.0, 9)
    log_p, safe, w, losses = K.forward_numba(z, y, weight, -100)
    zt = torch.from_numpy(z).requires_grad_()
    want = torch.nn.functional.cross_entropy(zt, torch.from_numpy(y), weight=torch.from_numpy(weight), reduction="none")
    np.testing.assert_allclose(losses, want.detach().numpy(), rtol=1e-13, atol=1e-13)
    s = rng.uniform(-1, 1, 40)
    want.backward(torch.from_numpy(s))
    np.testing.assert_allclose(K.backward_numba(log_p, safe, s * w), zt.grad.numpy(), rtol=1e-13, atol=1e-13)


def test_a_label_out_of_range_is_refused_by_both_twins():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(IndexError, match="label 4 of row 2 is outside"):
        K.forward_numba(z, np.array([0, 3, 4]))
    with pytest.raises(IndexError):
        K.forward_reference(z, np.array([0, 3, 4]))
    assert K.forward_numba(z, np.array([0, -100, 3]))[1].tolist() == [0, 0, 3]   # ignored is not out of range
