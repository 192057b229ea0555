"""Cyclical schedules, usually stepped once per batch: CyclicLR and OneCycleLR.

Both are closed forms in t = `last_epoch` (the number of `step()` calls, i.e. batches), and
both can also cycle the momentum (SGD's `momentum`, or β₁ of Adam's `betas`) in the opposite
direction to the learning rate.
"""
from __future__ import annotations

import math
import types

from tinyopt.optim import validation
from tinyopt.optim.lr_scheduler.base import LRScheduler, _check_optimizer, _format_param


def _momentum_values(optimizer, base_momentum, max_momentum) -> tuple:
    """Shared by CyclicLR and OneCycleLR: check that the optimizer has a momentum to cycle and that
    the bounds are momenta; returns (base_momentums, max_momentums), one per group. Changes nothing."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(
            f"optimizer {type(optimizer).__name__} has neither `momentum` nor `betas`: it cannot cycle momentum; "
            "pass cycle_momentum=False")
    uses_beta1 = "betas" in optimizer.defaults

    def check(name, value):  # a momentum μ ∈ [0, 1], or a β₁ ∈ [0, 1)
        validation.check_real(name, value, low=0.0, high=1.0, high_open=uses_beta1)

    return (_format_param("base_momentum", optimizer, base_momentum, check),
            _format_param("max_momentum", optimizer, max_momentum, check))


def _setup_momentum_cycling(scheduler, optimizer, momenta: tuple, last_epoch: int) -> None:
    """Store each group's `base_momentum` / `max_momentum` (from `_momentum_values`) and start the
    groups at the maximum."""
    scheduler.use_beta1 = "betas" in optimizer.defaults
    scheduler.base_momentums, scheduler.max_momentums = momenta
    if last_epoch == -1:
        for m_max, m_base, group in zip(scheduler.max_momentums, scheduler.base_momentums, optimizer.param_groups):
            _set_momentum(group, m_max, scheduler.use_beta1)
            group["max_momentum"] = m_max
            group["base_momentum"] = m_base


def _set_momentum(group: dict, momentum: float, use_beta1: bool) -> None:
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


class CyclicLR(LRScheduler):
    r"""Cyclical learning rate (Smith, "Cyclical Learning Rates for Training Neural Networks",
    https://arxiv.org/abs/1506.01186): the rate goes up from `base_lr` to `max_lr` in
    `step_size_up` steps and back down in `step_size_down` steps, forever.

    Closed form (what `step()` computes), with L = step_size_up + step_size_down and
    r = step_size_up / L:

        c = ⌊1 + t / L⌋                                  (the cycle, from 1)
        x = 1 + t / L − c                                (position in the cycle, in [0, 1))
        h = x / r            if x ≤ r,                   (height: 0 → 1 going up,
            (x − 1)/(r − 1)  otherwise                     1 → 0 going down)
        η_t = η_base + (η_max − η_base) · h · s(c or t)

    The amplitude scale s depends on `mode`: 'triangular' s = 1; 'triangular2' s(c) = 1/2^(c−1)
    (halved every cycle); 'exp_range' s(t) = γ^t (per step, not per cycle); or a custom
    `scale_fn` with `scale_mode` 'cycle' (argument c) or 'iterations' (argument t).

    With `cycle_momentum`, the momentum m moves the other way:
    m_t = m_max − (m_max − m_base) · h · s(·).

    Args:
        base_lr, max_lr: η_base, η_max (a float or one per group). The constructor sets the
            groups' lr to η_base.
        step_size_up, step_size_down: steps in the rising and falling halves (down defaults to up).
        mode, gamma, scale_fn, scale_mode: the amplitude scale, as above.
        cycle_momentum, base_momentum, max_momentum: momentum cycling (default on, 0.8 … 0.9).
    """

    def __init__(self, optimizer, base_lr, max_lr, step_size_up: int = 2000, step_size_down: int | None = None,
                 mode: str = "triangular", gamma: float = 1.0, scale_fn=None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum=0.8, max_momentum=0.9, last_epoch: int = -1):
        # Check everything before the first write into the optimizer's groups.
        _check_optimizer(optimizer)
        base_lrs = _format_param("base_lr", optimizer, base_lr, validation.check_nonnegative)
        max_lrs = _format_param("max_lr", optimizer, max_lr, validation.check_nonnegative)
        for i, (low, high) in enumerate(zip(base_lrs, max_lrs)):
            if low > high:
                raise ValueError(f"CyclicLR needs base_lr <= max_lr, got base_lr={low} > max_lr={high}"
                                 + (f" in param group {i}" if len(base_lrs) > 1 else ""))
        validation.check_real("step_size_up", step_size_up, low=0.0, low_open=True)
        if step_size_down is not None:
            validation.check_real("step_size_down", step_size_down, low=0.0, low_open=True)
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError(f"mode {mode!r} is invalid and scale_fn is None")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        validation.check_real("gamma", gamma, low=0.0, why="exp_range scales the amplitude by γᵗ")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn should be a function, but got {type(scale_fn).__name__}")
        momenta = _momentum_values(optimizer, base_momentum, max_momentum) if cycle_momentum else None

        self.optimizer = optimizer
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        self.max_lrs = max_lrs

        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_mode()

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            _setup_momentum_cycling(self, optimizer, momenta, last_epoch)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_mode(self) -> None:
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x: float) -> float:
        """s(x): the amplitude scale of `mode` (or the custom `scale_fn`)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x  # exp_range

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t = self.last_epoch
        L, r = self.total_size, self.step_ratio
        c = math.floor(1 + t / L)
        x = 1.0 + t / L - c
        h = x / r if x <= r else (x - 1) / (r - 1)
        s = self.scale_fn(c) if self.scale_mode == "cycle" else self.scale_fn(t)

        lrs = [eta_base + (eta_max - eta_base) * h * s for eta_base, eta_max in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for m_base, m_max, group in zip(self.base_momentums, self.max_momentums, self.optimizer.param_groups):
                _set_momentum(group, m_max - (m_max - m_base) * h * s, self.use_beta1)
        return lrs

    def _state(self) -> dict:
        state = self._state_without("optimizer", "_scale_fn_custom")
        fn = self._scale_fn_custom
        state["_scale_fn_custom"] = None if fn is None or isinstance(fn, types.FunctionType) else dict(fn.__dict__)
        return state

    def _checked_state(self, state_dict) -> dict:
        state = super()._checked_state(state_dict)
        saved_fn = state["_scale_fn_custom"]
        if saved_fn is not None and not isinstance(saved_fn, dict):
            raise ValueError(f"CyclicLR: the saved scale_fn state must be a dict of attributes, got {saved_fn!r}")
        return state

    def _apply_state(self, state: dict) -> None:
        state = dict(state)
        saved_fn = state.pop("_scale_fn_custom", None)
        super()._apply_state(state)
        if saved_fn is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(saved_fn)
        self._init_scale_mode()


def _anneal_cos(start: float, end: float, pct: float) -> float:
    """start → end along half a cosine as pct goes 0 → 1."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, "Super-Convergence", https://arxiv.org/abs/1708.07120):
    warm up from η_init to η_max, then anneal far below η_init, in `total_steps` steps
    (step once per batch).

    Closed form (what `step()` computes). With T = total_steps, p = pct_start,
    η_init = max_lr / div_factor and η_final = η_init / final_div_factor, the phases are
    (from step a to step b, annealing from value u to value v):

        two-phase (default):  [0, pT−1]: η_init → η_max,    [pT−1, T−1]: η_max → η_final
        three_phase=True:     [0, pT−1]: η_init → η_max,    [pT−1, 2pT−2]: η_max → η_init,
                              [2pT−2, T−1]: η_init → η_final

    and within a phase, with x = (t − a)/(b − a):

        'cos':     η_t = v + (u − v) · (1 + cos(π x)) / 2
        'linear':  η_t = u + (v − u) · x

    With `cycle_momentum`, the momentum runs the opposite way (max_momentum → base_momentum
    while the rate rises, back to max_momentum while it falls). Stepping past T raises.

    Args:
        max_lr: η_max (a float or one per group).
        total_steps: T, or give `epochs` and `steps_per_epoch` (T = their product).
        pct_start: p, the fraction of steps spent rising (a float, default 0.3).
        anneal_strategy: 'cos' (default) or 'linear'.
        cycle_momentum, base_momentum, max_momentum: momentum cycling (default on, 0.85 … 0.95).
        div_factor: η_max / η_init (default 25).
        final_div_factor: η_init / η_final (default 1e4).
        three_phase: the three-phase variant (default False).
    """

    def __init__(self, optimizer, max_lr, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")

        T, p = self.total_steps, pct_start
        if three_phase:
            self._schedule_phases = [
                dict(end_step=float(p * T) - 1, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=float(2 * p * T) - 2, start_lr="max_lr", end_lr="initial_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
                dict(end_step=T - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_momentum="max_momentum", end_momentum="max_momentum"),
            ]
        else:
            self._schedule_phases = [
                dict(end_step=float(p * T) - 1, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=T - 1, start_lr="max_lr", end_lr="min_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
            ]

        if not isinstance(pct_start, float) or pct_start < 0 or pct_start > 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        max_lrs = _format_param("max_lr", optimizer, max_lr, validation.check_nonnegative)
        validation.check_real("div_factor", div_factor, low=0.0, low_open=True, why="η_init = max_lr / div_factor")
        validation.check_real("final_div_factor", final_div_factor, low=0.0, low_open=True,
                              why="η_final = η_init / final_div_factor")
        momenta = _momentum_values(optimizer, base_momentum, max_momentum) if cycle_momentum else None
        self._anneal_func_type = anneal_strategy

        if last_epoch == -1:
            for eta_max, group in zip(max_lrs, optimizer.param_groups):
                group["initial_lr"] = eta_max / div_factor
                group["max_lr"] = eta_max
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            _setup_momentum_cycling(self, optimizer, momenta, last_epoch)
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        return _anneal_cos(start, end, pct) if self._anneal_func_type == "cos" else _anneal_linear(start, end, pct)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            a = 0.0
            for i, phase in enumerate(self._schedule_phases):
                b = phase["end_step"]
                if t <= b or i == len(self._schedule_phases) - 1:
                    x = (t - a) / (b - a)
                    eta_t = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], x)
                    if self.cycle_momentum:
                        m_t = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], x)
                    break
                a = b
            lrs.append(eta_t)
            if self.cycle_momentum:
                _set_momentum(group, m_t, self.use_beta1)
        return lrs
