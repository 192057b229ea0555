"""CIFAR-10 (Krizhevsky 2009): 60,000 32×32 colour images in 10 classes.

`load_data()` mirrors `keras.datasets.cifar10.load_data()`, shapes included:
`((x_train, y_train), (x_test, y_test))` as uint8 arrays of shapes (50000, 32, 32, 3), (50000, 1),
(10000, 32, 32, 3), (10000, 1): images channels-last (N, H, W, C) and labels as a column, exactly
as Keras returns them (`y.ravel()` gives the (N,) vector torch's losses take; the map-style
`tinyopt.datasets.CIFAR10` gives channels-first images and (N,) targets, like torchvision).

It reads the *binary* version, `cifar-10-binary.tar.gz` (parsed directly by
`tinyopt.datasets.cifar_binary`; the Python version is a pickle, and nothing is ever unpickled). The
archive is looked up in

1. the `path` argument (`path/cifar-10/`, `path/`), and nowhere else when it is given;
2. `$TINYOPT_DATA/cifar-10`,
3. `~/.cache/tinyopt/cifar-10` (no distribution packages CIFAR-10).

Nothing is downloaded unless `download=True`: then the archive (170,052,171 bytes) is fetched from
the dataset authors' site (https://www.cs.toronto.edu/~kriz/, where torchvision gets CIFAR-10 too)
into `path/cifar-10`, `$TINYOPT_DATA/cifar-10` or `~/.cache/tinyopt/cifar-10`.

Checksum: the SHA-256 of the archive file as published by TensorFlow Datasets
(`url_checksums/cifar10.txt`); the authors' page publishes its MD5, c32a1d4ab5d03f1284b67883e8d87530.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tinyopt.datasets import cifar_binary, files
from tinyopt.datasets.cifar_binary import CIFARError
from tinyopt.datasets.download import fetch
from tinyopt.datasets.files import DatasetError

ARCHIVE = "cifar-10-binary.tar.gz"
FILES = {ARCHIVE: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"}  # SHA-256 of the file
WHAT = "the file"

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

SOURCE = files.Source(
    title="CIFAR-10",
    folder="cifar-10",
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    unusable_files=(
        ("cifar-10-python.tar.gz", "is the Python (pickle) version of CIFAR-10, which tinyopt never unpickles: "
                                   f"get the binary version, {ARCHIVE}\n"),
        ("cifar-10-batches-bin", "is an extracted copy: tinyopt checks the SHA-256 of the archive itself, "
                                 f"so it needs {ARCHIVE}\n"),
        ("cifar-10-batches-py", "is an extracted copy of the Python (pickle) version, which tinyopt never "
                                f"unpickles: get {ARCHIVE}\n"),
    ),
)

_this = sys.modules[__name__]
_cache: dict = {}


def search_dirs(path=None) -> list[Path]:
    return files.search_dirs(SOURCE, path)


def _hint() -> str:
    return files.how_to_get(SOURCE, [ARCHIVE])


def find_archive(path=None, download: bool = False, mirrors=None, progress: bool = True) -> Path:
    files.check_arguments(path, download, progress)
    dirs = _this.search_dirs(path)
    found = files.locate(SOURCE, ARCHIVE, dirs)
    if found is not None:
        return found
    if not download:
        raise files.missing_error(SOURCE, [ARCHIVE], dirs, path)
    return fetch(SOURCE, ARCHIVE, files.download_dir(SOURCE, path),
                 digest_of=lambda f, label: files.sha256_of_file(f), expected=FILES[ARCHIVE], what=WHAT,
                 mirrors=mirrors, progress=progress)


def read_verified(file: Path, expected_sha256: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Check the archive's SHA-256, then parse its six batches: name -> (images, labels)."""
    file = Path(file)
    files.check_sha256(file, files.sha256_of_file(file), expected_sha256, WHAT, _hint())
    with files.open_binary(file) as f:
        try:
            members = cifar_binary.read_archive(f, str(file))
            return {name: cifar_binary.parse_batch(raw, f"{file}:{name}") for name, raw in members.items()}
        except CIFARError as e:
            raise DatasetError(f"{e}\n{_hint()}") from None
        except OSError as e:
            raise files.cannot_read(file, e) from None


def _batches(path, download, mirrors, progress):
    file = find_archive(path, download, mirrors, progress)
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size, FILES[ARCHIVE])
    if key not in _cache:
        _cache.clear()  # 180 MB each: keep one archive's arrays, not every one ever read
        _cache[key] = read_verified(file, FILES[ARCHIVE])
    return _cache[key]


def load_split(split: str, path=None, download: bool = False, mirrors=None, progress: bool = True):
    """`(images, labels)` of the "train" or "test" split: (N, 32, 32, 3) and (N,) uint8 arrays."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = cifar_binary.TRAIN_BATCHES if split == "train" else cifar_binary.TEST_BATCHES
    batches = _batches(path, download, mirrors, progress)
    return (np.concatenate([batches[n][0] for n in names]), np.concatenate([batches[n][1] for n in names]))


def load_data(path=None, download: bool = False, mirrors=None, progress: bool = True):
    """Return `((x_train, y_train), (x_test, y_test))` exactly as Keras does (labels of shape (N, 1)).

    path: a folder holding cifar-10-binary.tar.gz (the only place looked in); download: fetch it
    if missing; mirrors: base URLs replacing the built-in one; progress: show a progress bar.
    """
    x_train, y_train = load_split("train", path, download, mirrors, progress)
    x_test, y_test = load_split("test", path, False, mirrors, progress)
    return (x_train, y_train.reshape(-1, 1)), (x_test, y_test.reshape(-1, 1))


__all__ = ["ARCHIVE", "CLASS_NAMES", "DatasetError", "FILES", "SOURCE", "find_archive", "load_data", "load_split",
           "read_verified", "search_dirs"]
