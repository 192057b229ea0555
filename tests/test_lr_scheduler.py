"""Learning-rate schedulers: against their closed forms, hand-computed values and torch.

Every case below is a factory `(L, opt) -> scheduler` written once and run with both
`L = tinyopt.optim.lr_scheduler` and `L = torch.optim.lr_scheduler`, so both libraries get the
same arguments. The optimizers have two param groups with different learning rates.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import tinyopt.optim.lr_scheduler as L
from tinyopt.nn import Parameter
from tinyopt.optim import SGD, Optimizer

LRS = (0.1, 0.03)


def make_optimizer(lrs=LRS, momentum=0.0):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    if momentum:
        return SGD(groups, lr=lrs[0], momentum=momentum)
    return SGD(groups, lr=lrs[0])


def make_torch_optimizer(torch, lrs=LRS, momentum=0.0):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)


def run(scheduler, optimizer, epochs, metrics=None, momentum=False):
    """The learning rates (and momenta) after construction and after each of `epochs` steps,
    called in the right order (optimizer first)."""
    lrs = [list(scheduler.get_last_lr())]
    moms = [[g.get("momentum") for g in optimizer.param_groups]]
    for t in range(epochs):
        optimizer.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[t])
        lrs.append(list(scheduler.get_last_lr()))
        moms.append([g.get("momentum") for g in optimizer.param_groups])
    return (np.array(lrs, dtype=float), np.array(moms, dtype=float)) if momentum else np.array(lrs, dtype=float)


def _decay(t):  # a module-level function, so the state-dict rules for functions apply
    return 0.95 ** t


# name -> (factory, epochs). Epoch counts go well past T_max / total_iters / several restarts.
CASES = {
    "LambdaLR": (lambda L, opt: L.LambdaLR(opt, lr_lambda=_decay), 40),
    "LambdaLR-per-group": (lambda L, opt: L.LambdaLR(opt, [lambda t: 1 / (t + 1), lambda t: 0.9 ** (t // 3)]), 40),
    "MultiplicativeLR": (lambda L, opt: L.MultiplicativeLR(opt, lambda t: 0.9 if t % 2 else 0.99), 40),
    "StepLR": (lambda L, opt: L.StepLR(opt, step_size=3, gamma=0.5), 40),
    "MultiStepLR": (lambda L, opt: L.MultiStepLR(opt, milestones=[2, 5, 5, 9], gamma=0.3), 20),
    "ConstantLR": (lambda L, opt: L.ConstantLR(opt, factor=0.25, total_iters=4), 15),
    "LinearLR-warmup": (lambda L, opt: L.LinearLR(opt, start_factor=0.2, end_factor=1.0, total_iters=7), 20),
    "LinearLR-decay": (lambda L, opt: L.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=10), 20),
    "ExponentialLR": (lambda L, opt: L.ExponentialLR(opt, gamma=0.93), 60),
    "PolynomialLR": (lambda L, opt: L.PolynomialLR(opt, total_iters=8, power=2.0), 15),
    "PolynomialLR-sqrt": (lambda L, opt: L.PolynomialLR(opt, total_iters=12, power=0.5), 20),
    "CosineAnnealingLR": (lambda L, opt: L.CosineAnnealingLR(opt, T_max=10, eta_min=0.001), 65),
    "CosineAnnealingLR-eta0": (lambda L, opt: L.CosineAnnealingLR(opt, T_max=7), 50),
    "CosineAnnealingWarmRestarts": (lambda L, opt: L.CosineAnnealingWarmRestarts(opt, T_0=5), 40),
    "CosineAnnealingWarmRestarts-mult": (
        lambda L, opt: L.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.005), 100),
    "CyclicLR-triangular": (
        lambda L, opt: L.CyclicLR(opt, 0.01, 0.1, step_size_up=4, step_size_down=6, cycle_momentum=False), 50),
    "CyclicLR-triangular2": (
        lambda L, opt: L.CyclicLR(opt, [0.01, 0.02], [0.1, 0.05], step_size_up=5, mode="triangular2",
                                  cycle_momentum=False), 50),
    "CyclicLR-exp_range": (
        lambda L, opt: L.CyclicLR(opt, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.97,
                                  cycle_momentum=False), 50),
    "CyclicLR-custom": (
        lambda L, opt: L.CyclicLR(opt, 0.01, 0.1, step_size_up=3, scale_fn=lambda x: 0.98 ** x,
                                  scale_mode="iterations", cycle_momentum=False), 40),
    "OneCycleLR": (lambda L, opt: L.OneCycleLR(opt, max_lr=[0.1, 0.2], total_steps=50, cycle_momentum=False), 50),
    "OneCycleLR-linear-3phase": (
        lambda L, opt: L.OneCycleLR(opt, max_lr=0.5, epochs=6, steps_per_epoch=7, pct_start=0.25,
                                    anneal_strategy="linear", three_phase=True, cycle_momentum=False), 42),
    "SequentialLR-warmup-cosine": (
        lambda L, opt: L.SequentialLR(opt, [L.LinearLR(opt, start_factor=0.1, total_iters=5),
                                            L.CosineAnnealingLR(opt, T_max=15)], milestones=[5]), 40),
    "SequentialLR-three": (
        lambda L, opt: L.SequentialLR(opt, [L.ConstantLR(opt, factor=0.5, total_iters=10),
                                            L.ExponentialLR(opt, gamma=0.9),
                                            L.StepLR(opt, step_size=4, gamma=0.5)], milestones=[3, 13]), 30),
    "ChainedScheduler": (
        lambda L, opt: L.ChainedScheduler([L.ConstantLR(opt, factor=0.1, total_iters=2),
                                           L.ExponentialLR(opt, gamma=0.9)]), 20),
    "ChainedScheduler-of-SequentialLR": (
        lambda L, opt: L.ChainedScheduler([
            L.SequentialLR(opt, [L.LinearLR(opt, start_factor=0.5, total_iters=4), L.StepLR(opt, 3, gamma=0.7)],
                           milestones=[4]),
            L.MultiStepLR(opt, milestones=[6, 10], gamma=0.5)]), 25),
}


# ---------------------------------------------------------------------------- the docstrings' closed forms

@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR-warmup", "LinearLR-decay",
                                  "ExponentialLR", "PolynomialLR", "PolynomialLR-sqrt", "CosineAnnealingLR",
                                  "CosineAnnealingLR-eta0"])
def test_recursive_form_equals_closed_form(name):
    """What step() computes recursively equals `_get_closed_form_lr()` at every epoch."""
    factory, epochs = CASES[name]
    opt = make_optimizer()
    sched = factory(L, opt)
    for _ in range(epochs):
        np.testing.assert_allclose(sched.get_last_lr(), sched._get_closed_form_lr(), rtol=1e-12, atol=1e-15,
                                   err_msg=f"{name} at epoch {sched.last_epoch}")
        opt.step()
        sched.step()


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR-warmup"])
def test_step_with_epoch_jumps_with_the_closed_form(name):
    factory, epochs = CASES[name]
    opt, jumper_opt = make_optimizer(), make_optimizer()
    sched, jumper = factory(L, opt), factory(L, jumper_opt)
    expected = run(sched, opt, epochs)
    jumper_opt.step()
    for t in [7, 3, epochs - 1, 0, 12]:
        with pytest.warns(UserWarning, match="epoch parameter"):
            jumper.step(t)
        np.testing.assert_allclose(jumper.get_last_lr(), expected[t], rtol=1e-12, atol=1e-15)


def _closed_forms(eta_0, t):
    """The docstrings' formulas, written out independently of the implementation."""
    return {
        "LambdaLR": eta_0 * 0.95 ** t,
        "MultiplicativeLR": eta_0 * math.prod(0.9 if s % 2 else 0.99 for s in range(1, t + 1)),
        "StepLR": eta_0 * 0.5 ** (t // 3),
        "MultiStepLR": eta_0 * 0.3 ** sum(m <= t for m in [2, 5, 5, 9]),
        "ConstantLR": eta_0 * (0.25 if t < 4 else 1.0),
        "LinearLR-warmup": eta_0 * (0.2 + 0.8 * min(t, 7) / 7),
        "ExponentialLR": eta_0 * 0.93 ** t,
        "PolynomialLR": eta_0 * (1 - min(t, 8) / 8) ** 2,
        "CosineAnnealingLR": 0.001 + (eta_0 - 0.001) * (1 + math.cos(math.pi * t / 10)) / 2,
        "ChainedScheduler": eta_0 * (0.1 if t < 2 else 1.0) * 0.9 ** t,
        "SequentialLR-warmup-cosine": (eta_0 * (0.1 + 0.9 * t / 5) if t < 5
                                       else eta_0 * (1 + math.cos(math.pi * (t - 5) / 15)) / 2),
    }


def _warm_restarts_closed_form(eta_0, t, T_0, T_mult, eta_min):
    """Find the cycle i with S_i ≤ t < S_i + T_i, S_i = T_0 (T_mult^i − 1)/(T_mult − 1)."""
    i = 0
    while True:
        T_i = T_0 * T_mult ** i
        S_i = T_0 * i if T_mult == 1 else T_0 * (T_mult ** i - 1) // (T_mult - 1)
        if S_i <= t < S_i + T_i:
            return eta_min + (eta_0 - eta_min) * (1 + math.cos(math.pi * (t - S_i) / T_i)) / 2
        i += 1


@pytest.mark.parametrize("name", list(_closed_forms(1.0, 0)))
def test_sequence_equals_the_docstring_formula(name):
    factory, epochs = CASES[name]
    opt = make_optimizer()
    got = run(factory(L, opt), opt, epochs)
    expected = np.array([[_closed_forms(eta_0, t)[name] for eta_0 in LRS] for t in range(epochs + 1)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("T_0, T_mult, eta_min", [(5, 1, 0.0), (3, 2, 0.005), (1, 3, 0.0), (2, 4, 0.01)])
def test_warm_restarts_equals_the_docstring_formula(T_0, T_mult, eta_min):
    opt = make_optimizer()
    epochs = 130
    got = run(L.CosineAnnealingWarmRestarts(opt, T_0=T_0, T_mult=T_mult, eta_min=eta_min), opt, epochs)
    expected = [[_warm_restarts_closed_form(eta_0, t, T_0, T_mult, eta_min) for eta_0 in LRS] for t in range(epochs + 1)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # and jumping to an epoch, including the exact cycle starts, lands on the same values
    jumper_opt = make_optimizer()
    jumper = L.CosineAnnealingWarmRestarts(jumper_opt, T_0=T_0, T_mult=T_mult, eta_min=eta_min)
    jumper_opt.step()
    for t in [0, 1, T_0, T_0 + 1, 121, 40, 13, 4, 130]:
        jumper.step(t)
        np.testing.assert_allclose(jumper.get_last_lr(), expected[t], rtol=1e-12, atol=1e-15, err_msg=f"epoch {t}")


def test_hand_computed_values():
    """A few sequences small enough to check by hand (lr = 1)."""
    def seq(factory, n):
        opt = make_optimizer(lrs=(1.0,))
        return run(factory(opt), opt, n)[:, 0].tolist()

    assert seq(lambda o: L.StepLR(o, step_size=2, gamma=0.5), 5) == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert seq(lambda o: L.MultiStepLR(o, milestones=[1, 3], gamma=0.1), 4) == pytest.approx([1, 0.1, 0.1, 0.01, 0.01])
    assert seq(lambda o: L.ConstantLR(o, factor=0.5, total_iters=2), 3) == [0.5, 0.5, 1, 1]
    assert seq(lambda o: L.LinearLR(o, start_factor=0.25, total_iters=3), 4) == pytest.approx([0.25, 0.5, 0.75, 1, 1])
    assert seq(lambda o: L.PolynomialLR(o, total_iters=4, power=1.0), 5) == pytest.approx([1, 0.75, 0.5, 0.25, 0, 0])
    assert seq(lambda o: L.CosineAnnealingLR(o, T_max=2), 4) == pytest.approx([1, 0.5, 0, 0.5, 1], abs=1e-15)
    assert seq(lambda o: L.CosineAnnealingWarmRestarts(o, T_0=2), 4) == pytest.approx([1, 0.5, 1, 0.5, 1])
    # triangular cycle of 2 up + 2 down between 0 and 1
    assert seq(lambda o: L.CyclicLR(o, 0.0, 1.0, step_size_up=2, cycle_momentum=False), 5) == pytest.approx(
        [0, 0.5, 1, 0.5, 0, 0.5])
    # OneCycle, linear, 10 steps, rise over 3: η_init = 1/25 → 1 at step 2 → η_init/1e4 at step 9
    one = seq(lambda o: L.OneCycleLR(o, 1.0, total_steps=10, pct_start=0.3, anneal_strategy="linear",
                                     cycle_momentum=False), 9)
    assert one[0] == pytest.approx(0.04) and one[2] == pytest.approx(1.0) and one[9] == pytest.approx(0.04 / 1e4)


def test_cosine_annealing_is_periodic_past_T_max():
    opt = make_optimizer()
    lrs = run(L.CosineAnnealingLR(opt, T_max=6, eta_min=0.01), opt, 40)
    np.testing.assert_allclose(lrs[6], [0.01, 0.01], rtol=1e-12)  # the minimum at T_max
    np.testing.assert_allclose(lrs[12], LRS, rtol=1e-12)  # back at η₀ at 2·T_max
    np.testing.assert_allclose(lrs[12:24], lrs[0:12], rtol=1e-10)  # period 2·T_max


def test_one_cycle_cycles_momentum_opposite_to_the_learning_rate():
    opt = make_optimizer(momentum=0.9)
    lrs, moms = run(L.OneCycleLR(opt, max_lr=1.0, total_steps=20, base_momentum=0.8, max_momentum=0.95), opt, 20,
                    momentum=True)
    peak = int(np.argmax(lrs[:, 0]))
    assert peak == 5  # pct_start 0.3 of 20 steps: the rise ends at step 0.3·20 − 1
    # (step 20 = total_steps is allowed but past the schedule's end at step 19)
    assert moms[0, 0] == pytest.approx(0.95) and moms[peak, 0] == pytest.approx(0.8) and moms[19, 0] == pytest.approx(0.95)
    assert np.all(np.diff(lrs[: peak + 1, 0]) > 0) and np.all(np.diff(moms[: peak + 1, 0]) < 0)


def test_one_cycle_cycles_beta1_of_an_adam_like_optimizer():
    class BetasOptimizer(Optimizer):  # any optimizer with `betas` in its defaults
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999)):
            super().__init__(params, dict(lr=lr, betas=betas))

        def step(self, closure=None):
            return None

    opt = BetasOptimizer([Parameter(np.zeros(2))])
    sched = L.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    assert opt.param_groups[0]["betas"] == (0.95, 0.999)
    for _ in range(3):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["betas"][0] < 0.95 and opt.param_groups[0]["betas"][1] == 0.999


# ---------------------------------------------------------------------------- ReduceLROnPlateau

def test_reduce_on_plateau_by_hand():
    opt = make_optimizer(lrs=(1.0,))
    sched = L.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.0, cooldown=1, min_lr=0.2)
    # improves, then 3 bad epochs (> patience 2) → cut; cooldown 1 epoch; 3 more bad → cut to min_lr 0.2
    metrics = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    lrs = run(sched, opt, len(metrics), metrics=metrics)[1:, 0]
    expected = [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2]
    assert lrs.tolist() == expected


def test_reduce_on_plateau_max_mode_and_abs_threshold():
    opt = make_optimizer(lrs=(1.0,))
    sched = L.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0, threshold=0.05, threshold_mode="abs")
    # 0.5 is an improvement over −∞; 0.54 is not better than 0.5 + 0.05 → cut at once (patience 0)
    run(sched, opt, 2, metrics=[0.5, 0.54])
    assert sched.get_last_lr() == pytest.approx([0.1])
    assert sched.best == 0.5


