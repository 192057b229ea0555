"""Distributed training on MPI, with torch.distributed's names.

    import tinyopt.distributed as dist
    dist.init_process_group(backend="mpi")       # under `mpiexec -n N python train.py`
    rank, world = dist.get_rank(), dist.get_world_size()
    dist.all_reduce(t)                           # in place, like torch: t ← Σ_r t_r

The engine is MPI through mpi4py (`pip install "tinyopt[distributed]"` installs mpi4py and the MPICH
wheel, which brings `mpiexec`). Every collective uses mpi4py's upper-case buffer methods (`Allreduce`,
`Bcast`, ...), which hand the ndarray's memory to MPI: arrays are never pickled. Tensors are changed
in place (their `.data` is written and their version counter bumped), as torch's collectives do.

What is here and where:

    process group   init_process_group, destroy_process_group, is_initialized, is_available,
                    get_rank, get_world_size, barrier            (this module)
    collectives     all_reduce, broadcast, all_gather, all_gather_into_tensor, reduce,
                    reduce_scatter, send, recv, isend, irecv     (this module)
    ring            ring_all_reduce: the algorithm over point-to-point messages, with a trace
                    (`tinyopt.distributed.ring`)
    autograd        differentiable all_reduce / copy for tensor parallelism, sync_batch_norm
                    (`tinyopt.distributed.functional`)
    model parallel  ColumnParallelLinear, RowParallelLinear (`tinyopt.distributed.tensor_parallel`),
                    Pipeline (`tinyopt.distributed.pipeline`)
    cost model      the α–β model of ring all-reduce and pipeline bubbles (`tinyopt.distributed.cost_model`)
    checkpoints     written by rank 0 only, read by every rank (`tinyopt.distributed.checkpoint`)

Importing this module does not import mpi4py (importing mpi4py.MPI initialises MPI); that happens
in `init_process_group`. `init_process_group` also installs an exception hook: an exception that
nobody catches on one rank aborts every rank (`MPI_Abort`) instead of leaving the others waiting
forever in a collective. `sys.exit(code)` is not such an exception (Python hands no hook a
SystemExit): a rank that exits early leaves the others waiting. Launching with
`mpiexec -n N python -m mpi4py script.py` covers that case too (mpi4py's runner aborts every rank
on a non-zero exit).
"""
from __future__ import annotations

import enum
import importlib.util
import sys

import numpy as np

_INSTALL_HINT = ('tinyopt.distributed needs mpi4py and an MPI library: pip install "tinyopt[distributed]" '
                 "(that is, pip install mpi4py mpich), then launch with mpiexec -n N python your_script.py")


class _State:
    comm = None            # the process group's communicator (a Dup of COMM_WORLD)
    previous_excepthook = None


_state = _State()


def _mpi():
    """The mpi4py.MPI module, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return MPI


def is_available() -> bool:
    """True when mpi4py can be imported (torch.distributed.is_available)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    return _state.comm is not None


def is_mpi_available() -> bool:
    return is_available()


class ReduceOp(enum.Enum):
    """torch.distributed.ReduceOp. AVG is SUM followed by a division by the world size."""

    SUM = "SUM"
    PRODUCT = "PRODUCT"
    MIN = "MIN"
    MAX = "MAX"
    AVG = "AVG"
    BAND = "BAND"
    BOR = "BOR"
    BXOR = "BXOR"


def _mpi_op(op):
    MPI = _mpi()
    if not isinstance(op, ReduceOp):
        raise ValueError(f"op must be a tinyopt.distributed.ReduceOp, got {op!r}")
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD, ReduceOp.MIN: MPI.MIN,
            ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND, ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}[op]


def _abort_on_uncaught(exc_type, exc, tb):
    """Print the traceback, then MPI_Abort: the other ranks would otherwise hang in their next collective."""
    hook = _state.previous_excepthook or sys.__excepthook__
    hook(exc_type, exc, tb)
    if _state.comm is not None and _state.comm.Get_size() > 1:
        rank = _state.comm.Get_rank()
        sys.stderr.write(f"tinyopt.distributed: rank {rank} raised {exc_type.__name__}; aborting all ranks\n")
        sys.stderr.flush()
        _mpi().COMM_WORLD.Abort(1)


def init_process_group(backend: str = "mpi", init_method=None, timeout=None, world_size: int = -1, rank: int = -1,
                       store=None, group_name: str = "") -> None:
    """Join the process group of every process started by `mpiexec` (torch's signature).

    Only `backend="mpi"` exists: MPI's launcher already knows the ranks, so `init_method`, `store`,
    `world_size` and `rank` are not needed; when given, `world_size` and `rank` must match MPI's.
    A single process started without mpiexec is a group of one (every collective is then a copy)."""
    if backend not in ("mpi", None):
        raise ValueError(f"backend {backend!r} is not supported: tinyopt.distributed runs on MPI only "
                         '(init_process_group(backend="mpi")); gloo and nccl are torch\'s own transports')
    if init_method is not None or store is not None:
        raise ValueError("init_method and store are not used with the MPI backend: mpiexec sets up the ranks")
    if is_initialized():
        raise RuntimeError("trying to initialize the default process group twice!")
    MPI = _mpi()
    comm = MPI.COMM_WORLD.Dup()
    if world_size not in (-1, None) and world_size != comm.Get_size():
        comm.Free()
        raise ValueError(f"world_size={world_size} but mpiexec started {MPI.COMM_WORLD.Get_size()} processes")
    if rank not in (-1, None) and rank != comm.Get_rank():
        comm.Free()
        raise ValueError(f"rank={rank} but MPI gave this process rank {MPI.COMM_WORLD.Get_rank()}")
    _state.comm = comm
    _state.previous_excepthook = sys.excepthook
    sys.excepthook = _abort_on_uncaught


