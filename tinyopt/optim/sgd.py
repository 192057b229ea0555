"""Stochastic gradient descent with momentum, dampening, L2 weight decay and Nesterov."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer

MOMENTUM_STYLES = ("pytorch", "sutskever")


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), torch.optim.SGD's semantics.

    Algorithm (``momentum_style="pytorch"``, the default and torch's)::

        input:  γ (lr), θ₀ (params), f(θ) (objective), λ (weight_decay), μ (momentum),
                τ (dampening), nesterov, maximize
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            if λ ≠ 0:  g_t ← g_t + λ θ_{t−1}           (coupled L2 decay)
            if μ ≠ 0:
                if t > 1:  b_t ← μ b_{t−1} + (1 − τ) g_t
                else:      b_t ← g_t                   (the first buffer is g itself, no dampening)
                if nesterov:  d_t ← g_t + μ b_t
                else:         d_t ← b_t
            else:  d_t ← g_t
            θ_t ← θ_{t−1} − γ d_t
        return θ_t

    ``momentum_style="sutskever"`` (Sutskever et al. 2013, and how many articles write it,
    ``v = βv + lr·g``) keeps the learning rate inside the buffer::

            if t > 1:  v_t ← μ v_{t−1} + (1 − τ) γ g_t
            else:      v_t ← γ g_t
            if nesterov:  θ_t ← θ_{t−1} − (μ v_t + γ g_t)
            else:         θ_t ← θ_{t−1} − v_t

    With a constant γ both styles give the same trajectory (v_t = γ b_t). They differ when γ
    changes (a scheduler): the pytorch style rescales the whole accumulated velocity at once, the
    Sutskever style applies the new γ to new gradients only. tutorials/01_optimizers.py shows it.

    Code names (also the trace's): g = g_t, buf = b_t (or v_t), d = d_t (recorded when μ ≠ 0),
    lr_eff = γ, update = θ_t − θ_{t−1}, theta_prev = θ_{t−1}, theta = θ_t. State per parameter:
    'momentum_buffer' (b or v, when μ ≠ 0) and 'step'.

    The formula is `kernels/optim_update.py::sgd_update`: once in NumPy (`sgd_update_reference`,
    which the trace records) and once in Numba. The Numba twin runs unless a trace is attached, the
    arrays are not contiguous, `fused=False`, or `TINYOPT_KERNELS=reference`. Both give torch's
    trajectory. Hyperparameters torch accepts but that break the formula are refused: μ > 1 (the
    buffer grows like μᵗ) and dampening outside [0, 1].

    Reference: Sutskever, Martens, Dahl, Hinton, "On the importance of initialization and
    momentum in deep learning", ICML 2013.
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient (+ λθ, sign-flipped if maximize)"),
        ("buf", "b_t", "momentum buffer (v_t in the Sutskever style: includes γ)"),
        ("d", "d_t", "direction stepped along (already times γ in the Sutskever style)"),
        ("lr_eff", "γ", "effective learning rate (the same for every element)"),
        ("update", "Δθ_t", "θ_t − θ_{t−1}"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 momentum_style: str = "pytorch", fused: bool | None = None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, momentum_style=momentum_style, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_momentum(h["momentum"])
        validation.check_dampening(h["dampening"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])
        validation.check_choice("momentum_style", h["momentum_style"], MOMENTUM_STYLES)
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, μ, τ, λ = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
            for p, g in params:
                state = self.state.setdefault(p, {"step": 0})
                state["step"] += 1
                first = state.get("momentum_buffer") is None
                if μ != 0 and first:
                    state["momentum_buffer"] = np.empty_like(p.data)
                buf = state["momentum_buffer"] if μ != 0 else np.empty(0, dtype=p.data.dtype)
                self._update(group, p, optim_update.sgd_update, (p.data, g, buf),
                             dict(lr=γ, momentum=μ, dampening=τ, weight_decay=λ, nesterov=group["nesterov"],
                                  maximize=group["maximize"], first_step=first,
                                  sutskever=group["momentum_style"] == "sutskever"),
                             dict(t=state["step"], lr=γ, momentum=μ, dampening=τ, weight_decay=λ))
        return loss