def test_reduce_on_plateau_skips_cuts_smaller_than_eps():
    opt = make_optimizer(lrs=(1e-9,))
    sched = L.ReduceLROnPlateau(opt, patience=0, eps=1e-8)
    run(sched, opt, 3, metrics=[1.0, 1.0, 1.0])
    assert sched.get_last_lr() == [1e-9]


# ---------------------------------------------------------------------------- state dicts, warnings, errors

@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_round_trip_continues_identically(name):
    factory, epochs = CASES[name]
    k = epochs // 3
    opt = make_optimizer()
    sched = factory(L, opt)
    run(sched, opt, k)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    expected = run(sched, opt, epochs - k)

    opt2 = make_optimizer()
    sched2 = factory(L, opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # resumed: no step-order warning
        got = run(sched2, opt2, epochs - k)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", sorted(CASES) + ["ReduceLROnPlateau"])
def test_checkpoint_file_round_trip_continues_identically(name, tmp_path):
    """Through tinyopt.checkpoint (.npz + JSON, no pickle): every scheduler's state must be made
    of plain values, and come back in a form the scheduler still works with."""
    from tinyopt import checkpoint

    if name == "ReduceLROnPlateau":
        factory, epochs = (lambda L, opt: L.ReduceLROnPlateau(opt, patience=2, cooldown=1, factor=0.5)), 40
        metrics = np.concatenate([np.linspace(1, 0.5, 10), np.full(30, 0.5)])
    else:
        (factory, epochs), metrics = CASES[name], None
    k = epochs // 3
    opt = make_optimizer()
    sched = factory(L, opt)
    run(sched, opt, k, metrics=metrics)
    checkpoint.save({"optimizer": opt, "scheduler": sched}, tmp_path / "ckpt.npz")
    expected = run(sched, opt, epochs - k, metrics=None if metrics is None else metrics[k:])

    opt2 = make_optimizer()
    sched2 = factory(L, opt2)
    checkpoint.restore(tmp_path / "ckpt.npz", optimizer=opt2, scheduler=sched2)
    got = run(sched2, opt2, epochs - k, metrics=None if metrics is None else metrics[k:])
    np.testing.assert_array_equal(got, expected)
    if hasattr(sched2, "_get_closed_form_lr"):
        np.testing.assert_allclose(sched2._get_closed_form_lr(), sched2.get_last_lr(), rtol=1e-12, atol=1e-15)


def test_state_dict_is_a_copy_and_keeps_callable_objects_attributes():
    class Decay:
        def __init__(self, gamma):
            self.gamma = gamma

        def __call__(self, t):
            return self.gamma ** t

    opt = make_optimizer()
    sched = L.LambdaLR(opt, [Decay(0.5), _decay])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"gamma": 0.5}, None]  # functions are code, not state
    assert "optimizer" not in state
    opt.step()
    sched.step()
    assert state["last_epoch"] == 0 and state["_last_lr"] == list(LRS)  # unchanged by later steps

    sched2 = L.LambdaLR(make_optimizer(), [Decay(0.9), _decay])
    sched2.load_state_dict(state)
    assert sched2.lr_lambdas[0].gamma == 0.5


