"""F.kl_div / nn.KLDivLoss / F.kd_loss: against torch (float64, values and gradients), against the
formulas by hand in NumPy, central differences, and the properties the docstrings derive (the
1/T² gradient scale, the logit-matching limit)."""
import warnings

import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt.errors import ShapeError
from tinyopt.nn import functional as F
from conftest import assert_matches_torch, check_grad, leaf


def _softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(z, axis=1):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def _probs(rng, shape):
    return _softmax(rng.standard_normal(shape))


# ----------------------------------------------------------------------------- kl_div


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch_values_and_both_gradients(rng, reduction, log_target):
    torch = pytest.importorskip("torch")
    log_q = _log_softmax(rng.standard_normal((5, 7)))
    p = _probs(rng, (5, 7))
    target = np.log(p) if log_target else p
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 'mean' warns in both libraries (tested below)
        assert_matches_torch(
            [log_q, target],
            lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
            lambda a, b: torch.nn.functional.kl_div(a, b, reduction=reduction, log_target=log_target),
            atol=1e-12, rtol=1e-10)


def test_kl_div_by_hand(rng):
    log_q = _log_softmax(rng.standard_normal((4, 6)))
    p = _probs(rng, (4, 6))
    pointwise = p * (np.log(p) - log_q)
    out = F.kl_div(to.tensor(log_q), to.tensor(p), reduction="none")
    np.testing.assert_allclose(out.data, pointwise, rtol=1e-12)
    # batchmean is the mean over rows of KL(p_n || q_n) = sum_c p log(p/q), the divergence proper
    kl_rows = (p * np.log(p / np.exp(log_q))).sum(axis=1)
    np.testing.assert_allclose(F.kl_div(to.tensor(log_q), to.tensor(p), reduction="batchmean").item(),
                               kl_rows.mean(), rtol=1e-12)
    np.testing.assert_allclose(F.kl_div(to.tensor(log_q), to.tensor(p), reduction="sum").item(), pointwise.sum(),
                               rtol=1e-12)
    with pytest.warns(UserWarning, match="batchmean"):
        mean = F.kl_div(to.tensor(log_q), to.tensor(p))  # the default, 'mean' = batchmean / C
    np.testing.assert_allclose(mean.item(), kl_rows.mean() / 6, rtol=1e-12)
    # log_target gives the same numbers
    np.testing.assert_allclose(F.kl_div(to.tensor(log_q), to.tensor(np.log(p)), reduction="none", log_target=True).data,
                               pointwise, rtol=1e-10)
    # d/d log q = -p (per element, reduction 'sum')
    x = leaf(log_q)
    F.kl_div(x, to.tensor(p), reduction="sum").backward()
    np.testing.assert_allclose(x.grad.numpy(), -p, rtol=1e-12)


def test_kl_div_zero_target_is_zero_and_finite(rng):
    torch = pytest.importorskip("torch")
    log_q = _log_softmax(rng.standard_normal((3, 4)))
    p = np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    x = leaf(log_q)
    out = F.kl_div(x, p, reduction="none")
    ref = torch.nn.functional.kl_div(torch.tensor(log_q), torch.tensor(p), reduction="none")
    np.testing.assert_allclose(out.data, ref.numpy(), atol=1e-15)
    assert np.all(out.data[p == 0] == 0)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), -p)
    # a target that requires grad gets log p + 1 - log q where p > 0, and a finite value where p = 0
    t = leaf(p)
    F.kl_div(to.tensor(log_q), t, reduction="sum").backward()
    pos = p > 0
    np.testing.assert_allclose(t.grad.numpy()[pos], np.log(p[pos]) + 1 - log_q[pos], rtol=1e-12)
    assert np.isfinite(t.grad.numpy()).all()


