"""Ring all-reduce, written out over point-to-point messages (Patarasuk & Yuan 2009; Baidu 2017).

N ranks stand in a ring; rank r sends only to r+1 and receives only from r−1 (indices mod N). The
array is cut into N chunks (`np.array_split`, so sizes not divisible by N and a 1-element array
work: some chunks are then empty). Two phases of N−1 steps each:

    reduce-scatter, step s = 0 … N−2:  send chunk (r − s) mod N,   receive chunk (r − s − 1) mod N,
                                       add it into the own copy
        → after N−1 steps rank r holds chunk (r + 1) mod N summed over all N ranks
    all-gather,     step s = 0 … N−2:  send chunk (r + 1 − s) mod N, receive chunk (r − s) mod N,
                                       overwrite the own copy
        → after N−1 more steps every rank holds every summed chunk

Each step moves 1/N of the array per rank, so a rank sends 2(N−1)/N · n elements in total: almost
independent of N, which is why the ring is bandwidth-optimal. Time in the α–β model (latency α per
message, β seconds per byte): T = 2(N−1)·α + 2(N−1)/N · bytes · β (`tinyopt.distributed.cost_model`).

`ring_all_reduce(x)` runs it under MPI (each step one `Sendrecv`); `simulate_ring_all_reduce(arrays)`
runs the same schedule and the same per-step update for N ranks inside one process (what the lesson
and the tests without mpiexec use). The sum is taken in ring order, so the result equals MPI's
`Allreduce` up to floating-point rounding (bit for bit with N = 2, where both compute a + b).
The fast path for real training is MPI's own `all_reduce`.
"""
from __future__ import annotations

import numpy as np

_COMBINE = {"SUM": np.add, "AVG": np.add, "PRODUCT": np.multiply, "MIN": np.minimum, "MAX": np.maximum}


def ring_schedule(rank: int, world_size: int):
    """The 2(N−1) steps of rank `rank`: tuples (phase, step, send_chunk, recv_chunk)."""
    n = world_size
    for s in range(n - 1):
        yield "reduce-scatter", s, (rank - s) % n, (rank - s - 1) % n
    for s in range(n - 1):
        yield "all-gather", s, (rank + 1 - s) % n, (rank - s) % n


def _contributors(rank: int, world_size: int, phase: str, step: int) -> list:
    """Which ranks' values the chunk received at this step now sums (rank r−s−1 … r in reduce-scatter)."""
    if phase == "all-gather":
        return list(range(world_size))
    return sorted((rank - step - 1 + k) % world_size for k in range(step + 2))


def _apply(chunks: list, phase: str, recv_chunk: int, received: np.ndarray, combine) -> None:
    """One step's update of a rank's chunks: add in the reduce-scatter, overwrite in the all-gather."""
    if phase == "reduce-scatter":
        combine(chunks[recv_chunk], received, out=chunks[recv_chunk])
    else:
        chunks[recv_chunk][...] = received


def _op_name(op) -> str:
    name = getattr(op, "value", op)
    if name not in _COMBINE:
        raise ValueError(f"ring_all_reduce supports ops {sorted(_COMBINE)}, got {op!r}")
    return name


def ring_all_reduce(tensor, op="SUM", group=None, trace: list | None = None):
    """All-reduce `tensor` in place over the ring (equal to `all_reduce(tensor, op)`). When `trace` is a
    list, one dict per step is appended: phase, step, sent, received (chunk indices), elements
    (received), and `holds`: for every chunk, the ranks whose values this rank's copy sums."""
    from tinyopt import distributed as dist

    comm = dist._comm(group)
    name = _op_name(op)
    combine = _COMBINE[name]
    a = dist._array(tensor)
    rank, n = comm.Get_rank(), comm.Get_size()
    flat = a.reshape(-1)                       # a view: chunks write straight into the tensor's memory
    chunks = np.array_split(flat, n)
    holds = [[rank] for _ in range(n)]
    left, right = (rank - 1) % n, (rank + 1) % n
    for phase, step, send_c, recv_c in ring_schedule(rank, n):
        received = np.empty_like(chunks[recv_c])
        comm.Sendrecv(np.ascontiguousarray(chunks[send_c]), dest=right, sendtag=step,
                      recvbuf=received, source=left, recvtag=step)
        _apply(chunks, phase, recv_c, received, combine)
        holds[recv_c] = _contributors(rank, n, phase, step)
        if trace is not None:
            trace.append({"rank": rank, "phase": phase, "step": step, "sent": send_c, "received": recv_c,
                          "elements": int(received.size), "holds": [list(h) for h in holds]})
    if name == "AVG":
        a /= n
    dist._touched(tensor)
    return None


def simulate_ring_all_reduce(arrays, op="SUM", trace: list | None = None) -> list:
    """The ring for N = len(arrays) ranks in one process: every rank runs `ring_schedule`, the messages of
    one step are delivered together (as the ring's lock step does), and each rank applies the same
    update as `ring_all_reduce`. Returns the N results (new arrays). `trace` gets, per step, the chunks
    each rank holds: trace[i]["holds"][r][c] lists the ranks summed in rank r's chunk c."""
    name = _op_name(op)
    combine = _COMBINE[name]
    n = len(arrays)
    if n == 0:
        raise ValueError("simulate_ring_all_reduce needs at least one array")
    shape = np.shape(arrays[0])
    if any(np.shape(x) != shape for x in arrays):
        raise ValueError(f"every rank's array must have the same shape, got {[np.shape(x) for x in arrays]}")
    results = [np.array(x, copy=True) for x in arrays]
    chunks = [np.array_split(r.reshape(-1), n) for r in results]
    holds = [[[r] for _ in range(n)] for r in range(n)]
    schedules = [list(ring_schedule(r, n)) for r in range(n)]
    for i in range(2 * (n - 1)):
        messages = [np.array(chunks[r][schedules[r][i][2]], copy=True) for r in range(n)]  # all sends first
        for r in range(n):
            phase, step, send_c, recv_c = schedules[r][i]
            _apply(chunks[r], phase, recv_c, messages[(r - 1) % n], combine)
            holds[r][recv_c] = _contributors(r, n, phase, step)
        if trace is not None:
            trace.append({"phase": schedules[0][i][0], "step": schedules[0][i][1],
                          "sent": [schedules[r][i][2] for r in range(n)],
                          "received": [schedules[r][i][3] for r in range(n)],
                          "elements": [int(messages[(r - 1) % n].size) for r in range(n)],
                          "holds": [[list(h) for h in holds[r]] for r in range(n)]})
    if name == "AVG":
        results = [r / n for r in results]
    return results


def format_trace(trace: list, world_size: int) -> str:
    """A table of a simulated trace: per step, which ranks' values each rank's chunks sum ('*' = all)."""
    lines = []
    for entry in trace:
        cells = []
        for r in range(world_size):
            held = ["*" if len(h) == world_size else "+".join(map(str, h)) for h in entry["holds"][r]]
            cells.append(f"rank {r}: [" + ", ".join(held) + "]")
        lines.append(f"{entry['phase']:>14} step {entry['step']}: " + "  ".join(cells))
    return "\n".join(lines)
