"""Data sets read from local files, checked against published SHA-256s; downloaded only with `download=True`.

Keras-style arrays: `fashion_mnist.load_data()`, `mnist.load_data()`, `cifar10.load_data()`.
Map-style data sets for a loader, as in torchvision: `FashionMNIST`, `MNIST`, `CIFAR10`.
Where the files are looked for and where downloads go: `tinyopt.datasets.files`; downloading:
`tinyopt.datasets.download`; the file formats: `idx` (MNIST family), `cifar_binary` (CIFAR-10).
"""
from tinyopt.datasets import cifar10, fashion_mnist, mnist
from tinyopt.datasets.cifar_binary import CIFARError
from tinyopt.datasets.files import DatasetError
from tinyopt.datasets.idx import IDXError, parse_idx
from tinyopt.datasets.vision import CIFAR10, MNIST, FashionMNIST

__all__ = ["CIFAR10", "CIFARError", "DatasetError", "FashionMNIST", "IDXError", "MNIST", "cifar10", "fashion_mnist",
           "mnist", "parse_idx"]
