"""tinyopt.transfer: frozen parameters do not move under any optimizer, BatchNorm in a frozen
layer keeps its running statistics, heads are replaced in place, parameter groups carry their
learning rates (checked against the SGD formula by hand)."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn, optim, transfer
from tinyopt.nn import functional as F


def _cnn(seed=0):
    g = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=g), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 5, rng=g))


def _batch(rng, n=8):
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32) * 2 + 1, rng.integers(0, 5, n)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
    lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.1),
    lambda ps: optim.RMSprop(ps, lr=0.1, momentum=0.5),
], ids=["sgd", "adam", "adamw", "rmsprop"])
def test_an_optimizer_over_frozen_parameters_does_not_change_them(rng, make):
    model = _cnn()
    model[0].requires_grad_(False)
    frozen = {id(p): p.data.copy() for p in model[0].parameters()}
    opt = make(model.parameters())  # frozen parameters handed to the optimizer on purpose
    for _ in range(3):
        x, y = _batch(rng)
        loss = F.cross_entropy(model(to.tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in model[0].parameters():
        assert p.grad is None
        np.testing.assert_array_equal(p.data, frozen[id(p)])
    assert model[5].weight.grad is not None


def test_requires_grad_alone_lets_batchnorm_drift_and_freeze_does_not(rng):
    x, _ = _batch(rng, 16)
    # requires_grad_(False) freezes gamma and beta, but training mode still updates the running statistics
    model = _cnn()
    model.requires_grad_(False)
    mean0 = model[1].running_mean.clone()
    model.train()
    model(to.tensor(x))
    assert not np.allclose(model[1].running_mean, mean0)

    model = _cnn()
    stats = {k: v.copy() for k, v in model.state_dict().items()}
    with to.no_grad():
        model.eval()
        expected = model(to.tensor(x)).data
    transfer.freeze(model)
    model.train()
    out = model(to.tensor(x))
    assert model.training and model[1].training            # the flag is the caller's
    np.testing.assert_allclose(out.data, expected, rtol=1e-6)  # but BatchNorm used its running statistics
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, stats[k], err_msg=k)
    assert transfer.batchnorm_frozen(model[1])
    transfer.freeze(model)  # idempotent
    assert len(model[1]._forward_pre_hooks) == 1

    transfer.unfreeze(model)
    assert not transfer.batchnorm_frozen(model[1])
    assert all(p.requires_grad for p in model.parameters())
    model(to.tensor(x))
    assert not np.array_equal(model[1].running_mean, stats["1.running_mean"])


def test_frozen_batchnorm_with_a_new_head_trains_only_the_head(rng):
    model = _cnn()
    transfer.freeze(model)
    old_head = transfer.replace_module(model, "5", nn.Linear(16 * 4, 3, rng=1))
    assert isinstance(old_head, nn.Linear) and old_head.out_features == 5
    assert list(model._modules) == ["0", "1", "2", "3", "4", "5"]  # the head stays last
    before = {k: v.copy() for k, v in model.state_dict().items() if not k.startswith("5.")}
    params = transfer.trainable_parameters(model)
    assert {id(p) for p in params} == {id(p) for p in model[5].parameters()}
    opt = optim.SGD(params, lr=0.1)
    x, _ = _batch(rng)
    for _ in range(3):
        loss = F.cross_entropy(model(to.tensor(x)), np.arange(8) % 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in model.state_dict().items():
        if not k.startswith("5."):
            np.testing.assert_array_equal(v, before[k], err_msg=k)
    counts = transfer.count_parameters(model)
    assert counts["trainable"] == 16 * 4 * 3 + 3
    assert counts["total"] == counts["trainable"] + counts["non_trainable"] == sum(p.numel() for p in model.parameters())


def test_param_groups_give_each_submodule_its_learning_rate(rng):
    model = _cnn()
    groups = transfer.param_groups(model, {"0": 0.001, "5": 0.1}, default_lr=0.01)
    assert [g["lr"] for g in groups] == [0.001, 0.1, 0.01]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    opt = optim.SGD(groups, lr=0.5)
    x, y = _batch(rng)
    loss = F.cross_entropy(model(to.tensor(x)), y)
    loss.backward()
    before = {name: (p.data.copy(), p.grad.numpy().copy()) for name, p in model.named_parameters()}
    opt.step()
    lr_of = {"0": 0.001, "1": 0.01, "5": 0.1}
    for name, p in model.named_parameters():
        w, g = before[name]
        np.testing.assert_allclose(p.data, w - lr_of[name.split(".")[0]] * g, rtol=1e-6, atol=1e-8)
    # without default_lr the rest takes the optimizer's lr; frozen parameters are left out
    model[1].requires_grad_(False)
    groups = transfer.param_groups(model, {"0": 0.001})
    assert "lr" not in groups[-1] and len(groups[-1]["params"]) == 2
    assert optim.SGD(groups, lr=0.5).param_groups[-1]["lr"] == 0.5


def test_bad_arguments_raise():
    model = _cnn()
    with pytest.raises(AttributeError, match="no submodule 'head'"):
        transfer.param_groups(model, {"head": 0.1})
    with pytest.raises(ValueError, match="learning rate"):
        transfer.param_groups(model, {"0": -1.0})
    with pytest.raises(ValueError, match="no trainable parameters"):
        transfer.param_groups(model, {"2": 0.1})
    with pytest.raises(ValueError, match="non-empty"):
        transfer.param_groups(model, {})
    with pytest.raises(AttributeError, match="no submodule '9'"):
        transfer.replace_module(model, "9", nn.Identity())
    with pytest.raises(TypeError):
        transfer.replace_module(model, "5", "linear")
    with pytest.raises(TypeError):
        transfer.freeze([model])
