"""Run under mpiexec -n N: tensor-parallel layers and the GPipe pipeline give the single-process
outputs and gradients (float64). Prints 'OK rank r'."""
import numpy as np

import tinyopt as to
import tinyopt.distributed as dist
from tinyopt import nn
from tinyopt.distributed.pipeline import Pipeline, bubble_fraction
from tinyopt.distributed.tensor_parallel import ColumnParallelLinear, RowParallelLinear

dist.init_process_group(backend="mpi")
rank, n = dist.get_rank(), dist.get_world_size()
data = np.random.default_rng(3)
X = data.standard_normal((7, 6))
Y = data.integers(0, 4, size=7)
V = data.standard_normal((7, 4))
TOL = dict(rtol=1e-12, atol=1e-13)

# ---- tensor parallel: Column(gather_output=False) -> tanh -> Row(input_is_parallel=True)
H = 6 * n
full1 = nn.Linear(6, H, dtype=np.float64, rng=np.random.default_rng(1))
full2 = nn.Linear(H, 4, dtype=np.float64, rng=np.random.default_rng(2))
col = ColumnParallelLinear(6, H, gather_output=False, dtype=np.float64, rng=np.random.default_rng(1))
row = RowParallelLinear(H, 4, input_is_parallel=True, dtype=np.float64, rng=np.random.default_rng(2))
x_ref, x_tp = to.tensor(X, requires_grad=True), to.tensor(X, requires_grad=True)
out_ref = full2(full1(x_ref).tanh())
out_tp = row(col(x_tp).tanh())
np.testing.assert_allclose(out_tp.data, out_ref.data, **TOL)
(out_ref * to.tensor(V)).sum().backward()
(out_tp * to.tensor(V)).sum().backward()
part = H // n
np.testing.assert_allclose(col.weight.grad.data, full1.weight.grad.data[rank * part:(rank + 1) * part], **TOL)
np.testing.assert_allclose(col.bias.grad.data, full1.bias.grad.data[rank * part:(rank + 1) * part], **TOL)
np.testing.assert_allclose(row.weight.grad.data, full2.weight.grad.data[:, rank * part:(rank + 1) * part], **TOL)
np.testing.assert_allclose(row.bias.grad.data, full2.bias.grad.data, **TOL)
np.testing.assert_allclose(x_tp.grad.data, x_ref.grad.data, **TOL)   # f's all-reduce in backward

# gather_output=True and a row layer that scatters its input itself
g_col = ColumnParallelLinear.from_linear(full1, gather_output=True)
g_row = RowParallelLinear.from_linear(full2, input_is_parallel=False)
x2 = to.tensor(X, requires_grad=True)
out2 = g_row(g_col(x2).tanh())
np.testing.assert_allclose(out2.data, out_ref.data, **TOL)
(out2 * to.tensor(V)).sum().backward()
np.testing.assert_allclose(x2.grad.data, x_ref.grad.data, **TOL)
np.testing.assert_allclose(g_col.weight.grad.data, full1.weight.grad.data[rank * part:(rank + 1) * part], **TOL)


# ---- pipeline: a Sequential of 2n layers, K = n stages, M micro-batches
def make():
    rng = np.random.default_rng(5)
    layers = []
    for i in range(n):
        layers += [nn.Linear(6, 6, rng=rng), nn.Tanh()]
    layers[-1] = nn.Linear(6, 4, rng=rng)   # logits
    return nn.Sequential(*layers).double()


ref = make()
loss_fn = nn.CrossEntropyLoss()
ref_loss = loss_fn(ref(to.tensor(X)), to.tensor(Y))
ref_loss.backward()
ref_grads = [p.grad.data for p in ref.parameters()]
for chunks in (1, 2, 3, 7):   # 7 samples in 3 chunks: unequal micro-batches (weights |m|/B)
    model = make()
    pipe = Pipeline(model, chunks=chunks)
    loss = pipe.train_step(X if rank == 0 else None, Y if rank == n - 1 else None,
                           loss_fn if rank == n - 1 else None)
    if rank == n - 1:
        np.testing.assert_allclose(loss, float(ref_loss.data), **TOL)
    else:
        assert loss is None
    first = sum(pipe.balance[:rank])
    ref_stage = [p for i in range(first, first + pipe.balance[rank]) for p in ref[i].parameters()]
    ours = list(pipe.stage.parameters())
    assert len(ours) == len(ref_stage) > 0 or n == 1
    for p, q in zip(ours, ref_stage):
        np.testing.assert_allclose(p.grad.data, q.grad.data, **TOL)
    assert 0.0 <= bubble_fraction(pipe.timeline) < 1.0
    assert len(pipe.timeline) == 2 * chunks

print(f"OK rank {rank}", flush=True)
dist.destroy_process_group()