def test_reduce_on_plateau_state_dict_round_trip():
    metrics = np.concatenate([np.linspace(1, 0.5, 10), np.full(30, 0.5)])
    opt = make_optimizer()
    sched = L.ReduceLROnPlateau(opt, patience=3, cooldown=2, factor=0.5)
    run(sched, opt, 15, metrics=metrics)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    expected = run(sched, opt, 25, metrics=metrics[15:])
    opt2 = make_optimizer()
    sched2 = L.ReduceLROnPlateau(opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    np.testing.assert_array_equal(run(sched2, opt2, 25, metrics=metrics[15:]), expected)


def test_scheduler_step_before_optimizer_step_warns():
    opt = make_optimizer()
    sched = L.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()


def test_right_order_does_not_warn():
    for name, (factory, _) in CASES.items():
        opt = make_optimizer()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            run(factory(L, opt), opt, 5)


def test_warm_restarts_also_warns_about_the_order():
    opt = make_optimizer()
    sched = L.CosineAnnealingWarmRestarts(opt, T_0=3)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()


def test_replacing_optimizer_step_after_the_scheduler_warns():
    opt = make_optimizer()
    sched = L.ExponentialLR(opt, gamma=0.9)
    opt.step = lambda closure=None: None
    with pytest.warns(UserWarning, match="overridden"):
        sched.step()


def test_the_wrapped_optimizer_step_still_steps_and_returns_the_closure_value():
    p = Parameter(np.array([1.0, 2.0]))
    opt = SGD([p], lr=0.5)
    L.StepLR(opt, step_size=1)
    L.StepLR(opt, step_size=1)  # a second scheduler does not wrap twice
    p.grad = np.array([1.0, 1.0])
    assert opt.step(lambda: 3.0) == 3.0
    np.testing.assert_allclose(p.data, [0.5, 1.5])
    assert opt._opt_called


def test_calling_get_lr_directly_warns():
    opt = make_optimizer()
    sched = L.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def test_initial_lr_is_stored_and_shared_by_later_schedulers():
    opt = make_optimizer()
    L.ExponentialLR(opt, gamma=0.5)
    opt.step()
    assert [g["initial_lr"] for g in opt.param_groups] == list(LRS)
    second = L.StepLR(opt, step_size=5)
    assert second.base_lrs == list(LRS)


def test_resuming_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        L.StepLR(make_optimizer(), step_size=2, last_epoch=3)


def test_adding_a_param_group_after_the_scheduler_is_a_clear_error():
    opt = make_optimizer()
    sched = L.LambdaLR(opt, _decay)  # one λ and one η₀ per group known at construction
    opt.add_param_group({"params": [Parameter(np.zeros(1))], "lr": 0.5})
    opt.step()
    with pytest.raises(ValueError, match="2 learning rates but the optimizer has 3"):
        sched.step()


@pytest.mark.parametrize("build, error, match", [
    (lambda opt: L.StepLR(object(), step_size=2), TypeError, "is not an Optimizer"),
    (lambda opt: L.ConstantLR(opt, factor=1.5), ValueError, "between 0 and 1"),
    (lambda opt: L.LinearLR(opt, start_factor=0.0), ValueError, "greater than 0"),
    (lambda opt: L.LinearLR(opt, end_factor=1.5), ValueError, "Ending"),
    (lambda opt: L.LambdaLR(opt, [lambda t: 1.0]), ValueError, "Expected 2 lr_lambdas"),
    (lambda opt: L.MultiplicativeLR(opt, 0.9), TypeError, "should be a function"),
    (lambda opt: L.CosineAnnealingWarmRestarts(opt, T_0=0), ValueError, "positive integer T_0"),
    (lambda opt: L.CosineAnnealingWarmRestarts(opt, T_0=2.5), ValueError, "positive integer T_0"),
    (lambda opt: L.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0), ValueError, "T_mult >= 1"),
    (lambda opt: L.CyclicLR(opt, 0.1, 1.0, mode="zigzag"), ValueError, "invalid"),
    (lambda opt: L.CyclicLR(opt, [0.1], 1.0, cycle_momentum=False), ValueError, "same length"),
    (lambda opt: L.OneCycleLR(opt, 0.1), ValueError, "total_steps OR"),
    (lambda opt: L.OneCycleLR(opt, 0.1, total_steps=0), ValueError, "positive integer total_steps"),
    (lambda opt: L.OneCycleLR(opt, 0.1, total_steps=10, pct_start=1), ValueError, "pct_start"),
    (lambda opt: L.OneCycleLR(opt, 0.1, total_steps=10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (lambda opt: L.ReduceLROnPlateau(opt, factor=1.0), ValueError, "< 1.0"),
    (lambda opt: L.ReduceLROnPlateau(opt, mode="low"), ValueError, "unknown"),
    (lambda opt: L.ReduceLROnPlateau(opt, threshold_mode="pct"), ValueError, "unknown"),
    (lambda opt: L.ReduceLROnPlateau(opt, min_lr=[0.1]), ValueError, "expected 2 min_lrs"),
    (lambda opt: L.SequentialLR(opt, [L.StepLR(opt, 2), L.StepLR(opt, 3)], milestones=[]), ValueError, "milestone"),
    (lambda opt: L.SequentialLR(opt, [], milestones=[]), ValueError, "at least one"),
    (lambda opt: L.SequentialLR(opt, [L.StepLR(opt, 2), L.ReduceLROnPlateau(opt)], milestones=[3]), ValueError,
     "ReduceLROnPlateau"),
    (lambda opt: L.ChainedScheduler([L.StepLR(opt, 2), L.StepLR(make_optimizer(), 2)]), ValueError,
     "same optimizer"),
])
def test_invalid_arguments_raise(build, error, match):
    with pytest.raises(error, match=match):
        build(make_optimizer())


def test_cycling_momentum_needs_an_optimizer_with_momentum():
    opt = Optimizer([Parameter(np.zeros(1))], dict(lr=0.1))
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        L.OneCycleLR(opt, 0.1, total_steps=10)


def test_one_cycle_stepping_past_total_steps_raises():
    opt = make_optimizer()
    sched = L.OneCycleLR(opt, 0.1, total_steps=3, cycle_momentum=False)
    run(sched, opt, 3)
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        sched.step()


# ---------------------------------------------------------------------------- against torch

@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch(name):
    torch = pytest.importorskip("torch")
    factory, epochs = CASES[name]
    opt, topt = make_optimizer(), make_torch_optimizer(torch)
    got = run(factory(L, opt), opt, epochs)
    expected = run(factory(torch.optim.lr_scheduler, topt), topt, epochs)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("build", [
    lambda L, opt: L.OneCycleLR(opt, max_lr=[0.1, 0.3], total_steps=30, base_momentum=0.8, max_momentum=0.97),
    lambda L, opt: L.OneCycleLR(opt, max_lr=0.2, total_steps=30, three_phase=True, anneal_strategy="linear"),
    lambda L, opt: L.CyclicLR(opt, 0.01, 0.1, step_size_up=4, mode="triangular2", base_momentum=0.7),
])
def test_momentum_cycling_matches_torch(build):
    torch = pytest.importorskip("torch")
    opt, topt = make_optimizer(momentum=0.9), make_torch_optimizer(torch, momentum=0.9)
    got_lr, got_m = run(build(L, opt), opt, 30, momentum=True)
    exp_lr, exp_m = run(build(torch.optim.lr_scheduler, topt), topt, 30, momentum=True)
    np.testing.assert_allclose(got_lr, exp_lr, rtol=1e-13)
    np.testing.assert_allclose(got_m, exp_m, rtol=1e-13)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(mode="max"),
    dict(factor=0.5, patience=2, cooldown=3),
    dict(factor=0.3, patience=1, threshold=0.05, threshold_mode="abs", min_lr=[0.01, 0.002]),
    dict(mode="max", patience=0, threshold=0.02, threshold_mode="rel", min_lr=0.005, eps=1e-3),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    # a loss-like curve: fast progress, then a noisy plateau, then a second small drop
    t = np.arange(120)
    metrics = np.exp(-t / 15) + 0.05 * rng.standard_normal(t.size) * (t > 30) + 0.3 * (t < 80)
    if kwargs.get("mode") == "max":
        metrics = -metrics
    opt, topt = make_optimizer(), make_torch_optimizer(torch)
    sched = L.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    got = run(sched, opt, t.size, metrics=metrics)
    expected = run(tsched, topt, t.size, metrics=metrics)
    assert len(np.unique(got[:, 0])) >= 3  # the case actually reduces, more than once
    np.testing.assert_array_equal(got, expected)
    assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter) == (
        tsched.best, tsched.num_bad_epochs, tsched.cooldown_counter)


def test_warm_restarts_fractional_epochs_match_torch():
    """`step(epoch + i / n)` within epochs, as the SGDR docs suggest for per-batch annealing."""
    torch = pytest.importorskip("torch")
    opt, topt = make_optimizer(), make_torch_optimizer(torch)
    sched = L.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.001)
    tsched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=2, T_mult=2, eta_min=0.001)
    for epoch in range(40):
        for i in range(7):
            opt.step()
            topt.step()
            sched.step(epoch + i / 7)
            tsched.step(epoch + i / 7)
            np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-12, err_msg=f"{epoch}+{i}/7")
            assert sched.last_epoch == tsched.last_epoch


