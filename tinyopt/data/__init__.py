"""The older home of `DataLoader` (`to.data.DataLoader((x, y), ...)`): the same class as
`tinyopt.utils.data.DataLoader`."""
from tinyopt.utils.data import DataLoader

__all__ = ["DataLoader"]
