"""Losses: torch.nn.functional's against torch (forward and gradient), the Keras-style ones
against their formulas written out in NumPy, all of them against central differences."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt.keras import losses as KL
from tinyopt.nn import functional as F
from conftest import check_grad, assert_matches_torch, randn

N, C = 6, 4


@pytest.fixture
def labels(rng):
    return rng.integers(0, C, size=N)


@pytest.fixture
def probs(rng):
    p = rng.random((N, C))
    return p / p.sum(axis=1, keepdims=True)


def torch_or_skip():
    return pytest.importorskip("torch")


# ----------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_labels_vs_torch(reduction, smoothing, rng, labels):
    torch = torch_or_skip()
    assert_matches_torch(
        [randn((N, C), rng) * 3],
        lambda z: F.cross_entropy(z, labels, reduction=reduction, label_smoothing=smoothing),
        lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(labels), reduction=reduction, label_smoothing=smoothing),
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_probability_targets_vs_torch(reduction, smoothing, rng, probs):
    torch = torch_or_skip()
    assert_matches_torch(
        [randn((N, C), rng)],
        lambda z: F.cross_entropy(z, probs, reduction=reduction, label_smoothing=smoothing),
        lambda z: torch.nn.functional.cross_entropy(z, torch.tensor(probs), reduction=reduction, label_smoothing=smoothing),
    )


def test_cross_entropy_with_huge_logits_is_finite_and_matches_torch(labels):
    torch = torch_or_skip()
    z = np.array([[1000.0, -1000.0, 0.0, 999.0]] * 3 + [[-1000.0, -1000.0, -1000.0, -1000.0]] * 3)
    out, _ = assert_matches_torch(
        [z],
        lambda t: F.cross_entropy(t, labels, reduction="none"),
        lambda t: torch.nn.functional.cross_entropy(t, torch.tensor(labels), reduction="none"),
    )
    assert np.all(np.isfinite(out.data))
    x = to.tensor(z.astype(np.float32), requires_grad=True)  # float32 too
    F.cross_entropy(x, labels).backward()
    assert np.all(np.isfinite(x.grad))


def test_cross_entropy_equals_its_formula(rng, labels):
    z = randn((N, C), rng)
    expected = -z[np.arange(N), labels] + np.log(np.exp(z).sum(axis=1))
    np.testing.assert_allclose(F.cross_entropy(to.tensor(z), labels, reduction="none").data, expected, rtol=1e-12)
    check_grad(lambda t: F.cross_entropy(t, labels, label_smoothing=0.3), z)
    check_grad(lambda t: F.cross_entropy(t, np.eye(C)[labels] * 0.7 + 0.3 / C), z)


def test_cross_entropy_accepts_a_label_tensor_and_the_module_form(rng, labels):
    z = to.tensor(randn((N, C), rng))
    expected = F.cross_entropy(z, labels).item()
    assert F.cross_entropy(z, to.tensor(labels)).item() == expected
    assert nn.CrossEntropyLoss()(z, labels).item() == expected
    assert nn.CrossEntropyLoss(label_smoothing=0.1)(z, labels).item() == F.cross_entropy(z, labels, label_smoothing=0.1).item()


def test_cross_entropy_bad_inputs(rng, labels):
    z = to.tensor(randn((N, C), rng))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(z, labels, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(z, labels, reduction="avg")
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        F.cross_entropy(z, np.full(N, C))
    with pytest.raises(ValueError, match=r"\(6,\)|\(5,\)"):
        F.cross_entropy(z, labels[:5])
    with pytest.raises(ValueError, match="logits' shape"):
        F.cross_entropy(z, np.ones((N, C + 1)))
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")


# ----------------------------------------------------------------------------- nll, mse, l1


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_vs_torch(reduction, rng, labels):
    torch = torch_or_skip()
    assert_matches_torch(
        [randn((N, C), rng)],
        lambda t: F.nll_loss(F.log_softmax(t, axis=1), labels, reduction=reduction),
        lambda t: torch.nn.functional.nll_loss(torch.log_softmax(t, dim=1), torch.tensor(labels), reduction=reduction),
    )


def test_nll_loss_rejects_float_labels(rng):
    with pytest.raises(TypeError, match="integers"):
        F.nll_loss(to.tensor(randn((N, C), rng)), np.zeros(N))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_vs_torch(name, reduction, rng):
    torch = torch_or_skip()
    target = randn((N, 3), rng)
    assert_matches_torch(
        [randn((N, 3), rng)],
        lambda t: getattr(F, name)(t, target, reduction=reduction),
        lambda t: getattr(torch.nn.functional, name)(t, torch.tensor(target), reduction=reduction),
    )
    # Both inputs differentiable (target requires grad too).
    assert_matches_torch(
        [randn((N, 3), rng), randn((N, 3), rng)],
        lambda a, b: getattr(F, name)(a, b, reduction=reduction),
        lambda a, b: getattr(torch.nn.functional, name)(a, b, reduction=reduction),
    )


def test_regression_loss_modules(rng):
    x, y = to.tensor(randn((N, 3), rng)), randn((N, 3), rng)
    np.testing.assert_allclose(nn.MSELoss()(x, y).item(), np.mean((x.data - y) ** 2))
    np.testing.assert_allclose(nn.L1Loss(reduction="sum")(x, y).item(), np.sum(np.abs(x.data - y)))


# ----------------------------------------------------------------------------- binary cross-entropy


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_vs_torch(reduction, rng):
    torch = torch_or_skip()
    y = rng.random((N, 3))  # soft targets are allowed
    assert_matches_torch(
        [randn((N, 3), rng, 0.05, 0.95)],
        lambda p: F.binary_cross_entropy(p, y, reduction=reduction),
        lambda p: torch.nn.functional.binary_cross_entropy(p, torch.tensor(y), reduction=reduction),
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pos_weight", [None, "vector", "scalar"])
def test_binary_cross_entropy_with_logits_vs_torch(reduction, pos_weight, rng):
    torch = torch_or_skip()
    y = (rng.random((N, 3)) > 0.5).astype(np.float64)
    y[0] = 0.5  # and a soft row
    pw = {None: None, "vector": np.array([0.5, 2.0, 3.0]), "scalar": np.array(4.0)}[pos_weight]
    x = randn((N, 3), rng) * 5
    x[1] = [0.0, 40.0, -40.0]  # the kink at 0 and saturated logits
    assert_matches_torch(
        [x],
        lambda t: F.binary_cross_entropy_with_logits(t, y, reduction=reduction, pos_weight=pw),
        lambda t: torch.nn.functional.binary_cross_entropy_with_logits(
            t, torch.tensor(y), reduction=reduction, pos_weight=None if pw is None else torch.tensor(pw)),
    )


def test_bce_with_logits_gradient_at_zero_is_sigmoid_minus_target():
    """d/dx [BCE-with-logits] = σ(x) − y, so ½ − y at x = 0 (a kink-free point of the loss)."""
    x = to.tensor(np.zeros(3), requires_grad=True)
    y = np.array([0.0, 1.0, 0.25])
    F.binary_cross_entropy_with_logits(x, y, reduction="sum").backward()
    np.testing.assert_allclose(x.grad, 0.5 - y)


def test_bce_with_logits_matches_bce_of_sigmoid_and_is_stable(rng):
    x = randn((N, 3), rng) * 3
    y = (rng.random((N, 3)) > 0.5).astype(np.float64)
    a = F.binary_cross_entropy_with_logits(to.tensor(x), y, reduction="none").data
    b = F.binary_cross_entropy(to.tensor(x).sigmoid(), y, reduction="none").data
    np.testing.assert_allclose(a, b, rtol=1e-9)
    big = F.binary_cross_entropy_with_logits(to.tensor(np.array([1000.0, -1000.0])), np.array([0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(big.data, [1000.0, 1000.0])
    check_grad(lambda t: F.binary_cross_entropy_with_logits(t, y, pos_weight=np.array([1.0, 2.0, 3.0])), x)


def test_bce_loss_modules(rng):
    x = to.tensor(randn((N, 3), rng))
    y = (rng.random((N, 3)) > 0.5).astype(np.float64)
    pw = np.array([1.0, 2.0, 0.5])
    assert nn.BCEWithLogitsLoss(pos_weight=pw)(x, y).item() == F.binary_cross_entropy_with_logits(x, y, pos_weight=pw).item()
    assert nn.BCELoss(reduction="sum")(x.sigmoid(), y).item() == F.binary_cross_entropy(x.sigmoid(), y, reduction="sum").item()


# ----------------------------------------------------------------------------- Keras-style losses
# Keras' formulas (keras.losses / keras.ops.nn), written out independently:
#   probabilities: p ← p / Σ_c p_c; p ← clip(p, ε, 1 − ε); ℓ = −Σ_c y_c log p_c   (ε = 1e-7)
#   logits:        ℓ = −Σ_c y_c log softmax(z)_c
#   label smoothing: y ← y (1 − s) + s / C


def keras_categorical(y_true, y_pred, from_logits, smoothing=0.0, eps=1e-7):
    y = y_true * (1 - smoothing) + smoothing / y_true.shape[-1]
    if from_logits:
        z = y_pred - y_pred.max(axis=-1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    else:
        p = y_pred / y_pred.sum(axis=-1, keepdims=True)
        log_p = np.log(np.clip(p, eps, 1 - eps))
    return -(y * log_p).sum(axis=-1)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_keras_categorical_crossentropy_vs_formula(from_logits, smoothing, rng, labels):
    y_true = np.eye(C)[labels]
    y_pred = randn((N, C), rng) if from_logits else randn((N, C), rng, 0.01, 1.0)  # unnormalised probabilities
    if not from_logits:
        y_pred[0, labels[0]] = 0.0  # clipped to ε, not −inf
    expected = keras_categorical(y_true, y_pred, from_logits, smoothing)
    loss = KL.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
    np.testing.assert_allclose(loss(y_true, to.tensor(y_pred)).item(), expected.mean(), rtol=1e-10)
    none = KL.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing, reduction="none")
    np.testing.assert_allclose(none(y_true, to.tensor(y_pred)).data, expected, rtol=1e-10)
    summed = KL.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing, reduction="sum")
    np.testing.assert_allclose(summed(y_true, to.tensor(y_pred)).item(), expected.sum(), rtol=1e-10)
    if not from_logits:
        y_pred[0, labels[0]] = 0.5  # away from the clip for the gradient check
    check_grad(lambda p: loss(y_true, p), y_pred)


@pytest.mark.parametrize("from_logits", [False, True])
def test_keras_sparse_categorical_crossentropy_vs_formula(from_logits, rng, labels):
    y_pred = randn((N, C), rng) if from_logits else randn((N, C), rng, 0.01, 1.0)
    expected = keras_categorical(np.eye(C)[labels], y_pred, from_logits)
    loss = KL.SparseCategoricalCrossentropy(from_logits=from_logits)
    np.testing.assert_allclose(loss(labels, to.tensor(y_pred)).item(), expected.mean(), rtol=1e-10)
    np.testing.assert_allclose(loss(labels[:, None], to.tensor(y_pred)).item(), expected.mean(), rtol=1e-10)  # (N, 1)
    np.testing.assert_allclose(loss(labels.astype(np.float32), to.tensor(y_pred)).item(), expected.mean(), rtol=1e-10)
    check_grad(lambda p: loss(labels, p), y_pred)


def test_keras_from_logits_both_ways_agree(rng, labels):
    """Softmax probabilities without from_logits give the same loss as the logits with it."""
    z = randn((N, C), rng)
    p = F.softmax(to.tensor(z), axis=-1)
    for loss_cls, y in ((KL.SparseCategoricalCrossentropy, labels), (KL.CategoricalCrossentropy, np.eye(C)[labels])):
        from_logits = loss_cls(from_logits=True)(y, to.tensor(z)).item()
        from_probs = loss_cls(from_logits=False)(y, p).item()
        np.testing.assert_allclose(from_probs, from_logits, rtol=1e-9)


def test_keras_sparse_equals_torch_cross_entropy(rng, labels):
    torch = torch_or_skip()
    z = randn((N, C), rng)
    ours = KL.SparseCategoricalCrossentropy(from_logits=True)(labels, to.tensor(z)).item()
    theirs = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(labels)).item()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_keras_losses_bad_inputs(rng, labels):
    with pytest.raises(ValueError, match="SparseCategoricalCrossentropy"):
        KL.CategoricalCrossentropy()(labels, to.tensor(randn((N, C), rng, 0.1, 1)))
    with pytest.raises(ValueError, match="reduction"):
        KL.CategoricalCrossentropy(reduction="mean_please")