def test_kl_div_gradcheck(rng):
    p = _probs(rng, (3, 5))
    check_grad(lambda a, b: F.kl_div(a, b, reduction="batchmean"), _log_softmax(rng.standard_normal((3, 5))), p)
    check_grad(lambda a, b: F.kl_div(a, b, reduction="sum", log_target=True),
               rng.standard_normal((3, 5)), np.log(p))


def test_kl_div_broadcasts_like_torch(rng):
    torch = pytest.importorskip("torch")
    log_q = _log_softmax(rng.standard_normal((4, 3)))
    p = _probs(rng, (1, 3))
    assert_matches_torch([log_q, p], lambda a, b: F.kl_div(a, b, reduction="none"),
                         lambda a, b: torch.nn.functional.kl_div(a, b, reduction="none"), atol=1e-12)


def test_kl_div_mean_warns_like_torch(rng):
    torch = pytest.importorskip("torch")
    a, b = _log_softmax(rng.standard_normal((2, 3))), _probs(rng, (2, 3))
    with pytest.warns(UserWarning) as ours:
        F.kl_div(to.tensor(a), to.tensor(b))
    with pytest.warns(UserWarning) as theirs:
        torch.nn.functional.kl_div(torch.tensor(a), torch.tensor(b))
    assert str(ours[0].message) == str(theirs[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.kl_div(to.tensor(a), to.tensor(b), reduction="batchmean")  # no warning


def test_kl_div_bad_arguments_raise():
    a = to.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.kl_div(a, a, reduction="avg")
    with pytest.raises(ValueError, match="deprecated"):
        F.kl_div(a, a, size_average=True)
    with pytest.raises(ValueError, match="reduction"):
        nn.KLDivLoss(reduction="elementwise")


def test_kldivloss_module_matches_torch(rng):
    torch = pytest.importorskip("torch")
    log_q = _log_softmax(rng.standard_normal((6, 4)))
    p = _probs(rng, (6, 4))
    for reduction in ("batchmean", "sum", "none"):
        for log_target in (False, True):
            target = np.log(p) if log_target else p
            ours = nn.KLDivLoss(reduction=reduction, log_target=log_target)
            theirs = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)
            assert_matches_torch([log_q, target], ours, theirs, atol=1e-12)
    assert nn.KLDivLoss().reduction == torch.nn.KLDivLoss().reduction == "mean"
    assert nn.KLDivLoss().log_target is torch.nn.KLDivLoss().log_target is False
    assert nn.KLDivLoss().state_dict() == {}


# ----------------------------------------------------------------------------- kd_loss


def _kd_by_hand(zs, zt, y, T, alpha):
    p = _softmax(zt / T)
    log_q = _log_softmax(zs / T)
    soft = T * T * (p * (np.log(p) - log_q)).sum(axis=1).mean()
    if y is None:
        return soft
    ce = -_log_softmax(zs)[np.arange(len(y)), y].mean()
    return alpha * soft + (1 - alpha) * ce


@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (4.0, 0.9), (20.0, 0.1), (2.5, 0.0), (3.0, 1.0)])
def test_kd_loss_by_hand_and_against_torch(rng, T, alpha):
    torch = pytest.importorskip("torch")
    zs, zt = rng.standard_normal((8, 5)) * 3, rng.standard_normal((8, 5)) * 3
    y = rng.integers(0, 5, 8)
    out = F.kd_loss(to.tensor(zs), to.tensor(zt), y, T=T, alpha=alpha)
    np.testing.assert_allclose(out.item(), _kd_by_hand(zs, zt, y, T, alpha), rtol=1e-12)

    def torch_kd(s, t):  # the form most PyTorch code writes
        tf = torch.nn.functional
        soft = tf.kl_div(tf.log_softmax(s / T, dim=1), tf.softmax(t / T, dim=1), reduction="batchmean") * T * T
        return alpha * soft + (1 - alpha) * tf.cross_entropy(s, torch.tensor(y))

    assert_matches_torch([zs, zt], lambda s, t: F.kd_loss(s, t, y, T=T, alpha=alpha), torch_kd,
                         atol=1e-12, rtol=1e-10)


