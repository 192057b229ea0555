"""Samplers: the order in which a DataLoader visits a dataset's indices (torch.utils.data's)."""
from __future__ import annotations

import numpy as np

from tinyopt.random import resolve


class Sampler:
    """An iterable of dataset indices with a length."""

    def __iter__(self):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    def __init__(self, data_source):
        self.n = len(data_source)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class RandomSampler(Sampler):
    """A new permutation of the indices each epoch (or `num_samples` draws with replacement), from
    `generator` (a Generator or a seed; the default generator when None)."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None, generator=None):
        self.n = len(data_source)
        self.replacement = replacement
        self.num_samples = self.n if num_samples is None else int(num_samples)
        if self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")
        if not replacement and num_samples is not None and self.num_samples > self.n:
            raise ValueError("without replacement, num_samples cannot exceed the dataset size")
        self.generator = resolve(generator)

    def __iter__(self):
        if self.replacement:
            return iter(self.generator.integers(0, self.n, size=self.num_samples).tolist())
        return iter(self.generator.permutation(self.n)[: self.num_samples].tolist())

    def indices(self) -> np.ndarray:
        """This epoch's indices as one array (what the DataLoader's fast path uses)."""
        if self.replacement:
            return self.generator.integers(0, self.n, size=self.num_samples)
        return self.generator.permutation(self.n)[: self.num_samples]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    def __init__(self, indices, generator=None):
        self.indices_ = np.asarray(list(indices))
        self.generator = resolve(generator)

    def __iter__(self):
        return iter(self.indices_[self.generator.permutation(len(self.indices_))].tolist())

    def __len__(self) -> int:
        return len(self.indices_)


class BatchSampler(Sampler):
    """Group another sampler's indices into lists of `batch_size` (the last one shorter unless drop_last)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), bool(drop_last)

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
