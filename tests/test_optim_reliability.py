"""Bad input to optimizers and schedulers gets a clear error and changes nothing (issue 10).

Four classes, each tried with several inputs on every optimizer or scheduler it applies to:
gradients that cannot update their parameter, state dicts that cannot be loaded, hyperparameters
that break the formula, schedules that cannot be computed. Every test asserts the error and that
the parameters, the optimizer state and the param groups are exactly as before.
"""
import copy
import math

import numpy as np
import pytest

import tinyopt as to
from tinyopt import optim
from tinyopt.nn import Parameter
from tinyopt.optim import lr_scheduler as L

NAN, INF = float("nan"), float("inf")

# every optimizer, with options that give it state worth protecting
OPTIMIZERS = {
    "GD": {}, "SGD": dict(momentum=0.9), "Adagrad": {}, "RMSprop": dict(momentum=0.5, centered=True),
    "Adam": dict(amsgrad=True), "AdamW": {}, "Adamax": {}, "NAdam": {}, "RAdam": {}, "Adadelta": {}, "Rprop": {},
    "ASGD": {}, "Lion": {}, "LAMB": {}, "Adafactor": {}, "Muon": {}, "LBFGS": {},
}


def _params(name, dtype=np.float64):
    rng = np.random.default_rng(0)
    shapes = [(2, 3), (3, 4)] if name == "Muon" else [(2, 3), (4,)]
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def _put_grad(p, g):
    """Assign a gradient; one that the `.grad` setter itself refuses (a wrong shape or dtype, as torch)
    is put in place behind it (`p.grad.data = g`), so that the optimizer's own check is what is tested."""
    try:
        p.grad = g
    except (RuntimeError, TypeError):
        p.grad = np.zeros(p.shape, p.dtype)
        p.grad.data = g.data if isinstance(g, to.Tensor) else g


def _step(opt, params, grads):
    """Assign `grads` and step (with a closure that keeps them, for LBFGS)."""
    def closure():
        for p, g in zip(params, grads):
            _put_grad(p, g)
        return 0.0

    closure()
    return opt.step(closure) if isinstance(opt, optim.LBFGS) else opt.step()


def _snapshot(opt, params):
    return ([p.data.copy() for p in params], copy.deepcopy(opt.state_dict()))


def _assert_unchanged(before, opt, params):
    datas, state = before
    for a, p in zip(datas, params):
        assert np.array_equal(a, p.data)
    _assert_same_state(state, opt.state_dict())


def _assert_same_state(a, b):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for k in a:
            _assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_state(x, y)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=True)
    else:
        assert a == b or (a != a and b != b)


def _trained(name):
    params = _params(name)
    opt = getattr(optim, name)(params, **OPTIMIZERS[name])
    for t in range(3):
        _step(opt, params, [np.cos(p.data + t) for p in params])
    return opt, params


# ------------------------------------------------------------------ 1. gradients
def _bad_grads(params):
    w, b = params
    return {
        "too small (a kernel would read past its end)": [np.ones(w.shape), np.ones(3)],
        "transposed (applied in flat order before)": [np.ones(w.shape[::-1]), np.ones(b.shape)],
        "an integer array": [np.ones(w.shape, dtype=np.int64), np.ones(b.shape)],
        "float64 for a float64 param, float32 for the other": [np.ones(w.shape), np.ones(b.shape, np.float32)],
        "a list": [np.ones(w.shape), [1.0] * b.numel()],
        "broadcastable, not equal": [np.ones(w.shape[-1:]), np.ones(b.shape)],
    }


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_gradient_that_cannot_update_its_parameter_is_refused_and_nothing_changes(name):
    opt, params = _trained(name)
    for why, grads in _bad_grads(params).items():
        before = _snapshot(opt, params)
        with pytest.raises((ValueError, TypeError), match="parameter 1|parameter 0"):
            _step(opt, params, grads)
        _assert_unchanged(before, opt, params)  # the first (good) gradient was not applied either


def test_the_gradient_errors_say_what_is_wrong():
    w = Parameter(np.zeros((2, 3), dtype=np.float32))
    opt = optim.Adam([w])
    for grad, error, match in [(np.ones((3, 2), np.float32), ValueError, r"shape \(3, 2\).*parameter's shape"),
                               (np.ones(6, np.float32), ValueError, r"shape \(6,\)"),
                               (np.ones((2, 3), np.int32), TypeError, "dtype int32: gradients must be floating"),
                               (np.ones((2, 3)), TypeError, "dtype float64: it must have the parameter's dtype"),
                               ("abc", TypeError, "is a str")]:
        _put_grad(w, grad)
        with pytest.raises(error, match=match):
            opt.step()
    assert not opt.state and not w.data.any()


