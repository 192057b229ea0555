"""Batch normalisation in training mode, forward and backward, and in evaluation (forward), as a
NumPy reference and a Numba twin.

Notation: the input viewed as x[n, c, k] (N samples, C channels, K = the product of the spatial
dims, 1 for (N, C) inputs), m = N·K values per channel, γ = weight, β = bias:

    μ_c = (1/m) Σ_{n,k} x[n, c, k]
    σ²_c = (1/m) Σ_{n,k} (x[n, c, k] − μ_c)²                      (biased: the one that normalises)
    r_c = 1 / √(σ²_c + ε)
    x̂[n, c, k] = (x[n, c, k] − μ_c) · r_c
    y[n, c, k] = γ_c · x̂[n, c, k] + β_c

Backward, with g = dL/dy (the three terms of the chain rule through μ and σ² folded into one):

    dβ_c = Σ_{n,k} g[n, c, k]
    dγ_c = Σ_{n,k} g[n, c, k] · x̂[n, c, k]
    dx[n, c, k] = (γ_c · r_c / m) · (m · g[n, c, k] − dβ_c − x̂[n, c, k] · dγ_c)

In evaluation the running statistics μ̄, σ̄² stand in for the batch's, and the normalisation is
one per-channel affine map, computed as torch's CPU kernel does:

    s_c = γ_c / √(σ̄²_c + ε),    t_c = β_c − μ̄_c · s_c        (in float64, then the input's dtype)
    y[n, c, k] = x[n, c, k] · s_c + t_c

One pass of statistics and one of normalisation instead of the ~10 primitives (mean, sub, mul, mean,
add, sqrt, div, mul, add, each with its own backward) of the composed formula. The Numba twin
accumulates the per-channel sums in float64 whatever the input's dtype; the reference does the same
(`dtype=np.float64` in its sums), so the twins agree to rounding. γ and β may be None (no affine).
"""
from __future__ import annotations

import numba
import numpy as np

from .backend import dispatch


def _affine(weight, bias, c, dtype):
    w = np.ones(c, dtype=dtype) if weight is None else weight
    b = np.zeros(c, dtype=dtype) if bias is None else bias
    return w, b


# ----------------------------------------------------------------------------- forward


def batch_norm_forward_reference(x3, weight, bias, eps):
    """x3 of shape (N, C, K). Returns (y, mean, var, inv_std): y like x3, the others (C,) float64."""
    n, c, k = x3.shape
    m = n * k
    mean = x3.sum(axis=(0, 2), dtype=np.float64) / m
    centered = x3 - mean[None, :, None]
    var = (centered.astype(np.float64) ** 2).sum(axis=(0, 2)) / m
    inv_std = 1.0 / np.sqrt(var + eps)
    w, b = _affine(weight, bias, c, x3.dtype)
    scale = (w * inv_std).astype(x3.dtype)
    shift = (b - w * mean * inv_std).astype(x3.dtype)
    y = x3 * scale[None, :, None] + shift[None, :, None]
    return y.astype(x3.dtype, copy=False), mean, var, inv_std


@numba.njit(cache=True)
def _batch_norm_forward(x3, w, b, eps):
    n, c, k = x3.shape
    m = n * k
    mean = np.zeros(c)
    var = np.zeros(c)
    for ch in range(c):
        s = 0.0
        for i in range(n):
            for j in range(k):
                s += x3[i, ch, j]
        mu = s / m
        s2 = 0.0
        for i in range(n):
            for j in range(k):
                d = x3[i, ch, j] - mu
                s2 += d * d
        mean[ch] = mu
        var[ch] = s2 / m
    inv_std = 1.0 / np.sqrt(var + eps)
    y = np.empty_like(x3)
    for ch in range(c):
        scale = x3.dtype.type(w[ch] * inv_std[ch])
        shift = x3.dtype.type(b[ch] - w[ch] * mean[ch] * inv_std[ch])
        for i in range(n):
            for j in range(k):
                y[i, ch, j] = x3[i, ch, j] * scale + shift
    return y, mean, var, inv_std


def batch_norm_forward_numba(x3, weight, bias, eps):
    w, b = _affine(weight, bias, x3.shape[1], x3.dtype)
    return _batch_norm_forward(np.ascontiguousarray(x3), w, b, float(eps))


batch_norm_forward = dispatch(batch_norm_forward_reference, batch_norm_forward_numba)


# ----------------------------------------------------------------------------- backward


