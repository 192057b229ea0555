"""GPipe-style pipeline parallelism (Huang et al. 2019, https://arxiv.org/abs/1811.06965): the layers of a
`Sequential` split into K consecutive stages, stage k on rank k, the batch cut into M micro-batches.

One training step (`Pipeline.train_step`), rank k:

    for m = 0 … M−1:   receive activation a_m from rank k−1 (rank 0: micro-batch x_m)
                       z_m = stage_k(a_m);  send z_m to rank k+1 (the last rank: L_m = loss(z_m, y_m))
    for m = M−1 … 0:   receive ∂L/∂z_m from rank k+1 (the last rank: backward of w_m · L_m)
                       backward through stage_k;  send ∂L/∂a_m to rank k−1

with w_m = |micro-batch m| / B, so Σ_m w_m L_m is the mean loss of the whole batch (for a loss with
reduction="mean") and the gradients accumulated over the M micro-batches are those of one process
on the whole batch: one synchronous optimizer step follows (`optimizer.step()` on every rank).

The bubble: with equal stage times t_f (forward) and t_b (backward) per micro-batch, a step takes
(M + K − 1)(t_f + t_b), of which each rank computes M(t_f + t_b), so the idle fraction is

    bubble = (K − 1) / (M + K − 1)

which shrinks as M grows. `train_step` records a timeline per rank; `bubble_fraction(timeline)` is
the measured idle share (1 − busy time / step time), to compare with the formula.

Activations travel with `Isend` (the sender goes on computing) after a small int64 header with the
shape; dtypes must agree on all ranks. Stages run in training mode: BatchNorm in a stage would see
micro-batch statistics, not the batch's (GPipe's known caveat), so the equality holds for models
without it (or with BatchNorm in evaluation mode).
"""
from __future__ import annotations

import time

import numpy as np

from tinyopt import distributed as dist
from tinyopt.nn.container import Sequential
from tinyopt.nn.module import Module
from tinyopt.tensor import Tensor

_HEADER = 9   # ndim + up to 8 sizes


def split_sequential(model: Sequential, balance: list) -> list:
    """The stages of `model`: consecutive groups of `balance[k]` layers (Σ balance = len(model))."""
    if sum(balance) != len(model) or any(b <= 0 for b in balance):
        raise ValueError(f"balance {balance} must be positive and sum to the {len(model)} layers of the model")
    stages, start = [], 0
    for b in balance:
        stages.append(Sequential(*[model[i] for i in range(start, start + b)]))
        start += b
    return stages


def gpipe_bubble(num_stages: int, chunks: int) -> float:
    """(K − 1) / (M + K − 1): the idle share of a GPipe step with equal stage times."""
    return (num_stages - 1) / (chunks + num_stages - 1)


def gpipe_schedule(num_stages: int, chunks: int) -> list:
    """The GPipe schedule on a clock of equal ticks: rows[k][t] = ('F', m), ('B', m) or None (idle).
    Forward of micro-batch m on stage k at tick k + m; backward (reverse order) after all forwards."""
    K, M = num_stages, chunks
    total = 2 * (M + K - 1)
    rows = [[None] * total for _ in range(K)]
    for k in range(K):
        for m in range(M):
            rows[k][k + m] = ("F", m)
            rows[k][(M + K - 1) + (K - 1 - k) + (M - 1 - m)] = ("B", m)
    return rows


def bubble_fraction(timeline: list) -> float:
    """1 − (time spent in forward/backward) / (step time), over one rank's timeline of
    (kind, micro_batch, t_start, t_end, step_start, step_end)."""
    if not timeline:
        return 0.0
    step = timeline[0][5] - timeline[0][4]
    busy = sum(t1 - t0 for _, _, t0, t1, _, _ in timeline)
    return max(0.0, 1.0 - busy / step) if step > 0 else 0.0


