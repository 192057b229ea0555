"""Module buffers are Tensors, as in torch (issue 9, part 2: `register_buffer(name, tensor)`).

What a PyTorch user relies on: `bn.running_mean` is a Tensor that supports Tensor methods, a reference
kept to it sees the running-statistics updates (torch updates buffers in place), `register_buffer` keeps
the object it is given, non-persistent buffers stay out of `state_dict()`, and `load_state_dict` writes
into the existing buffer memory. `state_dict()` holds ndarray copies, for buffers as for parameters
(tinyopt's documented choice: `np.asarray` and `torch.from_numpy` read them; torch gives detached
Tensors that share memory)."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt.nn.utils import prune
from tinyopt.quant import MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver


def _batch(shape, seed=0):
    return to.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("make, shape", [(lambda: nn.BatchNorm1d(3), (8, 3)),
                                         (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
                                         (lambda: nn.SyncBatchNorm(3), (4, 3, 5, 5))])
def test_batchnorm_buffers_are_tensors_updated_in_place(make, shape):
    bn = make()
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert type(getattr(bn, name)) is to.Tensor, name
        assert not getattr(bn, name).requires_grad
    kept_mean, kept_var, kept_count = bn.running_mean, bn.running_var, bn.num_batches_tracked
    x = _batch(shape)
    bn(x)
    bn(x * 2.0)
    # The same objects, changed: a reference kept before training sees the statistics.
    assert bn.running_mean is kept_mean and bn.running_var is kept_var and bn.num_batches_tracked is kept_count
    assert int(kept_count.item()) == 2
    assert not np.allclose(kept_mean.numpy(), 0.0) and not np.allclose(kept_var.numpy(), 1.0)
    # Tensor methods work on a buffer (they failed when buffers were ndarrays).
    assert kept_mean.clone().sub_(kept_mean).abs().sum().item() == 0.0
    assert kept_var.size(0) == 3 and kept_var.dim() == 1
    # Eval does not touch them.
    before = kept_mean.clone()
    bn.eval()
    bn(x)
    np.testing.assert_array_equal(kept_mean.numpy(), before.numpy())


def test_register_buffer_keeps_the_object_and_wraps_an_ndarray_without_copy():
    m = nn.Module()
    t = to.zeros(3)
    m.register_buffer("kept", t)
    assert m.kept is t
    arr = np.arange(4.0)
    m.register_buffer("wrapped", arr)
    assert type(m.wrapped) is to.Tensor and np.shares_memory(m.wrapped.data, arr)
    arr[0] = 42.0
    assert m.wrapped[0].item() == 42.0
    # Reassigning a buffer keeps it a (registered) Tensor buffer, as torch replaces it.
    m.kept = np.ones(3)
    assert type(m.kept) is to.Tensor and "kept" in dict(m.named_buffers())
    m.register_buffer("empty", None)
    assert "empty" not in dict(m.named_buffers()) and m.empty is None
    with pytest.raises(TypeError, match="buffer 'bad'"):
        m.register_buffer("bad", [1, 2, 3])
    with pytest.raises(TypeError, match="register_parameter"):
        m.register_buffer("p", nn.Parameter(np.zeros(2)))


def test_non_persistent_buffer_is_listed_but_not_saved():
    m = nn.Module()
    m.register_buffer("saved", to.zeros(2))
    m.register_buffer("scratch", to.ones(2), persistent=False)
    assert set(dict(m.named_buffers())) == {"saved", "scratch"}
    assert list(m.state_dict()) == ["saved"]
    # Loading a state without the non-persistent buffer is not "missing".
    result = m.load_state_dict({"saved": np.full(2, 5.0)})
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_state_dict_round_trip_writes_into_the_existing_buffer_and_a_failed_load_changes_nothing():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model(_batch((6, 3)))
    state = model.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    assert not np.shares_memory(state["1.running_mean"], model[1].running_mean.data)  # a copy
    kept = model[1].running_mean
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    other_kept = other[1].running_mean
    other.load_state_dict(state)
    assert other[1].running_mean is other_kept  # loaded in place, like torch's copy_
    np.testing.assert_array_equal(other_kept.numpy(), kept.numpy())
    np.testing.assert_array_equal(other[1].num_batches_tracked.numpy(), 1)

    before = {k: v.copy() for k, v in other.state_dict().items()}
    bad = dict(state)
    bad["1.running_mean"] = np.zeros(4) + 7.0
    bad["1.running_var"] = np.zeros(5)  # wrong shape: the whole load must be refused
    with pytest.raises(RuntimeError, match=r"1\.running_var: checkpoint \(5,\) vs model \(4,\)"):
        other.load_state_dict(bad)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_checkpoint_save_load_keeps_batchnorm_statistics(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    for seed in range(3):
        model(_batch((2, 1, 6, 6), seed))
    path = to.save(model.state_dict(), tmp_path / "bn.npz")
    restored = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    restored.load_state_dict(to.load(path))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_array_equal(getattr(restored[1], name).numpy(), getattr(model[1], name).numpy())
        assert type(getattr(restored[1], name)) is to.Tensor
    model.eval(), restored.eval()
    x = _batch((2, 1, 6, 6), 9)
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())


def test_pruning_mask_is_a_tensor_buffer():
    lin = nn.Linear(4, 3)
    prune.l1_unstructured(lin, "weight", amount=0.5)
    assert type(lin.weight_mask) is to.Tensor and "weight_mask" in dict(lin.named_buffers())
    assert lin.weight_mask.sum().item() == 6
    np.testing.assert_array_equal(lin.weight.numpy(), (lin.weight_orig * lin.weight_mask).numpy())


@pytest.mark.parametrize("make, expected_max", [
    (MinMaxObserver, lambda a, b: max(a.max(), b.max())),
    (MovingAverageMinMaxObserver, lambda a, b: a.max() + 0.01 * (b.max() - a.max())),
    (lambda: PerChannelMinMaxObserver(ch_axis=0), lambda a, b: np.maximum(a.max(axis=1), b.max(axis=1)))])
def test_observer_min_max_are_tensor_buffers_updated_in_place(make, expected_max):
    obs = make()
    a = _batch((3, 5))
    b = a * 3.0
    obs(a)
    kept_min, kept_max = obs.min_val, obs.max_val
    assert type(kept_min) is to.Tensor and type(kept_max) is to.Tensor
    obs(b)
    assert obs.min_val is kept_min and obs.max_val is kept_max
    np.testing.assert_allclose(kept_max.numpy(), expected_max(a.numpy(), b.numpy()), rtol=1e-6)


def test_batchnorm_running_stats_match_torch():
    torch = pytest.importorskip("torch")
    ours = nn.BatchNorm2d(3, momentum=0.2, dtype=to.float64)
    theirs = torch.nn.BatchNorm2d(3, momentum=0.2, dtype=torch.float64)
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((5, 3, 4, 4)) * (seed + 1) + seed
        ours(to.tensor(x))
        theirs(torch.from_numpy(x))
    np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-13, atol=1e-14)
    assert int(ours.num_batches_tracked.item()) == int(theirs.num_batches_tracked.item()) == 4
    assert ours.running_mean.dtype == to.float64 and str(theirs.running_mean.dtype) == "torch.float64"