def test_a_too_small_gradient_for_a_large_parameter_leaves_every_weight_alone():
    """The issue's example, at 1/10 the size: the Numba kernel used to read past the gradient."""
    w = Parameter(np.zeros(400_000, np.float32))
    opt = optim.Adam([w], lr=0.1)
    _put_grad(w, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="shape"):
        opt.step()
    assert not w.data.any() and not opt.state


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_float32_parameter_with_a_float64_gradient_is_refused_like_torch(name):
    """torch refuses `p.grad = float64 tensor` for a float32 p; tinyopt refuses it at step (it would
    otherwise keep float64 moments or compute the update in the wrong precision)."""
    params = _params(name, np.float32)
    opt = getattr(optim, name)(params, **OPTIMIZERS[name])
    before = _snapshot(opt, params)
    with pytest.raises(TypeError, match="parameter's dtype"):
        _step(opt, params, [np.ones(p.shape) for p in params])
    _assert_unchanged(before, opt, params)
    _step(opt, params, [np.ones(p.shape, np.float32) for p in params])  # cast: accepted, state stays float32
    assert all(p.data.dtype == np.float32 for p in params)
    assert all(v.dtype == np.float32 for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_tensor_gradient_works_like_an_ndarray(name):
    runs = []
    for wrap in (lambda g: g, lambda g: to.Tensor(g, dtype=np.float64)):
        params = _params(name)
        opt = getattr(optim, name)(params, **OPTIMIZERS[name])
        for t in range(3):
            _step(opt, params, [wrap(np.cos(p.data + t)) for p in params])
        runs.append([p.data.copy() for p in params])
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            assert np.array_equal(a, b)


def test_zero_grad_in_place_works_on_tensor_gradients():
    w = Parameter(np.ones(3))
    w.grad = to.Tensor(np.ones(3))
    optim.SGD([w], lr=0.1).zero_grad(set_to_none=False)
    assert not w.grad.data.any()


# ------------------------------------------------------------------ 2. loading state
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_state_dict_with_one_misshaped_entry_changes_nothing(name):
    opt, params = _trained(name)
    saved = opt.state_dict()
    donor, _ = _trained(name)
    bad = copy.deepcopy(donor.state_dict())
    for group in bad["param_groups"]:
        group["lr"] = 0.123  # would be applied first by a naive loader
    last = max(bad["state"])
    key = next((k for k, v in bad["state"][last].items() if isinstance(v, np.ndarray) and v.ndim > 0), None)
    if key is None:  # GD keeps only a step count
        bad["state"][last]["step"], match = -1, f"state 'step' of parameter {last}"
    else:
        bad["state"][last][key] = np.zeros(bad["state"][last][key].size + 1)
        match = f"state '{key}' of parameter {last} has shape"
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    _assert_unchanged(before, opt, params)
    opt.load_state_dict(saved)  # a good one still loads


@pytest.mark.parametrize("source,target", [("SGD", "Adam"), ("Adam", "SGD"), ("NAdam", "RAdam"), ("Lion", "LAMB"),
                                           ("Adagrad", "Adadelta"), ("RMSprop", "Adam")])
def test_another_optimizers_state_is_refused_naming_both(source, target):
    """torch's state_dict layout ({'state', 'param_groups'}) has no type field: the saved optimizer
    is recognised by its hyperparameters."""
    src, _ = _trained(source)
    opt, params = _trained(target)
    before = _snapshot(opt, params)
    assert set(src.state_dict()) == {"state", "param_groups"}  # torch's layout
    with pytest.raises(ValueError, match=f"cannot load a {source} optimizer's state into {target}"):
        opt.load_state_dict(src.state_dict())
    _assert_unchanged(before, opt, params)
    unknown = copy.deepcopy(src.state_dict())  # hyperparameters of no known optimizer
    unknown["param_groups"][0]["made_up"] = 1.0
    if set(opt.defaults) - set(unknown["param_groups"][0]):
        with pytest.raises(ValueError, match=f"state into {target}: its parameter group 0 lacks"):
            opt.load_state_dict(unknown)
        _assert_unchanged(before, opt, params)


def test_adam_and_adamw_share_hyperparameters_and_load_each_others_state_as_torch():
    src, _ = _trained("Adam")
    opt, params = _trained("AdamW")
    opt.load_state_dict(src.state_dict())  # torch loads it too (AdamW is Adam with decoupled decay)
    assert opt.param_groups[0]["decoupled_weight_decay"] is False


@pytest.mark.parametrize("edit,match", [
    (lambda sd: sd["param_groups"][0].update(lr=-0.1), "param group 0: Invalid learning rate"),
    (lambda sd: sd["param_groups"][0].update(lr=NAN), "Invalid learning rate: nan"),
    (lambda sd: sd["param_groups"][0].update(momentum=1.5), "diverges by construction"),
    (lambda sd: sd["state"][0].update(step=-1), "'step' of parameter 0"),
    (lambda sd: sd["state"][0].update(step=2.5), "'step' of parameter 0"),
    (lambda sd: sd["state"].update({7: {"step": 1}}), "parameter 7, but this optimizer has 2"),
    (lambda sd: sd["state"].update({"x": {}}), "not a parameter index"),
    (lambda sd: sd["state"].update({1: [1, 2]}), "must be a dict"),
    (lambda sd: sd["param_groups"].append(copy.deepcopy(sd["param_groups"][0])), "2 parameter groups"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), "has 1 parameters"),
])
def test_an_invalid_state_dict_is_refused_and_nothing_changes(edit, match):
    opt, params = _trained("SGD")
    bad = copy.deepcopy(opt.state_dict())
    edit(bad)
    other, other_params = _trained("SGD")
    for p in other_params:
        p.data += 1
    _step(other, other_params, [np.ones(p.shape) for p in other_params])
    before = _snapshot(other, other_params)
    with pytest.raises(ValueError, match=match):
        other.load_state_dict(bad)
    _assert_unchanged(before, other, other_params)


