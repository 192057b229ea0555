"""Small control messages between ranks (an error's text, a clock reading) without pickling.

mpi4py's lower-case methods (`comm.bcast(obj)`) pickle their argument, and tinyopt never unpickles
anything. `broadcast_json` sends a JSON-encodable value as UTF-8 bytes through the buffer method
`Bcast` (first its length, then the bytes), and `allgather_json` gathers one value from every rank
through `Allgather` (the lengths) and `Allgatherv` (the bytes), so every rank decodes text, never code.
"""
from __future__ import annotations

import json

import numpy as np


def broadcast_json(comm, value, root: int = 0):
    """`value` from rank `root` on every rank of `comm` (tuples come back as lists)."""
    if comm.Get_rank() == root:
        payload = np.frombuffer(json.dumps(value, allow_nan=True).encode("utf-8"), dtype=np.uint8).copy()
        size = np.array([payload.size], dtype=np.int64)
    else:
        size = np.zeros(1, dtype=np.int64)
    comm.Bcast(size, root=root)
    if comm.Get_rank() != root:
        payload = np.empty(int(size[0]), dtype=np.uint8)
    comm.Bcast(payload, root=root)
    return json.loads(payload.tobytes().decode("utf-8"))


def allgather_json(comm, value) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank of `comm` (tuples come back as lists)."""
    payload = np.frombuffer(json.dumps(value, allow_nan=True).encode("utf-8"), dtype=np.uint8).copy()
    sizes = np.zeros(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([payload.size], dtype=np.int64), sizes)
    gathered = np.empty(int(sizes.sum()), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    comm.Allgatherv(payload, [gathered, sizes, offsets, _mpi_byte()])
    return [json.loads(gathered[o:o + n].tobytes().decode("utf-8")) for o, n in zip(offsets, sizes)]


def _mpi_byte():
    """mpi4py's MPI.BYTE, imported only when a message is gathered (mpi4py is an optional extra)."""
    from mpi4py import MPI

    return MPI.BYTE
