"""Adagrad: per-element learning rates from the sum of squared gradients."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad, torch.optim.Adagrad's semantics.

        input:  γ (lr), θ₀ (params), f(θ) (objective), λ (weight_decay), η (lr_decay),
                s₀ (initial_accumulator_value), ε (eps), maximize
        initialize:  sum₀ ← s₀  (every element)
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            γ̃_t ← γ / (1 + (t − 1) η)                 (clr)
            if λ ≠ 0:  g_t ← g_t + λ θ_{t−1}
            sum_t ← sum_{t−1} + g_t²
            θ_t ← θ_{t−1} − γ̃_t g_t / (√sum_t + ε)
        return θ_t

    γ_eff = γ̃_t / (√sum_t + ε) is the effective per-element learning rate; it only shrinks, which
    is Adagrad's strength on sparse features and its weakness on long non-convex runs (RMSprop
    and Adam replace the sum by a moving average). ε is added after the square root, as torch
    does (and as this project's seed texts write it: θ ← θ − α/(√m_t + ε) ∇J).

    Code names (also the trace's): g, clr = γ̃_t, sum = sum_t, lr_eff, update, theta_prev, theta.
    State per parameter, torch's keys: 'step' (int), 'sum'. Like torch, the state is created in
    `__init__` (so `initial_accumulator_value` is visible before the first step).

    The element-wise formula is `kernels/optim_update.py::adagrad_update` (NumPy twin, traced;
    Numba twin otherwise, unless `fused=False`). `foreach` is accepted for torch's signature and
    changes nothing (tinyopt has no multi-tensor path; the result is the same).

    Reference: Duchi, Hazan, Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 2011.
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient (+ λθ)"),
        ("sum", "sum_t", "sum of squared gradients (from s₀)"),
        ("lr_eff", "γ_eff", "effective per-element lr γ̃_t / (√sum_t + ε)"),
        ("update", "Δθ_t", "−γ_eff ⊙ g_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: bool | None = None, *,
                 maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        fused=fused)
        super().__init__(params, defaults)  # calls add_param_group below for every group

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_nonnegative("lr_decay", h["lr_decay"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])
        validation.check_nonnegative("initial_accumulator_value", h["initial_accumulator_value"])
        validation.check_nonnegative("eps", h["eps"])

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (see Optimizer) and create its parameters' state at once, like torch."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self._init_state(p, group)

    def _init_state(self, p, group):
        if p not in self.state:
            self.state[p] = {"step": 0, "sum": np.full_like(p.data, group["initial_accumulator_value"])}

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, η, λ, ε = group["lr"], group["lr_decay"], group["weight_decay"], group["eps"]
            for p, g in params:
                state = self.state[p]
                state["step"] += 1
                t = state["step"]
                clr = γ / (1 + (t - 1) * η)
                self._update(group, p, optim_update.adagrad_update, (p.data, g, state["sum"]),
                             dict(clr=clr, weight_decay=λ, eps=ε, maximize=group["maximize"]),
                             dict(t=t, lr=γ, lr_decay=η, clr=clr, eps=ε, weight_decay=λ))
        return loss
