"""RAdam: Adam with a rectified adaptive learning rate (Liu et al. 2020), torch.optim.RAdam's semantics."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


def rectification(beta2: float, t: int) -> tuple:
    """(ρ_t, r_t): the length of the approximated simple moving average and the variance
    rectification term, r_t = None while ρ_t ≤ 5 (the variance of the adaptive lr is not yet
    tractable and RAdam falls back to SGD with momentum)."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t <= 5.0:
        return rho_t, None
    return rho_t, math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


class RAdam(Optimizer):
    r"""RAdam: Adam with the variance of its adaptive learning rate rectified; plain momentum SGD
    for the first steps, while that variance is intractable.

    Algorithm (torch.optim.RAdam's; the defaults are torch's)::

        input:  γ (lr), β₁, β₂ (betas), θ₀ (params), f(θ) (objective), λ (weight_decay),
                ε (eps), decoupled_weight_decay, maximize
        initialize:  m₀ ← 0,  v₀ ← 0,  ρ_∞ ← 2/(1 − β₂) − 1
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            if λ ≠ 0:
                if decoupled:  θ_{t−1} ← θ_{t−1} (1 − γλ)
                else:          g_t ← g_t + λ θ_{t−1}
            m_t ← β₁ m_{t−1} + (1 − β₁) g_t
            v_t ← β₂ v_{t−1} + (1 − β₂) g_t²
            m̂_t ← m_t / (1 − β₁ᵗ)
            ρ_t ← ρ_∞ − 2 t β₂ᵗ / (1 − β₂ᵗ)
            if ρ_t > 5:
                l_t ← √(1 − β₂ᵗ) / (√v_t + ε)                       (adaptive lr)
                r_t ← √((ρ_t − 4)(ρ_t − 2) ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2) ρ_t))   (rectification)
                θ_t ← θ_{t−1} − γ m̂_t r_t l_t
            else:
                θ_t ← θ_{t−1} − γ m̂_t                              (SGD with momentum)
        return θ_t

    With the default β₂ = 0.999, ρ_t ≤ 5 for t ≤ 5: the first five steps are bias-corrected
    momentum SGD steps of size γ |m̂_t| (not normalised, so their size depends on the gradient's
    scale, unlike Adam's first steps); from t = 6 on the Adam-like step is scaled by r_t, which
    grows from ≈ 0.02 to 1. Note ε is added to the *uncorrected* √v_t here (torch's code; the
    bias correction √(1 − β₂ᵗ) multiplies outside), unlike Adam, where it is added to √v̂_t.

    Code names (also the trace's): g, m, v, m_hat, l (= l_t, while ρ_t > 5), lr_eff (γ r_t l_t,
    or γ during the fallback), update, theta_prev, theta; scalars rho_t, rect (r_t). State per
    parameter, torch's keys: 'step' (int), 'exp_avg' (m), 'exp_avg_sq' (v).

    The element-wise formula is `kernels/optim_update.py::radam_update` (NumPy twin, traced; Numba
    twin otherwise, unless `fused=False`); `rectification(β₂, t)` computes ρ_t and r_t.

    Reference: Liu, Jiang, He, Chen, Liu, Gao, Han, "On the Variance of the Adaptive Learning Rate
    and Beyond", ICLR 2020, https://arxiv.org/abs/1908.03265
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient (+ λθ unless decoupled)"),
        ("m", "m_t", "first moment: β₁ m_{t−1} + (1 − β₁) g_t"),
        ("v", "v_t", "second moment: β₂ v_{t−1} + (1 − β₂) g_t²"),
        ("m_hat", "m̂_t", "m_t / (1 − β₁ᵗ)"),
        ("l", "l_t", "adaptive lr √(1 − β₂ᵗ) / (√v_t + ε) (only while ρ_t > 5)"),
        ("lr_eff", "γ_eff", "γ r_t l_t, or γ in the SGD fallback (ρ_t ≤ 5)"),
        ("update", "Δθ_t", "−γ_eff ⊙ m̂_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_nonnegative("eps", h["eps"])
        h["betas"] = validation.check_betas(h["betas"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, (β1, β2), ε, λ = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "exp_avg": np.zeros_like(p.data),
                                             "exp_avg_sq": np.zeros_like(p.data)}
                state["step"] += 1
                t = state["step"]
                bias_correction1, bias_correction2 = 1 - β1**t, 1 - β2**t
                rho_t, rect = rectification(β2, t)
                self._update(group, p, optim_update.radam_update, (p.data, g, state["exp_avg"], state["exp_avg_sq"]),
                             dict(lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ,
                                  decoupled=group["decoupled_weight_decay"], maximize=group["maximize"],
                                  bias_correction1=bias_correction1, bias_correction2=bias_correction2, rect=rect),
                             dict(t=t, lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ, rho_t=rho_t,
                                  rect=float("nan") if rect is None else rect))
        return loss
