"""Mini-batch iteration."""
from tinyopt.data.dataloader import DataLoader

__all__ = ["DataLoader"]
