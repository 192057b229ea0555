"""Sparse × dense products for pruned layers: a weight W [out, in] stored in CSR (compressed sparse
rows) times a dense batch.

    CSR:  row o holds the entries values[indptr[o]:indptr[o+1]] at columns indices[indptr[o]:indptr[o+1]]
    Yᵀ[o, :] = Σ_{j = indptr[o]}^{indptr[o+1]−1} values[j] · Xᵀ[indices[j], :]        (Yᵀ = W Xᵀ)

The batch is taken transposed (Xᵀ [in, N], C order) so that the inner loop runs along the batch
over contiguous memory (an axpy that LLVM vectorises), instead of gathering one x value at a time;
the work is nnz · N multiply-adds against out · in · N for dense BLAS.

Twins: `csr_matmul_t_reference` (NumPy, one row at a time) and `csr_matmul_t_numba`; both return
Yᵀ [out, N] in the dtype of `values`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .backend import dispatch


def csr_from_dense(w: np.ndarray):
    """(indptr int64 [out+1], indices int32 [nnz], values [nnz]) of the non-zeros of a 2-D `w`."""
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"csr_from_dense needs a 2-D array, got shape {w.shape}")
    rows, cols = np.nonzero(w)
    indptr = np.zeros(w.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=indptr[1:])
    return indptr, cols.astype(np.int32), np.ascontiguousarray(w[rows, cols])


def _check(indptr, indices, values, xt):
    if xt.ndim != 2:
        raise ValueError(f"xt must be 2-D [in, N], got shape {xt.shape}")
    if len(indices) != len(values) or indptr[-1] != len(values):
        raise ValueError("indptr, indices and values do not describe one CSR matrix")


def csr_matmul_t_reference(indptr, indices, values, xt):
    _check(indptr, indices, values, xt)
    out = np.zeros((len(indptr) - 1, xt.shape[1]), dtype=values.dtype)
    for o in range(len(indptr) - 1):
        s, e = indptr[o], indptr[o + 1]
        if e > s:
            out[o] = values[s:e] @ xt[indices[s:e]]
    return out


@njit(cache=True)
def _csr_matmul_t(indptr, indices, values, xt, out):
    n = xt.shape[1]
    for o in range(len(indptr) - 1):
        row = out[o]
        for j in range(indptr[o], indptr[o + 1]):
            v = values[j]
            src = xt[indices[j]]
            for b in range(n):
                row[b] += v * src[b]


def csr_matmul_t_numba(indptr, indices, values, xt):
    _check(indptr, indices, values, xt)
    xt = np.ascontiguousarray(xt, dtype=values.dtype)
    out = np.zeros((len(indptr) - 1, xt.shape[1]), dtype=values.dtype)
    _csr_matmul_t(indptr, indices, values, xt, out)
    return out


csr_matmul_t = dispatch(csr_matmul_t_reference, csr_matmul_t_numba)
