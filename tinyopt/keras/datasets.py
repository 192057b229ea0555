"""`keras.datasets`-style access: `mnist`, `fashion_mnist` and `cifar10`, each with `load_data()`.

The return values are Keras': `((x_train, y_train), (x_test, y_test))` as uint8 arrays, CIFAR-10
channels-last (N, 32, 32, 3) with labels of shape (N, 1), the MNISTs (N, 28, 28) with labels (N,).
These are the `tinyopt.datasets` modules themselves, so the files are looked for and checked as
described there. One difference from Keras, on purpose: nothing is downloaded unless you ask,
`load_data(download=True)` (Keras downloads on first use); a missing file is an error that says
where to put it. `path` is a folder holding the original files, not Keras' `mnist.npz`.
"""
from tinyopt.datasets import cifar10, fashion_mnist, mnist

__all__ = ["cifar10", "fashion_mnist", "mnist"]