def destroy_process_group(group=None) -> None:
    if group is not None:
        raise NotImplementedError("only the default process group exists (destroy_process_group())")
    if _state.comm is None:
        return
    _state.comm.Free()
    _state.comm = None
    if sys.excepthook is _abort_on_uncaught:
        sys.excepthook = _state.previous_excepthook or sys.__excepthook__
    _state.previous_excepthook = None


def _comm(group=None):
    if group is not None:
        raise NotImplementedError("process subgroups (new_group) are not supported; use the default group")
    if _state.comm is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to call "
                           'tinyopt.distributed.init_process_group(backend="mpi") first (under mpiexec)')
    return _state.comm


def get_rank(group=None) -> int:
    return _comm(group).Get_rank()


def get_world_size(group=None) -> int:
    return _comm(group).Get_size()


def barrier(group=None, async_op: bool = False):
    comm = _comm(group)
    if async_op:
        return Work(comm.Ibarrier())
    comm.Barrier()
    return None


# ----------------------------------------------------------------------------- buffers


_MPI_DTYPES = (np.float64, np.float32, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_)


def _array(x, name: str = "tensor") -> np.ndarray:
    """The ndarray behind a Tensor or an ndarray, checked to be one MPI can read and write in place."""
    from tinyopt.tensor import Tensor

    a = x.data if isinstance(x, Tensor) else x
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a tinyopt Tensor or a NumPy array, got {type(x).__name__}")
    if a.dtype.type not in _MPI_DTYPES:
        raise TypeError(f"{name} has dtype {a.dtype}, which MPI has no type for; use one of "
                        f"{', '.join(np.dtype(t).name for t in _MPI_DTYPES)} (convert bfloat16/float16 first)")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be contiguous for an in-place collective (got strides {a.strides}); "
                         "call .contiguous() / np.ascontiguousarray first")
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only; a collective writes into it")
    return a


def _touched(x) -> None:
    """A Tensor written in place by a collective: bump its version counter (autograd's in-place check)."""
    from tinyopt.tensor import Tensor

    if isinstance(x, Tensor):
        x._version.value += 1


class Work:
    """What `async_op=True` returns (torch's Work): `wait()` completes the operation, `is_completed()` polls."""

    def __init__(self, request, finish=None):
        self._request, self._finish, self._done = request, finish, False

    def is_completed(self) -> bool:
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def wait(self, timeout=None) -> bool:
        if not self._done:
            self._request.Wait()
            self._complete()
        return True

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()


# ----------------------------------------------------------------------------- collectives


def all_reduce(tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """tensor ← op over ranks of tensor_r, in place on every rank (torch.distributed.all_reduce)."""
    comm = _comm(group)
    a = _array(tensor)
    mpi_op = _mpi_op(op)
    MPI = _mpi()
    if op is ReduceOp.AVG and not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"ReduceOp.AVG needs a floating-point tensor, got {a.dtype}")

    def finish():
        if op is ReduceOp.AVG:
            np.divide(a, comm.Get_size(), out=a)
        _touched(tensor)

    if async_op:
        return Work(comm.Iallreduce(MPI.IN_PLACE, a, op=mpi_op), finish)
    comm.Allreduce(MPI.IN_PLACE, a, op=mpi_op)
    finish()
    return None


def broadcast(tensor, src: int = 0, group=None, async_op: bool = False):
    """Every rank's tensor ← rank `src`'s tensor, in place (torch.distributed.broadcast)."""
    comm = _comm(group)
    _check_rank(src, comm, "src")
    a = _array(tensor)
    if async_op:
        return Work(comm.Ibcast(a, root=src), lambda: _touched(tensor))
    comm.Bcast(a, root=src)
    _touched(tensor)
    return None


