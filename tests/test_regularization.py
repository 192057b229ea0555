"""L1/L2 penalty terms (tinyopt.nn.utils.regularization): values, gradients (central differences
and torch), and the equivalence of an L2 penalty in the loss with the optimizers' weight_decay."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt.nn import Parameter
from tinyopt.nn.utils import l1_penalty, l2_penalty
from tinyopt.optim import SGD


def leaf(a):
    return to.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def test_values_by_hand():
    p, q = Parameter(np.array([3.0, -4.0])), Parameter(np.array([[1.0]]))
    assert l1_penalty([p, q], 0.5).item() == pytest.approx(0.5 * (3 + 4 + 1))
    assert l2_penalty([p, q], 0.1).item() == pytest.approx(0.1 / 2 * (9 + 16 + 1))
    assert l2_penalty([p, q], 0.1, halved=False).item() == pytest.approx(0.1 * (9 + 16 + 1))
    assert l1_penalty([]).item() == 0.0 and l2_penalty(iter([])).item() == 0.0


def test_gradients_by_hand():
    theta = np.array([2.0, -0.5, 0.0])
    p = leaf(theta)
    l1_penalty([p], 0.3).backward()
    np.testing.assert_allclose(p.grad, 0.3 * np.sign(theta))  # 0 at θ = 0
    p = leaf(theta)
    l2_penalty([p], 0.3).backward()
    np.testing.assert_allclose(p.grad, 0.3 * theta)
    p = leaf(theta)
    l2_penalty([p], 0.3, halved=False).backward()
    np.testing.assert_allclose(p.grad, 2 * 0.3 * theta)


@pytest.mark.parametrize("penalty", [lambda ps: l1_penalty(ps, 0.7), lambda ps: l2_penalty(ps, 0.7),
                                     lambda ps: l2_penalty(ps, 0.7, halved=False)])
def test_gradcheck(penalty, rng):
    a = rng.uniform(0.1, 1.0, (3, 2)) * rng.choice([-1, 1], (3, 2))  # away from |θ| = 0, where L1 has a kink
    b = rng.uniform(0.1, 1.0, 4)
    assert to.gradcheck(lambda x, y: penalty([x, y]), [leaf(a), leaf(b)])


def test_penalty_gradients_match_torch(rng):
    torch = pytest.importorskip("torch")
    data = [rng.standard_normal((3, 4)), np.array([0.0, 1.5, -2.0])]
    ps = [leaf(d) for d in data]
    (l1_penalty(ps, 0.2) + l2_penalty(ps, 0.05)).backward()
    tps = [torch.tensor(d, requires_grad=True) for d in data]
    (0.2 * sum(t.abs().sum() for t in tps) + 0.05 / 2 * sum((t * t).sum() for t in tps)).backward()
    for p, t in zip(ps, tps):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-14)


def test_invalid_coefficient():
    p = Parameter(np.zeros(2))
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="coefficient"):
            l2_penalty([p], bad)
        with pytest.raises(ValueError, match="coefficient"):
            l1_penalty([p], bad)


# ---------------------------------------------------------------------------- penalty vs weight_decay

def _least_squares(rng):
    return rng.standard_normal((30, 5)), rng.standard_normal(30), rng.standard_normal(5)


def _train_with_penalty(opt_cls, w0, A, b, lam, steps=60, **kw):
    w = Parameter(w0.copy())
    opt = opt_cls([w], **kw)
    for _ in range(steps):
        opt.zero_grad()
        r = to.tensor(A) @ w - to.tensor(b)
        ((r * r).mean() + l2_penalty([w], lam)).backward()
        opt.step()
    return w.data


def _train_torch(torch, opt_cls, w0, A, b, steps=60, **kw):
    w = torch.nn.Parameter(torch.tensor(w0.copy()))
    opt = opt_cls([w], **kw)
    At, bt = torch.tensor(A), torch.tensor(b)
    for _ in range(steps):
        opt.zero_grad()
        r = At @ w - bt
        (r * r).mean().backward()
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_l2_penalty_equals_sgd_weight_decay_in_torch(momentum, rng):
    """loss + (λ/2)‖θ‖² trained with SGD follows torch.optim.SGD(weight_decay=λ) on the loss."""
    torch = pytest.importorskip("torch")
    A, b, w0 = _least_squares(rng)
    lam = 0.3
    kw = dict(lr=0.05, momentum=momentum) if momentum else dict(lr=0.05)
    got = _train_with_penalty(SGD, w0, A, b, lam, **kw)
    expected = _train_torch(torch, torch.optim.SGD, w0, A, b, lr=0.05, momentum=momentum, weight_decay=lam)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # and the decay mattered: without it the solution differs
    assert not np.allclose(got, _train_torch(torch, torch.optim.SGD, w0, A, b, lr=0.05, momentum=momentum), rtol=1e-3)


def test_keras_l2_convention_is_weight_decay_2_lambda(rng):
    torch = pytest.importorskip("torch")
    A, b, w0 = _least_squares(rng)
    got = _train_with_penalty(SGD, w0, A, b, 0.1, lr=0.05)
    keras = Parameter(w0.copy())
    opt = SGD([keras], lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        r = to.tensor(A) @ keras - to.tensor(b)
        ((r * r).mean() + l2_penalty([keras], 0.05, halved=False)).backward()
        opt.step()
    np.testing.assert_allclose(keras.data, got, rtol=1e-12)  # λ‖θ‖² with λ = 0.05  ≡  (0.1/2)‖θ‖²
    expected = _train_torch(torch, torch.optim.SGD, w0, A, b, lr=0.05, weight_decay=0.1)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_l2_in_the_loss_is_coupled_decay_adam_not_adamw(rng):
    """With Adam, an L2 penalty is rescaled by the adaptive step (torch Adam's weight_decay);
    AdamW's decoupled decay is a different algorithm, with a different result."""
    torch = pytest.importorskip("torch")
    A, b, w0 = _least_squares(rng)
    lam = 0.5
    got = _train_with_penalty(to.optim.Adam, w0, A, b, lam, lr=0.05)
    coupled = _train_torch(torch, torch.optim.Adam, w0, A, b, lr=0.05, weight_decay=lam)
    decoupled = _train_torch(torch, torch.optim.AdamW, w0, A, b, lr=0.05, weight_decay=lam)
    np.testing.assert_allclose(got, coupled, rtol=1e-9)
    assert not np.allclose(got, decoupled, rtol=1e-3)
