"""AdamW: Adam with decoupled weight decay."""
from __future__ import annotations

from tinyopt.optim.adam import Adam


class AdamW(Adam):
    r"""AdamW: Adam whose weight decay shrinks θ directly instead of being added to the gradient.

        input:  γ (lr), β₁, β₂ (betas), θ₀ (params), f(θ) (objective), λ (weight_decay, default 0.01),
                ε (eps), amsgrad, maximize
        initialize:  m₀ ← 0,  v₀ ← 0,  v₀_max ← 0
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            θ′_{t−1} ← θ_{t−1} (1 − γλ)                (decoupled decay: not seen by m, v)
            m_t ← β₁ m_{t−1} + (1 − β₁) g_t
            v_t ← β₂ v_{t−1} + (1 − β₂) g_t²
            m̂_t ← m_t / (1 − β₁ᵗ)
            if amsgrad:  v_t_max ← max(v_{t−1}_max, v_t);  v̂_t ← v_t_max / (1 − β₂ᵗ)
            else:        v̂_t ← v_t / (1 − β₂ᵗ)
            θ_t ← θ′_{t−1} − γ m̂_t / (√v̂_t + ε)
        return θ_t

    Why decoupled: with Adam's coupled L2 (g ← g + λθ) the decay term is divided by √v̂ like the
    rest of the gradient, so weights with large gradients are barely regularized. AdamW decays
    every weight by the same factor (1 − γλ) per step. Note torch multiplies by γ (the current
    learning rate) as well, so a scheduler also scales the decay; the paper's η_t schedule
    multiplier does the same.

    Everything else (options `bias_correction`, `eps_placement`, `fused`, the trace's names, the
    state keys) is as in `Adam`; this class is `Adam(..., decoupled_weight_decay=True)` with
    weight_decay defaulting to 0.01, like torch.optim.AdamW.

    Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    _decoupled_default = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 bias_correction: bool = True, eps_placement: str = "pytorch", fused: bool | None = None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True, bias_correction=bias_correction,
                         eps_placement=eps_placement, fused=fused)
