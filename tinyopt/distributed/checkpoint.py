"""Checkpoints under data parallelism: written by rank 0 only, read by every rank.

Every DDP replica holds the same weights and optimizer state, so one copy is enough; N ranks writing
the same file would race. `save(obj, path)` writes on rank 0 (`tinyopt.save`: atomic, checked) and
then tells every rank whether it worked, so a failed write raises the same error on all ranks
instead of leaving the others waiting in their next collective. `load(path)` reads the file on every
rank (a shared file system is assumed, as with torch's recipe) after a barrier, so no rank reads a
file that rank 0 is still writing.

    dist_ckpt.save({"model": ddp.module.state_dict(), "optimizer": opt.state_dict(), "step": k}, path)
    state = dist_ckpt.load(path); ddp.module.load_state_dict(state["model"]); opt.load_state_dict(state["optimizer"])

Resuming under `mpiexec` continues exactly where the uninterrupted run would be
(tests/mpi_workers/checkpoint.py checks it bit for bit).
"""
from __future__ import annotations

import numpy as np

from tinyopt.distributed.messages import broadcast_json

from tinyopt import distributed as dist


def save(obj, path, src: int = 0, group=None):
    """Rank `src` writes `obj` to `path` with `tinyopt.save`; every rank returns the path or raises the same error."""
    from tinyopt.checkpoint import save as save_file

    comm = dist._comm(group)
    status = np.zeros(1, dtype=np.int64)
    message = ""
    if comm.Get_rank() == src:
        try:
            save_file(obj, path)
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            status[0], message = 1, f"{type(exc).__name__}: {exc}"
            error = exc
    comm.Bcast(status, root=src)
    if status[0]:
        message = broadcast_json(comm, message, root=src)   # a short text, as JSON bytes (never pickled)
        if comm.Get_rank() == src:
            raise error
        raise RuntimeError(f"rank {src} could not write the checkpoint {path}: {message}")
    return path


def load(path, group=None):
    """Every rank reads `path` (after a barrier, so rank 0's write is complete)."""
    from tinyopt.checkpoint import load as load_file

    dist._comm(group).Barrier()
    return load_file(path)
