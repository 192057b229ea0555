"""The default random Generator, for code that is not handed one explicitly.

Every random choice in tinyopt (weight initialisation, dropout masks, shuffling) takes an
explicit `np.random.Generator` argument. When it is omitted, this module's generator is used;
`manual_seed(s)` resets it, like `torch.manual_seed`, so a script that calls it once is
reproducible bit for bit on the same machine.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the default generator to `np.random.default_rng(seed)` and return it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    return _generator


def resolve(rng) -> np.random.Generator:
    """`rng` if given (a Generator or an int seed), else the default generator."""
    if rng is None:
        return _generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"expected an np.random.Generator or an int seed, got {type(rng).__name__}")
