"""Datasets read from local files (never downloaded at run time)."""
from tinyopt.datasets import fashion_mnist
from tinyopt.datasets.fashion_mnist import DatasetError
from tinyopt.datasets.idx import IDXError, parse_idx

__all__ = ["DatasetError", "IDXError", "fashion_mnist", "parse_idx"]
