"""Verify the optimizer math yourself: `tinyopt.verify.optimizers()` or `tinyopt verify`.

For every optimizer and a set of its options, two independent checks, printed as a pass/fail
table:

1. **by hand**: the first steps, recomputed here one number at a time in plain Python floats
   (`math.sqrt`, no NumPy, no tinyopt) straight from the formula in the optimizer's docstring;
2. **torch**: a few hundred steps next to `torch.optim` with the same arguments on the same
   gradients, in float64 (skipped, not failed, when torch is not installed).

The main test problem is a separable quadratic with a fixed, deterministic disturbance,
g_t(θ) = h ⊙ θ + c_t, on a small vector θ (or a 2x3 matrix, for Adafactor's factored moments and
Muon): every element follows its own scalar recursion, so the by-hand version is a loop over
floats, and the trajectory does not amplify rounding (a mismatch beyond the tolerance is a formula
difference). Every case also runs on Rosenbrock's function from (−1.2, 1). Both the NumPy formula
path and, where one exists, the Numba kernel are checked. Both libraries get the same gradients
(computed here in plain floats), so only the optimizers' arithmetic is compared; torch runs with
its default dtype set to float64, because NAdam and ASGD keep scalar state in it.

Lion and LAMB, which torch does not have, are checked by hand against their papers' algorithms;
L-BFGS's strong-Wolfe line search by the two conditions it must satisfy; Muon by hand in float64
and in bfloat16 (its default, like torch's).

`schedulers()` does the same for `tinyopt.optim.lr_scheduler` when it is present: closed forms by
hand for the schedules that have one, torch's learning-rate sequence for all of them.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np

from tinyopt.optimizer_check import check_optimizer  # noqa: F401  (checks a class someone else wrote)

HAND_STEPS = 5
TORCH_STEPS = 200
HAND_RTOL = 1e-12
TORCH_RTOL = 1e-9

# the test problem: g_t(θ)_i = h_i θ_i + c_{t,i}
_THETA0 = [1.0, -0.5, 2.0, 0.25, -1.5]
_H = [2.0, 0.5, 1.0, 4.0, 0.1]


def _c(t: int, i: int) -> float:
    return 0.1 * math.sin(1.7 * t + i)


def _gradient(theta, t):
    return [_H[i] * theta[i] + _c(t, i) for i in range(len(theta))]


@dataclass(frozen=True)
class Problem:
    """A test problem on plain floats: θ₀, the parameter's shape, and g_t(θ) / f_t(θ) on flat lists."""

    name: str
    theta0: tuple
    shape: tuple
    gradient: object  # (theta: list, t: int) -> list
    loss: object  # (theta: list, t: int) -> float


def _quadratic_loss(theta, t, h=_H):
    return sum(0.5 * h[i % len(h)] * x * x + _c(t, i) * x for i, x in enumerate(theta))


_H6 = [2.0, 0.5, 1.0, 4.0, 0.1, 3.0]


def _matrix_gradient(theta, t):
    return [_H6[i] * theta[i] + _c(t, i) for i in range(len(theta))]


def _rosenbrock_loss(theta, t=0):
    x, y = theta
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _rosenbrock_gradient(theta, t=0):
    x, y = theta
    return [-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)]


QUADRATIC = Problem("quadratic", tuple(_THETA0), (5,), _gradient, _quadratic_loss)
# L-BFGS is a method for one deterministic objective (its curvature pairs compare gradients of
# the same f): the quadratic without the step-dependent disturbance, f = f_1.
QUADRATIC_FIXED = Problem("quadratic (fixed)", tuple(_THETA0), (5,), lambda theta, t: _gradient(theta, 1),
                          lambda theta, t: _quadratic_loss(theta, 1))
MATRIX = Problem("quadratic 2x3", (1.0, -0.5, 2.0, 0.25, -1.5, 0.75), (2, 3), _matrix_gradient,
                 lambda theta, t: _quadratic_loss(theta, t, _H6))
ROSENBROCK = Problem("Rosenbrock", (-1.2, 1.0), (2,), _rosenbrock_gradient, _rosenbrock_loss)
ROSENBROCK_MATRIX = Problem("Rosenbrock 1x2", (-1.2, 1.0), (1, 2), _rosenbrock_gradient, _rosenbrock_loss)


def _negated(problem: Problem) -> Problem:
    """−f, for the `maximize=True` cases (maximising −Rosenbrock descends Rosenbrock's valley)."""
    return Problem("−" + problem.name, problem.theta0, problem.shape,
                   lambda theta, t: [-x for x in problem.gradient(theta, t)], lambda theta, t: -problem.loss(theta, t))


# ============================================================================ by hand
# Each function runs the docstring's algorithm on plain floats (math.sqrt, no NumPy, no tinyopt)
# and returns [θ_1, ..., θ_T] (flat lists). `problem` gives θ₀ and the gradients.

def _sign(x: float) -> float:
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def _hand_gd(steps, lr, maximize=False, problem=QUADRATIC):
    theta, path = list(problem.theta0), []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        for i in range(len(theta)):
            gi = -g[i] if maximize else g[i]
            theta[i] = theta[i] - lr * gi
        path.append(list(theta))
    return path


