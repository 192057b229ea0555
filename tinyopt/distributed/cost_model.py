"""An α–β cost model of data- and pipeline-parallel training, to reason past one machine.

A message of n bytes takes α + n·β seconds (α: latency, β: seconds per byte = 1 / bandwidth;
Hockney 1994). The ring all-reduce of n bytes over N ranks sends 2(N−1) messages of n/N bytes in
sequence (`tinyopt.distributed.ring`):

    T_ring(n, N) = 2(N−1)·α + 2·(N−1)/N · n·β                               (0 for N = 1)

Data parallel, per-rank batch b fixed (weak scaling, how Horovod and the DDP papers report it), per-rank
compute time t_c(b) for forward + backward + step, gradients of G bytes, a share `overlap` ∈ [0, 1] of the
all-reduce hidden behind backward:

    T_step(N)  = t_c(b) + (1 − overlap) · T_ring(G, N)
    efficiency = t_c(b) / T_step(N)           (throughput of N ranks / (N × throughput of one))

With a global batch B fixed instead (strong scaling), t_c shrinks to t_c(B/N) and
speedup(N) = T_step(1) / T_step(N).

Pipeline (GPipe, K stages, M micro-batches, per-micro-batch stage time t_f + t_b, activations of A bytes
per micro-batch crossing each stage boundary):

    T_pipe = (M + K − 1)·(t_f + t_b) + 2(M + K − 1)·(α + A·β),   bubble = (K − 1)/(M + K − 1)

What the model cannot know: how much of the all-reduce really overlaps with backward (`overlap` is
an input), hierarchical networks (NVLink inside a node, a slower network between nodes; NCCL and
Horovod reduce inside nodes first), congestion and stragglers (the slowest rank sets the pace at
every collective), and whether the larger global batch still trains as well per epoch (the linear
lr-scaling rule with warmup, Goyal et al. 2017, holds up to a few thousand samples for ResNet-50).
"""
from __future__ import annotations

import numpy as np

GBIT = 1e9 / 8   # bytes per second in one Gb/s

# Typical interconnects: (α seconds, β seconds per byte). α of TCP over Ethernet is tens of µs; RDMA
# (InfiniBand / RoCE) a few µs. These are round textbook figures, not measurements.
NETWORKS = {
    "10 Gb/s Ethernet (TCP)": (30e-6, 1 / (10 * GBIT)),
    "100 Gb/s InfiniBand (RDMA)": (3e-6, 1 / (100 * GBIT)),
}


def ring_allreduce_time(nbytes: float, world_size: int, alpha: float, beta: float) -> float:
    """T_ring(n, N) = 2(N−1)α + 2(N−1)/N · nβ."""
    n = int(world_size)
    if n < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if n == 1:
        return 0.0
    return 2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes * beta


def fit_alpha_beta(nbytes, seconds, world_size: int) -> tuple:
    """α and β from measured all-reduce times of several sizes on `world_size` ranks: fits T = a + c·n
    by least squares on the *relative* error (each row divided by its T, so the 8-byte times that
    carry α weigh as much as the megabyte times that carry β), then α = a / (2(N−1)) and
    β = c·N / (2(N−1)). Returns (alpha, beta)."""
    n = int(world_size)
    if n < 2:
        raise ValueError("α and β need at least 2 ranks to measure")
    x, y = np.asarray(nbytes, dtype=float), np.asarray(seconds, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError("fit_alpha_beta needs at least two (bytes, seconds) pairs of equal length")
    if np.any(y <= 0):
        raise ValueError("measured times must be positive")
    design = np.stack([np.ones_like(x), x], axis=1) / y[:, None]
    (a, c), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    return max(a, 0.0) / (2 * (n - 1)), max(c, 0.0) * n / (2 * (n - 1))


def data_parallel_step_time(compute_seconds: float, grad_bytes: float, world_size: int, alpha: float,
                            beta: float, overlap: float = 0.0) -> float:
    """T_step(N) = t_c + (1 − overlap)·T_ring(G, N)."""
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1], got {overlap}")
    return compute_seconds + (1.0 - overlap) * ring_allreduce_time(grad_bytes, world_size, alpha, beta)


def scaling_efficiency(compute_seconds: float, grad_bytes: float, world_size: int, alpha: float, beta: float,
                       overlap: float = 0.0) -> float:
    """t_c / T_step(N): the share of ideal N-fold throughput at a fixed per-rank batch."""
    return compute_seconds / data_parallel_step_time(compute_seconds, grad_bytes, world_size, alpha, beta, overlap)


def pipeline_step_time(stage_seconds: float, num_stages: int, chunks: int, activation_bytes: float = 0.0,
                       alpha: float = 0.0, beta: float = 0.0) -> float:
    """T_pipe = (M + K − 1)(t_f + t_b) + 2(M + K − 1)(α + Aβ); `stage_seconds` is t_f + t_b per micro-batch."""
    ticks = chunks + num_stages - 1
    messages = 2 * ticks * (alpha + activation_bytes * beta) if num_stages > 1 else 0.0
    return ticks * stage_seconds + messages
