"""ReduceLROnPlateau: cut the learning rate when a monitored metric stops improving."""
from __future__ import annotations

import math
import warnings

from tinyopt.optim import validation
from tinyopt.optim.lr_scheduler.base import EPOCH_DEPRECATION_WARNING, LRScheduler, _check_optimizer, _group_values


class ReduceLROnPlateau(LRScheduler):
    r"""Multiply the learning rate by `factor` when a metric has not improved for more than
    `patience` epochs. Unlike the other schedulers it has no closed form: it reacts to the
    values passed to `step(metric)`.

    Algorithm (what `step(metric)` computes), for mode 'min' (mode 'max' mirrors it):

        input: metric a_t at each call, factor f < 1, patience P, threshold τ, cooldown C,
               min_lr η_min (per group), eps ε
        initialize: best ← +∞, bad ← 0, cool ← 0
        for t = 1, 2, ...:
            if a_t is better than best:  best ← a_t,  bad ← 0      ("better", below)
            else:                        bad ← bad + 1
            if cool > 0:                 cool ← cool − 1,  bad ← 0  (ignore bad epochs while cooling down)
            if bad > P:                                            (P+1 bad epochs in a row)
                for each group:  η_new ← max(f · η, η_min);  if η − η_new > ε:  η ← η_new
                cool ← C,  bad ← 0

    "Better" depends on `threshold_mode`:

        'rel' (default):  a < best · (1 − τ)    (mode 'max':  a > best · (1 + τ))
        'abs':            a < best − τ          (mode 'max':  a > best + τ)

    Args:
        mode: 'min' (default; e.g. a loss) or 'max' (e.g. an accuracy).
        factor: f, the reduction factor, < 1 (default 0.1).
        patience: P, bad epochs tolerated before reducing (default 10).
        threshold: τ, the least change that counts as an improvement (default 1e-4).
        threshold_mode: 'rel' (default) or 'abs'.
        cooldown: C, epochs to wait after a reduction before counting bad epochs again (default 0).
        min_lr: η_min, a float or one per group (default 0).
        eps: ε, reductions smaller than this are skipped (default 1e-8).
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0,
                 eps: float = 1e-8):
        if not (isinstance(factor, (int, float)) and factor < 1.0):
            raise ValueError(f"Factor should be < 1.0, got {factor}")
        validation.check_real("factor", factor, low=0.0, why="the new rate is factor · η")
        _check_optimizer(optimizer)
        validation.check_int("patience", patience, low=0)
        validation.check_int("cooldown", cooldown, low=0)
        validation.check_nonnegative("threshold", threshold)
        validation.check_nonnegative("eps", eps)
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            validation.check_per_group("min_lr", list(min_lr), validation.check_nonnegative)
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            validation.check_nonnegative("min_lr", min_lr)
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _group_values(optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch=None) -> None:
        """Record one value of the monitored metric (a float or a one-element tensor)."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch

        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1

        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # ignore any bad epochs in cooldown

        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

        self._last_lr = _group_values(self.optimizer, "lr")

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the optimizer ({len(groups)}) differs from when "
                    f"ReduceLROnPlateau was initialized ({len(self.min_lrs)}), usually due to a new param group "
                    "being added to the optimizer. Set the `min_lrs` attribute to one value per group.")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, eta_min in zip(groups, self.min_lrs):
            eta = float(group["lr"])
            eta_new = max(eta * self.factor, eta_min)
            if eta - eta_new > self.eps:
                group["lr"] = eta_new

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        tau = self.threshold
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - tau)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - tau
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (tau + 1.0)
        return a > best + tau

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode!r} is unknown! (expected 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode!r} is unknown! (expected 'rel' or 'abs')")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def _checked_state(self, state_dict) -> dict:
        state = super()._checked_state(state_dict)
        validation.check_choice("mode", state["mode"], ("min", "max"))
        validation.check_choice("threshold_mode", state["threshold_mode"], ("rel", "abs"))
        return state

    def _apply_state(self, state: dict) -> None:
        super()._apply_state(state)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)
