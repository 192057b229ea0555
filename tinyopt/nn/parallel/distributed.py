"""`DistributedDataParallel`: data-parallel training over MPI ranks (torch.nn.parallel.DistributedDataParallel).

Every rank holds a full copy of the model and a different 1/N of the batch. With a mean loss
L_r = (1/b) Σ_{i ∈ batch_r} ℓ_i on each rank (b = B/N samples), the gradient of the loss of one
process on the whole batch of B is the average of the ranks' gradients:

    ∇ (1/B) Σ_{i=1..B} ℓ_i  =  (1/N) Σ_r ∇ L_r                         (N ranks, equal b)

so after `loss.backward()` every rank holds that average in `.grad`, identical on all ranks, and the
same optimizer step keeps the replicas identical. (With unequal per-rank batches this is a weighted
mean, and DDP's plain average is not the big-batch gradient: torch behaves the same.)

How, as torch does it:
  * construction: rank 0's parameters and buffers are broadcast, so every replica starts equal;
    ranks whose models differ in shape raise at once instead of hanging later;
  * buckets: parameters (in reverse registration order, roughly the order backward produces their
    gradients) are packed into buckets of up to `bucket_cap_mb` MiB of one dtype;
  * overlap: a `register_post_accumulate_grad_hook` on each parameter marks its gradient ready; when
    every gradient of a bucket is ready the bucket is flattened and a non-blocking all-reduce
    (`MPI_Iallreduce`) starts while backward goes on with earlier layers. Buckets start in index order
    on every rank (MPI needs the same order of collectives everywhere). When the last bucket has
    started, the reductions are waited for and each gradient becomes (Σ_r g_r) / N;
  * `no_sync()`: inside it gradients only accumulate locally (gradient accumulation); the first backward
    outside it all-reduces the accumulated sums;
  * `broadcast_buffers=True`: rank 0's buffers (BatchNorm's running statistics) are broadcast before each
    forward; use `SyncBatchNorm` for batch statistics over all ranks.

Every parameter that requires grad must receive a gradient in every backward (torch's default,
`find_unused_parameters=False`); the next forward raises if a reduction was left unfinished.
MPICH progresses non-blocking collectives when MPI is called, so each hook also tests the pending
requests; how much communication really overlaps is measured in `benchmarks/bench_distributed.py`.
"""
from __future__ import annotations

import contextlib

import numpy as np

from tinyopt import distributed as dist
from tinyopt.distributed.messages import allgather_json
from tinyopt.nn.module import Module


