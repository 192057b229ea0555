"""RMSprop: divide the gradient by a running RMS of recent gradients."""
from __future__ import annotations

import numpy as np

from tinyopt.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop, torch.optim.RMSprop's semantics.

        input:  γ (lr), α (alpha, smoothing), θ₀ (params), f(θ) (objective), λ (weight_decay),
                μ (momentum), ε (eps), centered, maximize
        initialize:  v₀ ← 0 (square average),  b₀ ← 0 (momentum buffer),  ḡ₀ ← 0 (gradient average)
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            if λ ≠ 0:  g_t ← g_t + λ θ_{t−1}
            v_t ← α v_{t−1} + (1 − α) g_t²
            if centered:
                ḡ_t ← α ḡ_{t−1} + (1 − α) g_t
                ṽ_t ← v_t − ḡ_t²                      (a running variance instead of a second moment)
            else:
                ṽ_t ← v_t
            if μ > 0:
                b_t ← μ b_{t−1} + g_t / (√ṽ_t + ε)
                θ_t ← θ_{t−1} − γ b_t
            else:
                θ_t ← θ_{t−1} − γ g_t / (√ṽ_t + ε)
        return θ_t

    γ_eff = γ / (√ṽ_t + ε) is the effective per-element learning rate applied to g_t. Conventions
    that differ elsewhere (stated, because they silently change results): ε is added *after* the
    square root (TensorFlow/Keras put it inside: √(v + ε)); v₀ = 0, not 1 (TF1's default); there is
    no bias correction, so the first steps are large: at t = 1, |Δθ| ≈ γ / √(1 − α) = 10 γ for
    α = 0.99.

    Code names (also the trace's): g, v = v_t, g_avg = ḡ_t, v_tilde = ṽ_t, buf = b_t, lr_eff,
    update, theta_prev, theta. State per parameter, torch's keys: 'step' (int), 'square_avg' (v),
    'grad_avg' (ḡ, if centered), 'momentum_buffer' (b, if μ > 0).

    Reference: Hinton, Srivastava, Swersky, "Neural Networks for Machine Learning", lecture 6e
    (2012); Graves, "Generating Sequences With Recurrent Neural Networks", 2013 (centered).
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient (+ λθ)"),
        ("v", "v_t", "square average α v_{t−1} + (1 − α) g_t²"),
        ("g_avg", "ḡ_t", "gradient average (centered)"),
        ("v_tilde", "ṽ_t", "v_t − ḡ_t² (centered) or v_t"),
        ("lr_eff", "γ_eff", "effective per-element lr γ / (√ṽ_t + ε)"),
        ("buf", "b_t", "momentum buffer μ b_{t−1} + g_t / (√ṽ_t + ε)"),
        ("update", "Δθ_t", "θ_t − θ_{t−1}"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group in self.param_groups:
            γ, α, ε, λ, μ = group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
            for p in self._params_with_grad(group):
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "square_avg": np.zeros_like(p.data)}
                    if μ > 0:
                        state["momentum_buffer"] = np.zeros_like(p.data)
                    if group["centered"]:
                        state["grad_avg"] = np.zeros_like(p.data)
                state["step"] += 1
                θ = p.data
                theta_prev = θ.copy() if self.tracing else None

                g = -p.grad.data if group["maximize"] else p.grad.data
                if λ != 0:
                    g = g + λ * θ
                v = state["square_avg"]
                v *= α
                v += (1 - α) * g * g
                g_avg = None
                if group["centered"]:
                    g_avg = state["grad_avg"]
                    g_avg *= α
                    g_avg += (1 - α) * g
                    v_tilde = v - g_avg * g_avg
                else:
                    v_tilde = v
                lr_eff = γ / (np.sqrt(v_tilde) + ε)
                buf = None
                if μ > 0:
                    buf = state.setdefault("momentum_buffer", np.zeros_like(θ))
                    buf *= μ
                    buf += g / (np.sqrt(v_tilde) + ε)
                    update = -γ * buf
                else:
                    update = -lr_eff * g
                θ += update

                if self.tracing:
                    quantities = dict(theta_prev=theta_prev, g=g, v=v, v_tilde=v_tilde, lr_eff=lr_eff,
                                      update=update, theta=θ)
                    if g_avg is not None:
                        quantities["g_avg"] = g_avg
                    if buf is not None:
                        quantities["buf"] = buf
                    self._record(p, group, quantities,
                                 dict(t=state["step"], lr=γ, alpha=α, eps=ε, weight_decay=λ, momentum=μ))
        return loss
