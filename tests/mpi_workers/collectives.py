"""Run under mpiexec -n N: every collective of tinyopt.distributed against its definition, and
ring_all_reduce against all_reduce. Prints 'OK rank r' on success (the test looks for it)."""
import numpy as np

import tinyopt as to
import tinyopt.distributed as dist

dist.init_process_group(backend="mpi")
rank, n = dist.get_rank(), dist.get_world_size()


def value(r, shape=(5, 3)):
    return np.random.default_rng(100 + r).standard_normal(shape)


everyone = [value(r) for r in range(n)]
total = sum(everyone)

# all_reduce on an ndarray and on a Tensor (in place, version bumped)
a = value(rank).copy()
dist.all_reduce(a)
np.testing.assert_allclose(a, total, rtol=1e-13, atol=1e-13)
t = to.tensor(value(rank))
v0 = t._version.value
dist.all_reduce(t, op=dist.ReduceOp.MAX)
np.testing.assert_array_equal(t.data, np.max(everyone, axis=0))
assert t._version.value == v0 + 1
t = to.tensor(value(rank))
dist.all_reduce(t, op=dist.ReduceOp.AVG)
np.testing.assert_allclose(t.data, total / n, rtol=1e-13, atol=1e-13)
w = dist.all_reduce(a := value(rank).copy(), async_op=True)
w.wait()
np.testing.assert_allclose(a, total, rtol=1e-13, atol=1e-13)

# broadcast from the last rank
b = value(rank).copy()
dist.broadcast(b, src=n - 1)
np.testing.assert_array_equal(b, everyone[n - 1])

# all_gather / all_gather_into_tensor
outs = [to.zeros(5, 3, dtype=to.float64) for _ in range(n)]
dist.all_gather(outs, to.tensor(value(rank)))
for r in range(n):
    np.testing.assert_array_equal(outs[r].data, everyone[r])
flat = np.empty((n, 5, 3))
dist.all_gather_into_tensor(flat, value(rank))
np.testing.assert_array_equal(flat, np.stack(everyone))

# reduce_scatter: rank r gets Σ_s input_list[r] of rank s
inputs = [value(rank, (4,)) + 10 * j for j in range(n)]
out = np.empty(4)
dist.reduce_scatter(out, inputs)
np.testing.assert_allclose(out, sum(value(s, (4,)) + 10 * rank for s in range(n)), rtol=1e-13)

# reduce to rank 0
c = value(rank).copy()
dist.reduce(c, dst=0)
np.testing.assert_allclose(c, total if rank == 0 else everyone[rank], rtol=1e-13, atol=1e-13)

# send / recv around the ring (even ranks send first: no deadlock with blocking calls)
if n > 1:
    msg = np.full(3, float(rank))
    got = np.empty(3)
    right, left = (rank + 1) % n, (rank - 1) % n
    if rank % 2 == 0:
        dist.send(msg, right)
        src = dist.recv(got, left)
    else:
        src = dist.recv(got, left)
        dist.send(msg, right)
    assert src == left and np.all(got == left)
    got2 = np.empty(3)
    req = dist.irecv(got2, src=left, tag=7)
    dist.isend(msg, right, tag=7).wait()
    req.wait()
    assert np.all(got2 == left)

# ring_all_reduce == all_reduce: sizes not divisible by n, one element, empty chunks, 2-D
for shape in [(1,), (2,), (7,), (12,), (3, 5), (1000,)]:
    x = value(rank, shape)
    ring = x.copy()
    trace = []
    dist.ring_all_reduce(ring, trace=trace)
    ref = x.copy()
    dist.all_reduce(ref)
    np.testing.assert_allclose(ring, ref, rtol=1e-12, atol=1e-12)
    if n == 2:
        np.testing.assert_array_equal(ring, ref)   # a + b either way
    assert len(trace) == 2 * (n - 1)
    if n > 1:
        assert trace[-1]["holds"] == [list(range(n))] * n
        sim = dist.simulate_ring_all_reduce([value(r, shape) for r in range(n)])
        np.testing.assert_array_equal(sim[rank], ring)  # the simulation is the same arithmetic
ring = to.tensor(value(rank))
dist.ring_all_reduce(ring, op="AVG")
np.testing.assert_allclose(ring.data, total / n, rtol=1e-12, atol=1e-12)

# integer exactness
i = np.arange(10, dtype=np.int64) * (rank + 1)
dist.ring_all_reduce(i)
np.testing.assert_array_equal(i, np.arange(10) * sum(range(1, n + 1)))

# errors
try:
    dist.all_reduce(np.zeros((4, 4))[:, ::2])
except ValueError as exc:
    assert "contiguous" in str(exc)
else:
    raise AssertionError("a strided array was accepted")
try:
    dist.init_process_group()
except RuntimeError as exc:
    assert "twice" in str(exc)
else:
    raise AssertionError("init twice accepted")

dist.barrier()
dist.destroy_process_group()
assert not dist.is_initialized()
print(f"OK rank {rank}", flush=True)
