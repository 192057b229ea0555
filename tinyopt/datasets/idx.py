"""Reader for the IDX format (MNIST, Fashion-MNIST): a big-endian header, then raw values.

    magic:  0x00 0x00 <type code> <number of dimensions>
    sizes:  one uint32 (big-endian) per dimension
    data:   prod(sizes) values of the type (0x08 = unsigned byte)

Anything that does not fit (wrong magic, a payload of the wrong length) raises `IDXError`; a
silently wrong array is never returned.
"""
from __future__ import annotations

import numpy as np

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXError(ValueError):
    pass


def parse_idx(raw: bytes, name: str = "<bytes>", expected_ndim: int | None = None) -> np.ndarray:
    if len(raw) < 4:
        raise IDXError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if zero0 != 0 or zero1 != 0 or type_code not in _TYPES:
        raise IDXError(f"{name}: bad IDX magic number 0x{magic:08x} (expected 0x000008NN for unsigned bytes)")
    if expected_ndim is not None and ndim != expected_ndim:
        raise IDXError(f"{name}: IDX magic 0x{magic:08x} says {ndim} dimensions, expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{name}: file ends inside the IDX header ({len(raw)} bytes, header needs {header})")
    sizes = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[type_code])
    expected = int(np.prod(sizes)) * dtype.itemsize
    payload = len(raw) - header
    if payload != expected:
        raise IDXError(
            f"{name}: header says shape {sizes} ({expected} bytes of data) but the file holds {payload} bytes "
            "(truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(sizes).astype(dtype.newbyteorder("="))
