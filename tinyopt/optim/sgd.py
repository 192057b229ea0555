"""Stochastic gradient descent."""
from __future__ import annotations

from tinyopt.optim.optimizer import Optimizer


class SGD(Optimizer):
    r"""Plain stochastic gradient descent.

        input: γ (lr), θ₀ (params), f(θ) (objective)
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})
            θ_t ← θ_{t−1} − γ g_t
        return θ_t
    """

    def __init__(self, params, lr: float = 1e-3):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, dict(lr=lr))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr = group["lr"]
            for p in self._params_with_grad(group):
                g = p.grad
                p.data -= lr * g
        return loss
