"""Softmax cross-entropy with integer labels, forward and backward (`tinyopt.ops.nn.CrossEntropy`'s math).

    log p_{n,c} = z_{n,c} − m_n − log Σ_c exp(z_{n,c} − m_n),   m_n = max_c z_{n,c}
    w_n = weight[y_n] (1 without weights), 0 where y_n = ignore_index
    ℓ_n = −w_n log p_{n, y_n}
    ∂ℓ/∂z_{n,c} = s_n w_n (p_{n,c} − [c = y_n])       s_n: the gradient of the reduction

The NumPy twin is a handful of whole-array operations (each a pass and an allocation); at a
classifier's usual sizes (a batch of 128, 10 classes) those calls, not the arithmetic, were the
time: the Numba twin does each row in one pass. Both compute in the logits' dtype; the sum of
exponentials may add in another order (NumPy sums pairwise), so the twins agree to rounding.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .backend import dispatch


def _row_weights(labels, weight, ignore_index, dtype):
    keep = labels != ignore_index
    safe = np.where(keep, labels, 0)
    w = np.ones(len(labels), dtype=dtype) if weight is None else weight.astype(dtype)[safe]
    return safe, w * keep


def forward_reference(logits, labels, weight=None, ignore_index=-100):
    """(log_p [N, C], safe labels [N] (ignored ones → 0), w [N], losses ℓ [N]) by NumPy."""
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    safe, w = _row_weights(labels, weight, ignore_index, logits.dtype)
    losses = -log_p[np.arange(logits.shape[0]), safe] * w
    return log_p, safe, w, losses


@njit(cache=True, error_model="numpy")
def _forward(logits, labels, weight, has_weight, ignore_index, safe, w, log_p, losses):
    """Returns the index of the first row whose label is outside [0, C) (and not ignored), or −1."""
    n, c = logits.shape
    for i in range(n):
        keep = labels[i] != ignore_index
        if keep and not 0 <= labels[i] < c:
            return i
        label = labels[i] if keep else 0
        safe[i] = label
        w[i] = (weight[label] if has_weight else 1) if keep else 0
        row, out = logits[i], log_p[i]
        m = row[0]
        for j in range(1, c):
            m = max(m, row[j])
        total = row[0] - row[0]                       # 0 in the row's dtype
        for j in range(c):
            out[j] = row[j] - m
            total += np.exp(out[j])
        log_sum = np.log(total)
        for j in range(c):
            out[j] -= log_sum
        losses[i] = -out[label] * w[i]
    return -1


def forward_numba(logits, labels, weight=None, ignore_index=-100):
    logits = np.ascontiguousarray(logits)
    if logits.shape[1] == 0:
        return forward_reference(logits, labels, weight, ignore_index)
    n = logits.shape[0]
    safe = np.empty(n, np.int64)
    w = np.empty(n, logits.dtype)
    log_p = np.empty_like(logits)
    losses = np.empty(n, logits.dtype)
    weights = np.zeros(1, logits.dtype) if weight is None else np.ascontiguousarray(weight, logits.dtype)
    labels = np.asarray(labels, np.int64)
    bad = _forward(logits, labels, weights, weight is not None, int(ignore_index), safe, w, log_p, losses)
    if bad >= 0:
        raise IndexError(f"cross_entropy: label {labels[bad]} of row {bad} is outside [0, {logits.shape[1]})")
    return log_p, safe, w, losses


def backward_reference(log_p, safe, scale):
    """∂ℓ/∂z = scale_n (exp(log_p) − onehot(safe)), scale [N] = s_n w_n, by NumPy."""
    d_logits = np.exp(log_p)
    d_logits[np.arange(len(safe)), safe] -= 1
    d_logits *= scale[:, None]
    return d_logits


@njit(cache=True, error_model="numpy")
def _backward(log_p, safe, scale, d_logits):
    n, c = log_p.shape
    for i in range(n):
        src, dst = log_p[i], d_logits[i]
        for j in range(c):
            dst[j] = np.exp(src[j])
        dst[safe[i]] -= 1
        for j in range(c):
            dst[j] *= scale[i]


def backward_numba(log_p, safe, scale):
    d_logits = np.empty_like(log_p)
    _backward(log_p, safe, np.ascontiguousarray(scale, log_p.dtype), d_logits)
    return d_logits


forward = dispatch(forward_reference, forward_numba)
forward.__doc__ = forward_reference.__doc__
backward = dispatch(backward_reference, backward_numba)
backward.__doc__ = backward_reference.__doc__

__all__ = ["backward", "backward_numba", "backward_reference", "forward", "forward_numba", "forward_reference"]
