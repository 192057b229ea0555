"""`to.cuda`: what torch scripts ask before choosing a device. There is no GPU in tinyopt."""
from __future__ import annotations


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def manual_seed(seed: int) -> None:
    """Accepted (there is no CUDA generator to seed)."""


manual_seed_all = manual_seed


def synchronize(device=None) -> None:
    """Nothing to wait for on the CPU."""
