"""The differentiable front end over `tinyopt.ops.distributed` (torch.distributed.nn.functional's role),
and `sync_batch_norm`, composed from it. Each function takes `group=None` (the default process group).
The conventions (sum of the ranks' losses vs a replicated loss) are explained in `tinyopt.ops.distributed`."""
from __future__ import annotations

import numpy as np

from tinyopt import distributed as dist
from tinyopt.errors import ShapeError
from tinyopt.ops import distributed as D
from tinyopt.tensor import Tensor


def all_reduce(tensor: Tensor, group=None) -> Tensor:
    """y = Σ_r x_r on every rank, out of place; backward all-reduces too (the loss is Σ_s L_s)."""
    return D.AllReduceSum.apply(tensor, comm=dist._comm(group))


def copy_to_tensor_parallel_region(tensor: Tensor, group=None) -> Tensor:
    """Megatron's f: identity forward, all-reduce backward (a replicated input feeding sharded weights)."""
    return D.CopyToRegion.apply(tensor, comm=dist._comm(group))


def reduce_from_tensor_parallel_region(tensor: Tensor, group=None) -> Tensor:
    """Megatron's g: all-reduce forward (partial sums of a row-split matmul), identity backward."""
    return D.ReduceFromRegion.apply(tensor, comm=dist._comm(group))


def gather_from_tensor_parallel_region(tensor: Tensor, group=None) -> Tensor:
    """Concatenate every rank's last-axis slice; backward keeps this rank's slice."""
    return D.GatherFromRegion.apply(tensor, comm=dist._comm(group))


def scatter_to_tensor_parallel_region(tensor: Tensor, group=None) -> Tensor:
    """This rank's slice of the last axis (it must divide evenly); backward all-gathers."""
    return D.ScatterToRegion.apply(tensor, comm=dist._comm(group))


def _global_count(local: int, comm) -> int:
    from mpi4py import MPI

    buf = np.array([local], dtype=np.int64)
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return int(buf[0])


def sync_batch_norm(input: Tensor, running_mean, running_var, weight: Tensor | None = None,  # noqa: A002
                    bias: Tensor | None = None, momentum: float = 0.1, eps: float = 1e-5, group=None) -> Tensor:
    """Batch normalization in training mode with statistics over the samples of ALL ranks.

    With M = Σ_r m_r values per channel over the ranks (m_r on rank r: batch × spatial positions):

        μ  = (1/M) Σ_r Σ_i x_ri                       (one all-reduce of the per-channel sums)
        σ² = (1/M) Σ_r Σ_i (x_ri − μ)²                (a second all-reduce; two passes, as F.batch_norm)
        y  = γ · (x − μ)/√(σ² + ε) + β
        running_mean ← (1 − momentum)·running_mean + momentum·μ
        running_var  ← (1 − momentum)·running_var  + momentum·σ²·M/(M − 1)

    The all-reduces are `all_reduce` (backward all-reduces the gradient), so autograd gives the
    gradient of Σ_s L_s with respect to this rank's x, exactly what one process computing BatchNorm on
    the concatenated batch gives (DDP's averaging then turns Σ into the mean). torch's SyncBatchNorm
    all-gathers (mean, var, count) instead of a second all-reduce; the numbers agree to rounding."""
    comm = dist._comm(group)
    if input.ndim < 2:
        raise ShapeError(f"sync_batch_norm expects input of shape (N, C, *), got {tuple(input.shape)}")
    c = input.shape[1]
    axes = (0,) + tuple(range(2, input.ndim))
    m = _global_count(input.numel() // c, comm)
    if m <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got {m} over all ranks")
    mean = all_reduce(input.sum(dim=axes, keepdim=True), group) / m
    centered = input - mean
    var = all_reduce((centered * centered).sum(dim=axes, keepdim=True), group) / m
    for running, batch, correction in ((running_mean, mean, 1.0), (running_var, var, m / (m - 1))):
        if running is None:
            continue
        array = running.data if isinstance(running, Tensor) else running  # a buffer: its memory, in place
        array *= 1 - momentum
        array += momentum * batch.data.reshape(c).astype(array.dtype) * correction  # × 1.0 is exact
        if isinstance(running, Tensor):
            running._version.value += 1
    out = centered / (var + eps).sqrt()
    shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out
