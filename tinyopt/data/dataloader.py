"""`DataLoader`: batches of NumPy arrays, shuffled by an explicit Generator."""
from __future__ import annotations

import math

import numpy as np

from tinyopt.random import resolve


class DataLoader:
    """Iterate over aligned arrays in mini-batches.

    `arrays` is one array or a tuple of arrays with the same first dimension (e.g. `(x, y)`);
    each batch is a tuple of slices of them (or one array when one was given). With
    `shuffle=True` a new permutation is drawn from `rng` at the start of every epoch, so two
    loaders built with equal seeds yield identical batches.
    """

    def __init__(self, arrays, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False, rng=None):
        self.single = isinstance(arrays, np.ndarray)
        self.arrays = (arrays,) if self.single else tuple(np.asarray(a) for a in arrays)
        if not self.arrays:
            raise ValueError("DataLoader needs at least one array")
        n = len(self.arrays[0])
        for i, a in enumerate(self.arrays):
            if len(a) != n:
                raise ValueError(f"DataLoader arrays must have the same length: array 0 has {n} rows, array {i} has {len(a)}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.n, self.batch_size, self.shuffle, self.drop_last = n, int(batch_size), shuffle, drop_last
        self.rng = resolve(rng)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(self.n) if self.shuffle else None
        for b in range(len(self)):
            start = b * self.batch_size
            if order is None:
                batch = tuple(a[start:start + self.batch_size] for a in self.arrays)
            else:
                idx = order[start:start + self.batch_size]
                batch = tuple(a[idx] for a in self.arrays)
            yield batch[0] if self.single else batch
