"""Data sets read from local files, checked against published SHA-256s; downloaded only with `download=True`.

Keras-style arrays: `fashion_mnist.load_data()`, `mnist.load_data()`.
Where the files are looked for and where downloads go: `tinyopt.datasets.files`; downloading:
`tinyopt.datasets.download`; the file format: `idx`.
"""
from tinyopt.datasets import fashion_mnist, mnist
from tinyopt.datasets.files import DatasetError
from tinyopt.datasets.idx import IDXError, parse_idx

__all__ = ["DatasetError", "IDXError", "fashion_mnist", "mnist", "parse_idx"]
