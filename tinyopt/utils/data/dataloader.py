"""`DataLoader`: mini-batches from a dataset in an order drawn from an explicit generator.

Two ways to call it:

- torch's: `DataLoader(dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None,
  collate_fn=None, drop_last=False, generator=None, ...)` over any map-style dataset (`__len__`,
  `__getitem__`); samples are merged by `collate_fn` (default: `default_collate`, which stacks
  arrays and numbers into Tensors). A `TensorDataset` is sliced in bulk (same batches, no
  per-sample Python loop).
- tinyopt's array shorthand, kept from before: `DataLoader((x, y), ...)` or `DataLoader(x, ...)`
  on aligned arrays (or Tensors); each batch is a tuple of slices of the same type as given
  (ndarrays stay ndarrays), or one slice when one array was given.

With `shuffle=True` a new permutation is drawn from `generator` (or the older `rng=`) at the
start of every epoch, so two loaders built with equal seeds yield identical batches.
`num_workers` and `pin_memory` are accepted and change nothing: batches are made in this process,
in the same order, so results are the same as torch's with workers.
"""
from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from tinyopt.random import resolve
from tinyopt.tensor import Tensor
from tinyopt.utils.data.dataset import TensorDataset
from tinyopt.utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler


def default_collate(batch):
    """torch's default_collate: a list of samples → one batch. Tensors and arrays are stacked into a
    Tensor; Python ints become an int64 Tensor, floats a float64 Tensor (as torch); tuples/lists and
    dicts are collated field by field; strings stay a list."""
    first = batch[0]
    if isinstance(first, Tensor):
        return Tensor._wrap(np.stack([b.data for b in batch]))
    if isinstance(first, (np.ndarray, np.generic)):
        return Tensor._wrap(np.stack(batch))
    if isinstance(first, bool):
        return Tensor._wrap(np.asarray(batch, dtype=np.bool_))
    if isinstance(first, numbers.Integral):
        return Tensor._wrap(np.asarray(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor._wrap(np.asarray(batch, dtype=np.float64))
    if isinstance(first, str):
        return list(batch)
    if isinstance(first, collections.abc.Mapping):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, collections.abc.Sequence):
        lengths = {len(b) for b in batch}
        if len(lengths) != 1:
            raise RuntimeError("each element in list of batch should be of equal size")
        return type(first)(default_collate(list(field)) for field in zip(*batch)) if isinstance(first, tuple) \
            else [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, arrays, numbers, dicts or lists; found {type(first)}")


def _is_array_shorthand(data) -> bool:
    if isinstance(data, (np.ndarray, Tensor)):
        return True
    return isinstance(data, tuple) and all(isinstance(a, (np.ndarray, Tensor)) for a in data)


class _Arrays:
    """The array shorthand as a dataset that is sliced in bulk and keeps the given types."""

    def __init__(self, data):
        self.single = not isinstance(data, tuple)
        self.arrays = (data,) if self.single else data
        if not self.arrays:
            raise ValueError("DataLoader needs at least one array")
        n = len(self.arrays[0])
        for i, a in enumerate(self.arrays):
            if len(a) != n:
                raise ValueError(f"DataLoader arrays must have the same length: array 0 has {n} rows, array {i} has {len(a)}")
        self.arrays = tuple(a if isinstance(a, Tensor) else np.asarray(a) for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def batch(self, index):
        out = tuple(Tensor._wrap(a.data[index]) if isinstance(a, Tensor) else a[index] for a in self.arrays)
        return out[0] if self.single else out


class DataLoader:
    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None, generator=None, *,
                 rng=None, prefetch_factor=None, persistent_workers: bool = False):
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"num_workers option should be non-negative; got {num_workers!r}")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if generator is not None and rng is not None:
            raise TypeError("pass generator= or rng= (the older name), not both")
        self.array_shorthand = _is_array_shorthand(dataset)
        self.dataset = _Arrays(dataset) if self.array_shorthand else dataset
        if not hasattr(self.dataset, "__len__") or not hasattr(self.dataset, "__getitem__") and not self.array_shorthand:
            raise TypeError(f"DataLoader needs a map-style dataset (with __len__ and __getitem__) or arrays, got "
                            f"{type(dataset).__name__}")
        self.batch_size, self.drop_last = (None if batch_size is None else int(batch_size)), bool(drop_last)
        self.generator = resolve(generator if generator is not None else rng)
        self.num_workers, self.pin_memory = int(num_workers), pin_memory
        if sampler is None:
            sampler = RandomSampler(self.dataset, generator=self.generator) if shuffle else SequentialSampler(self.dataset)
        self.sampler = sampler
        if batch_sampler is None and self.batch_size is not None:
            batch_sampler = BatchSampler(sampler, self.batch_size, self.drop_last)
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn
        if self.array_shorthand and collate_fn is not None:
            raise ValueError("collate_fn needs a dataset; wrap the arrays: DataLoader(TensorDataset(x, y), collate_fn=...)")

    @property
    def rng(self) -> np.random.Generator:  # the older name of the shuffling generator
        return self.generator

    def __len__(self) -> int:
        if self.batch_sampler is None:
            return len(self.sampler)
        return len(self.batch_sampler)

    def _batches_of_indices(self):
        """Index arrays, one per batch; bulk (no per-index Python loop) for the built-in samplers."""
        if isinstance(self.batch_sampler, BatchSampler) and isinstance(self.sampler, (RandomSampler, SequentialSampler)):
            order = self.sampler.indices() if isinstance(self.sampler, RandomSampler) else None
            n, size = len(self.sampler), self.batch_size
            for b in range(len(self)):
                start = b * size
                yield slice(start, min(start + size, n)) if order is None else order[start:start + size]
            return
        if self.batch_sampler is None:
            for i in self.sampler:
                yield i
            return
        for batch in self.batch_sampler:
            yield np.asarray(batch, dtype=np.int64)

    def __iter__(self):
        dataset = self.dataset
        bulk = self.array_shorthand or (isinstance(dataset, TensorDataset) and self.collate_fn is None)
        for index in self._batches_of_indices():
            if self.array_shorthand:
                yield dataset.batch(index)
            elif self.batch_sampler is None:  # batch_size=None: samples one by one, not collated
                yield dataset[index] if self.collate_fn is None else self.collate_fn(dataset[index])
            elif bulk:
                yield dataset[index]
            else:
                indices = range(index.start, index.stop) if isinstance(index, slice) else index.tolist()
                samples = [dataset[i] for i in indices]
                yield (self.collate_fn or default_collate)(samples)


__all__ = ["DataLoader", "default_collate"]
