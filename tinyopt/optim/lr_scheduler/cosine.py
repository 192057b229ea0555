"""Cosine schedules: CosineAnnealingLR and CosineAnnealingWarmRestarts (SGDR).

Notation: t = `last_epoch`, η₀ = `base_lr`, η_min = `eta_min`, η_t = the learning rate at epoch t.
Paper: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017,
https://arxiv.org/abs/1608.03983.
"""
from __future__ import annotations

import math

from tinyopt.optim import validation
from tinyopt.optim.lr_scheduler.base import LRScheduler, _group_values


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the learning rate from η₀ to η_min along half a cosine over `T_max` epochs.

    Closed form:

        η_t = η_min + (η₀ − η_min) · (1 + cos(π t / T_max)) / 2

    Past T_max the cosine simply continues: the rate climbs back to η₀ at t = 2·T_max and the
    schedule is periodic with period 2·T_max (PyTorch's behaviour; for restarts that jump back
    to η₀, use `CosineAnnealingWarmRestarts`; to stay at η_min, stop stepping or chain with
    `SequentialLR`).

    Recursive form (what `step()` computes): the ratio of consecutive closed forms applied to
    the current rate, so that other code may change it in between,

        η_t = η_min + (η_{t−1} − η_min) · (1 + cos(π t / T_max)) / (1 + cos(π (t − 1) / T_max)),

    except where that ratio is 0/0 (t − 1 − T_max ≡ 0 mod 2·T_max, the rate sits at η_min):

        η_t = η_{t−1} + (η₀ − η_min) · (1 − cos(π / T_max)) / 2.

    Args:
        T_max: epochs from η₀ down to η_min.
        eta_min: η_min (default 0).
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        validation.check_real("T_max", T_max, low=0.0, low_open=True, why="the schedule divides by T_max")
        validation.check_nonnegative("eta_min", eta_min)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        t, T_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        if self._step_count == 1 and t > 0:
            # First step after resuming with last_epoch > 0: nothing to recurse from, use the closed form.
            return [eta_min + (eta_0 - eta_min) * (1 + math.cos(t * math.pi / T_max)) / 2 for eta_0 in self.base_lrs]
        if (t - 1 - T_max) % (2 * T_max) == 0:
            return [group["lr"] + (eta_0 - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
                    for eta_0, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T_max)) / (1 + math.cos(math.pi * (t - 1) / T_max)) * (group["lr"] - eta_min)
                + eta_min for group in groups]

    def _get_closed_form_lr(self) -> list:
        t, T_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        return [eta_min + (eta_0 - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2 for eta_0 in self.base_lrs]


def _restart_position(epoch: float, T_0: int, T_mult: int) -> tuple[float, int]:
    """(T_cur, T_i) for a (possibly fractional) epoch: the cycle lengths are T_0, T_0·T_mult,
    T_0·T_mult², ...; subtract whole cycles until `epoch` falls inside one."""
    if T_mult == 1:
        return epoch % T_0, T_0
    T_i = T_0
    T_cur = epoch
    while T_cur >= T_i:
        T_cur -= T_i
        T_i *= T_mult
    return T_cur, T_i


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR): anneal from η₀ to η_min over a cycle of T_i
    epochs, then jump back to η₀; each cycle is T_mult times longer than the one before.

    Closed form. Cycle i (i = 0, 1, ...) has length T_i = T_0 · T_mult^i and starts at epoch
    S_i = T_0 + T_0·T_mult + … + T_0·T_mult^(i−1). For epoch t in cycle i, T_cur = t − S_i and

        η_t = η_min + (η₀ − η_min) · (1 + cos(π T_cur / T_i)) / 2.

    Recursive form (what `step()` computes):

        T_cur ← T_cur + 1;   if T_cur ≥ T_i:  T_cur ← T_cur − T_i,  T_i ← T_mult · T_i,

    then η_t from T_cur and T_i as above (this scheduler's rate depends only on T_cur and T_i,
    not on the previous rate).

    `step(epoch)` accepts a fractional epoch (e.g. `epoch + batch / batches_per_epoch`, to
    anneal within an epoch) and finds the cycle by subtracting whole cycles. PyTorch finds it
    with a floating-point logarithm, which misplaces some exact cycle starts when T_mult > 1
    (T_0=1, T_mult=3, epoch=121 gives η_min there instead of η₀); everywhere else the two agree.

    Args:
        T_0: length of the first cycle (a positive int).
        T_mult: growth factor of the cycle length (an int ≥ 1, default 1).
        eta_min: η_min (default 0).
    """

    def __init__(self, optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch: int = -1):
        if not isinstance(T_0, int) or T_0 <= 0:
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        validation.check_nonnegative("eta_min", eta_min)
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        self._warn_if_get_lr_called_outside_step()
        T_cur, T_i, eta_min = self.T_cur, self.T_i, self.eta_min
        return [eta_min + (eta_0 - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2 for eta_0 in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or (with `epoch`) jump to a possibly fractional epoch."""
        self._check_call_order()  # (PyTorch does not warn for this scheduler; tinyopt does)
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            self.T_cur, self.T_i = _restart_position(epoch, self.T_0, self.T_mult)
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        self._set_group_lrs(values)
