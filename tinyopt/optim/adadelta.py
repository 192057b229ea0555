"""Adadelta: an adaptive method without a global learning rate (Zeiler 2012), torch.optim.Adadelta's semantics."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class Adadelta(Optimizer):
    r"""Adadelta: the step is g scaled by RMS(past steps) / RMS(past gradients), so it has the
    parameter's units and needs no learning rate (γ = 1 is the paper's method).

    Algorithm (torch.optim.Adadelta's; the defaults are torch's)::

        input:  γ (lr, 1.0), θ₀ (params), f(θ) (objective), ρ (rho, 0.9), λ (weight_decay),
                ε (eps, 1e-6), maximize
        initialize:  v₀ ← 0 (square avg.),  u₀ ← 0 (accumulated updates)
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            if λ ≠ 0:  g_t ← g_t + λ θ_{t−1}
            v_t ← ρ v_{t−1} + (1 − ρ) g_t²
            Δx_t ← √(u_{t−1} + ε) / √(v_t + ε) · g_t
            u_t ← ρ u_{t−1} + (1 − ρ) Δx_t²
            θ_t ← θ_{t−1} − γ Δx_t
        return θ_t

    The first steps are tiny (u₀ = 0: |Δx₁| ≈ √ε / √((1 − ρ) g₁²) · |g₁| ≈ 3·10⁻³ with the
    defaults) and grow as u accumulates; ε sits *inside* both square roots (the paper's form).

    Code names (also the trace's): g, v, delta (Δx_t), u, update, theta_prev, theta. State per
    parameter, torch's keys: 'step' (int), 'square_avg' (v), 'acc_delta' (u).

    The element-wise formula is `kernels/optim_update.py::adadelta_update` (NumPy twin, traced;
    Numba twin otherwise, unless `fused=False`). `foreach` is accepted for torch's signature and
    changes nothing.

    Reference: Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012,
    https://arxiv.org/abs/1212.5701
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient (+ λθ)"),
        ("v", "v_t", "square average ρ v_{t−1} + (1 − ρ) g_t²"),
        ("delta", "Δx_t", "√(u_{t−1} + ε) / √(v_t + ε) · g_t"),
        ("u", "u_t", "accumulated updates ρ u_{t−1} + (1 − ρ) Δx_t²"),
        ("update", "Δθ_t", "−γ Δx_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach: bool | None = None, *, maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_real("rho", h["rho"], low=0.0, high=1.0)
        validation.check_nonnegative("eps", h["eps"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, ρ, ε, λ = group["lr"], group["rho"], group["eps"], group["weight_decay"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "square_avg": np.zeros_like(p.data),
                                             "acc_delta": np.zeros_like(p.data)}
                state["step"] += 1
                self._update(group, p, optim_update.adadelta_update, (p.data, g, state["square_avg"], state["acc_delta"]),
                             dict(lr=γ, rho=ρ, eps=ε, weight_decay=λ, maximize=group["maximize"]),
                             dict(t=state["step"], lr=γ, rho=ρ, eps=ε, weight_decay=λ))
        return loss
