"""MNIST (LeCun, Bottou, Bengio & Haffner 1998): 70,000 28×28 grey images of handwritten digits.

`load_data()` mirrors `keras.datasets.mnist.load_data()`: `((x_train, y_train), (x_test, y_test))`
as uint8 arrays of shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,). Keras reads its own
`mnist.npz` repackaging; tinyopt reads the four original IDX files (the same pixels and labels).
They are looked up in

1. the `path` argument (`path/mnist/`, `path/`, torchvision's `path/MNIST/raw/`), and nowhere else
   when it is given;
2. `$TINYOPT_DATA/mnist`,
3. `~/.cache/tinyopt/mnist` (no distribution packages MNIST, so there is no system folder).

MNIST and Fashion-MNIST use the same four file names, so MNIST's files live in a `mnist/`
subfolder; a Fashion-MNIST file found in MNIST's place is named as such.

Nothing is downloaded unless `download=True`: then the missing files are fetched from
torchvision's mirrors (the PyTorch S3 copy, then Google's CVDF copy that TensorFlow Datasets uses,
then LeCun's site) into `path/mnist`, `$TINYOPT_DATA/mnist` or `~/.cache/tinyopt/mnist`.

Checksums: SHA-256 of each file's *decompressed* content, like Fashion-MNIST, so a recompressed copy
is accepted. Published values of the original .gz files, for checking a download by hand:
SHA-256 (TensorFlow Datasets, `url_checksums/mnist.txt`) and MD5 (torchvision `MNIST.resources`):

    train-images-idx3-ubyte.gz  9,912,422 B  440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  f68b3c2dcbeaaa9fbdd348bbdeb94873
    train-labels-idx1-ubyte.gz     28,881 B  3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  d53e105ee54ea40749a09fcbcd1e9432
    t10k-images-idx3-ubyte.gz   1,648,877 B  8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  9fb629c4189551a2d022fa330f9573f3
    t10k-labels-idx1-ubyte.gz       4,542 B  f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  ec29112dd5afa0611ce80d1b7f02629c
"""
from __future__ import annotations

import sys
from pathlib import Path

from tinyopt.datasets import files, mnist_format
from tinyopt.datasets.files import DatasetError

# SHA-256 of the decompressed IDX files (47,040,016 / 60,008 / 7,840,016 / 10,008 bytes), as pinned
# by many independent projects that verify the original MNIST (see the module docstring for the .gz).
FILES = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

CLASS_NAMES = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine")  # torchvision's MNIST.classes

SOURCE = files.Source(
    title="MNIST",
    folder="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",    # torchvision's first mirror
        "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow Datasets' source
        "http://yann.lecun.com/exdb/mnist/",                 # the original site (often refuses downloads)
    ),
    torchvision_dir="MNIST/raw",
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
    mirrors: base URLs replacing the built-in mirrors (see `tinyopt.datasets.download`);
    progress: show a progress bar while downloading.
    """
    return mnist_format.load_data(_this, path, download, mirrors, progress)


mnist_format.register(_this)

__all__ = ["CLASS_NAMES", "DatasetError", "FILES", "SOURCE", "find_file", "load_data", "load_split",
           "read_verified", "search_dirs"]
