"""Optimizer updates, element by element: each formula once in NumPy (readable, traced) and once in Numba.

An Adam step written with NumPy expressions reads and writes each parameter-sized array several
times (g + λθ, m's update, v's update, sqrt, division, ...), each with its own temporary. The Numba
twins do the whole update element by element in one loop, in place, which is what torch's
`fused=True` does in C++ (several times faster than the NumPy twin from 10⁵ elements up; the numbers
are in benchmarks/bench_optim_step.py's output and the README).

Every op exists twice with the same signature (see backend.py): `<op>_reference`, the formula as
NumPy expressions with the symbols of its optimizer's docstring, and `<op>_numba`, a loop over
elements computing the same expressions in the same order. `<op>` routes to one of them
(`TINYOPT_KERNELS=reference` picks the NumPy twin). The optimizer classes in tinyopt/optim hold
the state and compute the per-step scalars (bias corrections, step sizes); `Optimizer._update`
chooses the twin.

The reference twin takes `trace=None` or a dict, which it fills with the formula's intermediate
quantities under the docstring's names (the optimizer's step-through trace). The Numba twin
records nothing and refuses a trace.

| op | optimizer | formula (per element) |
|----|-----------|-----------------------|
| `sgd_update` | SGD, GD | b ← μ b + (1 − τ) g;  θ ← θ − γ (g + μ b or b)  (Sutskever: the buffer holds γ g) |
| `adam_update` | Adam, AdamW | m, v moving averages; θ ← θ − γ m̂ / (√v̂ + ε) |
| `adagrad_update` | Adagrad | sum ← sum + g²;  θ ← θ − γ̃ g / (√sum + ε) |
| `rmsprop_update` | RMSprop | v ← α v + (1 − α) g²;  θ ← θ − γ g / (√ṽ + ε) (centered, momentum) |
| `adamax_update` | Adamax | u ← max(β₂ u, |g| + ε);  θ ← θ − γ/(1 − β₁ᵗ) · m / u |
| `nadam_update` | NAdam | θ ← θ − γ (c_m m + c_g g) / (√v̂ + ε) |
| `radam_update` | RAdam | θ ← θ − γ m̂ r_t l_t (ρ_t > 5) or θ − γ m̂ |
| `adadelta_update` | Adadelta | Δ ← √(u + ε)/√(v + ε) · g;  θ ← θ − γ Δ |
| `rprop_update` | Rprop | step sizes ×η₊ / ×η₋ by sign(g · g_prev);  θ ← θ − sign(g) · step |
| `asgd_update` | ASGD | θ ← θ (1 − λη) − η g;  ax ← ax + μ (θ − ax) |
| `lion_update` | Lion | c ← β₁ m + (1 − β₁) g;  θ ← θ − γ (sign(c) + λθ);  m ← β₂ m + (1 − β₂) g |
| `lamb_update` | LAMB | u ← m̂/(√v̂ + ε) + λθ;  θ ← θ − γ φ(‖θ‖)/‖u‖ · u |
| `adafactor_update` | Adafactor | R, C ← row/column means of G²;  θ ← θ (1 − γλ) − α_t Û_t |
| `round_to_bfloat16` | Muon | x rounded to bfloat16 (ties to even), as float32 |

All arrays of one call have one float dtype; the reference twin takes any shapes and strides, the
Numba twin C-contiguous arrays (`fusable`), which it reads through flat views. Arrays a call does
not use (the momentum buffer when μ = 0, the AMSGrad maximum when amsgrad is off) may be any array
of the right dtype, e.g. of size 0.

Precision: the hyperparameters are Python floats; both twins compute in the arrays' dtype (the
NumPy twin because NumPy treats Python scalars as "weak", the Numba twin because its wrapper
converts them, 1 − β included, before the call). For float32 this is what torch does too, and
it is faster than float64 arithmetic on float32 data (twice the SIMD lanes for sqrt and
division). The exceptions are sums (LAMB's two norms, Adafactor's row and column means and RMS values),
which the Numba twins accumulate in float64.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .backend import dispatch

# Compiled lazily on first call and cached on disk. `error_model="numpy"`: a division by zero
# gives inf/nan as in the NumPy twin (and torch) instead of raising ZeroDivisionError; it also
# drops the per-element zero check that kept LLVM from vectorizing the loop. No
# `fastmath`: every operation stays IEEE-exact, so the twins agree to the last bit or nearly.
#
# Single-threaded on purpose: once vectorized, the update is memory-bound, and a `parallel=True`
# twin was slower on a shared machine, where a descheduled worker
# stalls the whole loop (bench_optim_step.py has the measurement's setup).
_jit = njit(cache=True, error_model="numpy")


def fusable(*arrays) -> bool:
    """True when the Numba twins can update these arrays in place through 1-D views: all C-contiguous,
    one float dtype (otherwise `x.reshape(-1)` would copy and the update would be lost). float16 is
    excluded: Numba has no float16 type, so 16-bit parameters take the NumPy twin."""
    dtype = arrays[0].dtype
    return dtype.kind == "f" and dtype.itemsize >= 4 and all(a.flags.c_contiguous and a.dtype == dtype for a in arrays)


def _flat(*arrays):
    return tuple(a.reshape(-1) for a in arrays)


def _no_trace(trace) -> None:
    if trace is not None:
        raise ValueError("the Numba twin does not record a trace: call the `_reference` twin to trace")


@njit(inline="always")
def _sign(x, one, zero):
    """np.sign / torch.sign in the Numba loops, in x's dtype (`one`, `zero` of that dtype): ±1, 0 for 0, NaN for NaN."""
    if x > 0:
        return one
    if x < 0:
        return -one
    if x == 0:
        return zero
    return x


