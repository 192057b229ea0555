"""Sparse inference: a Linear (and a Conv2d, via im2col) whose weight is stored in CSR and multiplied
by the kernel in `tinyopt.kernels.sparse` (Numba, with its NumPy twin), and `to_sparse(model)` to
convert the pruned layers of a model.

    y = x Wᵀ + b,   computed as  Yᵀ = W Xᵀ  with W in CSR  (nnz · N multiply-adds instead of out · in · N)

Inference only: `SparseLinear` has no backward (its output has no graph); fine-tune the masked model,
then convert. Whether it beats dense BLAS depends on the sparsity (benchmarks/bench_prune.py measures
50/80/90/95/99 %); `to_sparse` converts only layers at least `min_sparsity` sparse.
`SparseConv2d` does the same for a convolution through im2col (groups = 1).
"""
from __future__ import annotations

import copy

import numpy as np

from tinyopt.autograd import is_grad_enabled
from tinyopt.kernels import sparse as kernels
from tinyopt.nn.conv import Conv2d
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
        return int(self.values.data.size)

    def to_dense(self) -> np.ndarray:
        w = np.zeros((self.out_features, self.in_features), dtype=self.values.data.dtype)
        rows = np.repeat(np.arange(self.out_features), np.diff(self.indptr.data))
        w[rows, self.indices.data] = self.values.data
        return w

    def forward(self, x: Tensor) -> Tensor:
        check_last_dim(self, x, self.in_features)
        if x.requires_grad and is_grad_enabled():
            raise RuntimeError("SparseLinear is for inference (it has no backward): call it under to.no_grad(), "
                               "or fine-tune the masked model and convert it afterwards")
        data = np.asarray(x.data, dtype=self.values.data.dtype)
        lead = data.shape[:-1]
        xt = np.ascontiguousarray(data.reshape(-1, self.in_features).T)
        y = kernels.csr_matmul_t(self.indptr.data, self.indices.data, self.values.data, xt).T
        if self.bias is not None:
            y = y + self.bias.data
        return Tensor(np.ascontiguousarray(y).reshape(lead + (self.out_features,)))

    def extra_repr(self) -> str:
        density = self.nnz / (self.in_features * self.out_features)
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz} ({density:.1%})"


class SparseConv2d(Module):
    """A Conv2d (groups = 1, numeric padding) whose weight, flattened to W [O, C·KH·KW], is kept in CSR:

        cols = im2col(x)  [C·KH·KW, N·OH·OW];   Y = W · cols + b  (the CSR kernel, Yᵀ = W Xᵀ with Xᵀ = cols)

    Inference only, like SparseLinear. Built by `SparseConv2d.from_dense(conv)`."""

    def __init__(self, conv: Conv2d):
        super().__init__()
        if conv.groups != 1 or isinstance(conv.padding, str):
            raise ValueError("SparseConv2d supports groups=1 and numeric padding only, got "
                             f"groups={conv.groups}, padding={conv.padding!r}")
        w = np.asarray(conv.weight.data)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = conv.kernel_size, conv.stride, conv.padding, conv.dilation
        indptr, indices, values = kernels.csr_from_dense(w.reshape(w.shape[0], -1))
        self.register_buffer("indptr", indptr)
        self.register_buffer("indices", indices)
        self.register_buffer("values", values)
        self.register_buffer("bias", None if conv.bias is None else np.asarray(conv.bias.data))

    from_dense = classmethod(lambda cls, conv: cls(conv))

    @property
    def nnz(self) -> int:
        return int(self.values.data.size)

    def forward(self, x: Tensor) -> Tensor:
        from tinyopt.errors import ShapeError
        from tinyopt.kernels import conv as conv_kernels

        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"{self!r} expects input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.requires_grad and is_grad_enabled():
            raise RuntimeError("SparseConv2d is for inference (it has no backward): call it under to.no_grad()")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        n, _, h, w = x.shape
        oh = conv_kernels.conv_output_size(h, kh, sh, ph, ph, dh)
        ow = conv_kernels.conv_output_size(w, kw, sw, pw, pw, dw)
        data = np.ascontiguousarray(x.data, dtype=self.values.data.dtype)
        cols = np.ascontiguousarray(conv_kernels.im2col(data, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow))
        y = kernels.csr_matmul_t(self.indptr.data, self.indices.data, self.values.data, cols)
        if self.bias is not None:
            y += self.bias.data.reshape(-1, 1)
        return Tensor(np.ascontiguousarray(y.reshape(self.out_channels, n, oh, ow).transpose(1, 0, 2, 3)))

    def extra_repr(self) -> str:
        density = self.nnz / (self.out_channels * self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, nnz={self.nnz} ({density:.1%})")


def to_sparse(model, min_sparsity: float = 0.8):
    """A copy of `model` with every Linear, and every Conv2d with groups = 1 and numeric padding, at
    least `min_sparsity` sparse replaced by a SparseLinear / SparseConv2d (masks made permanent first);
    the model passed in is unchanged."""
    if not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be in [0, 1], got {min_sparsity}")
    new = make_permanent(copy.deepcopy(model))
    for parent in list(new.modules()):
        for name, child in list(parent._modules.items()):
            if not isinstance(child, (Linear, Conv2d)) or np.mean(np.asarray(child.weight.data) == 0) < min_sparsity:
                continue
            if isinstance(child, Linear):
                setattr(parent, name, SparseLinear.from_dense(child))
            elif child.groups == 1 and not isinstance(child.padding, str):
                setattr(parent, name, SparseConv2d(child))
    return new
