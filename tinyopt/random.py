"""The default random Generator, for code that is not handed one explicitly.

Every random choice in tinyopt (weight initialisation, dropout masks, shuffling) takes an
explicit `np.random.Generator` argument. When it is omitted, this module's generator is used;
`manual_seed(s)` resets it, like `torch.manual_seed`, so a script that calls it once is
reproducible bit for bit on the same machine.
"""
from __future__ import annotations

import numpy as np

from tinyopt.device import check_device

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the default generator to `np.random.default_rng(seed)` and return it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    return _generator


class Generator:
    """torch's `Generator` API over a NumPy Generator: `to.Generator().manual_seed(0)`, passed as
    `generator=` anywhere tinyopt draws random numbers. `.numpy_generator` is the NumPy stream."""

    def __init__(self, device="cpu"):
        check_device(device)
        self._seed = int(np.random.SeedSequence().entropy % 2**63)
        self.numpy_generator = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = int(seed)
        self.numpy_generator = np.random.default_rng(self._seed)
        return self

    def initial_seed(self) -> int:
        return self._seed

    def seed(self) -> int:
        return self.manual_seed(int(np.random.SeedSequence().entropy % 2**63))._seed

    def get_state(self) -> dict:
        return self.numpy_generator.bit_generator.state

    def set_state(self, state: dict) -> "Generator":
        self.numpy_generator.bit_generator.state = state
        return self


def resolve(rng) -> np.random.Generator:
    """`rng` if given (a NumPy Generator, a `tinyopt.Generator` or an int seed), else the default
    generator."""
    if rng is None:
        return _generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, Generator):
        return rng.numpy_generator
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"expected an np.random.Generator or an int seed, got {type(rng).__name__}")