def test_warm_restarts_cycle_start_where_torch_misplaces_it():
    """PyTorch finds the cycle of `step(121)` (T_0=1, T_mult=3) with a floating-point log that
    rounds 5 down to 4.999…, and returns η_min at the start of a cycle; tinyopt returns η₀."""
    opt = make_optimizer(lrs=(1.0,))
    sched = L.CosineAnnealingWarmRestarts(opt, T_0=1, T_mult=3)
    opt.step()
    sched.step(121)  # cycles of 1, 3, 9, 27, 81 end at 121
    assert (sched.T_cur, sched.T_i) == (0, 243)
    assert sched.get_last_lr() == [1.0]


@pytest.mark.parametrize("seed", range(6))
def test_random_arguments_match_torch(seed):
    """Random arguments for the schedulers whose branches depend on them (boundaries, restarts)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 12))
    u = rng.uniform(size=3)
    builds = [  # (factory, epochs)
        (lambda L, opt: L.CosineAnnealingLR(opt, T_max=T, eta_min=0.01 * u[0]), 60),
        (lambda L, opt: L.CosineAnnealingWarmRestarts(opt, T_0=T, T_mult=int(1 + 3 * u[1])), 60),
        (lambda L, opt: L.LinearLR(opt, start_factor=0.05 + 0.95 * u[0], end_factor=u[1], total_iters=T), 30),
        (lambda L, opt: L.PolynomialLR(opt, total_iters=T, power=0.2 + 3 * u[2]), 30),
        (lambda L, opt: L.CyclicLR(opt, 0.001, 0.1, step_size_up=T, step_size_down=int(1 + 10 * u[2]),
                                   mode="triangular2", cycle_momentum=False), 60),
        (lambda L, opt: L.OneCycleLR(opt, 0.1, total_steps=T + 5, pct_start=0.1 + 0.8 * float(u[0]),
                                     cycle_momentum=False), T + 5),
    ]
    for build, epochs in builds:
        opt, topt = make_optimizer(), make_torch_optimizer(torch)
        np.testing.assert_allclose(run(build(L, opt), opt, epochs),
                                   run(build(torch.optim.lr_scheduler, topt), topt, epochs), rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("name", L.__all__)
def test_constructor_signature_matches_torch(name):
    """Same argument names, order and defaults as torch.optim.lr_scheduler (the API a PyTorch
    user already knows)."""
    import inspect

    torch = pytest.importorskip("torch")

    def params(cls):
        return [(p.name, p.default) for p in inspect.signature(cls.__init__).parameters.values()]

    assert params(getattr(L, name)) == params(getattr(torch.optim.lr_scheduler, name))