def test_load_state_dict_needs_a_state_dict():
    opt, params = _trained("Adam")
    for bad in (None, [], {"state": {}}, {"param_groups": []}):
        with pytest.raises(ValueError, match="expects a dict with 'state' and 'param_groups'"):
            opt.load_state_dict(bad)


# ------------------------------------------------------------------ 3. hyperparameters
# name -> [(kwargs, error, match)]: torch's refusals plus what breaks the formula by construction
COMMON = [(dict(lr=NAN), ValueError, "Invalid learning rate: nan"), (dict(lr=INF), ValueError, "Invalid learning rate"),
          (dict(lr=-1e-3), ValueError, "Invalid learning rate"), (dict(lr="0.1"), TypeError, "lr must be a real")]
BETAS = [(dict(betas=(0.9,)), ValueError, "betas must have 2 values"),
         (dict(betas=(0.9, 0.99, 0.999)), ValueError, "betas must have 2 values"),
         (dict(betas=(NAN, 0.999)), ValueError, "beta parameter at index 0: nan"),
         (dict(betas=(0.9, 1.0)), ValueError, "beta parameter at index 1"), (dict(betas=0.9), TypeError, "betas")]
EPS = [(dict(eps=NAN), ValueError, "Invalid epsilon"), (dict(eps=-1e-8), ValueError, "Invalid epsilon")]
DECAY = [(dict(weight_decay=NAN), ValueError, "Invalid weight_decay"),
         (dict(weight_decay=-0.1), ValueError, "Invalid weight_decay")]
MOMENTUM = [(dict(momentum=NAN), ValueError, "Invalid momentum value: nan"),
            (dict(momentum=1.5), ValueError, "diverges by construction"),
            (dict(momentum=-0.1), ValueError, "Invalid momentum")]
