"""RMSprop: divide the gradient by a running RMS of recent gradients."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
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

    The element-wise formula is `kernels/optim_update.py::rmsprop_update` (NumPy twin, traced;
    Numba twin otherwise, unless `fused=False`). μ > 1 is refused (torch accepts it; the buffer
    then grows like μᵗ).

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
                 maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_nonnegative("eps", h["eps"])
        validation.check_momentum(h["momentum"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])
        validation.check_nonnegative("alpha", h["alpha"])

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, α, ε, λ, μ = group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0, "square_avg": np.zeros_like(p.data)}
                if μ > 0 and "momentum_buffer" not in state:
                    state["momentum_buffer"] = np.zeros_like(p.data)
                if group["centered"] and "grad_avg" not in state:
                    state["grad_avg"] = np.zeros_like(p.data)
                state["step"] += 1
                unused = np.empty(0, dtype=p.data.dtype)
                self._update(group, p, optim_update.rmsprop_update,
                             (p.data, g, state["square_avg"], state.get("grad_avg", unused) if group["centered"] else unused,
                              state["momentum_buffer"] if μ > 0 else unused),
                             dict(lr=γ, alpha=α, eps=ε, weight_decay=λ, momentum=μ, centered=group["centered"],
                                  maximize=group["maximize"]),
                             dict(t=state["step"], lr=γ, alpha=α, eps=ε, weight_decay=λ, momentum=μ))
        return loss