def _hand_sgd(steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
              momentum_style="pytorch", problem=QUADRATIC):
    theta = list(problem.theta0)
    buf, path = [0.0] * len(theta), []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        for i in range(len(theta)):
            gi = -g[i] if maximize else g[i]
            gi = gi + weight_decay * theta[i]
            if momentum == 0:
                theta[i] = theta[i] - lr * gi
            elif momentum_style == "pytorch":
                buf[i] = gi if t == 1 else momentum * buf[i] + (1 - dampening) * gi
                d = gi + momentum * buf[i] if nesterov else buf[i]
                theta[i] = theta[i] - lr * d
            else:  # sutskever: v ← μ v + (1 − τ) γ g
                buf[i] = lr * gi if t == 1 else momentum * buf[i] + (1 - dampening) * lr * gi
                theta[i] = theta[i] - (momentum * buf[i] + lr * gi if nesterov else buf[i])
        path.append(list(theta))
    return path


def _hand_adagrad(steps, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                  maximize=False, problem=QUADRATIC):
    theta = list(problem.theta0)
    total, path = [initial_accumulator_value] * len(theta), []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        clr = lr / (1 + (t - 1) * lr_decay)
        for i in range(len(theta)):
            gi = (-g[i] if maximize else g[i]) + weight_decay * theta[i]
            total[i] = total[i] + gi * gi
            theta[i] = theta[i] - clr * gi / (math.sqrt(total[i]) + eps)
        path.append(list(theta))
    return path


def _hand_rmsprop(steps, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                  maximize=False, problem=QUADRATIC):
    theta = list(problem.theta0)
    n = len(theta)
    v, gbar, buf, path = [0.0] * n, [0.0] * n, [0.0] * n, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        for i in range(n):
            gi = (-g[i] if maximize else g[i]) + weight_decay * theta[i]
            v[i] = alpha * v[i] + (1 - alpha) * gi * gi
            if centered:
                gbar[i] = alpha * gbar[i] + (1 - alpha) * gi
                v_tilde = v[i] - gbar[i] * gbar[i]
            else:
                v_tilde = v[i]
            if momentum > 0:
                buf[i] = momentum * buf[i] + gi / (math.sqrt(v_tilde) + eps)
                theta[i] = theta[i] - lr * buf[i]
            else:
                theta[i] = theta[i] - lr * gi / (math.sqrt(v_tilde) + eps)
        path.append(list(theta))
    return path


def _hand_adam(steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
               decoupled_weight_decay=False, bias_correction=True, eps_placement="pytorch", problem=QUADRATIC):
    theta = list(problem.theta0)
    n = len(theta)
    b1, b2 = betas
    m, v, vmax, path = [0.0] * n, [0.0] * n, [0.0] * n, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        c1, c2 = (1 - b1**t, 1 - b2**t) if bias_correction else (1.0, 1.0)
        for i in range(n):
            gi = -g[i] if maximize else g[i]
            if decoupled_weight_decay:
                theta[i] = theta[i] * (1 - lr * weight_decay)
            else:
                gi = gi + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            vmax[i] = max(vmax[i], v[i])
            vv = vmax[i] if amsgrad else v[i]
            m_hat, v_hat = m[i] / c1, vv / c2
            e = eps if eps_placement == "pytorch" else eps / math.sqrt(c2)
            theta[i] = theta[i] - lr * m_hat / (math.sqrt(v_hat) + e)
        path.append(list(theta))
    return path


def _hand_adamw(steps, weight_decay=1e-2, **kwargs):
    return _hand_adam(steps, weight_decay=weight_decay, decoupled_weight_decay=True, **kwargs)


def _hand_adamax(steps, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False, problem=QUADRATIC):
    theta = list(problem.theta0)
    n = len(theta)
    b1, b2 = betas
    m, u, path = [0.0] * n, [0.0] * n, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        for i in range(n):
            gi = (-g[i] if maximize else g[i]) + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            u[i] = max(b2 * u[i], abs(gi) + eps)
            theta[i] = theta[i] - lr * m[i] / ((1 - b1**t) * u[i])
        path.append(list(theta))
    return path


