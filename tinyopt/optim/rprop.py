"""Rprop: resilient backpropagation, sign-based steps with per-element step sizes (torch.optim.Rprop)."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class Rprop(Optimizer):
    r"""Rprop: each element moves by its own step size in the direction of −sign(g); the step size
    grows while the gradient keeps its sign and shrinks when it flips.

    Algorithm (torch.optim.Rprop's, the "Rprop⁻ with backtracking-free sign reset"; the defaults
    are torch's)::

        input:  θ₀ (params), f(θ) (objective), γ (lr: the initial step size),
                η₋, η₊ (etas, (0.5, 1.2)), Γ_min, Γ_max (step_sizes, (1e-6, 50)), maximize
        initialize:  g⁰_prev ← 0,  s₀ ← γ (every element)
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            σ ← sign(g_t · g_prev)
            η ← η₊ where σ > 0,  η₋ where σ < 0,  1 where σ = 0
            s_t ← clamp(s_{t−1} · η, Γ_min, Γ_max)
            g_t ← 0 where σ < 0                       (no move after a sign flip, and no test next step)
            θ_t ← θ_{t−1} − sign(g_t) · s_t
            g_prev ← g_t
        return θ_t

    The gradient's size never enters the step, only its sign: Rprop is meant for full-batch
    gradients (mini-batch noise flips signs and shrinks every step size). The learning rate sets
    the *initial* step size only: changing `lr` later (a scheduler) does not change the steps,
    as in torch.

    Code names (also the trace's): g (after the reset), eta (η), step_size (s_t), update,
    theta_prev, theta. State per parameter, torch's keys: 'step' (int), 'prev' (g_prev),
    'step_size' (s).

    The element-wise formula is `kernels/optim_update.py::rprop_update` (NumPy twin, traced; Numba
    twin otherwise, unless `fused=False`).

    Reference: Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning:
    The RPROP Algorithm", ICNN 1993.
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient, set to 0 where its sign flipped"),
        ("eta", "η", "η₊ (same sign), η₋ (sign flip) or 1"),
        ("step_size", "s_t", "clamp(s_{t−1} · η, Γ_min, Γ_max)"),
        ("update", "Δθ_t", "−sign(g_t) ⊙ s_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        etaminus, etaplus = validation.check_pair("etas", h["etas"])
        for name, eta in (("etaminus", etaminus), ("etaplus", etaplus)):
            validation.check_real(name, eta, what="eta values")
        if not 0.0 < etaminus < 1.0 < etaplus:
            raise ValueError(f"Invalid eta values: {etaminus}, {etaplus} (need 0 < η₋ < 1 < η₊)")
        low, high = validation.check_pair("step_sizes", h["step_sizes"])
        validation.check_nonnegative("step_size_min", low)
        validation.check_real("step_size_max", high, low=low,
                              why="step_sizes = (Γ_min, Γ_max) bounds every element's step")

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            etaminus, etaplus = group["etas"]
            step_size_min, step_size_max = group["step_sizes"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "prev": np.zeros_like(p.data),
                                             "step_size": np.full_like(p.data, group["lr"])}
                state["step"] += 1
                self._update(group, p, optim_update.rprop_update, (p.data, g, state["prev"], state["step_size"]),
                             dict(etaminus=etaminus, etaplus=etaplus, step_size_min=step_size_min,
                                  step_size_max=step_size_max, maximize=group["maximize"]),
                             dict(t=state["step"], lr=group["lr"]))
        return loss
