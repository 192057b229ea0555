"""LAMB: layer-wise adaptive moments for large batches (You et al. 2019). torch has no LAMB."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class LAMB(Optimizer):
    r"""LAMB: Adam's update direction, rescaled per layer so that its norm is the layer's weight
    norm times γ (a "trust ratio"), which keeps every layer's relative change comparable at very
    large batch sizes.

    Algorithm (You et al. 2019, Algorithm 2, for one layer = one parameter tensor; tinyopt's code
    uses these symbols)::

        input:  γ (lr, 1e-3), β₁, β₂ (betas, (0.9, 0.999)), ε (eps, 1e-6), λ (weight_decay, 0),
                φ (scaling function: φ(z) = min(max(z, γ_l), γ_u), `phi_bounds=(γ_l, γ_u)`,
                the identity by default), θ₀ (params), f(θ) (objective), maximize
        initialize:  m₀ ← 0,  v₀ ← 0
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            m_t ← β₁ m_{t−1} + (1 − β₁) g_t
            v_t ← β₂ v_{t−1} + (1 − β₂) g_t²
            m̂_t ← m_t / (1 − β₁ᵗ),  v̂_t ← v_t / (1 − β₂ᵗ)    (bias_correction=False: m̂ = m, v̂ = v)
            r_t ← m̂_t / (√v̂_t + ε)                   (Adam's direction)
            u_t ← r_t + λ θ_{t−1}                     (decoupled weight decay, inside the ratio)
            q_t ← φ(‖θ_{t−1}‖) / ‖u_t‖               (the trust ratio; 1 if either norm is 0)
            θ_t ← θ_{t−1} − γ q_t u_t
        return θ_t

    The norms are Euclidean norms over the whole tensor (the paper's "layer"); a bias gets its own
    ratio. The first version of the paper had no bias correction; Algorithm 2 of the final version
    has it (the default here); `bias_correction=False` gives the other. Checked by hand against
    Algorithm 2 (`tinyopt verify`, tests/test_optim_family.py).

    Code names (also the trace's): g, m, v, m_hat, v_hat, r, u, trust_ratio (q_t), update,
    theta_prev, theta. State per parameter: 'step' (int), 'exp_avg' (m), 'exp_avg_sq' (v).

    The formula is `kernels/optim_update.py::lamb_update` (NumPy twin, traced; Numba twin in two
    passes otherwise, unless `fused=False`); both accumulate the two norms in float64.

    Reference: You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer, Hsieh, "Large
    Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020,
    https://arxiv.org/abs/1904.00962
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient"),
        ("m", "m_t", "first moment: β₁ m_{t−1} + (1 − β₁) g_t"),
        ("v", "v_t", "second moment: β₂ v_{t−1} + (1 − β₂) g_t²"),
        ("m_hat", "m̂_t", "m_t / (1 − β₁ᵗ)"),
        ("v_hat", "v̂_t", "v_t / (1 − β₂ᵗ)"),
        ("r", "r_t", "Adam's direction m̂_t / (√v̂_t + ε)"),
        ("u", "u_t", "r_t + λ θ_{t−1}"),
        ("trust_ratio", "q_t", "φ(‖θ_{t−1}‖) / ‖u_t‖ (one number per tensor)"),
        ("update", "Δθ_t", "−γ q_t u_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
                 *, bias_correction: bool = True, phi_bounds=None, maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                        phi_bounds=phi_bounds, maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_nonnegative("eps", h["eps"])
        h["betas"] = validation.check_betas(h["betas"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])
        if h["phi_bounds"] is not None:
            low, high = validation.check_pair("phi_bounds", h["phi_bounds"])
            validation.check_nonnegative("phi_bounds[0]", low)
            validation.check_real("phi_bounds[1]", high, low=low, why="φ(z) = min(max(z, γ_l), γ_u) needs γ_l <= γ_u")
            h["phi_bounds"] = (float(low), float(high))

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, (β1, β2), ε, λ = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            phi_low, phi_high = group["phi_bounds"] or (0.0, math.inf)
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "exp_avg": np.zeros_like(p.data),
                                             "exp_avg_sq": np.zeros_like(p.data)}
                state["step"] += 1
                t = state["step"]
                bias_correction1, bias_correction2 = (1 - β1**t, 1 - β2**t) if group["bias_correction"] else (1.0, 1.0)
                self._update(group, p, optim_update.lamb_update, (p.data, g, state["exp_avg"], state["exp_avg_sq"]),
                             dict(lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ, maximize=group["maximize"],
                                  bias_correction1=bias_correction1, bias_correction2=bias_correction2,
                                  phi_low=phi_low, phi_high=phi_high),
                             dict(t=t, lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ,
                                  bias_correction1=bias_correction1, bias_correction2=bias_correction2))
        return loss
