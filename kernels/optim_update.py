"""Fused optimizer updates: one pass over memory per parameter instead of one per NumPy expression.

An Adam step written with NumPy expressions reads and writes each parameter-sized array several
times (g + λθ, m's update, v's update, sqrt, division, ...), each with its own temporary. The
kernels below do the whole update element by element in one loop, in place, which is what
torch's `fused=True` does in C++.

Every op exists twice with the same signature (see backend.py):

- `sgd_update_reference` / `sgd_update_numba`: SGD with momentum, dampening, L2 weight decay,
  Nesterov, maximize (torch.optim.SGD's `_single_tensor_sgd`);
- `adam_update_reference` / `adam_update_numba`: Adam / AdamW / AMSGrad with coupled or decoupled
  weight decay (torch.optim.Adam's `_single_tensor_adam`).

All arrays are 1-D, C-contiguous and of one float dtype (the caller passes `x.reshape(-1)` views);
they are updated in place. Arrays a call does not use (the momentum buffer when momentum = 0,
the AMSGrad maximum when amsgrad is off) may be any array of the right dtype, e.g. of size 0.

Precision: the hyperparameters are Python floats; both twins compute in the arrays' dtype (the
NumPy twin because NumPy treats Python scalars as "weak", the Numba twin because its wrapper
converts them, 1 − β included, before the call). For float32 this is what torch does too, and
it is 3x faster than float64 arithmetic on float32 data (twice the SIMD lanes for sqrt and
division). The Numba loop keeps intermediate values (m, v, the decayed θ) in registers where
torch and the NumPy twin store and reload them; in the arrays' own dtype that changes nothing.

The formulas, with the symbols of tinyopt/optim/sgd.py and adam.py:

    SGD:   g ← ±∇ + λθ;   b ← g (first step) or μ b + (1 − τ) g;   d ← g + μ b (Nesterov) or b;
           θ ← θ − γ d
    Adam:  θ ← θ (1 − γλ) (decoupled) or g ← ±∇ + λθ (coupled);
           m ← β₁ m + (1 − β₁) g;   v ← β₂ v + (1 − β₂) g²;   v_max ← max(v_max, v) (AMSGrad);
           θ ← θ − s · m / (√v / c₂ + ε)

where for Adam the caller passes the step size s = γ / (1 − β₁ᵗ) and c₂ = √(1 − β₂ᵗ) (torch's
bias correction; s = γ, c₂ = 1 gives the uncorrected variant).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .backend import dispatch

# Compiled lazily on first call and cached on disk. `error_model="numpy"`: a division by zero
# gives inf/nan as in the NumPy twin (and torch) instead of raising ZeroDivisionError; it also
# drops the per-element zero check that kept LLVM from vectorizing the loop (4x slower). No
# `fastmath`: every operation stays IEEE-exact (the twins agree bit for bit on this machine).
#
# Single-threaded on purpose: once vectorized, the update is memory-bound, and a `parallel=True`
# twin measured 6-10x *slower* (2.5M float32 elements: 1.6 ms single-threaded vs 10-22 ms with
# two threads) on the shared 2-core machine, where a descheduled worker stalls the whole loop.
_jit = njit(cache=True, error_model="numpy")


# ---------------------------------------------------------------------------------------- SGD
def sgd_update_reference(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    """θ ← θ − γ d, with d from momentum as in the module docstring; updates `param`, `buf` in place."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    if momentum != 0.0:
        if first_step:
            buf[...] = g
        else:
            buf *= momentum
            buf += (1.0 - dampening) * g
        d = g + momentum * buf if nesterov else buf
    else:
        d = g
    param -= lr * d


@_jit
def _sgd_update_kernel(param, grad, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov, maximize,
                     first_step):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * theta
        if momentum != 0.0:
            if first_step:
                b = g
            else:
                b = momentum * buf[i] + one_minus_dampening * g
            buf[i] = b
            if nesterov:
                d = g + momentum * b
            else:
                d = b
        else:
            d = g
        param[i] = theta - lr * d


def sgd_update_numba(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    s = param.dtype.type  # scalars in the arrays' precision: see "Precision" in the module docstring
    _sgd_update_kernel(param, grad, buf, s(lr), s(momentum), s(1.0 - dampening), s(weight_decay), nesterov,
                       maximize, first_step)


sgd_update = dispatch(sgd_update_reference, sgd_update_numba)


# ---------------------------------------------------------------------------------------- Adam
def adam_update_reference(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size, bias_correction2_sqrt,
                          beta1, beta2, eps, weight_decay, decay_factor, amsgrad, maximize):
    """One Adam/AdamW step in place; `decay_factor` = 1 − γλ for decoupled decay (else 1.0), and
    `weight_decay` is the coupled L2 coefficient (0.0 for AdamW)."""
    g = -grad if maximize else grad
    if decay_factor != 1.0:
        param *= decay_factor
    if weight_decay != 0.0:
        g = g + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1.0 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * g * g
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    else:
        v = exp_avg_sq
    denom = np.sqrt(v) / bias_correction2_sqrt + eps
    param -= step_size * (exp_avg / denom)


@_jit
def _adam_update_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size, bias_correction2_sqrt,
                      beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, decay_factor, amsgrad,
                      maximize):
    for i in range(param.shape[0]):
        theta = param[i]
        if decay_factor != 1.0:
            theta = theta * decay_factor
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * theta
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if amsgrad:
            v = max(max_exp_avg_sq[i], v)
            max_exp_avg_sq[i] = v
        denom = math.sqrt(v) / bias_correction2_sqrt + eps
        param[i] = theta - step_size * (m / denom)


def adam_update_numba(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size, bias_correction2_sqrt,
                      beta1, beta2, eps, weight_decay, decay_factor, amsgrad, maximize):
    s = param.dtype.type  # scalars in the arrays' precision: see "Precision" in the module docstring
    _adam_update_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s(step_size), s(bias_correction2_sqrt),
           s(beta1), s(1.0 - beta1), s(beta2), s(1.0 - beta2), s(eps), s(weight_decay), s(decay_factor),
           amsgrad, maximize)


adam_update = dispatch(adam_update_reference, adam_update_numba)


def fusable(*arrays) -> bool:
    """True when the kernels can update these arrays in place through 1-D views: all C-contiguous,
    one float dtype (otherwise `x.reshape(-1)` would copy and the update would be lost)."""
    dtype = arrays[0].dtype
    return dtype.kind == "f" and all(a.flags.c_contiguous and a.dtype == dtype for a in arrays)
