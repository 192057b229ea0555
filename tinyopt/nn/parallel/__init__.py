"""Parallel wrappers of modules (torch.nn.parallel): `DistributedDataParallel`."""
from tinyopt.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
