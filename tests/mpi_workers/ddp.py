"""Run under mpiexec -n N (N divides 12): DistributedDataParallel on 12/N samples per rank equals one
process on the whole batch of 12 (float64, mean loss), for SGD with momentum and for Adam, with small
buckets (several all-reduces per backward), with no_sync gradient accumulation, and with
SyncBatchNorm against BatchNorm on the whole batch. Prints 'OK rank r'."""
import contextlib

import numpy as np

import tinyopt as to
import tinyopt.distributed as dist
from tinyopt import nn
from tinyopt.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group(backend="mpi")
rank, n = dist.get_rank(), dist.get_world_size()
B, STEPS = 12, 4
assert B % n == 0
b = B // n
data = np.random.default_rng(7)
X = data.standard_normal((STEPS, B, 2, 6, 6))
Y = data.integers(0, 3, size=(STEPS, B))


def make_model(seed, norm=nn.BatchNorm2d):
    # No conv bias before BatchNorm: its true gradient is 0, so what it gets is rounding noise, which
    # Adam's g/√v would blow up to full-size steps (different noise in different summation orders).
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, bias=False, rng=rng), norm(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 8, rng=rng), nn.Tanh(), nn.Linear(8, 3, rng=rng),
    ).double()


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def train(model, optimizer, batches, accumulate=1, ddp=None):
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        optimizer.zero_grad()
        if accumulate == 1:
            loss_fn(model(to.tensor(x)), to.tensor(y)).backward()
        else:  # `accumulate` micro-batches; the loss of each is scaled so the sum is the batch mean
            parts = np.array_split(np.arange(len(x)), accumulate)
            for j, idx in enumerate(parts):
                ctx = ddp.no_sync() if (ddp is not None and j < accumulate - 1) else contextlib.nullcontext()
                with ctx:
                    (loss_fn(model(to.tensor(x[idx])), to.tensor(y[idx])) / accumulate).backward()
        optimizer.step()


def check(opt_name, bucket_cap_mb, accumulate=1, sync_bn=False, norm=nn.BatchNorm2d):
    Opt = {"sgd": lambda p: to.optim.SGD(p, lr=0.1, momentum=0.9),
           "adam": lambda p: to.optim.Adam(p, lr=0.01)}[opt_name]
    ref = make_model(1, norm)
    train(ref, Opt(ref.parameters()), [(X[s], Y[s]) for s in range(STEPS)])

    # Each rank starts from a DIFFERENT init: DDP's broadcast must make rank 0's the common start.
    local = make_model(1 if rank == 0 else 100 + rank, norm)
    if sync_bn:
        local = nn.SyncBatchNorm.convert_sync_batchnorm(local)
        assert isinstance(local[1], nn.SyncBatchNorm)
    model = DDP(local, bucket_cap_mb=bucket_cap_mb)
    if bucket_cap_mb < 0.001:
        assert len(model.bucket_sizes) > 1, model.bucket_sizes
    sl = slice(rank * b, (rank + 1) * b)
    train(model, Opt(model.parameters()), [(X[s, sl], Y[s, sl]) for s in range(STEPS)], accumulate, model)

    worst = 0.0
    for (name, p), (_, q) in zip(local.named_parameters(), ref.named_parameters()):
        worst = max(worst, rel_err(p.data, q.data))
    assert worst < 1e-12, (opt_name, bucket_cap_mb, accumulate, sync_bn, worst)
    if sync_bn:  # running statistics of the whole batch (unbiased with M = B·H·W)
        for key in ("running_mean", "running_var"):
            e = rel_err(getattr(local[1], key), getattr(ref[1], key))
            assert e < 1e-12, (key, e)
        assert int(local[1].num_batches_tracked) == STEPS
    return worst


results = {}
# SyncBatchNorm (converted from the model's BatchNorm2d) against BatchNorm on the whole batch
for opt_name in ("sgd", "adam"):
    for cap in (25, 0.0005):
        results[(opt_name, cap, "sync")] = check(opt_name, cap, sync_bn=True)
# Gradient accumulation with no_sync (no BatchNorm: micro-batch statistics are not the batch's)
results["accumulate"] = check("sgd", 0.0005, accumulate=2, norm=nn.Identity)
results["adam-accumulate"] = check("adam", 25, accumulate=2, norm=nn.Identity)


# Plain BatchNorm under DDP is NOT the big batch when n > 1 (the reason SyncBatchNorm exists)
ref = make_model(1)
train(ref, to.optim.SGD(ref.parameters(), lr=0.1), [(X[s], Y[s]) for s in range(STEPS)])
plain = DDP(make_model(1))
sl = slice(rank * b, (rank + 1) * b)
train(plain, to.optim.SGD(plain.parameters(), lr=0.1), [(X[s, sl], Y[s, sl]) for s in range(STEPS)])
err = max(rel_err(p.data, q.data) for p, q in zip(plain.module.parameters(), ref.parameters()))
assert (err < 1e-12) == (n == 1), err
# ... and every replica stays identical anyway (same averaged gradient everywhere)
w = plain.module[0].weight.data.copy()
dist.broadcast(w, 0)
np.testing.assert_array_equal(w, plain.module[0].weight.data)

# state_dict keys as torch: "module." prefix
assert next(iter(plain.state_dict())).startswith("module.")

# an unused parameter leaves a reduction unfinished: the next forward says so
class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 2).double(), nn.Linear(3, 2).double()

    def forward(self, x):
        return self.a(x)


m = DDP(TwoHeads(), bucket_cap_mb=1e-6)
m(to.tensor(np.ones((2, 3)))).sum().backward()
try:
    m(to.tensor(np.ones((2, 3))))
except RuntimeError as exc:
    assert "finished reduction" in str(exc)
else:
    raise AssertionError("unfinished reduction not detected")

# Every rank must build the same model: the parameter shapes are compared (JSON, nothing unpickled).
try:
    DDP(nn.Linear(3, 2 + rank).double())
except RuntimeError as exc:
    assert "every rank must build the same model" in str(exc), exc
else:
    raise AssertionError("different models on the ranks were not detected")
from tinyopt.distributed.messages import allgather_json  # noqa: E402

assert allgather_json(dist._comm(None), {"rank": rank, "text": "é" * rank}) == [
    {"rank": r, "text": "é" * r} for r in range(dist.get_world_size())]

print(f"OK rank {rank} worst={max(results.values()):.2e} plain_bn_err={err:.2e}", flush=True)
dist.destroy_process_group()
