"""Full-batch gradient descent, the method the lessons start from."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim.optimizer import Optimizer


class GD(Optimizer):
    r"""Gradient descent on the full objective.

        input:  γ (lr), θ₀ (params), f(θ) = (1/N) Σᵢ ℓ(θ; xᵢ) (the loss over the whole data set)
        for t = 1, 2, ...:
            g_t ← ∇_θ f(θ_{t−1})                 (every example, every step)
            θ_t ← θ_{t−1} − γ g_t
        return θ_t

    The update is SGD's without momentum; what differs is the gradient you hand it. GD assumes
    `.grad` is the gradient of the *whole* objective (the loss over all examples, or a closed-form
    function like Rosenbrock), so every step is deterministic: the classical results hold (on an
    L-smooth convex f it converges for γ ≤ 1/L, on a quadratic with Hessian eigenvalues λᵢ it
    diverges for γ > 2/max λᵢ). With a mini-batch gradient the same update is SGD.

    Code names (also the trace's): g = g_t, lr_eff = γ, update = θ_t − θ_{t−1}, theta = θ_t.
    `maximize=True` ascends instead (g_t ← −∇f). State per parameter: 'step'. The update is SGD's
    formula with μ = 0 (`kernels/optim_update.py::sgd_update`), not a second copy of it.
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "full-batch gradient"),
        ("lr_eff", "γ", "learning rate (the same for every element)"),
        ("update", "Δθ_t", "−γ g_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-2, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, maximize=maximize))

    def step(self, closure=None):
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ = group["lr"]
            for p, g in params:
                state = self.state.setdefault(p, {"step": 0})
                state["step"] += 1
                self._update(group, p, optim_update.sgd_update, (p.data, g, np.empty(0, dtype=p.data.dtype)),
                             dict(lr=γ, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                                  maximize=group["maximize"], first_step=False),
                             dict(t=state["step"], lr=γ))
        return loss


__all__ = ["GD"]
