"""Adam (and AMSGrad), with torch.optim.Adam's semantics and the seed articles' variants as options."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.kernels import get_backend
from tinyopt.kernels import optim_update
from tinyopt.optim.optimizer import Optimizer

EPS_PLACEMENTS = ("pytorch", "keras")


class Adam(Optimizer):
    r"""Adam: momentum on the gradient (m) divided by a running RMS of the gradient (√v).

    Algorithm (the defaults: torch.optim.Adam's)::

        input:  γ (lr), β₁, β₂ (betas), θ₀ (params), f(θ) (objective), λ (weight_decay),
                ε (eps), amsgrad, maximize
        initialize:  m₀ ← 0,  v₀ ← 0,  v₀_max ← 0
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})                    (g_t ← −∇_θ f_t(θ_{t−1}) if maximize)
            if decoupled:  θ′_{t−1} ← θ_{t−1} (1 − γλ)  (AdamW)
            else:          θ′_{t−1} ← θ_{t−1};  if λ ≠ 0: g_t ← g_t + λ θ_{t−1}   (coupled L2, Adam)
            m_t ← β₁ m_{t−1} + (1 − β₁) g_t
            v_t ← β₂ v_{t−1} + (1 − β₂) g_t²
            m̂_t ← m_t / (1 − β₁ᵗ)
            if amsgrad:  v_t_max ← max(v_{t−1}_max, v_t);  v̂_t ← v_t_max / (1 − β₂ᵗ)
            else:        v̂_t ← v_t / (1 − β₂ᵗ)
            θ_t ← θ′_{t−1} − γ m̂_t / (√v̂_t + ε)
        return θ_t

    All operations are element-wise; γ_eff = γ / (√v̂_t + ε) is the effective per-element learning
    rate (the step is −γ_eff ⊙ m̂_t). Note ε is added *after* the square root of the
    bias-corrected v̂_t, as torch does.

    Variants, as options (tutorials/01_optimizers.py compares them with the default):

    - ``bias_correction=False``: m̂_t ← m_t, v̂_t ← v_t (the form in many articles, including this
      project's seed texts: θ ← θ − α m_t / (√v_t + ε)). Because m₀ = v₀ = 0 bias both towards
      0, the first step is γ (1 − β₁)/√(1 − β₂) · sign(g₁) (≈ 3.16 γ with the default betas)
      instead of γ · sign(g₁), and the ratio drifts to 1 only after ~1/(1 − β₂) steps.
    - ``eps_placement="keras"``: Keras/TensorFlow's form, θ_t ← θ_{t−1} − γ √(1 − β₂ᵗ)/(1 − β₁ᵗ)
      · m_t / (√v_t + ε): ε is added to the *uncorrected* √v_t. It equals the default with ε
      replaced by ε / √(1 − β₂ᵗ) (31.6 ε at t = 1 with β₂ = 0.999). Keras' default ε is 1e-7,
      torch's 1e-8.

    Code names (also the trace's): g, m, v, v_max, m_hat, v_hat, lr_eff, update, theta_prev,
    theta_decayed (θ′, AdamW only), theta. State per parameter, torch's keys: 'step' (int),
    'exp_avg' (m), 'exp_avg_sq' (v), 'max_exp_avg_sq' (v_max, with amsgrad).

    `fused=None` (default) runs the Numba kernel `kernels/optim_update.py::adam_update` when the
    kernel backend is "numba", the arrays are contiguous, and no trace is attached; `fused=False`
    always runs the NumPy formula. Both reproduce torch's trajectory (tests/test_optim_torch.py).

    References: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015;
    Reddi, Kale, Kumar, "On the Convergence of Adam and Beyond", ICLR 2018 (AMSGrad).
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("theta_decayed", "θ′_{t−1}", "AdamW: θ_{t−1} (1 − γλ), the decoupled decay"),
        ("g", "g_t", "gradient (+ λθ for Adam's coupled decay)"),
        ("m", "m_t", "first moment: β₁ m_{t−1} + (1 − β₁) g_t"),
        ("v", "v_t", "second moment: β₂ v_{t−1} + (1 − β₂) g_t²"),
        ("v_max", "v_t_max", "AMSGrad: max(v_{t−1}_max, v_t)"),
        ("m_hat", "m̂_t", "bias-corrected m_t / (1 − β₁ᵗ)"),
        ("v_hat", "v̂_t", "bias-corrected v_t / (1 − β₂ᵗ)"),
        ("lr_eff", "γ_eff", "effective per-element lr γ / (√v̂_t + ε)"),
        ("update", "Δθ_t", "−γ_eff ⊙ m̂_t"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    _decoupled_default = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool | None = None, bias_correction: bool = True,
                 eps_placement: str = "pytorch", fused: bool | None = None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if eps_placement not in EPS_PLACEMENTS:
            raise ValueError(f"eps_placement must be one of {EPS_PLACEMENTS}, got {eps_placement!r}")
        if decoupled_weight_decay is None:
            decoupled_weight_decay = self._decoupled_default
        defaults = dict(lr=lr, betas=(float(betas[0]), float(betas[1])), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
                        bias_correction=bias_correction, eps_placement=eps_placement, fused=fused)
        super().__init__(params, defaults)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group in self.param_groups:
            for p in self._params_with_grad(group):
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {
                        "step": 0,
                        "exp_avg": np.zeros_like(p.data),
                        "exp_avg_sq": np.zeros_like(p.data),
                    }
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = np.zeros_like(p.data)
                state["step"] += 1
                if self._can_fuse(group, p, state):
                    self._fused_step(p, group, state)
                else:
                    self._formula_step(p, group, state)
        return loss

    @staticmethod
    def _bias_corrections(group, t):
        """(1 − β₁ᵗ, 1 − β₂ᵗ), or (1, 1) without bias correction."""
        β1, β2 = group["betas"]
        if not group["bias_correction"]:
            return 1.0, 1.0
        return 1 - β1**t, 1 - β2**t

    # ------------------------------------------------------------------ the formula (reference)
    def _formula_step(self, p, group, state):
        γ, (β1, β2), ε, λ = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        t = state["step"]
        θ = p.data
        m, v = state["exp_avg"], state["exp_avg_sq"]

        theta_prev = θ.copy() if self.tracing else None
        g = -p.grad.data if group["maximize"] else p.grad.data
        if λ != 0:
            if group["decoupled_weight_decay"]:
                θ *= 1 - γ * λ
            else:
                g = g + λ * θ
        theta_decayed = θ.copy() if self.tracing and group["decoupled_weight_decay"] else None

        m *= β1
        m += (1 - β1) * g
        v *= β2
        v += (1 - β2) * g * g
        bias_correction1, bias_correction2 = self._bias_corrections(group, t)
        m_hat = m / bias_correction1
        if group["amsgrad"]:
            v_max = state["max_exp_avg_sq"]
            np.maximum(v_max, v, out=v_max)
            v_hat = v_max / bias_correction2
        else:
            v_max = None
            v_hat = v / bias_correction2
        if group["eps_placement"] == "pytorch":
            lr_eff = γ / (np.sqrt(v_hat) + ε)
        else:  # keras: ε added to the uncorrected √v, i.e. ε/√(1 − β₂ᵗ) next to √v̂
            lr_eff = γ / (np.sqrt(v_hat) + ε / math.sqrt(bias_correction2))
        update = -lr_eff * m_hat
        θ += update

        if self.tracing:
            quantities = dict(theta_prev=theta_prev, g=g, m=m, v=v, m_hat=m_hat, v_hat=v_hat,
                              lr_eff=lr_eff, update=update, theta=θ)
            if v_max is not None:
                quantities["v_max"] = v_max
            if theta_decayed is not None:
                quantities["theta_decayed"] = theta_decayed
            self._record(p, group, quantities,
                         dict(t=t, lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ,
                              bias_correction1=bias_correction1, bias_correction2=bias_correction2))

    # ------------------------------------------------------------------ the fused kernel
    def _can_fuse(self, group, p, state) -> bool:
        if group["fused"] is False or self.tracing:
            return False
        if group["fused"] is None and get_backend() != "numba":
            return False
        arrays = [p.data, p.grad.data, state["exp_avg"], state["exp_avg_sq"]]
        if group["amsgrad"]:
            arrays.append(state["max_exp_avg_sq"])
        return optim_update.fusable(*arrays)

    def _fused_step(self, p, group, state):
        γ, (β1, β2), ε, λ = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        bias_correction1, bias_correction2 = self._bias_corrections(group, state["step"])
        if group["eps_placement"] == "pytorch":
            # θ ← θ − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
            step_size, c2 = γ / bias_correction1, math.sqrt(bias_correction2)
        else:
            # θ ← θ − (γ √(1 − β₂ᵗ) / (1 − β₁ᵗ)) · m / (√v + ε)
            step_size, c2 = γ * math.sqrt(bias_correction2) / bias_correction1, 1.0
        decoupled = group["decoupled_weight_decay"]
        vmax = state["max_exp_avg_sq"] if group["amsgrad"] else np.empty(0, dtype=p.data.dtype)
        optim_update.adam_update(
            p.data.reshape(-1), p.grad.data.reshape(-1), state["exp_avg"].reshape(-1),
            state["exp_avg_sq"].reshape(-1), vmax.reshape(-1), float(step_size), float(c2),
            float(β1), float(β2), float(ε), 0.0 if decoupled else float(λ),
            1.0 - γ * λ if decoupled else 1.0, bool(group["amsgrad"]), bool(group["maximize"]),
        )
