"""Layer normalization (Ba, Kiros & Hinton 2016, https://arxiv.org/abs/1607.06450), as torch.nn.LayerNorm.

Each sample is normalised over its trailing `normalized_shape` dims (not over the batch, so it
behaves the same in training and evaluation and for any batch size):

    μ = mean(x),  σ² = mean((x − μ)²)          (over the normalized dims; biased)
    y = (x − μ) / √(σ² + ε) · γ + β            (γ = weight, β = bias: element-wise, of normalized_shape)
"""
from __future__ import annotations

import numbers

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn.module import Module
from tinyopt.nn.parameter import Parameter


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
        if not shape or min(shape) <= 0:
            raise ValueError(f"normalized_shape must be positive sizes, got {normalized_shape!r}")
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        dtype = np.float32 if dtype is None else dtype
        if elementwise_affine:
            self.weight = Parameter(np.ones(shape, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        try:
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        except ValueError as e:
            raise type(e)(f"{self!r}: {e}") from None

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