class _Bucket:
    def __init__(self, params):
        self.params = params
        self.ids = {id(p) for p in params}
        self.ready = set()
        self.flat = None
        self.request = None
        self.nbytes = sum(p.data.nbytes for p in params)


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training (torch's signature; `device_ids`, `output_device` and
    `dim` exist for compatibility and must be left at their CPU defaults)."""

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb: float = 25,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a tinyopt.nn.Module, got {type(module).__name__}")
        if device_ids not in (None, [], ["cpu"]) or output_device not in (None, "cpu") or dim != 0:
            raise ValueError("tinyopt runs on the CPU: leave device_ids, output_device and dim at their defaults")
        if find_unused_parameters:
            raise NotImplementedError("find_unused_parameters=True is not supported: every parameter that "
                                      "requires grad must get a gradient in each backward (freeze the others)")
        if gradient_as_bucket_view or static_graph:
            raise NotImplementedError("gradient_as_bucket_view and static_graph are not supported")
        if not (isinstance(bucket_cap_mb, (int, float)) and bucket_cap_mb > 0):
            raise ValueError(f"bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        comm = dist._comm(process_group)
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter "
                               "that requires a gradient")
        signature = [[list(p.shape), str(p.dtype)] for p in module.parameters()]
        everyone = allgather_json(comm, signature)  # JSON through buffer collectives: nothing is unpickled
        for r, other in enumerate(everyone):
            if other != signature:
                raise RuntimeError(f"DistributedDataParallel: rank {r}'s model has parameters {other}, rank "
                                   f"{comm.Get_rank()}'s has {signature}; every rank must build the same model")
        object.__setattr__(self, "_comm", comm.Dup())   # its own communicator: never mixed with the user's collectives
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.require_backward_grad_sync = True
        self.world_size = comm.Get_size()
        self._broadcast_state()
        object.__setattr__(self, "_buckets", self._make_buckets(params, int(self.bucket_cap_mb * 2**20)))
        object.__setattr__(self, "_bucket_of", {id(p): b for b in self._buckets for p in b.params})
        object.__setattr__(self, "_next_launch", 0)
        object.__setattr__(self, "_hooks", [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params])

    # ------------------------------------------------------------------ construction
    def _broadcast_state(self) -> None:
        for p in self.module.parameters():
            if p.data.flags.c_contiguous and p.data.flags.writeable:
                self._comm.Bcast(p.data, root=0)
            else:                                  # a strided parameter: broadcast a copy, write it back
                copy = np.ascontiguousarray(p.data)
                self._comm.Bcast(copy, root=0)
                p.data[...] = copy
            p._version.value += 1
        self._broadcast_buffers()

    def _broadcast_buffers(self) -> None:
        for _, b in self.module.named_buffers():
            array = b.data  # a buffer is a Tensor: broadcast into its memory, so references see rank 0's values
            if array.flags.c_contiguous and array.flags.writeable:
                self._comm.Bcast(array, root=0)
                b._version.value += 1

    @staticmethod
    def _make_buckets(params, cap_bytes: int) -> list:
        """Reverse registration order, one dtype per bucket, each up to cap_bytes (a single larger
        parameter gets a bucket of its own)."""
        buckets, current, size = [], [], 0
        for p in reversed(params):
            if current and (size + p.data.nbytes > cap_bytes or p.data.dtype != current[0].data.dtype):
                buckets.append(_Bucket(current))
                current, size = [], 0
            current.append(p)
            size += p.data.nbytes
        if current:
            buckets.append(_Bucket(current))
        return buckets

    @property
    def bucket_sizes(self) -> list:
        """Number of parameters in each bucket, in the order they are reduced."""
        return [len(b.params) for b in self._buckets]

    # ------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        if any(b.ready for b in self._buckets) or self._next_launch:
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a new one: some "
                "parameters that require grad got no gradient in the last backward (unused parameters are not "
                "supported; set requires_grad=False on them), or backward was not run on the previous output")
        if self.broadcast_buffers and self.world_size > 1:
            self._broadcast_buffers()
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Within this context gradients accumulate locally and are not all-reduced (torch's no_sync)."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ------------------------------------------------------------------ backward: buckets
    def _grad_ready(self, param) -> None:
        if not self.require_backward_grad_sync:
            return
        bucket = self._bucket_of[id(param)]
        bucket.ready.add(id(param))
        while self._next_launch < len(self._buckets) and \
                len(self._buckets[self._next_launch].ready) == len(self._buckets[self._next_launch].ids):
            self._launch(self._buckets[self._next_launch])
            object.__setattr__(self, "_next_launch", self._next_launch + 1)
        if self._next_launch == len(self._buckets):
            self._finish()
        else:
            for b in self._buckets[:self._next_launch]:
                if b.request is not None:
                    b.request.Test()   # lets MPICH progress the reductions already started

    def _launch(self, bucket: _Bucket) -> None:
        from mpi4py import MPI

        bucket.flat = np.concatenate([p.grad.data.reshape(-1) for p in bucket.params])
        bucket.request = self._comm.Iallreduce(MPI.IN_PLACE, bucket.flat, op=MPI.SUM)

    def _finish(self) -> None:
        from mpi4py import MPI

        MPI.Request.Waitall([b.request for b in self._buckets])
        for b in self._buckets:
            offset = 0
            for p in b.params:
                n = p.data.size
                g = p.grad.data
                g[...] = (b.flat[offset:offset + n] / self.world_size).reshape(g.shape)
                p.grad._version.value += 1
                offset += n
            b.ready.clear()
            b.flat = b.request = None
        object.__setattr__(self, "_next_launch", 0)

    def extra_repr(self) -> str:
        return f"world_size={self.world_size}, buckets={self.bucket_sizes}, broadcast_buffers={self.broadcast_buffers}"