def reduce(tensor, dst: int = 0, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """Rank `dst`'s tensor ← op over ranks; the other ranks' tensors are left unchanged (torch.distributed.reduce)."""
    if async_op:
        raise NotImplementedError("reduce(async_op=True) is not supported")
    comm = _comm(group)
    _check_rank(dst, comm, "dst")
    a = _array(tensor)
    MPI = _mpi()
    if comm.Get_rank() == dst:
        comm.Reduce(MPI.IN_PLACE, a, op=_mpi_op(op), root=dst)
        if op is ReduceOp.AVG:
            a /= comm.Get_size()
        _touched(tensor)
    else:
        comm.Reduce(a, None, op=_mpi_op(op), root=dst)
    return None


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """output (world·n elements, rank-major) ← every rank's input (torch.distributed.all_gather_into_tensor)."""
    comm = _comm(group)
    out, inp = _array(output_tensor, "output_tensor"), _array(input_tensor, "input_tensor")
    if out.size != inp.size * comm.Get_size() or out.dtype != inp.dtype:
        raise ValueError(f"all_gather_into_tensor: output has {out.size} {out.dtype} elements, needs "
                         f"world_size·{inp.size} = {inp.size * comm.Get_size()} of {inp.dtype}")
    if async_op:
        return Work(comm.Iallgather(inp, out), lambda: _touched(output_tensor))
    comm.Allgather(inp, out)
    _touched(output_tensor)
    return None


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """tensor_list[r] ← rank r's tensor, on every rank (torch.distributed.all_gather); each entry in
    the list must have the tensor's shape and dtype."""
    if async_op:
        raise NotImplementedError("all_gather(async_op=True) is not supported; use all_gather_into_tensor")
    comm = _comm(group)
    a = _array(tensor)
    n = comm.Get_size()
    if len(tensor_list) != n:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} entries, the world size is {n}")
    outs = [_array(t, f"tensor_list[{i}]") for i, t in enumerate(tensor_list)]
    for i, o in enumerate(outs):
        if o.shape != a.shape or o.dtype != a.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] is {o.shape} {o.dtype}, the tensor is {a.shape} {a.dtype}")
    gathered = np.empty((n,) + a.shape, dtype=a.dtype)
    comm.Allgather(a, gathered)
    for i, o in enumerate(outs):
        o[...] = gathered[i]
        _touched(tensor_list[i])
    return None


def reduce_scatter(output, input_list, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """output on rank r ← op over ranks s of input_list[r] on rank s (torch.distributed.reduce_scatter)."""
    if async_op:
        raise NotImplementedError("reduce_scatter(async_op=True) is not supported")
    comm = _comm(group)
    out = _array(output, "output")
    n = comm.Get_size()
    if len(input_list) != n:
        raise ValueError(f"reduce_scatter: input_list has {len(input_list)} entries, the world size is {n}")
    ins = [_array(t, f"input_list[{i}]") for i, t in enumerate(input_list)]
    for i, x in enumerate(ins):
        if x.shape != out.shape or x.dtype != out.dtype:
            raise ValueError(f"reduce_scatter: input_list[{i}] is {x.shape} {x.dtype}, output is {out.shape} {out.dtype}")
    send = np.ascontiguousarray(np.stack(ins)) if ins else np.empty(0, out.dtype)
    comm.Reduce_scatter_block(send, out, op=_mpi_op(op))
    if op is ReduceOp.AVG:
        out /= n
    _touched(output)
    return None


def _check_rank(r, comm, name):
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r < comm.Get_size():
        raise ValueError(f"{name}={r!r} is not a rank of this group (0 .. {comm.Get_size() - 1})")


def send(tensor, dst: int, group=None, tag: int = 0) -> None:
    """Send tensor to rank dst (blocking; torch.distributed.send)."""
    comm = _comm(group)
    _check_rank(dst, comm, "dst")
    if dst == comm.Get_rank():
        raise ValueError("send: dst is this rank (a process cannot send to itself with a blocking send)")
    comm.Send(_array(tensor), dest=dst, tag=tag)


def recv(tensor, src: int | None = None, group=None, tag: int = 0) -> int:
    """Receive into tensor (in place) from rank src, or from any rank when src is None; returns the sender's rank."""
    comm = _comm(group)
    MPI = _mpi()
    if src is not None:
        _check_rank(src, comm, "src")
    status = MPI.Status()
    comm.Recv(_array(tensor), source=MPI.ANY_SOURCE if src is None else src, tag=tag, status=status)
    _touched(tensor)
    return status.Get_source()


def isend(tensor, dst: int, group=None, tag: int = 0) -> Work:
    comm = _comm(group)
    _check_rank(dst, comm, "dst")
    return Work(comm.Isend(_array(tensor), dest=dst, tag=tag))


def irecv(tensor, src: int | None = None, group=None, tag: int = 0) -> Work:
    comm = _comm(group)
    MPI = _mpi()
    return Work(comm.Irecv(_array(tensor), source=MPI.ANY_SOURCE if src is None else src, tag=tag),
                lambda: _touched(tensor))


from tinyopt.distributed.ring import ring_all_reduce, simulate_ring_all_reduce  # noqa: E402

__all__ = [
    "ReduceOp", "Work", "all_gather", "all_gather_into_tensor", "all_reduce", "barrier", "broadcast",
    "destroy_process_group", "get_rank", "get_world_size", "init_process_group", "irecv", "is_available",
    "is_initialized", "is_mpi_available", "isend", "recv", "reduce", "reduce_scatter", "ring_all_reduce", "send",
    "simulate_ring_all_reduce",
]
