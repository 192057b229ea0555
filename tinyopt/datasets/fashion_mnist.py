"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 28×28 grey images of clothes in 10 classes.

`load_data()` mirrors `keras.datasets.fashion_mnist.load_data()`: it returns
`((x_train, y_train), (x_test, y_test))` as uint8 arrays of shapes (60000, 28, 28), (60000,),
(10000, 28, 28), (10000,). Nothing is downloaded: the four IDX files are looked up, in order, in

1. the `path` argument,
2. `$TINYOPT_DATA`,
3. `/usr/share/datasets/fashion-mnist` (Debian/Ubuntu package `dataset-fashion-mnist`),
4. `~/.cache/tinyopt` (and `~/.cache/tinyopt/fashion-mnist`).

Each file's SHA-256 is checked over its *decompressed* content, so any gzip of the official
files is accepted (Debian's are recompressed) while a corrupt or truncated one is not.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

from tinyopt.datasets.idx import IDXError, parse_idx

FILES = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

HOW_TO_GET = (
    "Install the Debian/Ubuntu package:  sudo apt-get install dataset-fashion-mnist\n"
    "or download the four .gz files from https://github.com/zalandoresearch/fashion-mnist (data/fashion)\n"
    "into ~/.cache/tinyopt/ or a folder named by $TINYOPT_DATA."
)


class DatasetError(RuntimeError):
    """A data file is missing, truncated or corrupt; the message names the file and the fix."""


def search_dirs(path=None) -> list[Path]:
    dirs = []
    if path is not None:
        dirs.append(Path(path).expanduser())
    if os.environ.get("TINYOPT_DATA"):
        dirs.append(Path(os.environ["TINYOPT_DATA"]).expanduser())
    dirs.append(Path("/usr/share/datasets/fashion-mnist"))
    cache = Path.home() / ".cache" / "tinyopt"
    dirs += [cache, cache / "fashion-mnist"]
    return dirs


def find_file(name: str, path=None) -> Path:
    dirs = search_dirs(path)
    for d in dirs:
        candidate = d / name
        if candidate.is_file():
            return candidate
    looked = "\n  ".join(str(d) for d in dirs)
    raise DatasetError(f"Fashion-MNIST file {name} not found. Looked in:\n  {looked}\n{HOW_TO_GET}")


def read_verified(file: Path, expected_sha256: str | None) -> bytes:
    """Decompress `file` and check the SHA-256 of its content."""
    try:
        with gzip.open(file, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, zlib.error) as e:
        raise DatasetError(f"{file} is truncated or not a valid gzip file ({e}). {HOW_TO_GET}") from None
    if expected_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected_sha256:
            raise DatasetError(
                f"{file}: SHA-256 of the decompressed content is {digest}, expected {expected_sha256}: "
                f"the file is corrupt or not the official one. Delete it and get it again.\n{HOW_TO_GET}"
            )
    return raw


_cache: dict = {}


def _load_file(name: str, path) -> np.ndarray:
    file = find_file(name, path)
    key = (str(file.resolve()), file.stat().st_mtime_ns, file.stat().st_size)
    if key not in _cache:
        raw = read_verified(file, FILES[name])
        try:
            _cache[key] = parse_idx(raw, str(file), expected_ndim=3 if "images" in name else 1)
        except IDXError as e:
            raise DatasetError(str(e)) from None
    return _cache[key].copy()


def load_data(path=None):
    """Return `((x_train, y_train), (x_test, y_test))` as uint8 arrays, like Keras."""
    x_train = _load_file("train-images-idx3-ubyte.gz", path)
    y_train = _load_file("train-labels-idx1-ubyte.gz", path)
    x_test = _load_file("t10k-images-idx3-ubyte.gz", path)
    y_test = _load_file("t10k-labels-idx1-ubyte.gz", path)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise DatasetError(f"Fashion-MNIST {split} split has {len(x)} images but {len(y)} labels")
    return (x_train, y_train), (x_test, y_test)