INVALID = {
    "GD": COMMON,
    "SGD": COMMON + MOMENTUM + DECAY + [
        (dict(momentum=0.9, dampening=-0.1), ValueError, "Invalid dampening"),
        (dict(momentum=0.9, dampening=1.5), ValueError, "Invalid dampening"),
        (dict(nesterov=True, momentum=0.0), ValueError, "Nesterov"), (dict(momentum_style="keras"), ValueError, "momentum_style")],
    "Adagrad": COMMON + EPS + DECAY + [(dict(lr_decay=-1), ValueError, "lr_decay"),
                                       (dict(initial_accumulator_value=NAN), ValueError, "initial_accumulator_value")],
    "RMSprop": COMMON + EPS + DECAY + MOMENTUM + [(dict(alpha=-0.5), ValueError, "Invalid alpha"),
                                                 (dict(alpha=NAN), ValueError, "Invalid alpha")],
    "Adam": COMMON + BETAS + EPS + DECAY + [(dict(eps_placement="tf"), ValueError, "eps_placement")],
    "AdamW": COMMON + BETAS + EPS + DECAY,
    "Adamax": COMMON + BETAS + EPS + DECAY,
    "NAdam": COMMON + BETAS + EPS + DECAY + [(dict(momentum_decay=-1e-3), ValueError, "momentum_decay"),
                                            (dict(momentum_decay=NAN), ValueError, "momentum_decay")],
    "RAdam": COMMON + BETAS + EPS + DECAY,
    "Adadelta": COMMON + EPS + DECAY + [(dict(rho=1.5), ValueError, "Invalid rho"), (dict(rho=-0.1), ValueError, "rho"),
                                        (dict(rho=NAN), ValueError, "rho")],
    "Rprop": COMMON + [(dict(etas=(1.5, 1.2)), ValueError, "Invalid eta values"),
                       (dict(etas=(0.5, 0.9)), ValueError, "Invalid eta values"),
                       (dict(etas=(0.5,)), ValueError, "etas must have 2"),
                       (dict(etas=(NAN, 1.2)), ValueError, "eta values"),
                       (dict(step_sizes=(1.0, 0.1)), ValueError, "step_size_max"),
                       (dict(step_sizes=(-1.0, 1.0)), ValueError, "step_size_min")],
    "ASGD": COMMON + DECAY + [(dict(lambd=-1e-4), ValueError, "lambd"), (dict(alpha=-0.75), ValueError, "alpha"),
                              (dict(t0=-1), ValueError, "t0"), (dict(t0=NAN), ValueError, "t0")],
    "Lion": COMMON + DECAY + [(dict(betas=(0.9,)), ValueError, "betas must have 2"),
                              (dict(betas=(1.1, 0.99)), ValueError, "index 0")],
    "LAMB": COMMON + BETAS + EPS + DECAY + [(dict(phi_bounds=(2.0, 1.0)), ValueError, "γ_l <= γ_u"),
                                            (dict(phi_bounds=(1.0,)), ValueError, "phi_bounds must have 2")],
    "Adafactor": COMMON + DECAY + [(dict(beta2_decay=0.5), ValueError, "beta2_decay"),
                                   (dict(eps=(-1e-3, 1e-3)), ValueError, "epsilon1"),
                                   (dict(eps=(None,)), ValueError, "eps must have 2"),
                                   (dict(d=0.5), ValueError, "clipping threshold d")],
    "Muon": COMMON + DECAY + MOMENTUM + [(dict(ns_steps=100), ValueError, "less than 100"),
                                         (dict(ns_steps=2.5), ValueError, "integer ns_steps"),
                                         (dict(ns_coefficients=(1.0, 2.0)), ValueError, "ns_coefficients"),
                                         (dict(adjust_lr_fn="rms"), ValueError, "not supported"),
                                         (dict(ns_dtype="float16"), ValueError, "ns_dtype")],
    "LBFGS": COMMON + [(dict(max_iter=0), ValueError, "max_iter"), (dict(history_size=0), ValueError, "history_size"),
                       (dict(line_search_fn="armijo"), ValueError, "line_search_fn"),
                       (dict(tolerance_grad=-1.0), ValueError, "tolerance_grad"),
                       (dict(max_iter=2.5), ValueError, "integer max_iter")],
}
HYPER_CASES = [(name, *case) for name, cases in INVALID.items() for case in cases]


def test_every_optimizer_has_its_invalid_cases():
    assert set(INVALID) == set(OPTIMIZERS) == set(optim.__all__) - {"Optimizer", "StepRecord", "Trace", "lr_scheduler"}


@pytest.mark.parametrize("name,kwargs,error,match", HYPER_CASES,
                         ids=[f"{n}-{k}" for n, k, _, _ in HYPER_CASES])