# ---------------------------------------------------------------------------------------- SGD
def sgd_update_reference(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step,
                         sutskever=False, trace=None):
    """θ ← θ − γ d with d = g (μ = 0), b or g + μ b (Nesterov); b ← g (first step) or μ b + (1 − τ) g.
    `sutskever`: the buffer holds γ g instead of g, and θ ← θ − d (tinyopt's momentum_style)."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    if momentum != 0.0:
        step_grad = lr * g if sutskever else g
        if first_step:
            buf[...] = step_grad
        else:
            buf *= momentum
            buf += (1.0 - dampening) * step_grad
        d = step_grad + momentum * buf if nesterov else buf
        update = -d if sutskever else -lr * d
    else:
        d = g
        update = -lr * d
    param += update
    if trace is not None:
        trace.update(g=g, lr_eff=np.float64(lr), update=update)
        if momentum != 0.0:
            trace.update(buf=buf, d=d)


@_jit
def _sgd_update_kernel(param, grad, buf, lr, momentum, one_minus_dampening, weight_decay, nesterov, maximize,
                       first_step, sutskever):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * theta
        if momentum != 0.0:
            step_grad = lr * g if sutskever else g
            if first_step:
                b = step_grad
            else:
                b = momentum * buf[i] + one_minus_dampening * step_grad
            buf[i] = b
            d = step_grad + momentum * b if nesterov else b
            param[i] = theta - d if sutskever else theta - lr * d
        else:
            param[i] = theta - lr * g


def sgd_update_numba(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step,
                     sutskever=False, trace=None):
    _no_trace(trace)
    s = param.dtype.type  # scalars in the arrays' precision: see "Precision" in the module docstring
    _sgd_update_kernel(*_flat(param, grad, buf), s(lr), s(momentum), s(1.0 - dampening), s(weight_decay),
                       nesterov, maximize, first_step, sutskever)


sgd_update = dispatch(sgd_update_reference, sgd_update_numba)


# ---------------------------------------------------------------------------------------- Adam
def adam_update_reference(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
                          decoupled, amsgrad, maximize, bias_correction1, bias_correction2, trace=None):
    """One Adam/AdamW/AMSGrad step in place. `bias_correction1/2` = 1 − β₁ᵗ, 1 − β₂ᵗ (1.0 without
    bias correction); `eps` is the ε added to √v̂ (Keras' placement: ε / √(1 − β₂ᵗ))."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        if decoupled:
            param *= 1.0 - lr * weight_decay  # θ′ = θ (1 − γλ), not seen by m and v
        else:
            g = g + weight_decay * param
    theta_decayed = param.copy() if trace is not None and decoupled else None
    exp_avg *= beta1
    exp_avg += (1.0 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * g * g
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    else:
        v = exp_avg_sq
    m_hat = exp_avg / bias_correction1
    v_hat = v / bias_correction2
    lr_eff = lr / (np.sqrt(v_hat) + eps)
    update = -lr_eff * m_hat
    param += update
    if trace is not None:
        trace.update(g=g, m=exp_avg, v=exp_avg_sq, m_hat=m_hat, v_hat=v_hat, lr_eff=lr_eff, update=update)
        if amsgrad:
            trace["v_max"] = max_exp_avg_sq
        if theta_decayed is not None:
            trace["theta_decayed"] = theta_decayed


@_jit
def _adam_update_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, one_minus_beta1, beta2,
                        one_minus_beta2, eps, weight_decay, decay_factor, decoupled, amsgrad, maximize,
                        bias_correction1, bias_correction2):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            if decoupled:
                theta = theta * decay_factor
            else:
                g = g + weight_decay * theta
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if amsgrad:
            v = max(max_exp_avg_sq[i], v)
            max_exp_avg_sq[i] = v
        m_hat = m / bias_correction1
        v_hat = v / bias_correction2
        lr_eff = lr / (math.sqrt(v_hat) + eps)
        param[i] = theta - lr_eff * m_hat


def adam_update_numba(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
                      decoupled, amsgrad, maximize, bias_correction1, bias_correction2, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _adam_update_kernel(*_flat(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq), s(lr), s(beta1), s(1.0 - beta1),
                        s(beta2), s(1.0 - beta2), s(eps), s(weight_decay), s(1.0 - lr * weight_decay), decoupled,
                        amsgrad, maximize, s(bias_correction1), s(bias_correction2))


adam_update = dispatch(adam_update_reference, adam_update_numba)


# ---------------------------------------------------------------------------------------- Adagrad
def adagrad_update_reference(param, grad, state_sum, clr, weight_decay, eps, maximize, trace=None):
    """sum ← sum + g²;  θ ← θ − γ̃ g / (√sum + ε), with γ̃ = `clr` = γ / (1 + (t − 1) η)."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    state_sum += g * g
    lr_eff = clr / (np.sqrt(state_sum) + eps)
    update = -lr_eff * g
    param += update
    if trace is not None:
        trace.update(g=g, sum=state_sum, lr_eff=lr_eff, update=update)


@_jit
def _adagrad_update_kernel(param, grad, state_sum, clr, weight_decay, eps, maximize):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * theta
        s = state_sum[i] + g * g
        state_sum[i] = s
        lr_eff = clr / (math.sqrt(s) + eps)
        param[i] = theta - lr_eff * g


def adagrad_update_numba(param, grad, state_sum, clr, weight_decay, eps, maximize, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _adagrad_update_kernel(*_flat(param, grad, state_sum), s(clr), s(weight_decay), s(eps), maximize)


adagrad_update = dispatch(adagrad_update_reference, adagrad_update_numba)


# ---------------------------------------------------------------------------------------- RMSprop
def rmsprop_update_reference(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay,
                             momentum, centered, maximize, trace=None):
    """v ← α v + (1 − α) g²;  ṽ = v − ḡ² (centered, ḡ ← α ḡ + (1 − α) g) or v;
    b ← μ b + g / (√ṽ + ε), θ ← θ − γ b (μ > 0) or θ ← θ − γ g / (√ṽ + ε)."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    square_avg *= alpha
    square_avg += (1.0 - alpha) * g * g
    if centered:
        grad_avg *= alpha
        grad_avg += (1.0 - alpha) * g
        v_tilde = square_avg - grad_avg * grad_avg
    else:
        v_tilde = square_avg
    lr_eff = lr / (np.sqrt(v_tilde) + eps)
    if momentum > 0:
        momentum_buffer *= momentum
        momentum_buffer += g / (np.sqrt(v_tilde) + eps)
        update = -lr * momentum_buffer
    else:
        update = -lr_eff * g
    param += update
    if trace is not None:
        trace.update(g=g, v=square_avg, v_tilde=v_tilde, lr_eff=lr_eff, update=update)
        if centered:
            trace["g_avg"] = grad_avg
        if momentum > 0:
            trace["buf"] = momentum_buffer


@_jit
def _rmsprop_update_kernel(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha, eps,
                           weight_decay, momentum, centered, maximize):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * theta
        v = alpha * square_avg[i] + one_minus_alpha * g * g
        square_avg[i] = v
        if centered:
            g_avg = alpha * grad_avg[i] + one_minus_alpha * g
            grad_avg[i] = g_avg
            v_tilde = v - g_avg * g_avg
        else:
            v_tilde = v
        denom = math.sqrt(v_tilde) + eps
        if momentum > 0:
            b = momentum * momentum_buffer[i] + g / denom
            momentum_buffer[i] = b
            param[i] = theta - lr * b
        else:
            param[i] = theta - (lr / denom) * g


def rmsprop_update_numba(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay,
                         momentum, centered, maximize, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _rmsprop_update_kernel(*_flat(param, grad, square_avg, grad_avg, momentum_buffer), s(lr), s(alpha),
                           s(1.0 - alpha), s(eps), s(weight_decay), s(momentum), centered, maximize)


rmsprop_update = dispatch(rmsprop_update_reference, rmsprop_update_numba)


# ---------------------------------------------------------------------------------------- Adamax
def adamax_update_reference(param, grad, exp_avg, exp_inf, lr, beta1, beta2, eps, weight_decay, maximize,
                            bias_correction1, trace=None):
    """m ← β₁ m + (1 − β₁) g;  u ← max(β₂ u, |g| + ε);  θ ← θ − γ/(1 − β₁ᵗ) · m / u."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1.0 - beta1) * g
    exp_inf *= beta2
    np.maximum(exp_inf, np.abs(g) + eps, out=exp_inf)
    lr_eff = (lr / bias_correction1) / exp_inf
    update = -lr_eff * exp_avg
    param += update
    if trace is not None:
        trace.update(g=g, m=exp_avg, u=exp_inf, lr_eff=lr_eff, update=update)


@_jit
def _adamax_update_kernel(param, grad, exp_avg, exp_inf, clr, beta1, one_minus_beta1, beta2, eps, weight_decay,
                          maximize):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * theta
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        exp_avg[i] = m
        u = beta2 * exp_inf[i]
        a = abs(g) + eps
        if a > u or a != a:  # np.maximum: the larger of the two, NaN if either is NaN
            u = a
        exp_inf[i] = u
        lr_eff = clr / u
        param[i] = theta - lr_eff * m


def adamax_update_numba(param, grad, exp_avg, exp_inf, lr, beta1, beta2, eps, weight_decay, maximize,
                        bias_correction1, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _adamax_update_kernel(*_flat(param, grad, exp_avg, exp_inf), s(lr / bias_correction1), s(beta1),
                          s(1.0 - beta1), s(beta2), s(eps), s(weight_decay), maximize)


adamax_update = dispatch(adamax_update_reference, adamax_update_numba)


# ---------------------------------------------------------------------------------------- NAdam
def nadam_update_reference(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled,
                           maximize, coef_m, coef_g, bias_correction2, trace=None):
    """m̂ ← c_m m + c_g g with c_m = μ_{t+1}/(1 − ∏_{i≤t+1} μ_i), c_g = (1 − μ_t)/(1 − ∏_{i≤t} μ_i);
    v̂ ← v/(1 − β₂ᵗ);  θ ← θ − γ m̂ / (√v̂ + ε)."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        if decoupled:
            param *= 1.0 - lr * weight_decay
        else:
            g = g + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1.0 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * g * g
    m_hat = coef_m * exp_avg + coef_g * g
    v_hat = exp_avg_sq / bias_correction2
    lr_eff = lr / (np.sqrt(v_hat) + eps)
    update = -lr_eff * m_hat
    param += update
    if trace is not None:
        trace.update(g=g, m=exp_avg, v=exp_avg_sq, m_hat=m_hat, v_hat=v_hat, lr_eff=lr_eff, update=update)


@_jit
def _nadam_update_kernel(param, grad, exp_avg, exp_avg_sq, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                         weight_decay, decay_factor, decoupled, maximize, coef_m, coef_g, bias_correction2):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            if decoupled:
                theta = theta * decay_factor
            else:
                g = g + weight_decay * theta
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        m_hat = coef_m * m + coef_g * g
        v_hat = v / bias_correction2
        lr_eff = lr / (math.sqrt(v_hat) + eps)
        param[i] = theta - lr_eff * m_hat


def nadam_update_numba(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, maximize,
                       coef_m, coef_g, bias_correction2, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _nadam_update_kernel(*_flat(param, grad, exp_avg, exp_avg_sq), s(lr), s(beta1), s(1.0 - beta1), s(beta2),
                         s(1.0 - beta2), s(eps), s(weight_decay), s(1.0 - lr * weight_decay), decoupled, maximize,
                         s(coef_m), s(coef_g), s(bias_correction2))


nadam_update = dispatch(nadam_update_reference, nadam_update_numba)


# ---------------------------------------------------------------------------------------- RAdam
def radam_update_reference(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled,
                           maximize, bias_correction1, bias_correction2, rect, trace=None):
    """m̂ ← m/(1 − β₁ᵗ); with the rectification `rect` = r_t (ρ_t > 5):
    l ← √(1 − β₂ᵗ)/(√v + ε), θ ← θ − γ r_t l m̂; without (`rect` = None): θ ← θ − γ m̂."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        if decoupled:
            param *= 1.0 - lr * weight_decay
        else:
            g = g + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1.0 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * g * g
    m_hat = exp_avg / bias_correction1
    if rect is not None:
        adaptive = math.sqrt(bias_correction2) / (np.sqrt(exp_avg_sq) + eps)
        lr_eff = (lr * rect) * adaptive
    else:
        adaptive = None
        lr_eff = lr  # the SGD-with-momentum fallback while ρ_t ≤ 5
    update = -lr_eff * m_hat
    param += update
    if trace is not None:
        trace.update(g=g, m=exp_avg, v=exp_avg_sq, m_hat=m_hat, lr_eff=np.asarray(lr_eff, dtype=np.float64)
                     if adaptive is None else lr_eff, update=update)
        if adaptive is not None:
            trace["l"] = adaptive


@_jit
def _radam_update_kernel(param, grad, exp_avg, exp_avg_sq, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                         weight_decay, decay_factor, decoupled, maximize, bias_correction1, bias_correction2_sqrt,
                         lr_rect, rectified):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            if decoupled:
                theta = theta * decay_factor
            else:
                g = g + weight_decay * theta
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        m_hat = m / bias_correction1
        if rectified:
            lr_eff = lr_rect * (bias_correction2_sqrt / (math.sqrt(v) + eps))
        else:
            lr_eff = lr
        param[i] = theta - lr_eff * m_hat


def radam_update_numba(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, maximize,
                       bias_correction1, bias_correction2, rect, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    rectified = rect is not None
    _radam_update_kernel(*_flat(param, grad, exp_avg, exp_avg_sq), s(lr), s(beta1), s(1.0 - beta1), s(beta2),
                         s(1.0 - beta2), s(eps), s(weight_decay), s(1.0 - lr * weight_decay), decoupled, maximize,
                         s(bias_correction1), s(math.sqrt(bias_correction2)), s(lr * rect if rectified else 0.0),
                         rectified)


radam_update = dispatch(radam_update_reference, radam_update_numba)


# ---------------------------------------------------------------------------------------- Adadelta
def adadelta_update_reference(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize, trace=None):
    """v ← ρ v + (1 − ρ) g²;  Δ ← √(u + ε)/√(v + ε) · g;  u ← ρ u + (1 − ρ) Δ²;  θ ← θ − γ Δ."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    square_avg *= rho
    square_avg += (1.0 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta *= rho
    acc_delta += (1.0 - rho) * delta * delta
    update = -lr * delta
    param += update
    if trace is not None:
        trace.update(g=g, v=square_avg, delta=delta, u=acc_delta, update=update)


@_jit
def _adadelta_update_kernel(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps, weight_decay, maximize):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * theta
        v = rho * square_avg[i] + one_minus_rho * g * g
        square_avg[i] = v
        u = acc_delta[i]
        delta = math.sqrt(u + eps) / math.sqrt(v + eps) * g
        acc_delta[i] = rho * u + one_minus_rho * delta * delta
        param[i] = theta - lr * delta


def adadelta_update_numba(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _adadelta_update_kernel(*_flat(param, grad, square_avg, acc_delta), s(lr), s(rho), s(1.0 - rho), s(eps),
                            s(weight_decay), maximize)


adadelta_update = dispatch(adadelta_update_reference, adadelta_update_numba)


# ---------------------------------------------------------------------------------------- Rprop
def rprop_update_reference(param, grad, prev, step_size, etaminus, etaplus, step_size_min, step_size_max, maximize,
                           trace=None):
    """s ← sign(g · g_prev); step ← clamp(step · (η₊ if s > 0, η₋ if s < 0, 1 if s = 0), Γ_min, Γ_max);
    g ← 0 where s < 0 (no move, and no sign test at the next step); θ ← θ − sign(g) · step; g_prev ← g."""
    g = -grad if maximize else grad
    s = np.sign(g * prev)
    eta = np.where(s > 0, etaplus, np.where(s < 0, etaminus, 1.0)).astype(param.dtype, copy=False)
    step_size *= eta
    np.clip(step_size, step_size_min, step_size_max, out=step_size)
    g = np.where(s < 0, 0.0, g).astype(param.dtype, copy=False)
    update = -np.sign(g) * step_size
    param += update
    prev[...] = g
    if trace is not None:
        trace.update(g=g, eta=eta, step_size=step_size, update=update)


@_jit
def _rprop_update_kernel(param, grad, prev, step_size, etaminus, etaplus, step_size_min, step_size_max, one, zero,
                         maximize):
    for i in range(param.shape[0]):
        g = -grad[i] if maximize else grad[i]
        s = _sign(g * prev[i], one, zero)
        eta = etaplus if s > 0 else (etaminus if s < 0 else one)
        step = min(max(step_size[i] * eta, step_size_min), step_size_max)
        step_size[i] = step
        if s < 0:
            g = zero
        param[i] = param[i] + (-_sign(g, one, zero)) * step
        prev[i] = g


def rprop_update_numba(param, grad, prev, step_size, etaminus, etaplus, step_size_min, step_size_max, maximize,
                       trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _rprop_update_kernel(*_flat(param, grad, prev, step_size), s(etaminus), s(etaplus), s(step_size_min),
                         s(step_size_max), s(1.0), s(0.0), maximize)


rprop_update = dispatch(rprop_update_reference, rprop_update_numba)


# ---------------------------------------------------------------------------------------- ASGD
def asgd_update_reference(param, grad, ax, eta, mu, lambd, weight_decay, maximize, trace=None):
    """θ ← θ (1 − λ_d η_t) − η_t g;  ax ← θ (μ_t = 1) or ax + μ_t (θ − ax)."""
    g = -grad if maximize else grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    param *= 1.0 - lambd * eta
    param -= eta * g
    if mu != 1.0:
        ax += mu * (param - ax)
    else:
        ax[...] = param
    if trace is not None:
        trace.update(g=g, ax=ax)


@_jit
def _asgd_update_kernel(param, grad, ax, eta, mu, decay_factor, weight_decay, maximize):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        if weight_decay != 0.0:
            g = g + weight_decay * theta
        theta = theta * decay_factor
        theta = theta - eta * g
        param[i] = theta
        if mu != 1.0:
            ax[i] = ax[i] + mu * (theta - ax[i])
        else:
            ax[i] = theta


def asgd_update_numba(param, grad, ax, eta, mu, lambd, weight_decay, maximize, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _asgd_update_kernel(*_flat(param, grad, ax), s(eta), s(mu), s(1.0 - lambd * eta), s(weight_decay), maximize)


asgd_update = dispatch(asgd_update_reference, asgd_update_numba)


# ---------------------------------------------------------------------------------------- Lion
def lion_update_reference(param, grad, exp_avg, lr, beta1, beta2, weight_decay, maximize, trace=None):
    """c ← β₁ m + (1 − β₁) g;  θ ← θ − γ (sign(c) + λθ);  m ← β₂ m + (1 − β₂) g  (Chen et al. 2023, Alg. 2)."""
    g = -grad if maximize else grad
    c = beta1 * exp_avg + (1.0 - beta1) * g
    update = -lr * (np.sign(c) + weight_decay * param)
    param += update
    exp_avg *= beta2
    exp_avg += (1.0 - beta2) * g
    if trace is not None:
        trace.update(g=g, c=c, update=update, m=exp_avg)


@_jit
def _lion_update_kernel(param, grad, exp_avg, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay,
                        maximize, one, zero):
    for i in range(param.shape[0]):
        theta = param[i]
        g = -grad[i] if maximize else grad[i]
        m = exp_avg[i]
        c = beta1 * m + one_minus_beta1 * g
        param[i] = theta + (-lr) * (_sign(c, one, zero) + weight_decay * theta)
        exp_avg[i] = beta2 * m + one_minus_beta2 * g


def lion_update_numba(param, grad, exp_avg, lr, beta1, beta2, weight_decay, maximize, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    _lion_update_kernel(*_flat(param, grad, exp_avg), s(lr), s(beta1), s(1.0 - beta1), s(beta2), s(1.0 - beta2),
                        s(weight_decay), maximize, s(1.0), s(0.0))


lion_update = dispatch(lion_update_reference, lion_update_numba)


# ---------------------------------------------------------------------------------------- LAMB
def _norm64(x) -> float:
    """‖x‖₂ accumulated in float64 (both twins), whatever x's dtype."""
    return math.sqrt(float(np.sum(np.square(x, dtype=np.float64))))


def lamb_trust_ratio(weight_norm, update_norm, phi_low, phi_high) -> float:
    """φ(‖θ‖)/‖u‖ with φ(z) = min(max(z, γ_l), γ_u) (identity for ±inf bounds); 1 when either norm is 0
    (a fresh zero-initialised layer, or a zero update), as in the reference implementations."""
    phi = min(max(weight_norm, phi_low), phi_high)
    if phi == 0.0 or update_norm == 0.0:
        return 1.0
    return phi / update_norm


def lamb_update_reference(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, maximize,
                          bias_correction1, bias_correction2, phi_low, phi_high, trace=None):
    """r ← m̂/(√v̂ + ε);  u ← r + λθ;  θ ← θ − γ φ(‖θ‖)/‖u‖ · u  (You et al. 2019, Alg. 2; one layer)."""
    g = -grad if maximize else grad
    exp_avg *= beta1
    exp_avg += (1.0 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * g * g
    m_hat = exp_avg / bias_correction1
    v_hat = exp_avg_sq / bias_correction2
    r = m_hat / (np.sqrt(v_hat) + eps)
    u = r + weight_decay * param
    trust_ratio = lamb_trust_ratio(_norm64(param), _norm64(u), phi_low, phi_high)
    update = -(lr * trust_ratio) * u
    param += update
    if trace is not None:
        trace.update(g=g, m=exp_avg, v=exp_avg_sq, m_hat=m_hat, v_hat=v_hat, r=r, u=u,
                     trust_ratio=np.float64(trust_ratio), update=update)


@_jit
def _lamb_moments_kernel(grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, maximize):
    """Pass 1: the moments m, v."""
    for i in range(grad.shape[0]):
        g = -grad[i] if maximize else grad[i]
        exp_avg[i] = beta1 * exp_avg[i] + one_minus_beta1 * g
        exp_avg_sq[i] = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g


# Pass 2 is a sum: without permission to reorder it LLVM keeps it sequential and does not vectorize
# the loop. `reassoc` allows exactly that reordering (as NumPy's pairwise sum reorders
# too) and nothing else: no assumptions about NaN or inf, no fused multiply-adds.
@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _lamb_norms_kernel(param, exp_avg, exp_avg_sq, eps, weight_decay, bias_correction1, bias_correction2):
    """Pass 2: ‖θ‖² and ‖u‖², accumulated in float64."""
    weight_sq = 0.0
    update_sq = 0.0
    for i in range(param.shape[0]):
        theta = param[i]
        u = (exp_avg[i] / bias_correction1) / (math.sqrt(exp_avg_sq[i] / bias_correction2) + eps) \
            + weight_decay * theta
        weight_sq += np.float64(theta) * np.float64(theta)
        update_sq += np.float64(u) * np.float64(u)
    return weight_sq, update_sq


@_jit
def _lamb_apply_kernel(param, exp_avg, exp_avg_sq, step, eps, weight_decay, bias_correction1, bias_correction2):
    """Pass 3: θ ← θ − (γ · trust ratio) · u, u recomputed from the moments (no scratch array)."""
    for i in range(param.shape[0]):
        theta = param[i]
        u = (exp_avg[i] / bias_correction1) / (math.sqrt(exp_avg_sq[i] / bias_correction2) + eps) \
            + weight_decay * theta
        param[i] = theta - step * u


def lamb_update_numba(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, maximize,
                      bias_correction1, bias_correction2, phi_low, phi_high, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    theta, grad, m, v = _flat(param, grad, exp_avg, exp_avg_sq)
    _lamb_moments_kernel(grad, m, v, s(beta1), s(1.0 - beta1), s(beta2), s(1.0 - beta2), maximize)
    constants = (s(eps), s(weight_decay), s(bias_correction1), s(bias_correction2))
    weight_sq, update_sq = _lamb_norms_kernel(theta, m, v, *constants)
    trust_ratio = lamb_trust_ratio(math.sqrt(weight_sq), math.sqrt(update_sq), phi_low, phi_high)
    _lamb_apply_kernel(theta, m, v, s(lr * trust_ratio), *constants)


lamb_update = dispatch(lamb_update_reference, lamb_update_numba)


# ---------------------------------------------------------------------------------------- Adafactor
def _rms(x) -> float:
    """RMS(x) = ‖x‖₂ / √n."""
    return float(np.linalg.norm(x.ravel())) / math.sqrt(x.size)


def adafactor_update_reference(param, grad, row_var, col_var, variance, lr, beta2_decay, eps1, eps2, d, weight_decay,
                               maximize, step, trace=None):
    """One Adafactor step in place (`step` = t after the increment). A ≥ 2-D parameter uses the row
    and column factors R (…, n, 1) and C (…, 1, m) of its last two dimensions, a 0-D or 1-D one the
    full `variance`; the unused arrays may be of size 0."""
    G = -grad if maximize else grad
    one_minus_beta2 = step ** beta2_decay                  # 1 − β̂₂_t = t^τ
    rho = min(lr, 1 / math.sqrt(step))                     # ρ_t
    alpha = max(eps2, _rms(param)) * rho                   # α_t, from θ_{t−1} before the decay
    if weight_decay != 0:
        param *= 1 - lr * weight_decay
    if G.ndim > 1:
        row_var += one_minus_beta2 * (np.mean(G * G, axis=-1, keepdims=True) - row_var)  # R_t
        col_var += one_minus_beta2 * (np.mean(G * G, axis=-2, keepdims=True) - col_var)  # C_t
        v_hat = (row_var @ col_var) / np.maximum(np.mean(row_var, axis=-2, keepdims=True), eps1)
    else:
        variance += one_minus_beta2 * (G * G - variance)
        v_hat = variance.copy()
    u = G / np.sqrt(np.maximum(v_hat, eps1 * eps1))        # U_t = G / max(√V̂, ε₁)
    clip = max(1.0, _rms(u) / d)
    u_hat = u / clip                                       # Û_t
    update = -alpha * u_hat
    param += update
    if trace is not None:
        trace.update(g=G, beta2_hat=np.float64(1 - one_minus_beta2), rho=np.float64(rho), alpha=np.float64(alpha),
                     v_hat=v_hat, u=u, clip=np.float64(clip), u_hat=u_hat, update=update)


# The sums below may be reordered (`reassoc`, see LAMB): nothing else about IEEE arithmetic changes.
@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _adafactor_factored_sums(param, grad, maximize):
    """Σ_j G², Σ_i G² per leading index b (float64), and Σθ² (float64)."""
    B, n, m = grad.shape
    row_sums = np.zeros((B, n), dtype=np.float64)
    col_sums = np.zeros((B, m), dtype=np.float64)
    theta_sq = 0.0
    for b in range(B):
        for i in range(n):
            total = 0.0
            for j in range(m):
                g = np.float64(-grad[b, i, j] if maximize else grad[b, i, j])
                total += g * g
                col_sums[b, j] += g * g
                theta_sq += np.float64(param[b, i, j]) * np.float64(param[b, i, j])
            row_sums[b, i] = total
    return row_sums, col_sums, theta_sq


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _adafactor_factored_update_sq(grad, row_var, col_var, means, eps1, maximize):
    """Σ U² (float64), U = G / √max(R C / mean(R), ε₁²)."""
    B, n, m = grad.shape
    update_sq = 0.0
    for b in range(B):
        for i in range(n):
            for j in range(m):
                g = -grad[b, i, j] if maximize else grad[b, i, j]
                v_hat = (row_var[b, i] * col_var[b, j]) / means[b]
                u = g / math.sqrt(max(v_hat, eps1 * eps1))
                update_sq += np.float64(u) * np.float64(u)
    return update_sq


@_jit
def _adafactor_factored_apply(param, grad, row_var, col_var, means, eps1, decay_factor, alpha, clip, maximize):
    B, n, m = grad.shape
    for b in range(B):
        for i in range(n):
            for j in range(m):
                g = -grad[b, i, j] if maximize else grad[b, i, j]
                v_hat = (row_var[b, i] * col_var[b, j]) / means[b]
                u = g / math.sqrt(max(v_hat, eps1 * eps1))
                param[b, i, j] = param[b, i, j] * decay_factor + (-alpha) * (u / clip)


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _adafactor_vector_moments(param, grad, variance, one_minus_beta2, eps1, maximize):
    """V ← V + (1 − β̂)(G² − V); returns (Σθ², ΣU²) in float64."""
    theta_sq = 0.0
    update_sq = 0.0
    for i in range(param.shape[0]):
        g = -grad[i] if maximize else grad[i]
        v = variance[i] + one_minus_beta2 * (g * g - variance[i])
        variance[i] = v
        u = g / math.sqrt(max(v, eps1 * eps1))
        theta_sq += np.float64(param[i]) * np.float64(param[i])
        update_sq += np.float64(u) * np.float64(u)
    return theta_sq, update_sq


@_jit
def _adafactor_vector_apply(param, grad, variance, eps1, decay_factor, alpha, clip, maximize):
    for i in range(param.shape[0]):
        g = -grad[i] if maximize else grad[i]
        u = g / math.sqrt(max(variance[i], eps1 * eps1))
        param[i] = param[i] * decay_factor + (-alpha) * (u / clip)


def adafactor_update_numba(param, grad, row_var, col_var, variance, lr, beta2_decay, eps1, eps2, d, weight_decay,
                           maximize, step, trace=None):
    _no_trace(trace)
    s = param.dtype.type
    one_minus_beta2 = step ** beta2_decay
    rho = min(lr, 1 / math.sqrt(step))
    decay = s(1 - lr * weight_decay) if weight_decay != 0 else s(1.0)
    if grad.ndim > 1:
        n, m = grad.shape[-2:]
        B = grad.size // (n * m) if n * m else 0
        theta3, grad3 = param.reshape(B, n, m), grad.reshape(B, n, m)
        rows, cols = row_var.reshape(B, n), col_var.reshape(B, m)
        row_sums, col_sums, theta_sq = _adafactor_factored_sums(theta3, grad3, maximize)
        # R and C have n + m elements: their updates are NumPy expressions, the reference's own
        rows += s(one_minus_beta2) * ((row_sums / m).astype(param.dtype) - rows)
        cols += s(one_minus_beta2) * ((col_sums / n).astype(param.dtype) - cols)
        means = np.maximum(np.mean(rows, axis=1), s(eps1))
        update_sq = _adafactor_factored_update_sq(grad3, rows, cols, means, s(eps1), maximize)
    else:
        theta, g, v = _flat(param, grad, variance)
        theta_sq, update_sq = _adafactor_vector_moments(theta, g, v, s(one_minus_beta2), s(eps1), maximize)
    alpha = max(eps2, math.sqrt(theta_sq) / math.sqrt(param.size)) * rho
    clip = max(1.0, math.sqrt(update_sq) / math.sqrt(param.size) / d)
    if grad.ndim > 1:
        _adafactor_factored_apply(theta3, grad3, rows, cols, means, s(eps1), decay, s(alpha), s(clip), maximize)
    else:
        _adafactor_vector_apply(theta, g, v, s(eps1), decay, s(alpha), s(clip), maximize)


adafactor_update = dispatch(adafactor_update_reference, adafactor_update_numba)


# ---------------------------------------------------------------------------------------- bfloat16 (Muon)
def round_to_bfloat16_reference(x):
    """x rounded to bfloat16 (ties to even), returned as a new float32 array: bfloat16 keeps float32's
    exponent and the top 7 bits of its mantissa. A float64 x goes through float32 first, as torch's
    `.bfloat16()` does (two roundings; tested to give torch's values bit for bit). NaN stays NaN."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    nan = (bits & 0x7F800000 == 0x7F800000) & (bits & 0x007FFFFF != 0)
    return np.where(nan, bits, rounded).astype(np.uint32).view(np.float32)


@_jit
def _round_to_bfloat16_kernel(bits):
    for i in range(bits.shape[0]):
        b = bits[i]
        if (b & 0x7F800000) == 0x7F800000 and (b & 0x007FFFFF) != 0:
            continue  # NaN (the only values whose rounding would overflow 32 bits)
        bits[i] = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000


def round_to_bfloat16_numba(x):
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    _round_to_bfloat16_kernel(out.reshape(-1).view(np.uint32))
    return out


round_to_bfloat16 = dispatch(round_to_bfloat16_reference, round_to_bfloat16_numba)
