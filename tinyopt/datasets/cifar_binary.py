"""Reader for the *binary* version of CIFAR-10 (the one "suitable for C programs").

Each batch file (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`, 10,000 records each) is
a plain sequence of fixed-size records, no header:

    1 byte       label, 0–9
    3072 bytes   the 32×32 image: 1024 red, then 1024 green, then 1024 blue values, each plane
                 row by row (row-major), so a record's pixels reshape to (3, 32, 32)

The files come in `cifar-10-binary.tar.gz` under `cifar-10-batches-bin/`; they are read straight
from the archive (never extracted onto disk, never unpickled: the Python version of CIFAR-10 is a
pickle, which is why tinyopt reads this one). Anything that does not fit raises `CIFARError`.
"""
from __future__ import annotations

import tarfile
import zlib

import numpy as np

IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES
NUM_CLASSES = 10
FOLDER = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCHES = ("test_batch.bin",)


class CIFARError(ValueError):
    pass


def parse_batch(raw: bytes, name: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)`: images (N, 32, 32, 3) uint8 (channels last, like Keras), labels (N,) uint8."""
    if len(raw) == 0 or len(raw) % RECORD_BYTES != 0:
        raise CIFARError(
            f"{name}: {len(raw)} bytes is not a whole number of {RECORD_BYTES}-byte records "
            "(1 label byte + 3072 pixel bytes each): truncated or corrupt"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise CIFARError(
            f"{name}: record {bad[0]} has label byte {labels[bad[0]]}, CIFAR-10 labels are 0-9 "
            "(not a CIFAR-10 binary batch, or corrupt)"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def read_archive(fileobj, name: str = "<archive>") -> dict[str, bytes]:
    """The six batch files of a cifar-10-binary.tar.gz, read from the archive in memory."""
    wanted = {f"{FOLDER}/{b}": b for b in TRAIN_BATCHES + TEST_BATCHES}
    out = {}
    try:
        with tarfile.open(fileobj=fileobj, mode="r|gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    out[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise CIFARError(f"{name} is truncated or not a valid .tar.gz archive ({e})") from None
    missing = [b for b in wanted.values() if b not in out]
    if missing:
        raise CIFARError(f"{name} has no {FOLDER}/{missing[0]}: not the CIFAR-10 binary archive")
    return out
