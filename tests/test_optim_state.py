"""param_groups, zero_grad, step(closure), add_param_group, and state_dict resume (bit-identical)."""
import copy

import numpy as np
import pytest

import tinyopt as to
from tinyopt import optim

OPTIMIZERS = [
    ("GD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, momentum_style="sutskever")),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
]


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return [to.Tensor(rng.standard_normal((3, 4)), requires_grad=True, dtype=np.float64),
            to.Tensor(rng.standard_normal(4), requires_grad=True, dtype=np.float64)]


def _loss(params, t):
    w, b = params
    x = to.Tensor(np.cos(np.arange(6 * 3) + t).reshape(6, 3), dtype=np.float64)
    return (((x @ w + b) ** 2).sum() + (w * w * w).sum() * 0.01)


def _train(opt, params, steps, start=0):
    for t in range(start, start + steps):
        opt.zero_grad()
        _loss(params, t).backward()
        opt.step()


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_resume_from_state_dict_is_bit_identical(name, kwargs):
    straight = _model()
    opt = getattr(optim, name)(straight, **kwargs)
    _train(opt, straight, 20)

    first = _model()
    opt1 = getattr(optim, name)(first, **kwargs)
    _train(opt1, first, 10)
    saved_params = [p.data.copy() for p in first]
    saved = copy.deepcopy(opt1.state_dict())

    resumed = [to.Tensor(a, requires_grad=True, dtype=np.float64) for a in saved_params]
    opt2 = getattr(optim, name)(resumed, **{**kwargs, "lr": 123.0})  # lr comes back from the state dict
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    _train(opt2, resumed, 10, start=10)
    for a, b in zip(straight, resumed):
        assert np.array_equal(a.data, b.data)  # bit for bit


def test_state_dict_layout_and_independence():
    params = _model()
    opt = optim.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}], lr=0.01)
    _train(opt, params, 2)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["lr"] == 0.01
    assert set(sd["state"]) == {0, 1}
    assert sd["state"][0]["step"] == 2 and isinstance(sd["state"][0]["step"], int)
    assert set(sd["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}
    before = sd["state"][0]["exp_avg"].copy()
    _train(opt, params, 1)
    assert np.array_equal(sd["state"][0]["exp_avg"], before)  # a snapshot, not a view of live state


def test_load_state_dict_rejects_mismatched_groups():
    a = optim.SGD(_model(), lr=0.1)
    b = optim.SGD([{"params": [p]} for p in _model()], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        a.load_state_dict(b.state_dict())
    c = optim.SGD(_model()[:1], lr=0.1)
    with pytest.raises(ValueError, match="parameter group 0 has 1 parameters"):
        a.load_state_dict(c.state_dict())


def test_param_groups_use_their_own_hyperparameters():
    w, b = _model()
    opt = optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.0}], lr=0.1, momentum=0.9)
    assert opt.param_groups[1]["momentum"] == 0.9  # filled from defaults
    b0 = b.data.copy()
    _train(opt, [w, b], 3)
    assert np.array_equal(b.data, b0)  # lr 0 group did not move


def test_add_param_group():
    w, b = _model()
    opt = optim.Adam([w], lr=0.01)
    opt.add_param_group({"params": b, "lr": 0.1})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [w]})
    _train(opt, [w, b], 1)
    assert opt.state[b]["step"] == 1


def test_adagrad_state_exists_before_the_first_step():
    w, _ = _model()
    opt = optim.Adagrad([w], initial_accumulator_value=0.25)
    assert np.all(opt.state[w]["sum"] == 0.25) and opt.state[w]["step"] == 0


def test_zero_grad():
    w, b = _model()
    opt = optim.SGD([w, b], lr=0.1)
    _loss([w, b], 0).backward()
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and not w.grad.any()
    opt.zero_grad()
    assert w.grad is None and b.grad is None


def test_step_with_closure_returns_its_loss_and_skips_params_without_grad():
    w, b = _model()
    frozen = to.Tensor(np.ones(3), requires_grad=True, dtype=np.float64)
    opt = optim.Adam([w, b, frozen], lr=0.01)

    def closure():
        opt.zero_grad()
        loss = _loss([w, b], 0)
        loss.backward()
        return loss

    expected = float(_loss([w, b], 0).data)  # the loss at the parameters before the step
    loss = opt.step(closure)
    assert float(loss.data) == expected
    assert float(_loss([w, b], 0).data) < expected
    assert np.array_equal(frozen.data, np.ones(3)) and frozen not in opt.state
    assert opt.step() is None


def test_closure_runs_with_grad_enabled():
    w, _ = _model()
    opt = optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with to.no_grad():
        opt.step(closure)  # would fail to produce a gradient if grad mode stayed off
    assert w.grad is not None


def test_float32_parameters_keep_their_dtype():
    for name, kwargs in OPTIMIZERS:
        w = to.Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
        opt = getattr(optim, name)([w], **kwargs)
        for _ in range(2):
            w.grad = np.full((2, 3), 0.5, dtype=np.float32)
            opt.step()
        assert w.data.dtype == np.float32, name
        assert all(v.dtype == np.float32 for v in opt.state[w].values() if isinstance(v, np.ndarray)), name


def test_repr_lists_groups():
    opt = optim.SGD(_model(), lr=0.1, momentum=0.9)
    text = repr(opt)
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "momentum: 0.9" in text
