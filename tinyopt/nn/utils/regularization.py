r"""Penalty terms to add to a loss: L1 (sparsity) and L2 (weight decay, coupled).

    loss = criterion(model(x), y) + l2_penalty(model.parameters(), 1e-4)
    loss.backward()

Both return a scalar Tensor in the autograd graph, so `backward()` adds the penalty's gradient
to every parameter's `.grad`:

    L1:  R(θ) = λ Σ_i |θ_i|            ∂R/∂θ_i = λ · sign(θ_i)   (0 at θ_i = 0, like torch's abs)
    L2:  R(θ) = (λ/2) Σ_i θ_i²         ∂R/∂θ_i = λ · θ_i         (halved=True, the default)
         R(θ) = λ Σ_i θ_i²             ∂R/∂θ_i = 2λ · θ_i        (halved=False: Keras' l2(λ))

Conventions differ on the 1/2. With `halved=True` (the default), adding `l2_penalty(params, λ)`
to the loss gives exactly the update of `SGD(..., weight_decay=λ)`: torch's `weight_decay` adds
λθ to the gradient, the gradient of (λ/2)‖θ‖². Keras' `regularizers.l2(λ)` and many articles
write λ‖θ‖² (gradient 2λθ): use `halved=False` to reproduce them.

For adaptive optimizers (Adam) an L2 penalty in the loss is *coupled* decay: it is rescaled by
the per-element step size like any gradient. AdamW's *decoupled* decay (θ ← θ − γλθ, outside
the adaptive step) is not a loss term; it is an optimizer option (`AdamW(weight_decay=λ)`).
"""
from __future__ import annotations

import numpy as np

from tinyopt.tensor import Tensor


def _sum_over(parameters, term) -> Tensor:
    total = None
    for p in parameters:
        t = term(p)
        total = t if total is None else total + t
    if total is None:
        return Tensor(np.array(0.0, dtype=np.float32))
    return total


def _check_coefficient(coefficient: float) -> float:
    coefficient = float(coefficient)
    if coefficient < 0 or not np.isfinite(coefficient):
        raise ValueError(f"Invalid regularization coefficient: {coefficient} (expected a finite value >= 0)")
    return coefficient


def l1_penalty(parameters, coefficient: float = 1.0) -> Tensor:
    r"""R(θ) = λ Σ_i |θ_i| over all elements of all `parameters` (λ = `coefficient`).

    Its gradient λ·sign(θ) pushes every weight towards 0 by the same amount, which drives small
    weights to exactly 0 under proximal or subgradient steps: L1 makes weights sparse.
    """
    lam = _check_coefficient(coefficient)
    return lam * _sum_over(parameters, lambda p: p.abs().sum())


def l2_penalty(parameters, coefficient: float = 1.0, halved: bool = True) -> Tensor:
    r"""R(θ) = (λ/2) Σ_i θ_i² (`halved=True`, default; gradient λθ, the same as
    `weight_decay=λ`), or λ Σ_i θ_i² (`halved=False`, Keras' convention; gradient 2λθ).

    Its gradient is proportional to each weight: L2 shrinks large weights most and rarely makes
    any exactly 0.
    """
    lam = _check_coefficient(coefficient)
    factor = lam / 2 if halved else lam
    return factor * _sum_over(parameters, lambda p: (p * p).sum())
