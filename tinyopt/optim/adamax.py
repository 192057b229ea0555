"""Adamax: Adam with the infinity norm (Kingma & Ba 2015, section 7.1), torch.optim.Adamax's semantics."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class Adamax(Optimizer):
    r"""Adamax: Adam's second moment replaced by an exponentially weighted infinity norm.

    Algorithm (torch.optim.Adamax's; the defaults are torch's)::

        input:  γ (lr, 2e-3), β₁, β₂ (betas), θ₀ (params), f(θ) (objective), λ (weight_decay),
                ε (eps), maximize
        initialize:  m₀ ← 0,  u₀ ← 0
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            if λ ≠ 0:  g_t ← g_t + λ θ_{t−1}
            m_t ← β₁ m_{t−1} + (1 − β₁) g_t
            u_t ← max(β₂ u_{t−1}, |g_t| + ε)
            θ_t ← θ_{t−1} − γ m_t / ((1 − β₁ᵗ) u_t)
        return θ_t

    u_t needs no bias correction (it is a max, not an average started at 0). ε sits inside the
    max (torch's form; the paper has no ε), so u_t ≥ ε and the division is always safe.

    Code names (also the trace's): g, m, u, lr_eff = γ / ((1 − β₁ᵗ) u_t), update, theta_prev,
    theta. State per parameter, torch's keys: 'step' (int), 'exp_avg' (m), 'exp_inf' (u).

    The element-wise formula is `kernels/optim_update.py::adamax_update` (NumPy twin, traced; Numba
    twin otherwise, unless `fused=False`). `foreach` is accepted for torch's signature and changes
    nothing.

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient (+ λθ)"),
        ("m", "m_t", "first moment: β₁ m_{t−1} + (1 − β₁) g_t"),
        ("u", "u_t", "infinity norm: max(β₂ u_{t−1}, |g_t| + ε)"),
        ("lr_eff", "γ_eff", "effective per-element lr γ / ((1 − β₁ᵗ) u_t)"),
        ("update", "Δθ_t", "−γ_eff ⊙ m_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 foreach: bool | None = None, *, maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        fused=fused)
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
                                             "exp_inf": np.zeros_like(p.data)}
                state["step"] += 1
                t = state["step"]
                bias_correction1 = 1 - β1**t
                self._update(group, p, optim_update.adamax_update, (p.data, g, state["exp_avg"], state["exp_inf"]),
                             dict(lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ, maximize=group["maximize"],
                                  bias_correction1=bias_correction1),
                             dict(t=t, lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ,
                                  bias_correction1=bias_correction1))
        return loss
