"""Small control messages between ranks (an error's text, a clock reading) without pickling.

mpi4py's lower-case methods (`comm.bcast(obj)`) pickle their argument, and tinyopt never unpickles
anything. `broadcast_json` sends a JSON-encodable value as UTF-8 bytes through the buffer method
`Bcast` (first its length, then the bytes), so every rank decodes text, never code.
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
