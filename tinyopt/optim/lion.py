"""Lion: the sign of an interpolated momentum (Chen et al. 2023). torch has no Lion."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class Lion(Optimizer):
    r"""Lion (EvoLved Sign Momentum): every element moves by exactly ±γ (plus decoupled weight
    decay), in the direction of the sign of an interpolation between momentum and gradient.

    Algorithm (Chen et al. 2023, Algorithm 2; tinyopt's code uses these symbols)::

        input:  γ (lr, 1e-4), β₁, β₂ (betas, (0.9, 0.99)), λ (weight_decay, 0), θ₀ (params),
                f(θ) (objective), maximize
        initialize:  m₀ ← 0
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            c_t ← β₁ m_{t−1} + (1 − β₁) g_t           (the update direction's interpolation)
            θ_t ← θ_{t−1} − γ (sign(c_t) + λ θ_{t−1})
            m_t ← β₂ m_{t−1} + (1 − β₂) g_t           (the momentum, with a *different* β)
        return θ_t

    Two betas: the update interpolates with β₁ = 0.9, the momentum tracks with β₂ = 0.99, so
    the current gradient weighs more in the step than in the memory. sign(0) = 0. The paper
    recommends a learning rate 3-10x smaller than AdamW's and a weight decay 3-10x larger (the
    update has norm √n γ: larger than Adam's). Checked by hand against Algorithm 2
    (`tinyopt verify`, tests/test_optim_family.py); the paper's reference implementation has the
    same defaults.

    Code names (also the trace's): g, c, m, update, theta_prev, theta. State per parameter:
    'step' (int), 'exp_avg' (m; the name the paper's implementation uses).

    The element-wise formula is `kernels/optim_update.py::lion_update` (NumPy twin, traced; Numba
    twin otherwise, unless `fused=False`).

    Reference: Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu, Le, "Symbolic
    Discovery of Optimization Algorithms", NeurIPS 2023, https://arxiv.org/abs/2302.06675
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient"),
        ("c", "c_t", "β₁ m_{t−1} + (1 − β₁) g_t"),
        ("update", "Δθ_t", "−γ (sign(c_t) + λ θ_{t−1})"),
        ("m", "m_t", "momentum β₂ m_{t−1} + (1 − β₂) g_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0, *,
                 maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        h["betas"] = validation.check_betas(h["betas"], high_open=False)
        validation.check_nonnegative("weight_decay", h["weight_decay"])

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, (β1, β2), λ = group["lr"], group["betas"], group["weight_decay"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "exp_avg": np.zeros_like(p.data)}
                state["step"] += 1
                self._update(group, p, optim_update.lion_update, (p.data, g, state["exp_avg"]),
                             dict(lr=γ, beta1=β1, beta2=β2, weight_decay=λ, maximize=group["maximize"]),
                             dict(t=state["step"], lr=γ, beta1=β1, beta2=β2, weight_decay=λ))
        return loss
