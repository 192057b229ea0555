"""Batch normalization (Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167), as torch.nn.BatchNorm1d/2d.

For input x with channels on axis 1, statistics are taken per channel c over every other axis
(batch and, for 2d/3d inputs, the spatial positions), m values each:

    training:   μ_B = (1/m) Σ x,   σ²_B = (1/m) Σ (x − μ_B)²                 (biased, used to normalise)
                x̂ = (x − μ_B) / √(σ²_B + ε),   y = γ · x̂ + β
                running_mean ← (1 − momentum) · running_mean + momentum · μ_B
                running_var  ← (1 − momentum) · running_var  + momentum · σ²_B · m/(m − 1)   (unbiased)
    evaluation: x̂ = (x − running_mean) / √(running_var + ε),   y = γ · x̂ + β

Conventions follow torch: `momentum` weights the *new* statistic (Keras' `momentum=0.99` is
torch's 0.01); `momentum=None` gives the cumulative average (factor 1/num_batches_tracked); the
running variance is unbiased while normalisation uses the biased one.  The backward pass is not
hand-written: the forward composes autograd primitives (mean, subtract, multiply, sqrt), so the
gradient through μ_B and σ²_B comes out of the chain rule (`F.batch_norm`).
"""
from __future__ import annotations

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn import init
from tinyopt.nn.module import Module, ShapeError
from tinyopt.nn.parameter import Parameter
from tinyopt.tensor import Tensor


class _BatchNorm(Module):
    _expected_ndims: tuple = ()
    _layouts: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None):
        super().__init__()
        if num_features <= 0:
            raise ValueError(f"num_features must be positive, got {num_features}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        dtype = np.float32 if dtype is None else dtype
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            # In place, as torch: a reference kept to a buffer sees the reset.
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._expected_ndims or x.shape[1] != self.num_features:
            layouts = self._layouts.replace("C", str(self.num_features))
            raise ShapeError(f"{self!r} expects input of shape {layouts}, got input of shape {tuple(x.shape)}")
        # Batch statistics in training, and also in evaluation when no running statistics are kept (torch).
        use_batch_stats = self.training or not self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        update = self.training and self.track_running_stats
        return F.batch_norm(
            x, self.running_mean if update or not use_batch_stats else None,
            self.running_var if update or not use_batch_stats else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) input (torch.nn.BatchNorm1d)."""

    _expected_ndims = (2, 3)
    _layouts = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) input (torch.nn.BatchNorm2d)."""

    _expected_ndims = (4,)
    _layouts = "(N, C, H, W)"
