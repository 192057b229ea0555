"""Stateless functions behind the layers and losses (torch.nn.functional's names).

Softmax-family functions take NumPy's `axis=` (torch's `dim=` is accepted too).
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd import ops
from tinyopt.random import resolve
from tinyopt.tensor import Tensor, _operand, where

# ----------------------------------------------------------------------------- activations


def relu(x: Tensor) -> Tensor:
    return ops.ReLU.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    return ops.Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    return ops.Tanh.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return where(x.data > 0, x, x * negative_slope)


def _axis(axis, dim):
    return dim if dim is not None else axis


def softmax(x: Tensor, axis: int = -1, dim=None) -> Tensor:
    return ops.Softmax.apply(x, axis=_axis(axis, dim))


def log_softmax(x: Tensor, axis: int = -1, dim=None) -> Tensor:
    return ops.LogSoftmax.apply(x, axis=_axis(axis, dim))


# ----------------------------------------------------------------------------- layers


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b (one fused autograd node; see `ops.Linear`)."""
    return ops.Linear.apply(x, weight, bias)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, rng=None) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1−p), so
    the expected activation is unchanged and evaluation needs no rescaling."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = resolve(rng).random(x.shape) >= p
    return x * (keep / (1.0 - p)).astype(x.dtype)


# ----------------------------------------------------------------------------- losses


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _labels(target) -> np.ndarray:
    labels = np.asarray(target.data if isinstance(target, Tensor) else target)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"class-index targets must be integers, got dtype {labels.dtype}")
    return labels


def _check_labels(target, input_shape) -> np.ndarray:
    """Integer class labels of shape (N,) for an (N, C) input, each in [0, C)."""
    labels = _labels(target)
    if len(input_shape) != 2 or labels.shape != (input_shape[0],):
        raise ValueError(
            f"expected input of shape (N, C) and labels of shape (N,), got {tuple(input_shape)} and {labels.shape}"
        )
    n_classes = input_shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got values from {labels.min()} to {labels.max()}")
    return labels


def nll_loss(log_probs: Tensor, target, reduction: str = "mean") -> Tensor:
    """ℓ_n = −log_probs[n, y_n] for log-probabilities of shape (N, C) and labels of shape (N,)."""
    labels = _check_labels(target, log_probs.shape)
    picked = log_probs[np.arange(labels.shape[0]), labels]
    return _reduce(-picked, reduction)


def cross_entropy(logits: Tensor, target, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from raw logits (torch.nn.functional.cross_entropy).

    With integer labels y: ℓ_n = −log softmax(z_n)[y_n] = −z_{n,y} + log Σ_c exp(z_{n,c}).
    With a float target of the logits' shape (class probabilities): ℓ_n = −Σ_c p_{n,c} log softmax(z_n)_c.
    `label_smoothing` ε mixes the target with the uniform distribution: (1−ε)·target + ε/C.
    The log-softmax subtracts the row maximum first, so logits of ±1000 stay finite.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    raw_target = np.asarray(target.data if isinstance(target, Tensor) else target)
    if np.issubdtype(raw_target.dtype, np.floating):
        if raw_target.shape != logits.shape:
            raise ValueError(f"probability targets must have the logits' shape {tuple(logits.shape)}, got {raw_target.shape}")
        probs = raw_target
        if label_smoothing:
            probs = (1 - label_smoothing) * probs + label_smoothing / logits.shape[1]
        return _reduce(-(log_softmax(logits, axis=1) * probs.astype(logits.dtype)).sum(axis=1), reduction)
    if not label_smoothing:
        # The common case as one fused node (ops.CrossEntropy); same formula, no scatter.
        labels = _check_labels(raw_target, logits.shape)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        return ops.CrossEntropy.apply(logits, labels, reduction=reduction)
    log_p = log_softmax(logits, axis=1)
    nll = nll_loss(log_p, raw_target, reduction="none")
    smooth = -log_p.mean(axis=1)
    return _reduce(nll * (1 - label_smoothing) + smooth * label_smoothing, reduction)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002 - torch's name
    """ℓ = (x − y)²."""
    diff = input - _operand(target)
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    return _reduce((input - _operand(target)).abs(), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, reduction: str = "mean", pos_weight=None) -> Tensor:  # noqa: A002
    """ℓ = −[w_p·y·log σ(x) + (1 − y)·log(1 − σ(x))], computed stably as
    (1 − y)·x + (1 + (w_p − 1)·y)·(log(1 + e^(−|x|)) + max(−x, 0))   (torch's formulation)."""
    y = _operand(target)
    # log(1 + e^(−x)) = log(1 + e^(−|x|)) + max(−x, 0). At x = 0 both terms have a kink; abs' (0) = 0
    # and maximum's tie rule (½ to each side) give the true derivative −½ there (relu would give 0).
    softplus_neg = (1 + (-input.abs()).exp()).log() + (-input).maximum(0.0)
    if pos_weight is None:
        loss = (1 - y) * input + softplus_neg
    else:
        weight = 1 + (_operand(pos_weight) - 1) * y
        loss = (1 - y) * input + weight * softplus_neg
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Tensor, target, reduction: str = "mean", eps: float = 1e-12) -> Tensor:  # noqa: A002
    """ℓ = −[y·log p + (1 − y)·log(1 − p)] on probabilities p (clamped away from 0 and 1)."""
    y = _operand(target)
    p = input.clip(eps, 1 - eps)
    return _reduce(-(y * p.log() + (1 - y) * (1 - p).log()), reduction)


# Keras-style loss objects, under the names the seed articles use (defined in nn/loss.py).
from tinyopt.nn.loss import CategoricalCrossentropy, SparseCategoricalCrossentropy  # noqa: E402,F401


# ----------------------------------------------------------------------------- convolution, pooling, normalization
# Thin wrappers: the ops and their docstrings live in nn/conv.py, nn/pooling.py and nn/batchnorm.py.


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: A002 - torch's names
    """torch.nn.functional.conv2d; see `tinyopt.nn.conv.conv2d`."""
    from tinyopt.nn.conv import conv2d as _conv2d

    return _conv2d(input, weight, bias, stride, padding, dilation, groups)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):  # noqa: A002
    """torch.nn.functional.max_pool2d; see `tinyopt.nn.pooling.max_pool2d`."""
    from tinyopt.nn.pooling import max_pool2d as _max_pool2d

    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,  # noqa: A002
               divisor_override=None):
    """torch.nn.functional.avg_pool2d; see `tinyopt.nn.pooling.avg_pool2d`."""
    from tinyopt.nn.pooling import avg_pool2d as _avg_pool2d

    return _avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):  # noqa: A002
    """torch.nn.functional.batch_norm; see `tinyopt.nn.batchnorm.batch_norm`."""
    from tinyopt.nn.batchnorm import batch_norm as _batch_norm

    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
