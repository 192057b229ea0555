"""`LRScheduler`: the base class of the learning-rate schedules, with torch.optim.lr_scheduler's semantics.

Vocabulary (the same as PyTorch's):

- an *epoch* t is one call of `scheduler.step()`; `last_epoch` is the t of the last call. The
  constructor calls `step()` once, so a fresh scheduler has `last_epoch == 0` and sets each
  group's learning rate to η_0;
- `base_lrs[i]` = η₀ of group i = `param_groups[i]["initial_lr"]`, stored in the group by the
  first scheduler built on the optimizer (later schedulers on the same optimizer reuse it);
- `get_last_lr()` returns the learning rates the last `step()` wrote into the groups.

Each scheduler's docstring gives the schedule in two forms:

- the **closed form** η_t = f(t, η₀), and
- the **recursive form** η_t = g(η_{t−1}, t), which is what `step()` computes, reading the
  current `group["lr"]`. Like PyTorch, tinyopt steps recursively so that schedulers compose:
  ChainedScheduler multiplies several schedules, and a user who changes `group["lr"]` by hand
  sees the schedule continue from the new value.

Where PyTorch has a closed form (`_get_closed_form_lr`), so do we; `step(epoch)` (deprecated in
PyTorch, and here) jumps to epoch `epoch` with it. The tests check that both forms agree and
that the sequence equals PyTorch's for the same arguments.

Call order: `optimizer.step()` first, then `scheduler.step()`. As PyTorch does, the constructor
wraps `optimizer.step` with a flag so that a `scheduler.step()` before any `optimizer.step()`
warns (the first learning rate of the schedule would otherwise be skipped).
"""
from __future__ import annotations

import copy
import functools
import types
import warnings
import weakref

from tinyopt.optim import validation
from tinyopt.optim.optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where possible. "
    "Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch is different from "
    "None, the closed form is used instead of the new chainable form, where available."
)

ORDER_WARNING = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
    "Call them in the opposite order: `optimizer.step()` before `lr_scheduler.step()`. "
    "Otherwise the first value of the learning rate schedule is skipped."
)

OVERRIDDEN_WARNING = (
    "Seems like `optimizer.step()` has been overridden after learning rate scheduler initialization. "
    "Please, make sure to call `optimizer.step()` before `lr_scheduler.step()`."
)


def _check_optimizer(optimizer) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer (expected a tinyopt.optim.Optimizer)")


def _format_param(name: str, optimizer: Optimizer, param, check=None) -> list:
    """One value per param group: a scalar is repeated, a list/tuple must have one per group;
    `check(name, value)` (e.g. `validation.check_nonnegative`) is applied to each."""
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(param)} values, param_groups has {len(optimizer.param_groups)}."
            )
        values = list(param)
    else:
        values = [param] * len(optimizer.param_groups)
    if check is not None:
        validation.check_per_group(name, values, check)
    return values


def _group_values(optimizer: Optimizer, key: str) -> list:
    return [group[key] for group in optimizer.param_groups]


