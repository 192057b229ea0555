"""Run under mpiexec -n N: DDP training of 4 steps straight, against 2 steps, a checkpoint written by
rank 0 only, fresh model and optimizer loaded from it on every rank, 2 more steps: bit for bit equal.
A write that fails on rank 0 raises on every rank. Prints 'OK rank r'."""
import os
import sys

import numpy as np

import tinyopt as to
import tinyopt.distributed as dist
from tinyopt import nn
from tinyopt.distributed import checkpoint as dist_ckpt
from tinyopt.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group(backend="mpi")
rank, n = dist.get_rank(), dist.get_world_size()
folder = sys.argv[1]
data = np.random.default_rng(0)
X, Y = data.standard_normal((4, 6 * n, 5)), data.integers(0, 3, size=(4, 6 * n))


def fresh():
    model = DDP(nn.Sequential(nn.Linear(5, 8, rng=np.random.default_rng(1)), nn.Tanh(), nn.Linear(8, 3, rng=np.random.default_rng(2))).double())
    return model, to.optim.Adam(model.parameters(), lr=0.01)


def steps(model, opt, which):
    for s in which:
        sl = slice(rank * 6, (rank + 1) * 6)
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(to.tensor(X[s, sl])), to.tensor(Y[s, sl])).backward()
        opt.step()


straight, opt = fresh()
steps(straight, opt, range(4))

first, opt1 = fresh()
steps(first, opt1, range(2))
path = os.path.join(folder, "ckpt.npz")
dist_ckpt.save({"model": first.module.state_dict(), "optimizer": opt1.state_dict()}, path)
resumed, opt2 = fresh()
state = dist_ckpt.load(path)
resumed.module.load_state_dict(state["model"])
opt2.load_state_dict(state["optimizer"])
steps(resumed, opt2, range(2, 4))
for p, q in zip(resumed.parameters(), straight.parameters()):
    assert np.array_equal(p.data, q.data)

# rank 0 cannot write (the parent "folder" is a file): every rank gets an error, nobody hangs
try:
    dist_ckpt.save({"x": np.ones(2)}, os.path.join(path, "inside_a_file.npz"))   # parent is a file
except Exception as exc:  # noqa: BLE001
    assert rank == 0 or "rank 0 could not write" in str(exc), exc
else:
    raise AssertionError("a failed write was not reported")
print(f"OK rank {rank}", flush=True)
dist.destroy_process_group()
