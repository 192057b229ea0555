"""ASGD: averaged stochastic gradient descent (Polyak & Juditsky 1992), torch.optim.ASGD's semantics."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class ASGD(Optimizer):
    r"""ASGD: SGD with a decaying step size η_t, plus a running average ax of the iterates that
    starts at step t₀ (Polyak–Ruppert averaging; the average is the estimate to use).

    Algorithm (torch.optim.ASGD's; the defaults are torch's)::

        input:  γ (lr, 1e-2), θ₀ (params), f(θ) (objective), λ_d (lambd, 1e-4), α (alpha, 0.75),
                t₀ (t0, 1e6), λ (weight_decay), maximize
        initialize:  η₀ ← γ,  μ₀ ← 1,  ax₀ ← 0
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            if λ ≠ 0:  g_t ← g_t + λ θ_{t−1}
            θ_t ← θ_{t−1} (1 − λ_d η_{t−1}) − η_{t−1} g_t
            if μ_{t−1} ≠ 1:  ax_t ← ax_{t−1} + μ_{t−1} (θ_t − ax_{t−1})
            else:            ax_t ← θ_t
            η_t ← γ / (1 + λ_d γ t)^α
            μ_t ← 1 / max(1, t − t₀)
        return θ_t (and the average ax_t)

    `opt.state[p]["ax"]` is the averaged parameter: copy it into the model to evaluate. Until
    t > t₀ + 1, μ = 1 and ax simply follows θ (with the default t₀ = 10⁶ that is the whole run of
    most experiments: lower t₀ to average).

    Code names (also the trace's): g, ax, theta_prev, theta; scalars eta (η_{t−1}, the step size
    used), mu (μ_{t−1}). State per parameter, torch's keys: 'step' (int), 'eta', 'mu' (Python
    floats: torch keeps scalar tensors of the default dtype, float32 unless
    `torch.set_default_dtype(torch.float64)`), 'ax'.

    The element-wise formula is `kernels/optim_update.py::asgd_update` (NumPy twin, traced; Numba
    twin otherwise, unless `fused=False`). `foreach` is accepted for torch's signature and changes
    nothing.

    Reference: Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging",
    SIAM J. Control Optim. 30(4), 1992.
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient (+ λθ)"),
        ("ax", "ax_t", "running average of the iterates (from t₀ on)"),
        ("theta", "θ_t", "θ_{t−1} (1 − λ_d η) − η g_t"),
    ]

    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0, foreach: bool | None = None, maximize: bool = False, *,
                 fused: bool | None = None):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])
        validation.check_nonnegative("lambd", h["lambd"], why="θ is multiplied by 1 − λ_d η")
        validation.check_nonnegative("alpha", h["alpha"], why="η_t = γ / (1 + λ_d γ t)^α must not grow")
        t0 = h["t0"]
        if isinstance(t0, bool) or not isinstance(t0, (int, float)) or math.isnan(t0) or t0 < 0:
            raise ValueError(f"Invalid t0 value: {t0} (the step at which averaging starts: >= 0, inf for never)")

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, λd, α, t0, λ = group["lr"], group["lambd"], group["alpha"], group["t0"], group["weight_decay"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "eta": float(γ), "mu": 1.0, "ax": np.zeros_like(p.data)}
                state["step"] += 1
                t, eta, mu = state["step"], state["eta"], state["mu"]
                self._update(group, p, optim_update.asgd_update, (p.data, g, state["ax"]),
                             dict(eta=eta, mu=mu, lambd=λd, weight_decay=λ, maximize=group["maximize"]),
                             dict(t=t, lr=γ, eta=eta, mu=mu, lambd=λd, weight_decay=λ))
                state["eta"] = γ / ((1 + λd * γ * t) ** α)
                state["mu"] = 1 / max(1, t - t0)
        return loss
