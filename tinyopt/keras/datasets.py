"""`keras.datasets`-style access to the data sets tinyopt reads from local files.

Only Fashion-MNIST is available (`fashion_mnist.load_data()`, same return value as Keras'); the
seed article's `datasets.cifar10` is not shipped and raises an error saying so.
"""
from tinyopt.datasets import fashion_mnist


class _Missing:
    def __init__(self, name: str):
        self.name = name

    def load_data(self, *args, **kwargs):
        raise RuntimeError(f"tinyopt does not ship the {self.name} data set; use datasets.fashion_mnist.load_data()")


cifar10 = _Missing("CIFAR-10")
mnist = _Missing("MNIST")

__all__ = ["cifar10", "fashion_mnist", "mnist"]
