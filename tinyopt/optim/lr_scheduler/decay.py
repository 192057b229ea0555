"""Monotone schedules: LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR,
ExponentialLR, PolynomialLR.

Notation in every docstring: t = `last_epoch` (0 after construction, +1 per `step()`),
η₀ = `base_lr` (the group's `initial_lr`), η_t = the learning rate set by step t.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import Counter

from tinyopt.optim import validation
from tinyopt.optim.lr_scheduler.base import LRScheduler, _check_optimizer, _group_values, _lambdas_state

GAMMA_WHY = "a negative γ would flip the sign of the learning rate"


def _one_lambda_per_group(optimizer, lr_lambda) -> list:
    _check_optimizer(optimizer)
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != len(optimizer.param_groups):
            raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
        lambdas = list(lr_lambda)
    else:
        lambdas = [lr_lambda] * len(optimizer.param_groups)
    for fn in lambdas:
        if not callable(fn):
            raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
    return lambdas


def _check_gamma(gamma) -> None:
    validation.check_real("gamma", gamma, low=0.0, why=GAMMA_WHY)


class _LambdaStateMixin:
    """State dicts for schedulers holding user functions: functions are code, not state, so
    only callable objects' attributes are saved (PyTorch's rule)."""

    def _state(self) -> dict:
        state = self._state_without("optimizer", "lr_lambdas")
        state["lr_lambdas"] = _lambdas_state(self.lr_lambdas)
        return state

    def _checked_state(self, state_dict) -> dict:
        state = LRScheduler._checked_state(self, state_dict)
        saved = state["lr_lambdas"]
        if not isinstance(saved, (list, tuple)) or len(saved) != len(self.lr_lambdas):
            raise ValueError(f"{type(self).__name__}: the state holds {saved!r} for {len(self.lr_lambdas)} lr_lambdas")
        for s in saved:
            if s is not None and not isinstance(s, dict):
                raise ValueError(f"{type(self).__name__}: a saved lr_lambda state must be None or a dict, got {s!r}")
        return state

    def _apply_state(self, state: dict) -> None:
        state = dict(state)
        saved_lambdas = state.pop("lr_lambdas")
        LRScheduler._apply_state(self, state)
        for fn, saved in zip(self.lr_lambdas, saved_lambdas):
            if saved is not None:
                fn.__dict__.update(saved)


class LambdaLR(_LambdaStateMixin, LRScheduler):
    r"""The learning rate is η₀ times a function of the epoch.

    Closed form (this is also what `step()` computes):

        η_t = η₀ · λ(t)

    Args:
        lr_lambda: λ: int → float, or one λ per param group.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        self.optimizer = optimizer
        self.lr_lambdas = _one_lambda_per_group(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t = self.last_epoch
        return [eta_0 * lr_lambda(t) for lr_lambda, eta_0 in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaStateMixin, LRScheduler):
    r"""Multiply the learning rate by a function of the epoch at every step.

    Recursive form (what `step()` computes):

        η_0 = η₀,    η_t = λ(t) · η_{t−1}   (t ≥ 1)

    Closed form:

        η_t = η₀ · ∏_{s=1}^{t} λ(s)

    Args:
        lr_lambda: λ: int → float, or one λ per param group.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        self.optimizer = optimizer
        self.lr_lambdas = _one_lambda_per_group(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        t = self.last_epoch
        return [group["lr"] * lr_lambda(t) for lr_lambda, group in zip(self.lr_lambdas, self.optimizer.param_groups)]


class StepLR(LRScheduler):
    r"""Decay the learning rate by γ every `step_size` epochs.

    Closed form:

        η_t = η₀ · γ^⌊t / step_size⌋

    Recursive form (what `step()` computes):

        η_t = γ · η_{t−1}   if t > 0 and t mod step_size = 0,
        η_t = η_{t−1}       otherwise.

    Args:
        step_size: epochs between two decays.
        gamma: γ, the decay factor (default 0.1).
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        validation.check_int("step_size", step_size, low=1, why="the rate decays every step_size epochs")
        _check_gamma(gamma)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t = self.last_epoch
        if t == 0 or t % self.step_size != 0:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        t = self.last_epoch
        return [eta_0 * self.gamma ** (t // self.step_size) for eta_0 in self.base_lrs]


class MultiStepLR(LRScheduler):
    r"""Decay the learning rate by γ at each milestone epoch.

    Closed form, with M = the sorted milestones (repeats allowed: a milestone listed twice
    decays twice):

        η_t = η₀ · γ^|{m ∈ M : m ≤ t}|

    Recursive form (what `step()` computes), with c(t) = how many times t appears in M:

        η_t = γ^c(t) · η_{t−1}

    Args:
        milestones: epochs at which to decay.
        gamma: γ, the decay factor (default 0.1).
    """

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        for m in milestones:
            validation.check_int("milestone", m, low=0)
        _check_gamma(gamma)
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t = self.last_epoch
        if t not in self.milestones:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma ** self.milestones[t] for group in self.optimizer.param_groups]

    def _checked_state(self, state_dict) -> dict:
        state = super()._checked_state(state_dict)
        # a checkpoint file stores the Counter as a plain dict (possibly with string keys)
        try:
            state["milestones"] = Counter({int(m): int(c) for m, c in dict(state["milestones"]).items()})
        except (TypeError, ValueError):
            raise ValueError(f"MultiStepLR: saved milestones {state['milestones']!r} are not epoch counts") from None
        return state

    def _get_closed_form_lr(self) -> list:
        milestones = sorted(self.milestones.elements())
        t = self.last_epoch
        return [eta_0 * self.gamma ** bisect_right(milestones, t) for eta_0 in self.base_lrs]


class ConstantLR(LRScheduler):
    r"""Multiply the learning rate by a constant factor until epoch `total_iters`, then restore it
    (a simple warm-up).

    Closed form, with f = factor and T = total_iters:

        η_t = η₀ · f   for t < T,
        η_t = η₀       for t ≥ T.

    Recursive form (what `step()` computes):

        η_0 = f · η₀,    η_T = η_{T−1} / f,    η_t = η_{t−1} otherwise.

    Args:
        factor: f ∈ [0, 1] (default 1/3).
        total_iters: T (default 5).
    """

    def __init__(self, optimizer, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1):
        if not (isinstance(factor, (int, float)) and 0 <= factor <= 1.0):
            raise ValueError(f"Constant multiplicative factor expected to be between 0 and 1, got {factor}")
        validation.check_int("total_iters", total_iters, low=0)
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t = self.last_epoch
        if t == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if t != self.total_iters:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        t, f, T = self.last_epoch, self.factor, self.total_iters
        return [eta_0 * (f + (t >= T) * (1 - f)) for eta_0 in self.base_lrs]


class LinearLR(LRScheduler):
    r"""Change the multiplicative factor linearly from `start_factor` to `end_factor` over
    `total_iters` epochs (linear warm-up when start < end, linear decay when start > end).

    Closed form, with s = start_factor, e = end_factor, T = total_iters:

        η_t = η₀ · (s + (e − s) · min(t, T) / T)

    Recursive form (what `step()` computes): the ratio of consecutive closed forms,

        η_0 = s · η₀,
        η_t = η_{t−1} · (1 + (e − s) / (T·s + (t − 1)(e − s)))   for 1 ≤ t ≤ T,
        η_t = η_{t−1}                                               for t > T.

    Args:
        start_factor: s ∈ (0, 1] (default 1/3).
        end_factor: e ∈ [0, 1] (default 1).
        total_iters: T (default 5).
    """

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
                 last_epoch: int = -1):
        if not (isinstance(start_factor, (int, float)) and 0 < start_factor <= 1.0):
            raise ValueError(
                f"Starting multiplicative factor expected to be greater than 0 and less or equal to 1, got {start_factor}")
        if not (isinstance(end_factor, (int, float)) and 0 <= end_factor <= 1.0):
            raise ValueError(f"Ending multiplicative factor expected to be between 0 and 1, got {end_factor}")
        validation.check_int("total_iters", total_iters, low=1, why="the factor changes over total_iters epochs")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t, s, e, T = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        if t == 0:
            return [group["lr"] * s for group in self.optimizer.param_groups]
        if self._is_initial or t > T:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * (1.0 + (e - s) / (T * s + (t - 1) * (e - s))) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        t, s, e, T = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        return [eta_0 * (s + (e - s) * min(T, t) / T) for eta_0 in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""Decay the learning rate by γ every epoch.

    Closed form:

        η_t = η₀ · γ^t

    Recursive form (what `step()` computes):

        η_t = γ · η_{t−1}

    Args:
        gamma: γ, the decay factor.
    """

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        _check_gamma(gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        t = self.last_epoch
        return [eta_0 * self.gamma ** t for eta_0 in self.base_lrs]


class PolynomialLR(LRScheduler):
    r"""Decay the learning rate to 0 over `total_iters` epochs along a polynomial of degree p.

    Closed form, with T = total_iters and p = power (p = 1 is linear decay):

        η_t = η₀ · (1 − min(t, T) / T)^p

    Recursive form (what `step()` computes): the ratio of consecutive closed forms,

        η_t = η_{t−1} · ((1 − t/T) / (1 − (t − 1)/T))^p   for 1 ≤ t ≤ T,
        η_t = η_{t−1}                                     for t > T.

    Args:
        total_iters: T (default 5).
        power: p (default 1.0).
    """

    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1):
        validation.check_int("total_iters", total_iters, low=1, why="the rate decays to 0 over total_iters epochs")
        validation.check_real("power", power, low=0.0, why="a negative power makes the rate infinite at total_iters")
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t, T, p = self.last_epoch, self.total_iters, self.power
        if self._is_initial or t > T:
            return _group_values(self.optimizer, "lr")
        decay_factor = ((1.0 - t / T) / (1.0 - (t - 1) / T)) ** p
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        t, T, p = self.last_epoch, self.total_iters, self.power
        return [eta_0 * (1.0 - min(T, t) / T) ** p for eta_0 in self.base_lrs]