def _patch_optimizer_step(optimizer: Optimizer) -> None:
    """Replace `optimizer.step` (on this instance only) by a wrapper that sets
    `optimizer._opt_called = True` before stepping; idempotent. A weak reference keeps the
    optimizer collectable (the wrapper lives in the optimizer's own __dict__)."""
    if hasattr(optimizer.step, "_wrapped_by_lr_sched"):
        return
    opt_ref = weakref.ref(optimizer)
    step = optimizer.step
    func = getattr(step, "__func__", None)  # the class's step function, unbound

    @functools.wraps(func or step)
    def wrapper(*args, **kwargs):
        opt = opt_ref()
        opt._opt_called = True
        return func(opt, *args, **kwargs) if func is not None else step(*args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    optimizer.step = wrapper


class LRScheduler:
    """Base class: subclasses implement `get_lr()` (the recursive form, reading `group["lr"]`
    and `self.last_epoch`) and, where there is one, `_get_closed_form_lr()`.

    Args:
        optimizer: a `tinyopt.optim.Optimizer`.
        last_epoch: the index of the last epoch when resuming (−1 to start afresh). Resuming
            needs `initial_lr` in every param group (load the optimizer's state first).
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False  # True only during the constructor's first step()

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming a scheduler "
                        f"with last_epoch={last_epoch} >= 0: load the optimizer's state_dict (which holds it) "
                        "first, or start with last_epoch=-1"
                    )
        self.base_lrs: list = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        _patch_optimizer_step(optimizer)
        self._initial_step()

    def _initial_step(self) -> None:
        """The constructor's step: sets η_0 (with `_is_initial` so that recursive forms that
        would otherwise multiply the current lr leave it alone)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    # ------------------------------------------------------------------ public interface
    def get_last_lr(self) -> list:
        """The learning rates (one per param group) set by the last `step()`."""
        return self._last_lr

    def get_lr(self) -> list:
        """η_t for t = `last_epoch`, one per group (the recursive form). Called by `step()`;
        to read the current learning rate use `get_last_lr()`."""
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (t ← t + 1) and write η_t into every param group.

        `epoch` (deprecated, as in PyTorch) jumps to t = epoch, using the closed form when the
        scheduler has one."""
        self._check_call_order()
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _check_call_order(self) -> None:
        """Count steps; at the first step after the constructor's, warn if the optimizer has
        never stepped (or if its wrapped `step` was replaced since)."""
        if self._step_count == 1:
            if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
                warnings.warn(OVERRIDDEN_WARNING, UserWarning, stacklevel=3)
            elif not getattr(self.optimizer, "_opt_called", False):
                warnings.warn(ORDER_WARNING, UserWarning, stacklevel=3)
        self._step_count += 1

    def _update_lr(self, epoch: int | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                if hasattr(self, "_get_closed_form_lr"):
                    values = self._get_closed_form_lr()
                else:
                    values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        self._set_group_lrs(values)

    def _set_group_lrs(self, values) -> None:
        values = list(values)
        groups = self.optimizer.param_groups
        if len(values) != len(groups):
            raise ValueError(
                f"{type(self).__name__} computed {len(values)} learning rates but the optimizer has {len(groups)} "
                "param groups (was a param group added after the scheduler was created?)"
            )
        for group, lr in zip(groups, values):
            group["lr"] = lr
        self._last_lr = _group_values(self.optimizer, "lr")

    def _warn_if_get_lr_called_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                UserWarning, stacklevel=3,
            )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Every attribute except the optimizer (a deep copy, so later steps do not change it), plus
        'type': the scheduler's class name. Plain functions (lr_lambda, scale_fn) are not saved;
        callable objects save their __dict__."""
        return {**self._state(), "type": type(self).__name__}

    def _state(self) -> dict:
        """The attributes `state_dict()` saves; subclasses holding functions or children override it."""
        return self._state_without("optimizer")

    def _state_without(self, *excluded: str) -> dict:
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items() if key not in excluded}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a `state_dict()` of the same scheduler type. Everything is checked first (the type,
        that no attribute is missing, the children of a composite scheduler): a load that raises has
        changed nothing."""
        self._apply_state(self._checked_state(state_dict))

    def _checked_state(self, state_dict) -> dict:
        """The attributes a load would set (copies), after checking them; changes nothing."""
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise ValueError(f"{name}.load_state_dict expects a dict (what state_dict() returns), "
                             f"got {type(state_dict).__name__}")
        saved_type = state_dict.get("type")
        if saved_type is not None and saved_type != name:
            raise ValueError(f"cannot load a {saved_type} scheduler's state into {name}: "
                             "a scheduler loads only the state of its own type")
        state = {k: copy.deepcopy(v) for k, v in state_dict.items() if k != "type"}
        missing = sorted(set(self.state_dict()) - {"type"} - set(state))
        if missing:
            what = f"a {saved_type}" if saved_type else "another scheduler type's"
            raise ValueError(f"cannot load {what} state into {name}: it lacks {missing}")
        return state

    def _apply_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, last_lr={getattr(self, '_last_lr', None)})"


def _lambdas_state(lambdas) -> list:
    """What a state dict keeps of lr_lambda functions: None for plain functions and lambdas
    (code is not state), the attribute dict for callable objects (torch's rule)."""
    return [None if isinstance(fn, types.FunctionType) else copy.deepcopy(fn.__dict__) for fn in lambdas]
