"""The fused hot ops (ops.Linear, ops.CrossEntropy) against central differences, against the
composition of primitives they replace, and against torch."""
import numpy as np
import pytest

import tinyopt as to
import tinyopt.nn.functional as F
from tinyopt.ops import nn as ops


def leaf(a):
    return to.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradcheck_and_matches_composition(x_shape, with_bias):
    rng = np.random.default_rng(1)
    x, w = leaf(rng.standard_normal(x_shape)), leaf(rng.standard_normal((3, 4)))
    b = leaf(rng.standard_normal(3)) if with_bias else None
    inputs = [x, w] + ([b] if with_bias else [])
    to.gradcheck(lambda *t: F.linear(*t), inputs)
    fused = F.linear(x, w, b)
    composed = x @ w.T + (b if with_bias else 0.0)
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_fused_gradcheck_and_matches_log_softmax_nll(reduction):
    rng = np.random.default_rng(2)
    z = leaf(rng.standard_normal((6, 5)) * 3)
    labels = np.array([0, 4, 4, 2, 1, 3])
    to.gradcheck(lambda t: F.cross_entropy(t, labels, reduction=reduction), [z])
    fused = F.cross_entropy(z, labels, reduction=reduction)
    composed = F.nll_loss(F.log_softmax(z, axis=1), labels, reduction=reduction)
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-13)


def test_cross_entropy_fused_is_the_op_used_for_integer_labels():
    z = leaf(np.zeros((2, 3)))
    out = F.cross_entropy(z, np.array([0, 2]))
    assert out._node.fn is ops.CrossEntropy
    np.testing.assert_allclose(out.item(), np.log(3))


def test_linear_and_cross_entropy_vs_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((7, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    labels = rng.integers(0, 5, 7)
    tx, tw, tb = (leaf(a) for a in (x, w, b))
    F.cross_entropy(F.linear(tx, tw, tb), labels).backward()
    px, pw, pb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    torch.nn.functional.cross_entropy(torch.nn.functional.linear(px, pw, pb), torch.tensor(labels)).backward()
    for mine, theirs in ((tx, px), (tw, pw), (tb, pb)):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)
