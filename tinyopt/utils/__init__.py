"""torch.utils' counterpart: `tinyopt.utils.data` (datasets, samplers, DataLoader)."""
from tinyopt.utils import data

__all__ = ["data"]
