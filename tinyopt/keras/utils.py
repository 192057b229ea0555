"""Keras utilities the seed examples use."""
from __future__ import annotations

import random

import numpy as np

from tinyopt.random import manual_seed


def set_random_seed(seed: int) -> None:
    """Keras' `keras.utils.set_random_seed(seed)`: seed Python's `random`, NumPy's global
    `np.random` and tinyopt's default generator (`tinyopt.manual_seed`), which every layer without
    its own `rng=` / initializer `seed=`, dropout, and `fit(shuffle=True)` without `rng=` draw from.
    Running the same script after it gives the same numbers."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed needs a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    manual_seed(int(seed))


def to_categorical(y, num_classes=None, dtype="float32") -> np.ndarray:
    """One-hot encode integer labels: out[n, c] = 1 if y_n = c else 0. A trailing axis of size 1 is
    dropped first (Keras does the same for (N, 1) label columns)."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("to_categorical needs integer class labels")
        y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and y.min() < 0:
        raise ValueError(f"class labels must be >= 0, got {y.min()}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and y.max() >= num_classes:
        raise ValueError(f"label {y.max()} does not fit num_classes={num_classes}")
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
