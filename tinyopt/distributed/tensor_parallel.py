"""Megatron-style tensor parallelism (Shoeybi et al. 2019, https://arxiv.org/abs/1909.08053): one
Linear's weight split over the ranks, every rank on the same input (the loss is replicated).

For y = x Wᵀ + b with W of shape (out, in), N ranks, rank r:

    ColumnParallelLinear   W_r = rows r·out/N … (r+1)·out/N of W (output features), b_r likewise
                           x̃ = f(x);   y_r = x̃ W_rᵀ + b_r                 (this rank's slice of y)
                           gather_output=True:  y = [y_0 | … | y_{N−1}]   (all-gather of the last axis)
    RowParallelLinear      W_r = columns r·in/N … (r+1)·in/N of W (input features), b whole
                           x_r = this rank's slice of x's last axis (or the input as is when
                           input_is_parallel=True, e.g. a ColumnParallelLinear's y_r)
                           y = g(Σ_r x_r W_rᵀ) + b                         (one all-reduce)

f is identity forward / all-reduce backward and g all-reduce forward / identity backward
(`tinyopt.ops.distributed`): for y = g(Σ_r ...) each rank's partial product needs ∂L/∂y, which every
rank already has; for x̃ = f(x) each rank's shard gives one part of ∂L/∂x, so the parts are summed.
An MLP Column(gather_output=False) → activation → Row(input_is_parallel=True) therefore needs one
all-reduce forward and one backward, and each rank stores 1/N of both weights.

Both layers are initialised like `nn.Linear(in, out, rng=rng)` on every rank and then sliced, so the
same `rng` on every rank gives exactly the single-process Linear; `from_linear` slices an existing one.
`out_features` (column) or `in_features` (row) must divide evenly by the world size.
"""
from __future__ import annotations

import numpy as np

from tinyopt import distributed as dist
from tinyopt.distributed import functional as DF
from tinyopt.nn import functional as F
from tinyopt.nn.linear import Linear
from tinyopt.nn.module import Module, check_last_dim
from tinyopt.nn.parameter import Parameter


def _shard(size: int, what: str, world: int) -> int:
    if size % world:
        raise ValueError(f"{what}={size} must divide evenly over the {world} ranks of tensor parallelism")
    return size // world


class ColumnParallelLinear(Module):
    """The output features of a Linear split over the ranks (formulas in the module docstring)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, gather_output: bool = True,
                 dtype=None, rng=None, group=None):
        super().__init__()
        full = Linear(in_features, out_features, bias=bias, dtype=dtype, rng=rng)
        self._take(full, gather_output, group)

    @classmethod
    def from_linear(cls, linear: Linear, gather_output: bool = True, group=None) -> "ColumnParallelLinear":
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer._take(linear, gather_output, group)
        return layer

    def _take(self, full: Linear, gather_output: bool, group) -> None:
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        self.in_features, self.out_features, self.gather_output, self.group = (
            full.in_features, full.out_features, bool(gather_output), group)
        part = _shard(full.out_features, "out_features", world)
        rows = slice(rank * part, (rank + 1) * part)
        self.weight = Parameter(np.ascontiguousarray(full.weight.data[rows]))
        if full.bias is not None:
            self.bias = Parameter(np.ascontiguousarray(full.bias.data[rows]))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        check_last_dim(self, x, self.in_features)
        y = F.linear(DF.copy_to_tensor_parallel_region(x, self.group), self.weight, self.bias)
        return DF.gather_from_tensor_parallel_region(y, self.group) if self.gather_output else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features} (this rank: "
                f"{self.weight.shape[0]}), gather_output={self.gather_output}")


class RowParallelLinear(Module):
    """The input features of a Linear split over the ranks (formulas in the module docstring)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, input_is_parallel: bool = False,
                 dtype=None, rng=None, group=None):
        super().__init__()
        full = Linear(in_features, out_features, bias=bias, dtype=dtype, rng=rng)
        self._take(full, input_is_parallel, group)

    @classmethod
    def from_linear(cls, linear: Linear, input_is_parallel: bool = False, group=None) -> "RowParallelLinear":
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer._take(linear, input_is_parallel, group)
        return layer

    def _take(self, full: Linear, input_is_parallel: bool, group) -> None:
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        self.in_features, self.out_features, self.input_is_parallel, self.group = (
            full.in_features, full.out_features, bool(input_is_parallel), group)
        part = _shard(full.in_features, "in_features", world)
        self.weight = Parameter(np.ascontiguousarray(full.weight.data[:, rank * part:(rank + 1) * part]))
        if full.bias is not None:
            self.bias = Parameter(full.bias.data.copy())
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        if self.input_is_parallel:
            check_last_dim(self, x, self.weight.shape[1])
        else:
            check_last_dim(self, x, self.in_features)
            x = DF.scatter_to_tensor_parallel_region(x, self.group)
        y = DF.reduce_from_tensor_parallel_region(F.linear(x, self.weight), self.group)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features} (this rank: {self.weight.shape[1]}), "
                f"out_features={self.out_features}, input_is_parallel={self.input_is_parallel}")
