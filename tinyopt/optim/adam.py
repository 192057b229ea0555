"""Adam (and AMSGrad), with torch.optim.Adam's semantics and the seed articles' variants as options."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.kernels import optim_update
from tinyopt.optim import validation
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

    The element-wise formula is `kernels/optim_update.py::adam_update`, once in NumPy
    (`adam_update_reference`, which the trace records) and once in Numba; this class computes the
    bias corrections and holds the state. The Numba twin runs unless a trace is attached, the
    arrays are not contiguous, `fused=False`, or `TINYOPT_KERNELS=reference`. Both reproduce
    torch's trajectory (tests/test_optim_torch.py).

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
        if decoupled_weight_decay is None:
            decoupled_weight_decay = self._decoupled_default
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
                        bias_correction=bias_correction, eps_placement=eps_placement, fused=fused)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_nonnegative("eps", h["eps"])
        h["betas"] = validation.check_betas(h["betas"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])
        validation.check_choice("eps_placement", h["eps_placement"], EPS_PLACEMENTS)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, (β1, β2), ε, λ = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p, g in params:
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {
                        "step": 0,
                        "exp_avg": np.zeros_like(p.data),
                        "exp_avg_sq": np.zeros_like(p.data),
                    }
                if group["amsgrad"] and "max_exp_avg_sq" not in state:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
                state["step"] += 1
                t = state["step"]
                bias_correction1, bias_correction2 = (1 - β1**t, 1 - β2**t) if group["bias_correction"] else (1.0, 1.0)
                # Keras adds ε to the uncorrected √v_t, i.e. ε/√(1 − β₂ᵗ) next to √v̂_t
                eps_added = ε if group["eps_placement"] == "pytorch" else ε / math.sqrt(bias_correction2)
                vmax = state["max_exp_avg_sq"] if group["amsgrad"] else np.empty(0, dtype=p.data.dtype)
                self._update(group, p, optim_update.adam_update, (p.data, g, state["exp_avg"], state["exp_avg_sq"], vmax),
                             dict(lr=γ, beta1=β1, beta2=β2, eps=eps_added, weight_decay=λ,
                                  decoupled=group["decoupled_weight_decay"], amsgrad=group["amsgrad"],
                                  maximize=group["maximize"], bias_correction1=bias_correction1,
                                  bias_correction2=bias_correction2),
                             dict(t=t, lr=γ, beta1=β1, beta2=β2, eps=ε, weight_decay=λ,
                                  bias_correction1=bias_correction1, bias_correction2=bias_correction2))
        return loss