def _hand_nadam(steps, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                decoupled_weight_decay=False, maximize=False, problem=QUADRATIC):
    theta = list(problem.theta0)
    n = len(theta)
    b1, b2 = betas
    m, v, prod, path = [0.0] * n, [0.0] * n, 1.0, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        prod = prod * mu
        for i in range(n):
            gi = -g[i] if maximize else g[i]
            if decoupled_weight_decay:
                theta[i] = theta[i] * (1 - lr * weight_decay)
            else:
                gi = gi + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            m_hat = mu_next * m[i] / (1 - prod * mu_next) + (1 - mu) * gi / (1 - prod)
            v_hat = v[i] / (1 - b2**t)
            theta[i] = theta[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
        path.append(list(theta))
    return path


def _hand_radam(steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
                maximize=False, problem=QUADRATIC):
    theta = list(problem.theta0)
    n = len(theta)
    b1, b2 = betas
    m, v, path = [0.0] * n, [0.0] * n, []
    rho_inf = 2 / (1 - b2) - 1
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        for i in range(n):
            gi = -g[i] if maximize else g[i]
            if decoupled_weight_decay:
                theta[i] = theta[i] * (1 - lr * weight_decay)
            else:
                gi = gi + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            m_hat = m[i] / (1 - b1**t)
            if rho_t > 5:
                l_t = math.sqrt(1 - b2**t) / (math.sqrt(v[i]) + eps)
                r_t = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                theta[i] = theta[i] - lr * m_hat * r_t * l_t
            else:
                theta[i] = theta[i] - lr * m_hat
        path.append(list(theta))
    return path


def _hand_adadelta(steps, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False, problem=QUADRATIC):
    theta = list(problem.theta0)
    n = len(theta)
    v, u, path = [0.0] * n, [0.0] * n, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        for i in range(n):
            gi = (-g[i] if maximize else g[i]) + weight_decay * theta[i]
            v[i] = rho * v[i] + (1 - rho) * gi * gi
            delta = math.sqrt(u[i] + eps) / math.sqrt(v[i] + eps) * gi
            u[i] = rho * u[i] + (1 - rho) * delta * delta
            theta[i] = theta[i] - lr * delta
        path.append(list(theta))
    return path


def _hand_rprop(steps, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False, problem=QUADRATIC):
    theta = list(problem.theta0)
    n = len(theta)
    prev, size, path = [0.0] * n, [lr] * n, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        for i in range(n):
            gi = -g[i] if maximize else g[i]
            s = _sign(gi * prev[i])
            eta = etas[1] if s > 0 else (etas[0] if s < 0 else 1.0)
            size[i] = min(max(size[i] * eta, step_sizes[0]), step_sizes[1])
            if s < 0:
                gi = 0.0
            theta[i] = theta[i] - _sign(gi) * size[i]
            prev[i] = gi
        path.append(list(theta))
    return path


def _hand_asgd(steps, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False, problem=QUADRATIC):
    theta = list(problem.theta0)
    n = len(theta)
    ax, eta, mu, path = [0.0] * n, lr, 1.0, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        for i in range(n):
            gi = (-g[i] if maximize else g[i]) + weight_decay * theta[i]
            theta[i] = theta[i] * (1 - lambd * eta) - eta * gi
            ax[i] = ax[i] + mu * (theta[i] - ax[i]) if mu != 1 else theta[i]
        eta = lr / (1 + lambd * lr * t) ** alpha
        mu = 1 / max(1, t - t0)
        path.append(list(theta) + list(ax))  # the average is checked too
    return path


def _hand_lion(steps, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False, problem=QUADRATIC):
    """Chen et al. 2023, Algorithm 2, line by line."""
    theta = list(problem.theta0)
    n = len(theta)
    b1, b2 = betas
    m, path = [0.0] * n, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        for i in range(n):
            gi = -g[i] if maximize else g[i]
            c = b1 * m[i] + (1 - b1) * gi
            theta[i] = theta[i] - lr * (_sign(c) + weight_decay * theta[i])
            m[i] = b2 * m[i] + (1 - b2) * gi
        path.append(list(theta))
    return path


def _hand_lamb(steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, bias_correction=True,
               phi_bounds=None, maximize=False, problem=QUADRATIC):
    """You et al. 2019, Algorithm 2, for one layer (the whole parameter)."""
    theta = list(problem.theta0)
    n = len(theta)
    b1, b2 = betas
    low, high = phi_bounds or (0.0, math.inf)
    m, v, path = [0.0] * n, [0.0] * n, []
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        c1, c2 = (1 - b1**t, 1 - b2**t) if bias_correction else (1.0, 1.0)
        u = []
        for i in range(n):
            gi = -g[i] if maximize else g[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            r = (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)
            u.append(r + weight_decay * theta[i])
        weight_norm = math.sqrt(sum(x * x for x in theta))
        update_norm = math.sqrt(sum(x * x for x in u))
        phi = min(max(weight_norm, low), high)
        ratio = phi / update_norm if phi > 0 and update_norm > 0 else 1.0
        theta = [theta[i] - lr * ratio * u[i] for i in range(n)]
        path.append(list(theta))
    return path


def _rms(xs) -> float:
    return math.sqrt(sum(x * x for x in xs) / len(xs))


def _hand_adafactor(steps, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, maximize=False,
                    problem=QUADRATIC):
    eps1 = 2.0**-52 if eps[0] is None else eps[0]  # float64's machine epsilon
    eps2 = eps[1]
    theta = list(problem.theta0)
    factored = len(problem.shape) == 2
    rows, cols = problem.shape if factored else (1, len(theta))
    R, C, V, path = [0.0] * rows, [0.0] * cols, [0.0] * len(theta), []
    for t in range(1, steps + 1):
        G = problem.gradient(theta, t)
        G = [-x for x in G] if maximize else G
        w = t**beta2_decay  # 1 − β̂₂_t
        rho = min(lr, 1 / math.sqrt(t))
        alpha = max(eps2, _rms(theta)) * rho
        theta = [x * (1 - lr * weight_decay) for x in theta]
        if factored:
            for r in range(rows):
                R[r] = R[r] + w * (sum(G[r * cols + c] ** 2 for c in range(cols)) / cols - R[r])
            for c in range(cols):
                C[c] = C[c] + w * (sum(G[r * cols + c] ** 2 for r in range(rows)) / rows - C[c])
            mean_r = max(sum(R) / rows, eps1)
            v_hat = [R[r] * C[c] / mean_r for r in range(rows) for c in range(cols)]
        else:
            V = [V[i] + w * (G[i] * G[i] - V[i]) for i in range(len(theta))]
            v_hat = V
        U = [G[i] / math.sqrt(max(v_hat[i], eps1 * eps1)) for i in range(len(theta))]
        clip = max(1.0, _rms(U) / d)
        theta = [theta[i] - alpha * U[i] / clip for i in range(len(theta))]
        path.append(list(theta))
    return path


def _matmul(A, B):
    return [[sum(A[i][k] * B[k][j] for k in range(len(B))) for j in range(len(B[0]))] for i in range(len(A))]


def _transpose(A):
    return [list(row) for row in zip(*A)]


def _bfloat16(x: float) -> float:
    """x rounded to bfloat16 as torch does: to float32 first, then to 8 significant bits, ties to even."""
    import struct

    x32 = struct.unpack("f", struct.pack("f", x))[0]
    if x32 == 0.0 or math.isinf(x32) or math.isnan(x32):
        return x32
    mantissa, exponent = math.frexp(x32)
    return math.ldexp(round(math.ldexp(mantissa, 8)), exponent - 8)


def _hand_newton_schulz(G, coefficients, ns_steps, eps, bf16):
    a, b, c = coefficients
    r = (lambda M: [[_bfloat16(x) for x in row] for row in M]) if bf16 else (lambda M: M)
    X = r(G)
    tall = len(G) > len(G[0])
    if tall:
        X = _transpose(X)
    norm = math.sqrt(sum(x * x for row in X for x in row))
    norm = _bfloat16(norm) if bf16 else norm
    X = r([[x / max(norm, eps) for x in row] for row in X])
    for _ in range(ns_steps):
        A = r(_matmul(X, _transpose(X)))
        AA = _matmul(A, A)
        B = r([[b * A[i][j] + c * AA[i][j] for j in range(len(A))] for i in range(len(A))])
        BX = _matmul(B, X)
        X = r([[a * X[i][j] + BX[i][j] for j in range(len(X[0]))] for i in range(len(X))])
    return _transpose(X) if tall else X


def _hand_muon(steps, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=(3.4445, -4.7750, 2.0315),
               eps=1e-7, ns_steps=5, adjust_lr_fn=None, ns_dtype="bfloat16", problem=MATRIX):
    rows, cols = problem.shape
    theta = list(problem.theta0)
    buf, path = [0.0] * len(theta), []
    if adjust_lr_fn == "match_rms_adamw":
        lr_adjusted = lr * 0.2 * math.sqrt(max(rows, cols))
    else:
        lr_adjusted = lr * math.sqrt(max(1, rows / cols))
    for t in range(1, steps + 1):
        g = problem.gradient(theta, t)
        buf = [buf[i] + (1 - momentum) * (g[i] - buf[i]) for i in range(len(theta))]
        b_tilde = [g[i] + momentum * (buf[i] - g[i]) for i in range(len(theta))] if nesterov else buf
        O = _hand_newton_schulz([b_tilde[r * cols:(r + 1) * cols] for r in range(rows)], ns_coefficients, ns_steps,
                                eps, ns_dtype == "bfloat16")
        flat_O = [x for row in O for x in row]
        theta = [theta[i] * (1 - lr * weight_decay) - lr_adjusted * flat_O[i] for i in range(len(theta))]
        path.append(list(theta))
    return path


def _dot(x, y) -> float:
    return sum(a * b for a, b in zip(x, y))


def _hand_lbfgs(steps, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                history_size=100, line_search_fn=None, problem=QUADRATIC):
    """The fixed-step L-BFGS of the docstring (the strong-Wolfe variant is checked against torch
    and by its two conditions, see `_wolfe_check`)."""
    if line_search_fn is not None:
        raise ValueError("by hand: L-BFGS without line search only")
    max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
    theta = list(problem.theta0)
    n = len(theta)
    s_hist, y_hist, rho_hist, path = [], [], [], []
    d = t_k = prev_g = None
    H = 1.0
    total_iter = 0
    for step in range(1, steps + 1):
        g = problem.gradient(theta, step)
        loss = problem.loss(theta, step)
        evals = 1
        if max(abs(x) for x in g) <= tolerance_grad:
            path.append(list(theta))
            continue
        for k in range(1, max_iter + 1):
            total_iter += 1
            if total_iter == 1:
                d = [-x for x in g]
            else:
                y = [g[i] - prev_g[i] for i in range(n)]
                s = [d[i] * t_k for i in range(n)]
                ys = _dot(y, s)
                if ys > 1e-10:
                    if len(s_hist) == history_size:
                        s_hist.pop(0), y_hist.pop(0), rho_hist.pop(0)
                    s_hist.append(s), y_hist.append(y), rho_hist.append(1.0 / ys)
                    H = ys / _dot(y, y)
                q = [-x for x in g]
                a = [0.0] * len(s_hist)
                for i in range(len(s_hist) - 1, -1, -1):
                    a[i] = _dot(s_hist[i], q) * rho_hist[i]
                    q = [q[j] - a[i] * y_hist[i][j] for j in range(n)]
                r = [x * H for x in q]
                for i in range(len(s_hist)):
                    b = _dot(y_hist[i], r) * rho_hist[i]
                    r = [r[j] + (a[i] - b) * s_hist[i][j] for j in range(n)]
                d = r
            prev_g, prev_loss = list(g), loss
            t_k = min(1.0, 1.0 / sum(abs(x) for x in g)) * lr if total_iter == 1 else lr
            if _dot(g, d) > -tolerance_change:
                break
            theta = [theta[i] + t_k * d[i] for i in range(n)]
            if k != max_iter:
                g, loss = problem.gradient(theta, step), problem.loss(theta, step)
                evals += 1
            if k == max_iter or evals >= max_eval or (k != max_iter and max(abs(x) for x in g) <= tolerance_grad):
                break
            if max(abs(x * t_k) for x in d) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break
        path.append(list(theta))
    return path


_BY_HAND = {"GD": _hand_gd, "SGD": _hand_sgd, "Adagrad": _hand_adagrad, "RMSprop": _hand_rmsprop,
            "Adam": _hand_adam, "AdamW": _hand_adamw, "Adamax": _hand_adamax, "NAdam": _hand_nadam,
            "RAdam": _hand_radam, "Adadelta": _hand_adadelta, "Rprop": _hand_rprop, "ASGD": _hand_asgd,
            "Lion": _hand_lion, "LAMB": _hand_lamb, "Adafactor": _hand_adafactor, "Muon": _hand_muon,
            "LBFGS": _hand_lbfgs}

# (optimizer, options); options that torch does not have are skipped in the torch column.
CASES = [
    ("GD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, momentum_style="sutskever")),
    ("SGD", dict(lr=0.1, momentum=0.9, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, bias_correction=False)),
    ("Adam", dict(lr=0.01, eps_placement="keras", eps=1e-3)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5, weight_decay=0.1, maximize=True)),
    ("Rprop", dict(lr=0.01)),
    ("Rprop", dict(lr=0.01, etas=(0.3, 1.5), step_sizes=(1e-3, 1.0), maximize=True)),
    ("ASGD", dict(lr=0.01)),
    ("ASGD", dict(lr=0.01, lambd=0.01, alpha=0.5, t0=3, weight_decay=0.1, maximize=True)),
    ("Lion", dict(lr=0.01)),
    ("Lion", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1, maximize=True)),
    ("LAMB", dict(lr=0.01)),
    ("LAMB", dict(lr=0.01, weight_decay=0.1, bias_correction=False, maximize=True)),
    ("LAMB", dict(lr=0.01, phi_bounds=(0.0, 1.0))),
    ("Adafactor", dict()),
    ("Adafactor", dict(lr=0.05, beta2_decay=-0.5, eps=(1e-3, 1e-3), d=2.0, weight_decay=0.1, maximize=True)),
    ("Muon", dict(lr=0.02, ns_dtype=None)),
    ("Muon", dict(lr=0.02, nesterov=False, weight_decay=0.0, adjust_lr_fn="match_rms_adamw", ns_dtype=None)),
    ("Muon", dict(lr=0.02)),
    ("LBFGS", dict(lr=0.5, max_iter=5)),
    ("LBFGS", dict(max_iter=5, line_search_fn="strong_wolfe")),
    ("LBFGS", dict(max_iter=5, history_size=2, line_search_fn="strong_wolfe")),
]
_TINYOPT_ONLY = {"momentum_style", "bias_correction", "eps_placement"}
_NOT_IN_TORCH = {"Lion", "LAMB"}
# optimizers with a Numba twin (checked on both kernel backends)
_KERNEL = {"GD", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adamax", "NAdam", "RAdam", "Adadelta", "Rprop",
           "ASGD", "Lion", "LAMB", "Adafactor"}
# each optimizer's problems (Adafactor: the vector and the factored matrix case; Muon: matrices only)
_PROBLEMS = {"Adafactor": (QUADRATIC, MATRIX, ROSENBROCK), "Muon": (MATRIX, ROSENBROCK_MATRIX),
             "LBFGS": (QUADRATIC_FIXED, ROSENBROCK)}
_DEFAULT_PROBLEMS = (QUADRATIC, ROSENBROCK)
# learning rates that keep Rosenbrock's valley stable (the quadratic's are too large for some)
ROSENBROCK_LR = {"GD": 1e-3, "SGD": 1e-3, "Adagrad": 0.1, "RMSprop": 1e-3, "Adam": 0.01, "AdamW": 0.01,
                 "Adamax": 0.01, "NAdam": 0.01, "RAdam": 0.01, "Adadelta": 1.0, "Rprop": 1e-3, "ASGD": 1e-3,
                 "Lion": 1e-3, "LAMB": 0.01, "Adafactor": 0.01, "Muon": 0.01, "LBFGS": 0.5}


def _on_problem(name, kwargs, problem) -> tuple:
    """(options, problem) of a case on `problem`: on Rosenbrock, the optimizer's stable learning
    rate, and −f for the `maximize=True` cases."""
    if problem.name.startswith("Rosenbrock"):
        if "lr" in kwargs:
            kwargs = {**kwargs, "lr": ROSENBROCK_LR[name]}
        if kwargs.get("maximize"):
            problem = _negated(problem)
    return kwargs, problem


# ============================================================================ running
def _run_tinyopt(name, kwargs, steps, problem=QUADRATIC, kernel=None):
    """θ_1..θ_steps (flat) of tinyopt's optimizer; `kernel`: None/True the default path (the Numba
    twin where there is one), False the NumPy twin (TINYOPT_KERNELS=reference)."""
    import tinyopt as to
    from tinyopt import optim
    from tinyopt.kernels import backend

    p = to.Tensor(np.array(problem.theta0).reshape(problem.shape), requires_grad=True, dtype=np.float64)
    opt = getattr(optim, name)([p], **kwargs)
    path = []
    with backend("reference" if kernel is False else "numba"):
        for t in range(1, steps + 1):
            if name == "LBFGS":
                def closure(t=t):
                    p.grad = np.array(problem.gradient(list(p.data.ravel()), t)).reshape(problem.shape)
                    return problem.loss(list(p.data.ravel()), t)

                opt.step(closure)
            else:
                p.grad = np.array(problem.gradient(list(p.data.ravel()), t)).reshape(problem.shape)
                opt.step()
            row = list(p.data.ravel())
            if name == "ASGD":
                row += list(opt.state[p]["ax"].ravel())
            path.append(row)
    return np.array(path)


def _torch_float64_newton_schulz(torch):
    """torch.optim._muon's Newton–Schulz iteration, line for line, without its cast to bfloat16."""
    def zeropower(grad, ns_coefficients, ns_steps, eps):
        a, b, c = ns_coefficients
        ortho_grad = grad.clone()
        if grad.size(0) > grad.size(1):
            ortho_grad = ortho_grad.T
        ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
        for _ in range(ns_steps):
            gram_matrix = ortho_grad @ ortho_grad.T
            gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
            ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
        if grad.size(0) > grad.size(1):
            ortho_grad = ortho_grad.T
        return ortho_grad

    return zeropower


def _run_torch(torch, name, kwargs, steps, problem=QUADRATIC):
    """torch's trajectory with torch's default dtype set to float64 (NAdam's μ product and ASGD's η,
    μ are scalar tensors of the default dtype) and, for Muon with ns_dtype=None, torch's own
    Newton–Schulz code run in float64."""
    import torch.optim._muon as torch_muon

    kwargs = dict(kwargs)
    ns_dtype = kwargs.pop("ns_dtype", "bfloat16")
    previous_dtype, previous_ns = torch.get_default_dtype(), torch_muon._zeropower_via_newtonschulz
    torch.set_default_dtype(torch.float64)
    if name == "Muon" and ns_dtype is None:
        torch_muon._zeropower_via_newtonschulz = _torch_float64_newton_schulz(torch)
    try:
        p = torch.tensor(problem.theta0, dtype=torch.float64).reshape(problem.shape).requires_grad_(True)
        cls = torch.optim.SGD if name == "GD" else getattr(torch.optim, name)
        opt = cls([p], **kwargs)
        path = []
        for t in range(1, steps + 1):
            def closure(t=t):
                theta = p.detach().ravel().tolist()
                p.grad = torch.tensor(problem.gradient(theta, t), dtype=torch.float64).reshape(problem.shape)
                return torch.tensor(problem.loss(theta, t), dtype=torch.float64)

            if name == "LBFGS":
                opt.step(closure)
            else:
                p.grad = torch.tensor(problem.gradient(p.detach().ravel().tolist(), t),
                                      dtype=torch.float64).reshape(problem.shape)
                opt.step()
            row = p.detach().ravel().tolist()
            if name == "ASGD":
                row += opt.state[p]["ax"].ravel().tolist()
            path.append(row)
    finally:
        torch.set_default_dtype(previous_dtype)
        torch_muon._zeropower_via_newtonschulz = previous_ns
    return np.array(path)


def _wolfe_check(kwargs, problem) -> float:
    """By hand for the strong-Wolfe line search: after tinyopt's first L-BFGS iteration, the
    accepted step t along d must satisfy f(θ + t d) ≤ f(θ) + c₁ t gᵀd and |∇f(θ + t d)ᵀd| ≤ −c₂ gᵀd
    (c₁ = 1e-4, c₂ = 0.9), computed here in plain floats. Returns the larger relative violation
    (0 when both hold)."""
    import tinyopt as to
    from tinyopt import optim

    theta0 = list(problem.theta0)
    p = to.Tensor(np.array(theta0).reshape(problem.shape), requires_grad=True, dtype=np.float64)
    opt = optim.LBFGS([p], **{**kwargs, "max_iter": 1, "max_eval": 25})  # one iteration, a full line search

    def closure():
        p.grad = np.array(problem.gradient(list(p.data.ravel()), 1)).reshape(problem.shape)
        return problem.loss(list(p.data.ravel()), 1)

    opt.step(closure)
    state = opt.state[p]
    t, d = float(state["t"]), [float(x) for x in state["d"]]
    g0 = problem.gradient(theta0, 1)
    f0, gtd = problem.loss(theta0, 1), _dot(g0, d)
    theta1 = [theta0[i] + t * d[i] for i in range(len(d))]
    armijo = problem.loss(theta1, 1) - (f0 + 1e-4 * t * gtd)
    curvature = abs(_dot(problem.gradient(theta1, 1), d)) - (-0.9 * gtd)
    moved = max(abs(a - b) for a, b in zip(theta1, p.data.ravel()))
    return max(armijo, curvature, 0.0) / abs(gtd) + moved


def _rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


@dataclass
class Check:
    subject: str  # "Adam(lr=0.01, amsgrad=True)"
    check: str  # "by hand, 5 steps" / "torch, 200 steps" / ...
    error: float | None  # max relative error; None when skipped
    tolerance: float
    note: str = ""

    @property
    def status(self) -> str:
        if self.error is None:
            return "skip"
        return "PASS" if self.error <= self.tolerance else "FAIL"


def _describe(name, kwargs) -> str:
    return f"{name}(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


def _no_torch_note(use_torch) -> str:
    return "torch comparison turned off" if use_torch is False else "torch not installed"


def _import_torch(use_torch):
    if use_torch is False:
        return None
    try:
        import torch
    except ImportError:
        if use_torch:
            raise
        return None
    return torch


def optimizers(use_torch: bool | None = None, hand_steps: int = HAND_STEPS, torch_steps: int = TORCH_STEPS,
               file=None, verbose: bool = True) -> list:
    """Check every optimizer against its formula by hand and against torch.optim; print a table.

    Every case runs on the quadratic (Adafactor also on a 2x3 matrix, Muon on matrices only) and
    on Rosenbrock's function (with the optimizer's `ROSENBROCK_LR`), through the NumPy twin and,
    where there is one, the Numba kernel. use_torch: None (default) compares with torch when it is
    importable; False never; True requires it. Returns the list of `Check`s (see
    `all(c.status != "FAIL" for c in checks)`).
    """
    torch = _import_torch(use_torch)
    checks = []
    for name, case_kwargs in CASES:
        for problem in _PROBLEMS.get(name, _DEFAULT_PROBLEMS):
            kwargs, problem = _on_problem(name, case_kwargs, problem)
            subject = _describe(name, kwargs)
            paths = [("formula", False)] + ([("Numba kernel", True)] if name in _KERNEL else [])
            if name == "LBFGS" and kwargs.get("line_search_fn"):
                checks.append(Check(subject, f"by hand, strong Wolfe conditions, {problem.name}",
                                    _wolfe_check(kwargs, problem), HAND_RTOL))
            else:
                expected = np.array(_BY_HAND[name](hand_steps, **kwargs, problem=problem))
                for label, kernel in paths:
                    ours = _run_tinyopt(name, kwargs, hand_steps, problem, kernel)
                    checks.append(Check(subject, f"by hand, {hand_steps} steps, {problem.name}, {label}",
                                        _rel_err(ours, expected), HAND_RTOL))
            where = f"torch, {torch_steps} steps, {problem.name}"
            if name == "Muon" and kwargs.get("ns_dtype", "bfloat16") is None:
                where += " (torch's Newton-Schulz in float64)"
            if torch is None:
                checks.append(Check(subject, where, None, TORCH_RTOL, _no_torch_note(use_torch)))
            elif name in _NOT_IN_TORCH:
                checks.append(Check(subject, where, None, TORCH_RTOL,
                                    f"torch has no {name}: checked by hand against the paper's algorithm"))
            elif _TINYOPT_ONLY & set(kwargs):
                checks.append(Check(subject, where, None, TORCH_RTOL, "a tinyopt-only variant"))
            else:
                theirs = _run_torch(torch, name, kwargs, torch_steps, problem)
                for label, kernel in paths:
                    ours = _run_tinyopt(name, kwargs, torch_steps, problem, kernel)
                    checks.append(Check(subject, f"{where}, {label}", _rel_err(ours, theirs), TORCH_RTOL))
    if verbose:
        print(format_table(checks, "Optimizers: formula by hand and torch.optim"), file=file or sys.stdout)
    return checks


# ============================================================================ schedulers
# (name, kwargs, closed form lr(epoch) or None); checked when tinyopt.optim.lr_scheduler has the class.
_BASE_LR = 0.1


def _plateau_metric(epoch: int) -> float:
    """Improves for 10 epochs, then stalls: ReduceLROnPlateau must cut the lr after `patience`."""
    return 1.0 / (1 + min(epoch, 10))


def _scheduler_cases():
    """(name, make(lib, optimizer) -> scheduler, closed form lr(epoch) or None, needs a metric)."""
    def simple(name, **kwargs):
        return lambda lib, opt: getattr(lib, name)(opt, **kwargs)

    def sequential(lib, opt):
        warmup = lib.LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = lib.ExponentialLR(opt, gamma=0.9)
        return lib.SequentialLR(opt, schedulers=[warmup, decay], milestones=[5])

    return [
        ("StepLR(step_size=7, gamma=0.5)", simple("StepLR", step_size=7, gamma=0.5),
         lambda e: _BASE_LR * 0.5 ** (e // 7), False),
        ("MultiStepLR(milestones=[5, 12, 30], gamma=0.3)", simple("MultiStepLR", milestones=[5, 12, 30], gamma=0.3),
         lambda e: _BASE_LR * 0.3 ** sum(e >= m for m in (5, 12, 30)), False),
        ("ExponentialLR(gamma=0.9)", simple("ExponentialLR", gamma=0.9), lambda e: _BASE_LR * 0.9**e, False),
        ("CosineAnnealingLR(T_max=10, eta_min=0.001)", simple("CosineAnnealingLR", T_max=10, eta_min=0.001),
         lambda e: 0.001 + (_BASE_LR - 0.001) * (1 + math.cos(math.pi * e / 10)) / 2, False),
        ("CosineAnnealingWarmRestarts(T_0=5, T_mult=2)", simple("CosineAnnealingWarmRestarts", T_0=5, T_mult=2),
         None, False),
        ("LinearLR(start_factor=0.25, total_iters=8)", simple("LinearLR", start_factor=0.25, total_iters=8),
         lambda e: _BASE_LR * (0.25 + 0.75 * min(e, 8) / 8), False),
        ("ConstantLR(factor=0.5, total_iters=4)", simple("ConstantLR", factor=0.5, total_iters=4),
         lambda e: _BASE_LR * (0.5 if e < 4 else 1.0), False),
        ("PolynomialLR(total_iters=20, power=2.0)", simple("PolynomialLR", total_iters=20, power=2.0),
         lambda e: _BASE_LR * (1 - min(e, 20) / 20) ** 2, False),
        ("LambdaLR(lr_lambda=1/(1+e))", simple("LambdaLR", lr_lambda=lambda e: 1 / (1 + e)),
         lambda e: _BASE_LR / (1 + e), False),
        ("OneCycleLR(max_lr=1.0, total_steps=61)", simple("OneCycleLR", max_lr=1.0, total_steps=61), None, False),
        ("SequentialLR(LinearLR warmup 5, ExponentialLR 0.9)", sequential,
         lambda e: _BASE_LR * (0.1 + 0.9 * e / 5 if e < 5 else 0.9 ** (e - 5)), False),
        ("ReduceLROnPlateau(factor=0.5, patience=3)", simple("ReduceLROnPlateau", factor=0.5, patience=3), None, True),
    ]


def _lr_sequence(lib, opt_cls, make_param, make_grad, make, epochs, with_metric):
    p = make_param()
    opt = opt_cls([p], lr=_BASE_LR)
    sched = make(lib, opt)
    lrs = []
    for e in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = make_grad()
        opt.step()
        if with_metric:
            sched.step(_plateau_metric(e))
        else:
            sched.step()
    return lrs


def schedulers(use_torch: bool | None = None, epochs: int = 60, file=None, verbose: bool = True) -> list:
    """Learning-rate sequences of `tinyopt.optim.lr_scheduler` vs their closed forms and vs torch."""
    import tinyopt as to
    from tinyopt import optim

    try:
        from tinyopt.optim import lr_scheduler
    except ImportError:
        lr_scheduler = None
    torch = _import_torch(use_torch)
    checks = []
    for subject, make, closed, with_metric in _scheduler_cases():
        class_name = subject.split("(")[0]
        if lr_scheduler is None or not hasattr(lr_scheduler, class_name):
            checks.append(Check(subject, "closed form / torch", None, TORCH_RTOL, "not in tinyopt.optim.lr_scheduler"))
            continue
        ours = _lr_sequence(lr_scheduler, optim.SGD,
                            lambda: to.Tensor(np.zeros(1), requires_grad=True, dtype=np.float64),
                            lambda: np.zeros(1), make, epochs, with_metric)
        if closed is not None:
            expected = [closed(e) for e in range(epochs)]
            checks.append(Check(subject, f"closed form, {epochs} epochs", _rel_err(ours, expected), TORCH_RTOL))
        if torch is None:
            checks.append(Check(subject, f"torch, {epochs} epochs", None, TORCH_RTOL, _no_torch_note(use_torch)))
            continue
        theirs = _lr_sequence(torch.optim.lr_scheduler, torch.optim.SGD,
                              lambda: torch.zeros(1, dtype=torch.float64, requires_grad=True),
                              lambda: torch.zeros(1, dtype=torch.float64), make, epochs, with_metric)
        checks.append(Check(subject, f"torch, {epochs} epochs", _rel_err(ours, theirs), TORCH_RTOL))
    if verbose:
        print(format_table(checks, "Schedulers: closed form and torch.optim.lr_scheduler"), file=file or sys.stdout)
    return checks


# ============================================================================ output / CLI
def format_table(checks, title: str) -> str:
    subject_w = max([len(c.subject) for c in checks] + [len("what")])
    check_w = max([len(c.check) for c in checks] + [len("check")])
    lines = [title, "=" * len(title),
             f"{'what':<{subject_w}}  {'check':<{check_w}}  {'max rel err':>11}  {'tol':>7}  result"]
    for c in checks:
        err = "-" if c.error is None else f"{c.error:.1e}"
        note = f"  ({c.note})" if c.note else ""
        lines.append(f"{c.subject:<{subject_w}}  {c.check:<{check_w}}  {err:>11}  {c.tolerance:>7.0e}  "
                     f"{c.status}{note}")
    counts = {s: sum(c.status == s for c in checks) for s in ("PASS", "FAIL", "skip")}
    lines.append(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['skip']} skipped")
    return "\n".join(lines)


def main(argv=None) -> int:
    """`tinyopt verify [--no-torch] [--only optimizers|schedulers]`; exit status 1 if a check fails."""
    parser = argparse.ArgumentParser(prog="tinyopt verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-torch", action="store_true", help="skip the comparison with torch")
    parser.add_argument("--only", choices=("optimizers", "schedulers"), help="run one of the two tables")
    parser.add_argument("--steps", type=int, default=TORCH_STEPS, help="steps for the torch comparison")
    args = parser.parse_args(argv)
    use_torch = False if args.no_torch else None
    checks = []
    if args.only in (None, "optimizers"):
        checks += optimizers(use_torch=use_torch, torch_steps=args.steps)
    if args.only in (None, "schedulers"):
        if args.only is None:
            print()
        checks += schedulers(use_torch=use_torch)
    return 1 if any(c.status == "FAIL" for c in checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
