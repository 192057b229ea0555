"""tinyopt.distributed, DistributedDataParallel, SyncBatchNorm and DistributedSampler.

The multi-rank tests start `mpiexec -n N python tests/mpi_workers/<worker>.py` in a subprocess with
a timeout (a hang fails instead of blocking the suite); each worker asserts its own equalities and
prints 'OK rank r'. They are skipped, with the reason, when mpi4py or mpiexec is missing
(`pip install "tinyopt[distributed]"`)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyopt as to
import tinyopt.distributed as dist
from tinyopt import nn
from tinyopt.utils.data import DistributedSampler

ROOT = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).resolve().parent / "mpi_workers"
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(not (HAVE_MPI4PY and MPIEXEC),
                               reason='needs mpi4py and mpiexec: pip install "tinyopt[distributed]"')


def mpirun(worker: str, n: int, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, str(WORKERS / worker)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def assert_all_ok(result, n):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    for r in range(n):
        assert f"OK rank {r}" in result.stdout, result.stdout


# ----------------------------------------------------------------------------- under mpiexec


@needs_mpi
@pytest.mark.parametrize("n", [1, 2, 3])
def test_collectives_and_ring_all_reduce(n):
    assert_all_ok(mpirun("collectives.py", n), n)


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_ddp_equals_one_process_on_the_whole_batch(n):
    """SGD+momentum and Adam, one and several buckets, no_sync accumulation, SyncBatchNorm: 1e-12 relative."""
    assert_all_ok(mpirun("ddp.py", n), n)


@needs_mpi
@pytest.mark.parametrize("n", [1, 2, 3])
def test_tensor_parallel_and_pipeline_equal_one_process(n):
    """Column/Row-parallel Linear and the GPipe pipeline (1, 2, 3, 7 micro-batches): outputs and gradients."""
    assert_all_ok(mpirun("model_parallel.py", n), n)


@needs_mpi
def test_checkpoint_by_rank_0_and_resume_under_mpiexec(tmp_path):
    """4 DDP steps straight == 2 steps, rank-0 checkpoint, fresh objects loaded on every rank, 2 more (bit for bit)."""
    env_path = str(tmp_path)
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(WORKERS / "checkpoint.py"), env_path],
                            env=dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1"), cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert_all_ok(result, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


@needs_mpi
def test_readme_distributed_example_runs():
    assert_all_ok(mpirun("readme_example.py", 2), 2)


@needs_mpi
def test_a_failing_rank_stops_every_rank():
    result = mpirun("abort.py", 2, timeout=60)
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr
    assert "aborting all ranks" in result.stderr
    assert "rank 0 was not stopped" not in result.stdout


# ----------------------------------------------------------------------------- in this process


def test_clear_errors_without_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(RuntimeError, match="init_process_group"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="MPI only"):
        dist.init_process_group(backend="nccl")
    with pytest.raises(RuntimeError, match="num_replicas and rank"):
        DistributedSampler(range(10))


def test_clear_error_without_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)   # makes `from mpi4py import MPI` raise ImportError
    with pytest.raises(ImportError, match=r"pip install \"tinyopt\[distributed\]\""):
        dist.init_process_group(backend="mpi")
    assert not dist.is_initialized()


def test_import_does_not_start_mpi():
    code = "import sys, tinyopt, tinyopt.distributed, tinyopt.nn.parallel; print('mpi4py.MPI' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("size", [1, 2, 7, 12, 30])
def test_simulated_ring_equals_the_sum(n, size):
    rng = np.random.default_rng(size * 10 + n)
    arrays = [rng.standard_normal(size) for _ in range(n)]
    trace = []
    results = dist.simulate_ring_all_reduce(arrays, trace=trace)
    for r in results:
        np.testing.assert_allclose(r, np.sum(arrays, axis=0), rtol=1e-12, atol=1e-12)
    assert len(trace) == 2 * (n - 1)
    if n > 1:
        # after the reduce-scatter, rank r holds chunk (r+1) mod n complete; after the all-gather, every chunk
        rs_end = trace[n - 2]["holds"]
        for r in range(n):
            assert rs_end[r][(r + 1) % n] == list(range(n))
        assert all(h == list(range(n)) for r in range(n) for h in trace[-1]["holds"][r])
        # each message is 1/n of the data (array_split sizes)
        sizes = {len(c) for c in np.array_split(np.zeros(size), n)}
        assert all(e in sizes for step in trace for e in step["elements"])


def test_distributed_sampler_covers_every_index_once():
    for n_items in (10, 11, 12, 13):
        for replicas in (1, 2, 3, 4):
            parts = [list(DistributedSampler(range(n_items), replicas, r, shuffle=True, seed=3)) for r in range(replicas)]
            flat = sorted(i for p in parts for i in p)
            assert set(flat) == set(range(n_items))
            assert len(flat) == -(-n_items // replicas) * replicas   # padding by repetition
            assert len({len(p) for p in parts}) == 1
            dropped = [list(DistributedSampler(range(n_items), replicas, r, drop_last=True)) for r in range(replicas)]
            flat = [i for p in dropped for i in p]
            assert len(flat) == len(set(flat)) == (n_items // replicas) * replicas


def test_distributed_sampler_epochs_and_errors():
    s = DistributedSampler(range(20), 2, 0, seed=5)
    first = list(s)
    assert list(s) == first
    s.set_epoch(1)
    assert list(s) != first
    with pytest.raises(ValueError, match="Invalid rank"):
        DistributedSampler(range(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(range(4), 0, 0)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_matches_torch(shuffle, drop_last):
    """Same index lists as torch.utils.data.DistributedSampler; with shuffle, given the same permutation."""
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchDS

    for n_items in (1, 2, 5, 7, 10, 11, 16):
        for replicas in (1, 2, 3, 4, 8):
            for rank in range(replicas):
                ours = DistributedSampler(range(n_items), replicas, rank, shuffle=shuffle, seed=4, drop_last=drop_last)
                theirs = TorchDS(range(n_items), replicas, rank, shuffle=shuffle, seed=4, drop_last=drop_last)
                for epoch in (0, 3):
                    ours.set_epoch(epoch)
                    theirs.set_epoch(epoch)
                    expected = list(theirs)
                    if shuffle:   # torch's permutation comes from torch.randperm; apply our split rule to it
                        g = torch.Generator()
                        g.manual_seed(4 + epoch)
                        perm = torch.randperm(n_items, generator=g).tolist()
                        assert ours.split(perm) == expected
                    else:
                        assert list(ours) == expected
                    assert len(ours) == len(theirs)


def test_sync_batchnorm_alone_is_batchnorm_and_conversion_shares_state():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64))).double()
    ref = nn.Sequential(nn.Conv2d(3, 4, 3, rng=np.random.default_rng(0)), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64))).double()
    bn_weight = model[1].weight
    conv = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(conv[1], nn.SyncBatchNorm) and isinstance(conv[3][1], nn.SyncBatchNorm)
    assert conv[1].weight is bn_weight
    x = to.tensor(rng.standard_normal((5, 3, 6, 6)))
    out, expected = conv(x), ref(x)
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-13, atol=1e-13)   # one process: plain BatchNorm
    np.testing.assert_allclose(conv[1].running_var, ref[1].running_var, rtol=1e-13)
    assert isinstance(nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(3)), nn.SyncBatchNorm)


def test_gpipe_schedule_and_bubble_formula():
    from tinyopt.distributed.pipeline import gpipe_bubble, gpipe_schedule

    for K in (1, 2, 3, 4):
        for M in (1, 2, 4, 8):
            rows = gpipe_schedule(K, M)
            idle = sum(cell is None for row in rows for cell in row) / (K * len(rows[0]))
            assert idle == pytest.approx(gpipe_bubble(K, M), abs=1e-15)
            for row in rows:   # every stage runs each micro-batch forward once and backward once
                assert sorted(c for c in row if c) == sorted([("F", m) for m in range(M)] + [("B", m) for m in range(M)])
            for k in range(1, K):   # forward of m on stage k after stage k-1; backward the other way
                for m in range(M):
                    assert rows[k].index(("F", m)) > rows[k - 1].index(("F", m))
                    assert rows[k - 1].index(("B", m)) > rows[k].index(("B", m))


def test_cost_model_formulas_and_fit():
    from tinyopt.distributed import cost_model as cm

    assert cm.ring_allreduce_time(1e6, 1, 1e-5, 1e-9) == 0.0
    assert cm.ring_allreduce_time(1e6, 4, 1e-5, 1e-9) == pytest.approx(6e-5 + 1.5e-3)
    sizes = np.array([8 * 4**k for k in range(11)], dtype=float)
    for n in (2, 3, 8):
        times = [cm.ring_allreduce_time(s, n, 7e-6, 3e-10) for s in sizes]
        alpha, beta = cm.fit_alpha_beta(sizes, times, n)
        assert alpha == pytest.approx(7e-6, rel=1e-9) and beta == pytest.approx(3e-10, rel=1e-9)
    eff = [cm.scaling_efficiency(0.01, 4e5, n, 3e-5, 8e-10) for n in (2, 8, 64, 1024)]
    assert all(1 >= a > b > 0 for a, b in zip(eff, eff[1:]))
    assert cm.scaling_efficiency(0.01, 4e5, 64, 3e-5, 8e-10, overlap=1.0) == 1.0
    assert cm.pipeline_step_time(1.0, 4, 8) == 11.0   # (M + K − 1) ticks
    with pytest.raises(ValueError):
        cm.data_parallel_step_time(1.0, 1e6, 2, 1e-6, 1e-9, overlap=1.5)


def test_distributed_sampler_drives_a_dataloader():
    from tinyopt.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(to.tensor(np.arange(10.0)), to.tensor(np.arange(10)))
    batches = [[b[1].data.tolist() for b in DataLoader(ds, batch_size=2, sampler=DistributedSampler(ds, 3, r, shuffle=False))]
               for r in range(3)]
    # torch's rule: 10 indices padded to 12 with the first two, rank r takes r, r+3, r+6, r+9
    assert batches == [[[0, 3], [6, 9]], [[1, 4], [7, 0]], [[2, 5], [8, 1]]]
    assert to.distributed is dist
