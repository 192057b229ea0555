"""Muon: momentum, orthogonalised by a Newton–Schulz iteration (Jordan et al. 2024), torch.optim.Muon's semantics."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.kernels.optim_update import round_to_bfloat16
from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer

# Keller Jordan's coefficients (torch.optim._muon's defaults): the quintic that maximises the slope at 0.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")
NS_DTYPES = ("bfloat16", None)

__all__ = ["Muon", "adjusted_lr", "muon_update", "round_to_bfloat16", "zeropower_via_newtonschulz"]


def _same(x):
    return x


def zeropower_via_newtonschulz(G: np.ndarray, ns_coefficients=NS_COEFFICIENTS, ns_steps: int = 5, eps: float = 1e-7,
                               ns_dtype: str | None = "bfloat16") -> np.ndarray:
    """O ≈ U Vᵀ for G = U S Vᵀ (an approximate orthogonalisation; S' ≈ U(0.5, 1.5) instead of 1):

        X ← G / max(‖G‖_F, ε)            (transposed first when G is tall, so X Xᵀ is the small Gram)
        repeat k times:  A ← X Xᵀ;  B ← b A + c A²;  X ← a X + B X

    `ns_dtype="bfloat16"` (torch's precision): G is rounded to bfloat16 and so is the result of
    every operation (computed in float32, as torch's CPU bfloat16 kernels accumulate in float32
    and round once); `ns_dtype=None`: everything in G's own precision."""
    a, b, c = ns_coefficients
    r = round_to_bfloat16 if ns_dtype == "bfloat16" else _same
    X = r(G)
    transposed = G.shape[0] > G.shape[1]
    if transposed:
        X = X.T
    X = r(X / max(r(np.asarray(np.linalg.norm(X))).item(), eps))
    for _ in range(ns_steps):
        A = r(X @ X.T)
        B = r(b * A + c * (A @ A))
        X = r(a * X + B @ X)
    if transposed:
        X = X.T
    return X.astype(G.dtype, copy=False)


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape) -> float:
    """γ scaled for an A×B matrix: 'original' (Keller Jordan) √max(1, A/B), 'match_rms_adamw'
    (Moonshot) 0.2 √max(A, B), so the update's RMS matches AdamW's."""
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1, A / B))
    return lr * 0.2 * math.sqrt(max(A, B))


def muon_update(param, grad, buf, lr, weight_decay, momentum, nesterov, ns_coefficients, ns_steps, eps, lr_adjusted,
                ns_dtype, trace=None):
    """One Muon step in place (the formula of `Muon`'s docstring)."""
    buf += (1 - momentum) * (grad - buf)                          # B_t = μ B_{t−1} + (1 − μ) g_t
    b_tilde = grad + momentum * (buf - grad) if nesterov else buf  # B̃_t = (1 − μ) g_t + μ B_t, or B_t
    O = zeropower_via_newtonschulz(b_tilde, ns_coefficients, ns_steps, eps, ns_dtype)
    param *= 1 - lr * weight_decay
    update = -lr_adjusted * O
    param += update
    if trace is not None:
        trace.update(g=grad, buf=buf, b_tilde=b_tilde, O=O, update=update)