def batch_norm_backward_reference(g3, x3, weight, mean, inv_std):
    """Returns (dx like x3, dγ (C,), dβ (C,)) from g3 = dL/dy of shape (N, C, K)."""
    n, c, k = x3.shape
    m = n * k
    x_hat = (x3 - mean[None, :, None]) * inv_std[None, :, None]
    d_bias = g3.sum(axis=(0, 2), dtype=np.float64)
    d_weight = (g3 * x_hat).sum(axis=(0, 2), dtype=np.float64)
    w, _ = _affine(weight, None, c, x3.dtype)
    coef = w * inv_std / m
    dx = coef[None, :, None] * (m * g3 - d_bias[None, :, None] - x_hat * d_weight[None, :, None])
    return dx.astype(x3.dtype), d_weight.astype(x3.dtype), d_bias.astype(x3.dtype)


@numba.njit(cache=True)
def _batch_norm_backward(g3, x3, w, mean, inv_std):
    n, c, k = x3.shape
    m = n * k
    dx = np.empty_like(x3)
    d_weight = np.zeros(c)
    d_bias = np.zeros(c)
    for ch in range(c):
        mu, r = mean[ch], inv_std[ch]
        sb = 0.0
        sw = 0.0
        for i in range(n):
            for j in range(k):
                g = g3[i, ch, j]
                sb += g
                sw += g * ((x3[i, ch, j] - mu) * r)
        d_bias[ch] = sb
        d_weight[ch] = sw
        coef = w[ch] * r / m
        for i in range(n):
            for j in range(k):
                x_hat = (x3[i, ch, j] - mu) * r
                dx[i, ch, j] = coef * (m * g3[i, ch, j] - sb - x_hat * sw)
    return dx, d_weight.astype(x3.dtype), d_bias.astype(x3.dtype)


def batch_norm_backward_numba(g3, x3, weight, mean, inv_std):
    w, _ = _affine(weight, None, x3.shape[1], x3.dtype)
    return _batch_norm_backward(np.ascontiguousarray(g3), np.ascontiguousarray(x3), w, mean, inv_std)


batch_norm_backward = dispatch(batch_norm_backward_reference, batch_norm_backward_numba)


# ----------------------------------------------------------------------------- evaluation (running statistics)


def _eval_scale_shift(running_mean, running_var, weight, bias, eps, dtype):
    """(s, t) of the module docstring, (C,) arrays of `dtype`, from float64 arithmetic."""
    mean = np.asarray(running_mean, dtype=np.float64)
    inv_std = 1.0 / np.sqrt(np.asarray(running_var, dtype=np.float64) + eps)
    w = np.ones_like(mean) if weight is None else np.asarray(weight, dtype=np.float64)
    b = np.zeros_like(mean) if bias is None else np.asarray(bias, dtype=np.float64)
    scale = w * inv_std
    return scale.astype(dtype), (b - mean * scale).astype(dtype)


def batch_norm_eval_reference(x3, running_mean, running_var, weight, bias, eps):
    """x3 of shape (N, C, K) → y = x · s_c + t_c (the module docstring; evaluation mode)."""
    scale, shift = _eval_scale_shift(running_mean, running_var, weight, bias, eps, x3.dtype)
    return x3 * scale[None, :, None] + shift[None, :, None]


@numba.njit(cache=True)
def _batch_norm_eval_sample(x2, scale, shift, y2):
    """One sample, (C, K): y = x · s_c + t_c."""
    for ch in range(x2.shape[0]):
        s, t = scale[ch], shift[ch]
        for j in range(x2.shape[1]):
            y2[ch, j] = x2[ch, j] * s + t


@numba.njit(cache=True)
def _batch_norm_eval(x3, scale, shift, y):
    for i in range(x3.shape[0]):
        _batch_norm_eval_sample(x3[i], scale, shift, y[i])


@numba.njit(cache=True, parallel=True)
def _batch_norm_eval_parallel(x3, scale, shift, y):
    """`_batch_norm_eval` with the samples over Numba's threads (each element computed the same way)."""
    for i in numba.prange(x3.shape[0]):
        _batch_norm_eval_sample(x3[i], scale, shift, y[i])


def _eval_with(loop, x3, running_mean, running_var, weight, bias, eps):
    scale, shift = _eval_scale_shift(running_mean, running_var, weight, bias, eps, x3.dtype)
    x3 = np.ascontiguousarray(x3)
    y = np.empty_like(x3)
    loop(x3, scale, shift, y)
    return y


def batch_norm_eval_numba(x3, running_mean, running_var, weight, bias, eps):
    return _eval_with(_batch_norm_eval, x3, running_mean, running_var, weight, bias, eps)


def batch_norm_eval_parallel(x3, running_mean, running_var, weight, bias, eps):
    return _eval_with(_batch_norm_eval_parallel, x3, running_mean, running_var, weight, bias, eps)


batch_norm_eval = dispatch(batch_norm_eval_reference, batch_norm_eval_numba, batch_norm_eval_parallel)