def test_invalid_hyperparameters_are_refused_in_the_constructor_and_in_add_param_group(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(optim, name)(_params(name), **kwargs)
    if name == "LBFGS":  # one group only: its constructor is the only entry
        return
    opt, params = _trained(name)
    groups_before = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
    before = _snapshot(opt, params)
    extra = Parameter(np.ones((3, 2)))
    with pytest.raises(error, match=match):
        opt.add_param_group({"params": [extra], **kwargs})
    assert len(opt.param_groups) == len(groups_before)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups_before
    _assert_unchanged(before, opt, params)


def test_the_momentum_message_says_why():
    with pytest.raises(ValueError) as info:
        optim.SGD(_params("SGD"), lr=0.1, momentum=1.01)
    message = str(info.value)
    assert "1.01" in message and "[0.0, 1.0]" in message and "μᵗ" in message


# ------------------------------------------------------------------ 4. schedulers
def _optimizer(momentum=0.9):
    return optim.SGD([{"params": [Parameter(np.zeros(2))], "lr": 0.1},
                      {"params": [Parameter(np.zeros(2))], "lr": 0.03}], lr=0.1, momentum=momentum)


SCHEDULER_CASES = [
    (lambda o: L.StepLR(o, step_size=0), ValueError, "step_size >= 1"),
    (lambda o: L.StepLR(o, step_size=-2), ValueError, "step_size"),
    (lambda o: L.StepLR(o, step_size=2.5), ValueError, "integer step_size"),
    (lambda o: L.StepLR(o, step_size=3, gamma=-0.1), ValueError, "flip the sign"),
    (lambda o: L.StepLR(o, step_size=3, gamma=NAN), ValueError, "gamma"),
    (lambda o: L.MultiStepLR(o, milestones=[3, 5], gamma=-0.5), ValueError, "gamma"),
    (lambda o: L.MultiStepLR(o, milestones=[-1, 5]), ValueError, "milestone"),
    (lambda o: L.ExponentialLR(o, gamma=-0.9), ValueError, "gamma"),
    (lambda o: L.ExponentialLR(o, gamma=INF), ValueError, "gamma"),
    (lambda o: L.CosineAnnealingLR(o, T_max=0), ValueError, "divides by T_max"),
    (lambda o: L.CosineAnnealingLR(o, T_max=-5), ValueError, "T_max"),
    (lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=-1e-3), ValueError, "eta_min"),
    (lambda o: L.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=NAN), ValueError, "eta_min"),
    (lambda o: L.CyclicLR(o, base_lr=0.5, max_lr=0.1), ValueError, "base_lr <= max_lr"),
    (lambda o: L.CyclicLR(o, base_lr=[0.01, 0.5], max_lr=[0.1, 0.2]), ValueError, "param group 1"),
    (lambda o: L.CyclicLR(o, base_lr=NAN, max_lr=0.1), ValueError, "base_lr"),
    (lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=0), ValueError, "step_size_up"),
    (lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_down=-1), ValueError, "step_size_down"),
    (lambda o: L.CyclicLR(o, 0.01, 0.1, mode="exp_range", gamma=-0.99), ValueError, "gamma"),
    (lambda o: L.CyclicLR(o, 0.01, 0.1, max_momentum=1.5), ValueError, "max_momentum"),
    (lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=10, div_factor=0), ValueError, "div_factor"),
    (lambda o: L.OneCycleLR(o, max_lr=-0.1, total_steps=10), ValueError, "max_lr"),
    (lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=10, base_momentum=NAN), ValueError, "base_momentum"),
    (lambda o: L.PolynomialLR(o, total_iters=0), ValueError, "total_iters"),
    (lambda o: L.PolynomialLR(o, total_iters=5, power=-1.0), ValueError, "power"),
    (lambda o: L.LinearLR(o, total_iters=0), ValueError, "total_iters"),
    (lambda o: L.ConstantLR(o, total_iters=-1), ValueError, "total_iters"),
    (lambda o: L.ConstantLR(o, factor=NAN), ValueError, "factor"),
    (lambda o: L.LambdaLR(o, lr_lambda=0.5), TypeError, "should be a function"),
    (lambda o: L.ReduceLROnPlateau(o, factor=-0.5), ValueError, "factor"),
    (lambda o: L.ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
    (lambda o: L.ReduceLROnPlateau(o, min_lr=-1e-5), ValueError, "min_lr"),
    (lambda o: L.ReduceLROnPlateau(o, cooldown=1.5), ValueError, "cooldown"),
]


