"""Map-style data sets, as torchvision users know them: `MNIST`, `FashionMNIST`, `CIFAR10`.

    MNIST(root=None, train=True, transform=None, target_transform=None, download=False)

`ds[i]` is `(image, label)`, `len(ds)` the number of images; `ds.data`, `ds.targets`, `ds.classes`,
`ds.class_to_idx` as in torchvision. The files are found (or, with `download=True`, fetched) by the
`load_data` of `tinyopt.datasets.mnist`, `.fashion_mnist`, `.cifar10`: `root=None` searches the
default places, `root=DIR` looks only in DIR (`DIR/mnist/`, `DIR/`, torchvision's `DIR/MNIST/raw/`)
and downloads into `DIR/mnist/` (`fashion-mnist/`, `cifar-10/`). Only the requested split is read.

The convention, next to torchvision's:

| | tinyopt | torchvision |
|---|---|---|
| `ds[i]` image, `transform=None` | float32 ndarray (C, H, W), `pixel / 255` in [0, 1] | a PIL image |
| `ds[i]` image, `transform=f` | `f(that float32 (C, H, W) array)` | `f(PIL image)` |
| `ds[i]` label | Python int (then `target_transform`) | Python int (then `target_transform`) |
| `.data` | uint8 ndarray: (N, 28, 28); CIFAR-10 (N, 32, 32, 3) | uint8 tensor (N, 28, 28); CIFAR-10 the same ndarray |
| `.targets` | int64 ndarray (N,) | int64 tensor; CIFAR-10 a list of ints |

So tinyopt's default image is exactly torchvision's `transforms.ToTensor()` output (the uint8
(H, W[, C]) pixels moved to channels-first, converted to float32 and divided by 255), shape
(1, 28, 28) for the MNISTs and (3, 32, 32) for CIFAR-10, and `transform=f` here is
`transforms.Compose([transforms.ToTensor(), f])` there: a normalisation like
`lambda x: (x - 0.1307) / 0.3081` works unchanged, PIL-based augmentations do not exist here. The raw
uint8 pixels are `ds.data[i]`.
"""
from __future__ import annotations

import os

import numpy as np

from tinyopt.datasets import cifar10, fashion_mnist, mnist
from tinyopt.utils.data.dataset import Dataset


def to_chw_float(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> float32 (C, H, W) in [0, 1], like torchvision's ToTensor on a uint8 image."""
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return np.ascontiguousarray(chw, dtype=np.float32) / np.float32(255)


class _ImageClassification(Dataset):
    """The shared body; `_module` is the data set's loader module, `classes` its class names."""

    _module = None
    classes: list[str] = []

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None, download: bool = False):
        name = type(self).__name__
        if root is not None and not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"{name}: root must be a folder name (str or os.PathLike) or None, got {type(root).__name__}")
        for arg, value in (("train", train), ("download", download)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name}: {arg} must be True or False, got {value!r}")
        for arg, value in (("transform", transform), ("target_transform", target_transform)):
            if value is not None and not callable(value):
                raise TypeError(f"{name}: {arg} must be a callable or None, got {type(value).__name__}")
        self.root = root
        self.train = bool(train)
        self.transform = transform
        self.target_transform = target_transform
        self.data, labels = self._module.load_split("train" if self.train else "test", root, bool(download))
        self.targets = labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers, got {type(index).__name__}")
        n = len(self.data)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {type(self).__name__} ({self._split()}) of {n} images")
        image, label = to_chw_float(self.data[index]), int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def _split(self) -> str:
        return "Train" if self.train else "Test"

    def __repr__(self) -> str:
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}"]
        lines.append(f"    Root location: {self.root if self.root is not None else '(default search path)'}")
        lines.append(f"    Split: {self._split()}")
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}")
        if self.target_transform is not None:
            lines.append(f"    Target transform: {self.target_transform!r}")
        return "\n".join(lines)


class MNIST(_ImageClassification):
    """MNIST digits: 60,000 training / 10,000 test images, (1, 28, 28) float32 each (see the module docstring)."""

    _module = mnist
    classes = list(mnist.CLASS_NAMES)


class FashionMNIST(_ImageClassification):
    """Fashion-MNIST: 60,000 training / 10,000 test images, (1, 28, 28) float32 each (see the module docstring)."""

    _module = fashion_mnist
    classes = list(fashion_mnist.CLASS_NAMES)


class CIFAR10(_ImageClassification):
    """CIFAR-10: 50,000 training / 10,000 test images, (3, 32, 32) float32 each (see the module docstring)."""

    _module = cifar10
    classes = list(cifar10.CLASS_NAMES)


__all__ = ["CIFAR10", "FashionMNIST", "MNIST", "to_chw_float"]
