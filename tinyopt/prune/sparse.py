"""Sparse inference: a Linear whose weight is stored in CSR and multiplied by the kernel in
`tinyopt.kernels.sparse` (Numba, with its NumPy twin), and `to_sparse(model)` to convert the pruned
Linear layers of a model.

    y = x Wᵀ + b,   computed as  Yᵀ = W Xᵀ  with W in CSR  (nnz · N multiply-adds instead of out · in · N)

Inference only: `SparseLinear` has no backward (its output has no graph); fine-tune the masked model,
then convert. Whether it beats dense BLAS depends on the sparsity (benchmarks/bench_prune.py measures
50/80/90/95/99 %); `to_sparse` converts only layers at least `min_sparsity` sparse.
Conv2d layers are left dense (a CSR conv via im2col is not implemented).
"""
from __future__ import annotations

import copy

import numpy as np

from tinyopt.autograd import is_grad_enabled
from tinyopt.kernels import sparse as kernels
from tinyopt.nn.linear import Linear
from tinyopt.nn.module import Module, check_last_dim
from tinyopt.prune.shrink import make_permanent
from tinyopt.tensor import Tensor


class SparseLinear(Module):
    """y = x Wᵀ + b with W kept as CSR buffers (`indptr`, `indices`, `values`); built from a Linear
    by `SparseLinear.from_dense(linear)`."""

    def __init__(self, in_features: int, out_features: int, indptr, indices, values, bias=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.register_buffer("indptr", np.asarray(indptr, dtype=np.int64))
        self.register_buffer("indices", np.asarray(indices, dtype=np.int32))
        self.register_buffer("values", np.asarray(values))
        self.register_buffer("bias", None if bias is None else np.asarray(bias, dtype=self.values.dtype))

    @classmethod
    def from_dense(cls, linear: Linear) -> "SparseLinear":
        w = np.asarray(linear.weight.data)
        indptr, indices, values = kernels.csr_from_dense(w)
        bias = None if linear.bias is None else np.asarray(linear.bias.data)
        return cls(linear.in_features, linear.out_features, indptr, indices, values, bias)

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    def to_dense(self) -> np.ndarray:
        w = np.zeros((self.out_features, self.in_features), dtype=self.values.dtype)
        rows = np.repeat(np.arange(self.out_features), np.diff(self.indptr))
        w[rows, self.indices] = self.values
        return w

    def forward(self, x: Tensor) -> Tensor:
        check_last_dim(self, x, self.in_features)
        if x.requires_grad and is_grad_enabled():
            raise RuntimeError("SparseLinear is for inference (it has no backward): call it under to.no_grad(), "
                               "or fine-tune the masked model and convert it afterwards")
        data = np.asarray(x.data, dtype=self.values.dtype)
        lead = data.shape[:-1]
        xt = np.ascontiguousarray(data.reshape(-1, self.in_features).T)
        y = kernels.csr_matmul_t(self.indptr, self.indices, self.values, xt).T
        if self.bias is not None:
            y = y + self.bias
        return Tensor(np.ascontiguousarray(y).reshape(lead + (self.out_features,)))

    def extra_repr(self) -> str:
        density = self.nnz / (self.in_features * self.out_features)
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz} ({density:.1%})"


def to_sparse(model, min_sparsity: float = 0.8):
    """A copy of `model` with every Linear at least `min_sparsity` sparse replaced by a
    SparseLinear (masks made permanent first); the model passed in is unchanged."""
    if not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be in [0, 1], got {min_sparsity}")
    new = make_permanent(copy.deepcopy(model))
    for parent in list(new.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, Linear) and np.mean(np.asarray(child.weight.data) == 0) >= min_sparsity:
                setattr(parent, name, SparseLinear.from_dense(child))
    return new
