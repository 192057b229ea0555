"""Run under mpiexec -n 2: the README's distributed example (its ```py block), with a small net and
data set defined first, then a check that the replicas stayed identical. Prints 'OK rank r'."""
import pathlib
import re

import numpy as np

import tinyopt as to
from tinyopt import nn
from tinyopt.utils.data import TensorDataset

readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
block = re.search(r"## Distributed training \(MPI\).*?```py\n(.*?)```", readme, re.S).group(1)
rng = np.random.default_rng(0)
net = nn.Sequential(nn.Conv2d(1, 4, 3, rng=rng), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3, rng=rng))
train_set = TensorDataset(to.tensor(rng.random((150, 1, 8, 8), dtype=np.float32)), to.tensor(rng.integers(0, 3, 150)))
loss_fn, epochs = nn.CrossEntropyLoss(), 2
namespace = {"net": net, "train_set": train_set, "loss_fn": loss_fn, "epochs": epochs}
exec(compile(block, "README distributed example", "exec"), namespace)
import tinyopt.distributed as dist  # noqa: E402

w = namespace["model"].module[0].weight.data.copy()
dist.broadcast(w, 0)
assert np.array_equal(w, namespace["model"].module[0].weight.data)
assert isinstance(namespace["model"].module[1], nn.SyncBatchNorm)
print(f"OK rank {dist.get_rank()}", flush=True)