class Pipeline(Module):
    """This rank's stage of `model` (a Sequential built identically on every rank), GPipe schedule.

    `balance`: layers per stage (default: as equal as possible); `chunks`: the number M of micro-batches."""

    def __init__(self, model: Sequential, chunks: int = 1, balance: list | None = None, group=None):
        super().__init__()
        if not isinstance(model, Sequential):
            raise TypeError(f"Pipeline splits a Sequential, got {type(model).__name__}")
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks <= 0:
            raise ValueError(f"chunks must be a positive integer, got {chunks!r}")
        comm = dist._comm(group)
        self.rank, self.num_stages, self.chunks = comm.Get_rank(), comm.Get_size(), chunks
        if balance is None:
            n, k = len(model), self.num_stages
            balance = [n // k + (1 if i < n % k else 0) for i in range(k)]
        if len(balance) != self.num_stages:
            raise ValueError(f"balance has {len(balance)} stages, the world has {self.num_stages} ranks")
        self.balance = list(balance)
        self.stage = split_sequential(model, self.balance)[self.rank]
        object.__setattr__(self, "_comm", comm)
        self.timeline: list = []

    def forward(self, *args, **kwargs):
        raise RuntimeError("a Pipeline runs whole training steps: call pipe.train_step(x, y, loss_fn)")

    # ------------------------------------------------------------------ messages
    def _send(self, array: np.ndarray, dst: int, tag: int, pending: list) -> None:
        array = np.ascontiguousarray(array)
        if array.ndim > _HEADER - 1:
            raise ValueError(f"activations with more than {_HEADER - 1} dimensions cannot be sent")
        header = np.zeros(_HEADER, dtype=np.int64)
        header[0] = array.ndim
        header[1:1 + array.ndim] = array.shape
        pending.append((self._comm.Isend(header, dest=dst, tag=2 * tag), header))
        pending.append((self._comm.Isend(array, dest=dst, tag=2 * tag + 1), array))

    def _recv(self, src: int, tag: int, dtype) -> np.ndarray:
        header = np.empty(_HEADER, dtype=np.int64)
        self._comm.Recv(header, source=src, tag=2 * tag)
        out = np.empty(tuple(int(s) for s in header[1:1 + header[0]]), dtype=dtype)
        self._comm.Recv(out, source=src, tag=2 * tag + 1)
        return out

    # ------------------------------------------------------------------ one step
    def train_step(self, x=None, target=None, loss_fn=None, dtype=np.float64):
        """Forward and backward of one batch; gradients accumulate into the stage's parameters.

        Rank 0 passes `x` (the whole batch), the last rank passes `target` and `loss_fn` (reduction
        "mean"); others pass nothing. Returns the batch's mean loss on the last rank, None elsewhere."""
        first, last = self.rank == 0, self.rank == self.num_stages - 1
        M = self.chunks
        if first and x is None:
            raise ValueError("rank 0 (the first stage) needs the input batch x")
        if last and (target is None or loss_fn is None):
            raise ValueError("the last stage needs target and loss_fn")
        comm = self._comm
        # Rank 0 knows the batch: it tells every rank the micro-batch sizes (so the weights w_m agree).
        sizes = np.zeros(M, dtype=np.int64)
        if first:
            xa = x.data if isinstance(x, Tensor) else np.asarray(x)
            if len(xa) < M:
                raise ValueError(f"a batch of {len(xa)} cannot be cut into chunks={M} micro-batches")
            sizes[:] = [len(p) for p in np.array_split(np.arange(len(xa)), M)]
        comm.Bcast(sizes, root=0)
        B = int(sizes.sum())
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        ta = None
        if last:
            ta = target.data if isinstance(target, Tensor) else np.asarray(target)
        pending, saved, losses, timeline = [], [], [], []
        comm.Barrier()
        step_start = time.perf_counter()
        for m in range(M):
            if first:
                a = Tensor(xa[bounds[m]:bounds[m + 1]])
            else:
                a = Tensor(self._recv(self.rank - 1, m, dtype), requires_grad=True)
            t0 = time.perf_counter()
            z = self.stage(a)
            if last:
                loss = loss_fn(z, Tensor(ta[bounds[m]:bounds[m + 1]])) * (float(sizes[m]) / B)
                losses.append(loss)
            timeline.append(("F", m, t0, time.perf_counter()))
            if not last:
                self._send(z.data, self.rank + 1, m, pending)
            saved.append((a, z))
        for m in reversed(range(M)):
            a, z = saved[m]
            if last:
                t0 = time.perf_counter()
                losses[m].backward()
            else:
                g = self._recv(self.rank + 1, M + m, z.data.dtype)
                t0 = time.perf_counter()
                z.backward(Tensor(g))
            timeline.append(("B", m, t0, time.perf_counter()))
            if not first:
                self._send(a.grad.data, self.rank - 1, M + m, pending)
        from mpi4py import MPI

        MPI.Request.Waitall([req for req, _ in pending])
        comm.Barrier()
        step_end = time.perf_counter()
        self.timeline = [(k, m, t0, t1, step_start, step_end) for k, m, t0, t1 in timeline]
        if last:
            return float(sum(float(l.data) for l in losses))
        return None

    def extra_repr(self) -> str:
        return f"stage {self.rank} of {self.num_stages}, balance={self.balance}, chunks={self.chunks}"
