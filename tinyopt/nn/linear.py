"""Fully connected layer and the shape helpers that go with it."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn import init
from tinyopt.nn.module import Module, ShapeError, check_last_dim
from tinyopt.nn.parameter import Parameter
from tinyopt.random import resolve
from tinyopt.tensor import Tensor


class Linear(Module):
    """y = x Wᵀ + b, with W of shape (out_features, in_features) like torch.

    Initialisation as torch's default: W ~ U(−1/√in, 1/√in) (kaiming_uniform_ with a = √5) and
    b ~ U(−1/√in, 1/√in), drawn from `rng` (or the default generator).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None, rng=None):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, out_features={out_features}")
        self.in_features, self.out_features = in_features, out_features
        dtype = np.float32 if dtype is None else dtype
        # Resolve once: an int seed must seed one stream for W and b (resolving it twice would
        # restart the stream and make b a copy of W's first row).
        rng = resolve(rng)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=rng)
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=dtype))
            bound = 1 / math.sqrt(in_features)
            init.uniform_(self.bias, -bound, bound, generator=rng)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        check_last_dim(self, x, self.in_features)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flatten dims start_dim..end_dim into one (torch default: keep the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        try:
            return x.flatten(self.start_dim, self.end_dim)
        except IndexError as e:
            raise ShapeError(f"{self!r} got input of shape {tuple(x.shape)}: {e}") from None

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim `dim` into `unflattened_size` (the inverse of Flatten)."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """Returns its input; takes (and ignores) any constructor arguments, as torch's."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
