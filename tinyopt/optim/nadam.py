"""NAdam: Adam with Nesterov momentum (Dozat 2016), with torch.optim.NAdam's semantics."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class NAdam(Optimizer):
    r"""NAdam: Adam whose first moment looks one step ahead, with a momentum schedule μ_t.

    Algorithm (torch.optim.NAdam's; the defaults are torch's)::

        input:  γ (lr, 2e-3), β₁, β₂ (betas), θ₀ (params), f(θ) (objective), λ (weight_decay),
                ψ (momentum_decay, 4e-3), ε (eps), decoupled_weight_decay, maximize
        initialize:  m₀ ← 0,  v₀ ← 0,  Π₀ ← 1 (mu_product)
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            if λ ≠ 0:
                if decoupled:  θ_{t−1} ← θ_{t−1} (1 − γλ)          (NAdamW)
                else:          g_t ← g_t + λ θ_{t−1}
            μ_t ← β₁ (1 − ½ · 0.96^{t ψ}),   μ_{t+1} ← β₁ (1 − ½ · 0.96^{(t+1) ψ})
            Π_t ← Π_{t−1} μ_t                         (∏_{i ≤ t} μ_i)
            m_t ← β₁ m_{t−1} + (1 − β₁) g_t
            v_t ← β₂ v_{t−1} + (1 − β₂) g_t²
            m̂_t ← μ_{t+1} m_t / (1 − Π_t μ_{t+1}) + (1 − μ_t) g_t / (1 − Π_t)
            v̂_t ← v_t / (1 − β₂ᵗ)
            θ_t ← θ_{t−1} − γ m̂_t / (√v̂_t + ε)
        return θ_t

    m̂_t mixes the momentum one step ahead (μ_{t+1} m_t) with the current gradient ((1 − μ_t) g_t):
    Nesterov's look-ahead written into Adam's bias-corrected first moment. The momentum schedule
    μ_t rises from ≈ β₁/2 towards β₁ (ψ = 4e-3 makes it slow: μ_t = 0.9·(1 − ½·0.96^{0.004 t})).

    Code names (also the trace's): g, m, v, m_hat, v_hat, lr_eff = γ / (√v̂_t + ε), update,
    theta_prev, theta; scalars mu_t, mu_next, mu_product (Π_t). State per parameter, torch's keys:
    'step' (int), 'mu_product' (Π_t, a Python float: torch keeps a scalar tensor of the default
    dtype, float32 unless `torch.set_default_dtype(torch.float64)`), 'exp_avg' (m), 'exp_avg_sq' (v).

    The element-wise formula is `kernels/optim_update.py::nadam_update` (NumPy twin, traced; Numba
    twin otherwise, unless `fused=False`); this class computes μ_t, μ_{t+1}, Π_t and the two
    coefficients c_m = μ_{t+1}/(1 − Π_t μ_{t+1}), c_g = (1 − μ_t)/(1 − Π_t).

    Reference: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop;
    https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient (+ λθ unless decoupled)"),
        ("m", "m_t", "first moment: β₁ m_{t−1} + (1 − β₁) g_t"),
        ("v", "v_t", "second moment: β₂ v_{t−1} + (1 − β₂) g_t²"),
        ("m_hat", "m̂_t", "μ_{t+1} m_t/(1 − Π_t μ_{t+1}) + (1 − μ_t) g_t/(1 − Π_t)"),
        ("v_hat", "v̂_t", "v_t / (1 − β₂ᵗ)"),
        ("lr_eff", "γ_eff", "effective per-element lr γ / (√v̂_t + ε)"),
        ("update", "Δθ_t", "−γ_eff ⊙ m̂_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *, maximize: bool = False,
                 fused: bool | None = None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_nonnegative("eps", h["eps"])
        h["betas"] = validation.check_betas(h["betas"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])
        validation.check_nonnegative("momentum_decay", h["momentum_decay"])

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, (β1, β2), ε, λ, ψ = group["lr"], group["betas"], group["eps"], group["weight_decay"], group["momentum_decay"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "mu_product": 1.0, "exp_avg": np.zeros_like(p.data),
                                             "exp_avg_sq": np.zeros_like(p.data)}
                state["step"] += 1
                t = state["step"]
                mu = β1 * (1.0 - 0.5 * 0.96 ** (t * ψ))
                mu_next = β1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * ψ))
                state["mu_product"] *= mu
                mu_product = state["mu_product"]
                bias_correction2 = 1 - β2**t
                self._update(group, p, optim_update.nadam_update, (p.data, g, state["exp_avg"], state["exp_avg_sq"]),
                             dict(lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ,
                                  decoupled=group["decoupled_weight_decay"], maximize=group["maximize"],
                                  coef_m=mu_next / (1.0 - mu_product * mu_next), coef_g=(1.0 - mu) / (1.0 - mu_product),
                                  bias_correction2=bias_correction2),
                             dict(t=t, lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ, mu_t=mu, mu_next=mu_next,
                                  mu_product=mu_product, bias_correction2=bias_correction2))
        return loss