def test_kd_loss_without_target_is_t2_kl_and_ignores_alpha(rng):
    zs, zt = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    a = F.kd_loss(to.tensor(zs), to.tensor(zt), T=3.0, alpha=0.2).item()
    b = F.kd_loss(to.tensor(zs), to.tensor(zt), T=3.0, alpha=0.9).item()
    assert a == b
    np.testing.assert_allclose(a, _kd_by_hand(zs, zt, None, 3.0, None), rtol=1e-12)
    assert F.kd_loss(to.tensor(zt), to.tensor(zt), T=3.0).item() == pytest.approx(0.0, abs=1e-14)


def test_kd_loss_gradcheck(rng):
    y = rng.integers(0, 4, 3)
    zt = to.tensor(rng.standard_normal((3, 4)))
    check_grad(lambda s: F.kd_loss(s, zt, y, T=2.0, alpha=0.7), rng.standard_normal((3, 4)))
    check_grad(lambda s, t: F.kd_loss(s, t, T=3.0), rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))


def test_kd_soft_gradient_is_the_docstring_formula_and_scales_as_one_over_t_squared(rng):
    """dKL/dz_s = (q - p)/(N T) exactly (batchmean); for large T it is ~ (z_s - z_t)/(N C T^2), so
    T^2 * KL has a T-independent gradient."""
    n, c = 4, 6
    zs, zt = rng.standard_normal((n, c)), rng.standard_normal((n, c))
    zs -= zs.mean(axis=1, keepdims=True)
    zt -= zt.mean(axis=1, keepdims=True)
    grads = {}
    for T in (1.0, 4.0, 50.0, 200.0):
        s = leaf(zs)
        (F.kd_loss(s, to.tensor(zt), T=T) / (T * T)).backward()  # the bare KL
        exact = (_softmax(zs / T) - _softmax(zt / T)) / (n * T)
        np.testing.assert_allclose(s.grad.numpy(), exact, rtol=1e-10, atol=1e-16)
        grads[T] = s.grad.numpy() * T * T  # the gradient of T^2 KL
    approx = (zs - zt) / (n * c)
    np.testing.assert_allclose(grads[200.0], approx, rtol=2e-2, atol=1e-4)
    np.testing.assert_allclose(grads[50.0], grads[200.0], rtol=0.1, atol=1e-3)
    # the high-temperature limit is logit matching: T^2 KL -> mean_n (1/(2C)) sum_i (z_s - z_t)^2
    limit = ((zs - zt) ** 2).sum(axis=1).mean() / (2 * c)
    np.testing.assert_allclose(F.kd_loss(to.tensor(zs), to.tensor(zt), T=1000.0).item(), limit, rtol=1e-2)


def test_kd_loss_confident_teacher_stays_finite():
    zt = np.array([[1000.0, -1000.0, 0.0]])
    zs = np.array([[0.0, 1.0, 2.0]])
    s = leaf(zs)
    loss = F.kd_loss(s, to.tensor(zt), np.array([0]), T=1.0)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(s.grad.numpy()).all()


def test_kd_loss_bad_arguments_raise_before_computing():
    s, t = to.tensor(np.zeros((2, 3))), to.tensor(np.zeros((2, 3)))
    for T in (0, -1.0, float("inf"), float("nan"), True, "4"):
        with pytest.raises(ValueError, match="temperature"):
            F.kd_loss(s, t, T=T)
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            F.kd_loss(s, t, alpha=alpha)
    with pytest.raises(ShapeError, match="same shape"):
        F.kd_loss(s, to.tensor(np.zeros((2, 4))))
    with pytest.raises(ShapeError, match="same shape"):
        F.kd_loss(to.tensor(np.zeros(3)), to.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="labels"):
        F.kd_loss(s, t, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="labels must lie"):
        F.kd_loss(s, t, np.array([0, 3]))
