"""Differentiable collectives: the autograd ops that data- and tensor-parallel layers are built from.

Two conventions exist for what the loss is when every rank runs the same code, and the backward of
an all-reduce depends on which one holds:

* the loss is the SUM of the ranks' own losses, L = Σ_s L_s (data parallel: each rank has its own
  samples). y = Σ_r x_r is seen by every rank's L_s, so ∂L/∂x_r = Σ_s ∂L_s/∂y: the backward is an
  all-reduce too. This is `AllReduceSum` (torch.distributed.nn.functional.all_reduce), used by
  SyncBatchNorm.
* the loss is REPLICATED: every rank computes the same L on the same samples (tensor parallel,
  Megatron-LM, Shoeybi et al. 2019). Then ∂L/∂y is already the same everywhere and
  - `ReduceFromRegion`  (Megatron's g): forward all-reduce, backward identity;
  - `CopyToRegion`      (Megatron's f): forward identity, backward all-reduce (each rank's shard
                        contributes one part of ∂L/∂x);
  - `GatherFromRegion`: forward all-gather along the last axis, backward keeps this rank's slice;
  - `ScatterToRegion`:  forward keeps this rank's slice of the last axis, backward all-gathers.

The forwards take the communicator as `comm` (a keyword, so autograd passes it through untouched).
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function


def _allreduce(comm, a: np.ndarray) -> np.ndarray:
    from mpi4py import MPI

    out = np.array(a, copy=True, order="C")
    comm.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
    return out


def _split_last(a: np.ndarray, rank: int, n: int) -> np.ndarray:
    size = a.shape[-1]
    if size % n:
        raise ValueError(f"the last axis ({size}) must divide evenly over {n} ranks for tensor parallelism")
    w = size // n
    return np.ascontiguousarray(a[..., rank * w:(rank + 1) * w])


def _gather_last(comm, a: np.ndarray) -> np.ndarray:
    n = comm.Get_size()
    a = np.ascontiguousarray(a)
    gathered = np.empty((n,) + a.shape, dtype=a.dtype)
    comm.Allgather(a, gathered)
    return np.concatenate(list(gathered), axis=-1)


class AllReduceSum(Function):
    @staticmethod
    def forward(ctx, x, comm=None):
        ctx.comm = comm
        return _allreduce(comm, x)

    @staticmethod
    def backward(ctx, grad):
        return _allreduce(ctx.comm, grad)


class ReduceFromRegion(Function):
    @staticmethod
    def forward(ctx, x, comm=None):
        return _allreduce(comm, x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class CopyToRegion(Function):
    @staticmethod
    def forward(ctx, x, comm=None):
        ctx.comm = comm
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return _allreduce(ctx.comm, grad)


class GatherFromRegion(Function):
    @staticmethod
    def forward(ctx, x, comm=None):
        ctx.rank, ctx.n = comm.Get_rank(), comm.Get_size()
        return _gather_last(comm, x)

    @staticmethod
    def backward(ctx, grad):
        return _split_last(grad, ctx.rank, ctx.n)


class ScatterToRegion(Function):
    @staticmethod
    def forward(ctx, x, comm=None):
        ctx.comm = comm
        return _split_last(x, comm.Get_rank(), comm.Get_size())

    @staticmethod
    def backward(ctx, grad):
        return _gather_last(ctx.comm, grad)