class Muon(Optimizer):
    r"""Muon: SGD with momentum whose update matrix is replaced by its nearest semi-orthogonal
    matrix (all singular values ≈ 1), computed with a few Newton–Schulz iterations. For the 2-D
    weights of hidden layers; optimise biases, embeddings and the output layer with AdamW.

    Algorithm (torch.optim.Muon's *code*; the defaults are torch's)::

        input:  γ (lr, 1e-3), λ (weight_decay, 0.1), μ (momentum, 0.95), nesterov (True),
                (a, b, c) (ns_coefficients), ε (eps, 1e-7), k (ns_steps, 5),
                adjust_lr_fn (None = "original"), θ₀ (2-D params), f(θ) (objective)
        initialize:  B₀ ← 0 (momentum buffer)
        for t = 1, 2, ...:
            g_t ← ∇_θ f_t(θ_{t−1})
            B_t ← μ B_{t−1} + (1 − μ) g_t
            B̃_t ← (1 − μ) g_t + μ B_t   if nesterov,   B_t otherwise
            O_t ← NS^{(a,b,c)}_k(B̃_t; ε)          (zeropower_via_newtonschulz)
            θ_t ← θ_{t−1} (1 − γλ)                 (decoupled weight decay)
            γ′ ← AdjustLR(γ; shape(θ))             ("original": γ √max(1, A/B);
                                                     "match_rms_adamw": 0.2 γ √max(A, B))
            θ_t ← θ_t − γ′ O_t
        return θ_t

    torch's docstring writes B_t ← μ B_{t−1} + g_t and B̃_t ← g_t + μ B_t; its code (and Keller
    Jordan's reference) uses the averaging form above (`lerp`), which is what tinyopt follows.

    Precision: torch runs the Newton–Schulz iteration in bfloat16 (fast on GPUs; the result is
    only approximately orthogonal anyway), and so does tinyopt by default (`ns_dtype="bfloat16"`:
    NumPy has no bfloat16, so every operation's float32 result is rounded to bfloat16, as torch's
    CPU kernels round their float32 accumulations). The two agree to bfloat16 precision: most
    steps bit for bit, but now and then an element of O_t whose float32 sum (added in another
    order) sits at a rounding boundary differs by one bfloat16 unit (2⁻⁸ relative).
    `ns_dtype=None` runs the iteration in the parameter's own precision: the formula itself, which
    `tinyopt verify` checks by hand and, to 1e-9, against torch's Muon code with its bfloat16 cast
    replaced by float64.

    Code names (also the trace's): g, buf (B_t), b_tilde (B̃_t), O (O_t), update, theta_prev,
    theta. State per parameter, torch's key: 'momentum_buffer' (torch keeps no step count).
    No Numba twin for the step: ~90% of its time is the Newton–Schulz matrix products (BLAS).
    The bfloat16 rounding after each product is a Numba kernel (`round_to_bfloat16`).

    References: Jordan, Jin, Boza, You, Cesista, Newhouse, Bernstein, "Muon: An optimizer for
    hidden layers in neural networks", 2024, https://kellerjordan.github.io/posts/muon/ ;
    Liu et al., "Muon is Scalable for LLM Training", 2025, https://arxiv.org/abs/2502.16982
    """

    trace_symbols = [
        ("theta_prev", "θ_{t−1}", "parameter before the step"),
        ("g", "g_t", "gradient"),
        ("buf", "B_t", "momentum buffer μ B_{t−1} + (1 − μ) g_t"),
        ("b_tilde", "B̃_t", "(1 − μ) g_t + μ B_t (nesterov) or B_t"),
        ("O", "O_t", "Newton–Schulz orthogonalisation of B̃_t"),
        ("update", "Δθ_t", "−γ′ O_t (after the decay θ(1 − γλ))"),
        ("theta", "θ_t", "parameter after the step"),
    ]

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_coefficients=NS_COEFFICIENTS, eps: float = 1e-7, ns_steps: int = 5,
                 adjust_lr_fn: str | None = None, *, ns_dtype: str | None = "bfloat16"):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
                        ns_dtype=ns_dtype)
        super().__init__(params, defaults)

    @classmethod
    def _check_hyperparameters(cls, h):
        validation.check_lr(h["lr"])
        validation.check_momentum(h["momentum"])
        validation.check_nonnegative("weight_decay", h["weight_decay"])
        validation.check_nonnegative("eps", h["eps"])
        coefficients = validation.check_pair("ns_coefficients", h["ns_coefficients"], n=3)
        for name, value in zip("abc", coefficients):
            validation.check_real(f"ns_coefficients {name}", value)
        h["ns_coefficients"] = tuple(float(x) for x in coefficients)
        ns_steps = validation.check_int("ns_steps", h["ns_steps"], low=0)
        if ns_steps >= 100:
            raise ValueError(f"Number of steps must be less than 100 for computational efficiency, got {ns_steps}")
        if h["adjust_lr_fn"] not in ADJUST_LR_FNS:
            raise ValueError(f"Adjust learning rate function {h['adjust_lr_fn']} is not supported "
                             f"(one of {ADJUST_LR_FNS})")
        validation.check_choice("ns_dtype", h["ns_dtype"], NS_DTYPES)

    def add_param_group(self, param_group: dict) -> None:
        params = param_group.get("params", ())
        for p in [params] if hasattr(params, "ndim") else list(params):
            if getattr(p, "ndim", 2) != 2:
                raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: "
                                 f"{tuple(p.shape)} (optimise it with AdamW)")
        super().add_param_group(param_group)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss (or None)."""
        loss = self._evaluate_closure(closure)
        for group, params in self._gradients():
            γ, λ, μ = group["lr"], group["weight_decay"], group["momentum"]
            for p, g in params:
                state = self.state.setdefault(p, {})
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = np.zeros_like(p.data)
                lr_adjusted = adjusted_lr(γ, group["adjust_lr_fn"], p.shape)
                self._update(group, p, muon_update, (p.data, g, state["momentum_buffer"]),
                             dict(lr=γ, weight_decay=λ, momentum=μ, nesterov=group["nesterov"],
                                  ns_coefficients=group["ns_coefficients"], ns_steps=group["ns_steps"],
                                  eps=group["eps"], lr_adjusted=lr_adjusted, ns_dtype=group["ns_dtype"]),
                             dict(lr=γ, lr_adjusted=lr_adjusted, momentum=μ, weight_decay=λ))
        return loss
