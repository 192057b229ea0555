"""Adafactor: factored second moments, sublinear memory (Shazeer & Stern 2018), torch.optim.Adafactor's semantics."""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer


class Adafactor(Optimizer):
    r"""Adafactor: Adam-like steps whose second moment of an n×m matrix is stored as a row factor
    R (n×1) and a column factor C (1×m) instead of n·m numbers; relative step sizes (scaled by
    the parameter's RMS) and update clipping instead of a learning rate schedule and momentum.

    Algorithm (torch.optim.Adafactor's; the defaults are torch's)::

        input:  γ (lr, 1e-2), τ (beta2_decay, −0.8), ε₁, ε₂ (eps, (None → the dtype's
                machine epsilon, 1e-3)), d (clipping threshold, 1.0), λ (weight_decay, 0),
                θ₀ (params), f(θ) (objective), maximize
        initialize:  R₀ ← 0 (row factor),  C₀ ← 0 (column factor),  V₀ ← 0 (vectors)
        for t = 1, 2, ...:
            G_t ← ∇_θ f_t(θ_{t−1})                    (G_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            β̂₂_t ← 1 − t^τ
            ρ_t ← min(γ, 1/√t)
            α_t ← max(ε₂, RMS(θ_{t−1})) ρ_t
            θ_{t−1} ← θ_{t−1} (1 − γλ)
            if dim(G_t) > 1 (factored over the last two dimensions):
                R_t ← β̂₂_t R_{t−1} + (1 − β̂₂_t) mean_cols(G_t ⊙ G_t)       (n×1)
                C_t ← β̂₂_t C_{t−1} + (1 − β̂₂_t) mean_rows(G_t ⊙ G_t)       (1×m)
                V̂_t ← R_t C_t / max(mean(R_t), ε₁)
            else:
                V̂_t ← β̂₂_t V̂_{t−1} + (1 − β̂₂_t) G_t ⊙ G_t
            U_t ← G_t / max(√V̂_t, ε₁)
            Û_t ← U_t / max(1, RMS(U_t)/d)
            θ_t ← θ_{t−1} − α_t Û_t
        return θ_t

    RMS(x) = ‖x‖₂/√n. Where torch deviates from the paper, so does this (torch's documented
    choices): γ caps the relative step ρ_t (the paper uses 0.01) and scales the decoupled weight
    decay; ε₁ is applied in V̂'s denominator and in U_t instead of being added to G² in R and C;
    R, C are means, not sums, of G² (equivalent, and safer for large matrices). β̂₂_t = 1 − t^{−0.8}
    is 0 at t = 1 (the first V̂ is G₁² itself) and rises towards 1.

    Code names (also the trace's): g (G_t), beta2_hat (β̂₂_t), rho (ρ_t), alpha (α_t), v_hat (V̂_t),
    u (U_t), clip (max(1, RMS(U_t)/d)), u_hat (Û_t), update, theta_prev, theta. State per
    parameter, torch's keys: 'step' (int), 'row_var' (R, shape (..., n, 1)), 'col_var' (C, shape
    (..., 1, m)) for ≥ 2-D parameters, 'variance' otherwise.

    The formula is `kernels/optim_update.py::adafactor_update` (NumPy twin, traced; Numba twin in
    three passes over the parameter otherwise, unless `fused=False`: faster than the NumPy
    twin, which makes a temporary for every expression). The Numba twin accumulates its sums
    (row and column means, the two RMS values) in float64, the NumPy twin in the arrays' dtype.

    Reference: Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
    ICML 2018, https://arxiv.org/abs/1804.04235
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "G_t", "gradient"),
        ("beta2_hat", "β̂₂_t", "1 − t^τ"),
        ("rho", "ρ_t", "relative step size min(γ, 1/√t)"),
        ("alpha", "α_t", "max(ε₂, RMS(θ_{t−1})) ρ_t"),
        ("v_hat", "V̂_t", "second-moment estimate R_t C_t / max(mean(R_t), ε₁) (or the vector's V̂)"),
        ("u", "U_t", "G_t / max(√V̂_t, ε₁)"),
        ("clip", "c_t", "max(1, RMS(U_t)/d)"),
        ("u_hat", "Û_t", "U_t / max(1, RMS(U_t)/d)"),
        ("update", "Δθ_t", "−α_t Û_t (after the decay θ(1 − γλ))"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-2, beta2_decay: float = -0.8, eps=(None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, *, maximize: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, maximize=maximize,
                        fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_real("beta2_decay", h["beta2_decay"], high=0.0, why="β̂₂_t = 1 − t^τ must not decrease")
        eps1, eps2 = validation.check_pair("eps", h["eps"])
        if eps1 is not None:
            validation.check_nonnegative("epsilon1", eps1)
        validation.check_nonnegative("epsilon2", eps2)
        h["eps"] = (eps1, eps2)
        validation.check_real("d", h["d"], low=1.0, what="clipping threshold d")
        validation.check_nonnegative("weight_decay", h["weight_decay"])

    def _state_shape(self, p, key):
        if key in ("row_var", "col_var") and p.ndim > 1:
            shape = list(p.shape)
            shape[-1 if key == "row_var" else -2] = 1
            return tuple(shape)
        return p.shape

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            eps1, eps2 = group["eps"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": 0}
                    if p.ndim > 1:
                        state["row_var"] = np.zeros(self._state_shape(p, "row_var"), dtype=p.data.dtype)
                        state["col_var"] = np.zeros(self._state_shape(p, "col_var"), dtype=p.data.dtype)
                    else:
                        state["variance"] = np.zeros_like(p.data)
                state["step"] += 1
                t = state["step"]
                hyper = dict(lr=group["lr"], beta2_decay=group["beta2_decay"],
                             eps1=float(np.finfo(p.data.dtype).eps) if eps1 is None else eps1, eps2=eps2, d=group["d"],
                             weight_decay=group["weight_decay"], maximize=group["maximize"], step=t)
                unused = np.empty(0, dtype=p.data.dtype)
                arrays = (p.data, g, state.get("row_var", unused), state.get("col_var", unused),
                          state.get("variance", unused))
                self._update(group, p, optim_update.adafactor_update, arrays, hyper,
                             dict(t=t, lr=group["lr"], weight_decay=group["weight_decay"]))
        return loss
