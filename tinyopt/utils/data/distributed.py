"""`DistributedSampler`: each rank's share of a dataset's indices (torch.utils.data.DistributedSampler).

With n samples, N replicas (ranks) and rank r, each epoch:

    indices  = a permutation of 0 … n−1 (shuffle=True), else 0 … n−1
    drop_last=False:  num_samples = ⌈n / N⌉; the list is padded to N·num_samples by repeating its
                      own beginning (as often as needed), so some samples appear twice in the epoch
    drop_last=True:   num_samples = ⌈(n − N) / N⌉ when N does not divide n, else n/N; the list is cut
                      to N·num_samples (the tail is dropped)
    rank r takes indices[r :: N]          (interleaved, not contiguous blocks)

Same rule as torch, checked against it index for index. The permutation differs: torch draws
`torch.randperm(n)` from a generator seeded with seed + epoch; tinyopt draws
`np.random.default_rng(seed + epoch).permutation(n)` (tinyopt's random numbers are NumPy's). Every
rank draws the same permutation because all use the same seed; call `set_epoch(e)` at the start of
each epoch, or every epoch repeats the same order.
"""
from __future__ import annotations

import math

import numpy as np

from tinyopt.utils.data.sampler import Sampler


def _check_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


class DistributedSampler(Sampler):
    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from tinyopt import distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler needs num_replicas and rank, or an initialised process "
                                   'group (tinyopt.distributed.init_process_group(backend="mpi"))')
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        num_replicas, rank, seed = _check_int("num_replicas", num_replicas), _check_int("rank", rank), _check_int("seed", seed)
        if num_replicas <= 0:
            raise ValueError(f"num_replicas must be positive, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), seed, bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def permutation(self) -> list:
        """This epoch's order of all n indices, before padding and splitting (the same on every rank)."""
        n = len(self.dataset)
        if self.shuffle:
            return np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()
        return list(range(n))

    def split(self, indices: list) -> list:
        """torch's rule: pad by repetition (or cut when drop_last), then take every N-th from the rank."""
        indices = list(indices)
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding > 0 and indices:
                if padding <= len(indices):
                    indices += indices[:padding]
                else:
                    indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        out = indices[self.rank:self.total_size:self.num_replicas]
        assert len(out) == self.num_samples
        return out

    def __iter__(self):
        return iter(self.split(self.permutation()))

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Make the next epoch's shuffle depend on `epoch` (call it once per epoch, on every rank)."""
        self.epoch = _check_int("epoch", epoch)
