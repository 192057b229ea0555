"""The MNIST file layout shared by MNIST and Fashion-MNIST: four gzip'd IDX files per data set.

    train-images-idx3-ubyte.gz   (N_train, 28, 28) uint8
    train-labels-idx1-ubyte.gz   (N_train,)        uint8
    t10k-images-idx3-ubyte.gz    (N_test, 28, 28)  uint8
    t10k-labels-idx1-ubyte.gz    (N_test,)         uint8

Both data sets use the same four names, so each lives in its own subfolder (`mnist/`,
`fashion-mnist/`) and a file of the other data set found in the wrong place is named as such.

A data set is described by its module (`tinyopt.datasets.mnist`, `.fashion_mnist`), which holds
`SOURCE` (a `files.Source`), `FILES` (file name -> SHA-256 of the *decompressed* content: any gzip of
the official bytes is accepted, Debian's recompressed files included) and `search_dirs(path)`. The
functions here read those attributes at call time, so a test can patch `FILES` with the digests of
generated files or `search_dirs` with its own folders.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tinyopt.datasets import files
from tinyopt.datasets.download import fetch
from tinyopt.datasets.files import DatasetError
from tinyopt.datasets.idx import IDXError, parse_idx

SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CONTENT = "the decompressed content"

_family: list = []   # the data-set modules in this format, to name a file that belongs to another one
_cache: dict = {}


def register(module) -> None:
    _family.append(module)


def _hint(module) -> str:
    return files.how_to_get(module.SOURCE, list(module.FILES))


def find_file(module, name: str, path=None) -> Path:
    dirs = module.search_dirs(path)
    found = files.locate(module.SOURCE, name, dirs)
    if found is None:
        raise files.missing_error(module.SOURCE, [name], dirs, path)
    return found


def _whose(digest: str, name: str) -> str:
    for other in _family:
        if other.FILES.get(name) == digest:
            return other.SOURCE.title
    return ""


def read_verified(module, file: Path, expected_sha256: str | None) -> bytes:
    """Decompress `file` and check the SHA-256 of its content."""
    raw = files.read_gzip(file, _hint(module))
    digest = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        owner = _whose(digest, Path(file).name)
        if owner:
            raise DatasetError(
                f"{file} is the {owner} file of that name, not the {module.SOURCE.title} one: "
                f"{module.SOURCE.title}'s files go into a folder of their own ('{module.SOURCE.folder}/' under "
                f"$TINYOPT_DATA, ~/.cache/tinyopt or the path you pass).\n{_hint(module)}"
            )
        files.check_sha256(file, digest, expected_sha256, CONTENT, _hint(module))
    return raw


def _parse(module, name: str, file: Path) -> np.ndarray:
    stat = file.stat()
    expected = module.FILES[name]
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size, expected)
    if key not in _cache:
        raw = read_verified(module, file, expected)
        try:
            _cache[key] = parse_idx(raw, str(file), expected_ndim=3 if "images" in name else 1)
        except IDXError as e:
            raise DatasetError(str(e)) from None
    return _cache[key].copy()


def ensure_files(module, names, path=None, download=False, mirrors=None, progress=True) -> dict[str, Path]:
    """Find every file in `names` (downloading the missing ones if asked); all missing ones are named at once."""
    files.check_arguments(path, download, progress)
    dirs = module.search_dirs(path)
    found = {name: files.locate(module.SOURCE, name, dirs) for name in names}
    missing = [name for name, f in found.items() if f is None]
    if missing and not download:
        raise files.missing_error(module.SOURCE, missing, dirs, path)
    target = files.download_dir(module.SOURCE, path)
    for name in missing:
        found[name] = fetch(
            module.SOURCE, name, target,
            digest_of=lambda f, label: hashlib.sha256(files.read_gzip(f, label=label)).hexdigest(),
            expected=module.FILES[name], what=CONTENT, mirrors=mirrors, progress=progress,
        )
    return found


def load_split(module, split: str, path=None, download=False, mirrors=None, progress=True):
    """`(images, labels)` of one split ("train" or "test") as uint8 arrays."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images_name, labels_name = SPLITS[split]
    found = ensure_files(module, (images_name, labels_name), path, download, mirrors, progress)
    x, y = _parse(module, images_name, found[images_name]), _parse(module, labels_name, found[labels_name])
    if len(x) != len(y):
        raise DatasetError(f"{module.SOURCE.title} {split} split has {len(x)} images but {len(y)} labels")
    return x, y


def load_data(module, path=None, download=False, mirrors=None, progress=True):
    """`((x_train, y_train), (x_test, y_test))`, every file found (or downloaded) before any is read."""
    ensure_files(module, [n for pair in SPLITS.values() for n in pair], path, download, mirrors, progress)
    return (load_split(module, "train", path, False, mirrors, progress),
            load_split(module, "test", path, False, mirrors, progress))