@pytest.mark.parametrize("build,error,match", SCHEDULER_CASES, ids=[m for _, _, m in SCHEDULER_CASES])
def test_invalid_scheduler_arguments_are_refused_before_the_optimizer_is_touched(build, error, match):
    opt = _optimizer()
    groups_before = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
    with pytest.raises(error, match=match):
        build(opt)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups_before
    assert not hasattr(opt.step, "_wrapped_by_lr_sched")


@pytest.mark.parametrize("milestones,match", [([5, 2], "increasing"), ([-1, 4], "milestone"), ([2.5, 4], "integer")])
def test_sequential_lr_refuses_bad_milestones_before_touching_its_children(milestones, match):
    opt = _optimizer()
    children = [L.ConstantLR(opt), L.ExponentialLR(opt, gamma=0.9), L.StepLR(opt, step_size=2)]
    groups_before = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
    epochs_before = [c.last_epoch for c in children]
    with pytest.raises(ValueError, match=match):
        L.SequentialLR(opt, children, milestones=milestones)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups_before
    assert [c.last_epoch for c in children] == epochs_before


def _scheduler_trained(build, epochs=4):
    opt = _optimizer()
    sched = build(opt)
    for _ in range(epochs):
        opt.step()
        sched.step()
    return opt, sched


@pytest.mark.parametrize("source,target", [
    (lambda o: L.StepLR(o, step_size=3), lambda o: L.CosineAnnealingLR(o, T_max=10)),
    (lambda o: L.ExponentialLR(o, gamma=0.9), lambda o: L.StepLR(o, step_size=2)),
    (lambda o: L.OneCycleLR(o, max_lr=0.5, total_steps=20), lambda o: L.CyclicLR(o, 0.01, 0.1)),
])
def test_another_schedulers_state_is_refused_naming_both(source, target):
    _, src = _scheduler_trained(source)
    opt, sched = _scheduler_trained(target)
    before = copy.deepcopy(sched.state_dict())
    with pytest.raises(ValueError, match=f"cannot load a {type(src).__name__} scheduler's state into "
                                         f"{type(sched).__name__}"):
        sched.load_state_dict(src.state_dict())
    assert sched.state_dict() == before
    untyped = {k: v for k, v in src.state_dict().items() if k != "type"}
    with pytest.raises(ValueError, match=f"state into {type(sched).__name__}: it lacks"):
        sched.load_state_dict(untyped)
    assert sched.state_dict() == before


def test_a_composite_schedulers_load_is_all_or_nothing():
    def build(o):
        return L.ChainedScheduler([L.ConstantLR(o, factor=0.5, total_iters=2), L.MultiStepLR(o, milestones=[3, 6])])

    _, source = _scheduler_trained(build, 5)
    opt, sched = _scheduler_trained(build, 1)
    before = copy.deepcopy(sched.state_dict())
    for edit, match in [(lambda sd: sd["_schedulers"][1].update(milestones={"x": 1}), "not epoch counts"),
                        (lambda sd: sd["_schedulers"][1].update(type="StepLR"), "StepLR scheduler's state"),
                        (lambda sd: sd["_schedulers"].pop(), "holds 1 child schedulers"),
                        (lambda sd: sd["_schedulers"][1].pop("gamma"), "lacks")]:
        bad = copy.deepcopy(source.state_dict())
        edit(bad)
        with pytest.raises(ValueError, match=match):
            sched.load_state_dict(bad)
        assert sched.state_dict() == before  # the first child was not loaded either
    sched.load_state_dict(source.state_dict())
    assert sched._schedulers[0].last_epoch == source._schedulers[0].last_epoch


def test_scheduler_load_state_dict_needs_a_dict():
    _, sched = _scheduler_trained(lambda o: L.StepLR(o, 2))
    with pytest.raises(ValueError, match="expects a dict"):
        sched.load_state_dict([("last_epoch", 3)])


def test_reduce_on_plateau_refuses_a_state_with_an_unknown_mode():
    opt = _optimizer()
    sched = L.ReduceLROnPlateau(opt)
    bad = dict(sched.state_dict(), mode="sideways")
    before = copy.deepcopy(sched.state_dict())
    with pytest.raises(ValueError, match="mode"):
        sched.load_state_dict(bad)
    assert sched.state_dict() == before and math.isinf(sched.best)
