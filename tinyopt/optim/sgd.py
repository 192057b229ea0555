"""Stochastic gradient descent with momentum, dampening, L2 weight decay and Nesterov."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import get_backend
from tinyopt.kernels import optim_update
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

    Code names (also the trace's): g = g_t, buf = b_t (or v_t), d = d_t, update = θ_t − θ_{t−1},
    theta_prev = θ_{t−1}, theta = θ_t. State per parameter: 'momentum_buffer' (b or v) and 'step'.

    `fused=None` (default) runs the Numba kernel `kernels/optim_update.py::sgd_update` when the
    kernel backend is "numba", the arrays are contiguous, and no trace is attached; `fused=False`
    always runs the NumPy formula below. Both give torch's trajectory.

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
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if momentum_style not in MOMENTUM_STYLES:
            raise ValueError(f"momentum_style must be one of {MOMENTUM_STYLES}, got {momentum_style!r}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, momentum_style=momentum_style, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group in self.param_groups:
            for p in self._params_with_grad(group):
                state = self.state.setdefault(p, {"step": 0})
                state["step"] += 1
                if self._can_fuse(group, p, state):
                    self._fused_step(p, group, state)
                else:
                    self._formula_step(p, group, state)
        return loss

    # ------------------------------------------------------------------ the formula (reference)
    def _formula_step(self, p, group, state):
        γ, μ, τ, λ = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        t = state["step"]
        theta_prev = p.data.copy() if self.tracing else None

        g = -p.grad.data if group["maximize"] else p.grad.data
        if λ != 0:
            g = g + λ * p.data
        buf = None
        if group["momentum_style"] == "pytorch":
            if μ != 0:
                if t > 1 and state.get("momentum_buffer") is not None:
                    buf = state["momentum_buffer"]
                    buf *= μ
                    buf += (1 - τ) * g
                else:
                    buf = state["momentum_buffer"] = np.array(g, copy=True)
                d = g + μ * buf if group["nesterov"] else buf
            else:
                d = g
            update = -γ * d
        else:  # sutskever: v_t ← μ v_{t−1} + (1 − τ) γ g_t; θ_t ← θ_{t−1} − v_t
            if μ != 0:
                if t > 1 and state.get("momentum_buffer") is not None:
                    buf = state["momentum_buffer"]
                    buf *= μ
                    buf += (1 - τ) * γ * g
                else:
                    buf = state["momentum_buffer"] = γ * g
                d = μ * buf + γ * g if group["nesterov"] else buf
                update = -d
            else:
                d = g
                update = -γ * d
        p.data += update

        if self.tracing:
            quantities = dict(theta_prev=theta_prev, g=g, d=d, lr_eff=np.float64(γ), update=update, theta=p.data)
            if buf is not None:
                quantities["buf"] = buf
            self._record(p, group, quantities, dict(t=t, lr=γ, momentum=μ, dampening=τ, weight_decay=λ))

    # ------------------------------------------------------------------ the fused kernel
    def _can_fuse(self, group, p, state) -> bool:
        if group["fused"] is False or self.tracing or group["momentum_style"] != "pytorch":
            return False
        if group["fused"] is None and get_backend() != "numba":
            return False
        arrays = [p.data, p.grad.data] + ([state["momentum_buffer"]] if "momentum_buffer" in state else [])
        return optim_update.fusable(*arrays)

    def _fused_step(self, p, group, state):
        μ = group["momentum"]
        first = "momentum_buffer" not in state or state["momentum_buffer"] is None
        if μ != 0 and first:
            state["momentum_buffer"] = np.empty_like(p.data)
        buf = state["momentum_buffer"] if μ != 0 else np.empty(0, dtype=p.data.dtype)
        optim_update.sgd_update(
            p.data.reshape(-1), p.grad.data.reshape(-1), buf.reshape(-1), float(group["lr"]), float(μ),
            float(group["dampening"]), float(group["weight_decay"]), bool(group["nesterov"]),
            bool(group["maximize"]), bool(first),
        )
