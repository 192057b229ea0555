"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 28×28 grey images of clothes in 10 classes.

`load_data()` mirrors `keras.datasets.fashion_mnist.load_data()`: it returns
`((x_train, y_train), (x_test, y_test))` as uint8 arrays of shapes (60000, 28, 28), (60000,),
(10000, 28, 28), (10000,). The four IDX files are looked up, in order, in

1. the `path` argument (`path/fashion-mnist/`, `path/`, torchvision's `path/FashionMNIST/raw/`),
   and nowhere else when it is given;
2. `$TINYOPT_DATA` (and `$TINYOPT_DATA/fashion-mnist`),
3. `/usr/share/datasets/fashion-mnist` (Debian/Ubuntu package `dataset-fashion-mnist`),
4. `~/.cache/tinyopt` (and `~/.cache/tinyopt/fashion-mnist`).

Nothing is downloaded unless `download=True` (then into `path/fashion-mnist`,
`$TINYOPT_DATA/fashion-mnist` or `~/.cache/tinyopt/fashion-mnist`, from torchvision's mirror).

Each file's SHA-256 is checked over its *decompressed* content, so any gzip of the official
files is accepted (Debian's are recompressed) while a corrupt or truncated one is not.
The digests are those of the files in zalandoresearch/fashion-mnist `data/fashion` (also the
content of Debian's package); torchvision lists the MD5s of the .gz files themselves, which
Debian's recompressed copies do not match.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tinyopt.datasets import files, mnist_format
from tinyopt.datasets.files import DatasetError

FILES = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

SOURCE = files.Source(
    title="Fashion-MNIST",
    folder="fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),  # torchvision's
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    flat_defaults=True,
    torchvision_dir="FashionMNIST/raw",
    install_hint="install the Debian/Ubuntu package:  sudo apt-get install dataset-fashion-mnist\n"
                 "or copy the four .gz files of https://github.com/zalandoresearch/fashion-mnist (data/fashion)",
)

_this = sys.modules[__name__]


def search_dirs(path=None) -> list[Path]:
    return files.search_dirs(SOURCE, path)


def find_file(name: str, path=None) -> Path:
    return mnist_format.find_file(_this, name, path)


def read_verified(file: Path, expected_sha256: str | None) -> bytes:
    """Decompress `file` and check the SHA-256 of its content."""
    return mnist_format.read_verified(_this, Path(file), expected_sha256)


def load_split(split: str, path=None, download: bool = False, mirrors=None, progress: bool = True):
    """`(images, labels)` of the "train" or "test" split, uint8."""
    return mnist_format.load_split(_this, split, path, download, mirrors, progress)


def load_data(path=None, download: bool = False, mirrors=None, progress: bool = True):
    """Return `((x_train, y_train), (x_test, y_test))` as uint8 arrays, like Keras.

    path: a folder holding the files (the only place looked in); download: fetch missing files;
    mirrors: base URLs replacing the built-in mirror (see `tinyopt.datasets.download`);
    progress: show a progress bar while downloading.
    """
    return mnist_format.load_data(_this, path, download, mirrors, progress)


mnist_format.register(_this)

__all__ = ["CLASS_NAMES", "DatasetError", "FILES", "SOURCE", "find_file", "load_data", "load_split",
           "read_verified", "search_dirs"]
