"""Schedulers built from other schedulers: SequentialLR (one after another) and ChainedScheduler
(all at once, their factors multiplied)."""
from __future__ import annotations

from bisect import bisect_right

from tinyopt.optim import validation
from tinyopt.optim.lr_scheduler.base import LRScheduler, _group_values
from tinyopt.optim.lr_scheduler.plateau import ReduceLROnPlateau


def _check_children(owner: str, optimizer, schedulers) -> None:
    for i, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{owner} at index {i} should have `optimizer` as its attribute.")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(
                f"{owner} does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be "
                f"specified when calling `step`, but got one at index {i} in the given schedulers sequence.")
        if scheduler.optimizer is not optimizer:
            raise ValueError(
                f"{owner} expects all schedulers to belong to the same optimizer, but got scheduler "
                f"{type(scheduler).__name__} at index {i} with a different optimizer.")


class _CompositeScheduler(LRScheduler):
    """A scheduler made of child schedulers (`self._schedulers`): its state holds theirs."""

    def _state(self) -> dict:
        state = self._state_without("optimizer", "_schedulers")
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def _checked_state(self, state_dict) -> dict:
        state = super()._checked_state(state_dict)
        children = state["_schedulers"]
        if not isinstance(children, (list, tuple)) or len(children) != len(self._schedulers):
            count = len(children) if isinstance(children, (list, tuple)) else type(children).__name__
            raise ValueError(f"{type(self).__name__}: the state holds {count} child schedulers, "
                             f"this one has {len(self._schedulers)}")
        state["_schedulers"] = [s._checked_state(saved) for s, saved in zip(self._schedulers, children)]
        return state

    def _apply_state(self, state: dict) -> None:
        state = dict(state)
        children = state.pop("_schedulers")
        super()._apply_state(state)
        for scheduler, saved in zip(self._schedulers, children):
            scheduler._apply_state(saved)


class SequentialLR(_CompositeScheduler):
    r"""Run schedulers one after another, switching at the milestone epochs — typically a warm-up
    then a decay:

        warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = CosineAnnealingLR(opt, T_max=95)
        scheduler = SequentialLR(opt, [warmup, decay], milestones=[5])

    Closed form, with milestones m_1 < … < m_{K−1} and m_0 = 0: at epoch t the active scheduler
    is k = |{i ≥ 1 : m_i ≤ t}|, and it runs on its own clock t − m_k, started afresh from the
    base rates η₀ at its milestone:

        η_t = η^{(k)}_{t − m_k}

    Recursive form (what `step()` computes): t ← t + 1; if t is a milestone m_k, scheduler k
    restarts at its epoch 0 (its closed form there, i.e. `step(0)`); otherwise the active
    scheduler takes one ordinary `step()`.

    The child schedulers must have been built on the same optimizer; their constructors have
    already stepped once, which SequentialLR undoes (PyTorch's exact semantics, tested).
    """

    def __init__(self, optimizer, schedulers: list, milestones: list, last_epoch: int = -1):
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler, but got no scheduler.")
        _check_children(type(self).__name__, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the number of "
                f"milestone points, but got number of schedulers {len(schedulers)} and the number of milestones "
                f"to be equal to {len(milestones)}")
        for m in milestones:
            validation.check_int("milestone", m, low=0)
        if list(milestones) != sorted(milestones):
            raise ValueError(f"SequentialLR milestones must be in increasing order, got {list(milestones)}")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer

        # Undo the steps the children's constructors took, then start the first one afresh.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self.recursive_undo()
        k = bisect_right(self._milestones, 0)
        self._schedulers[k]._initial_step()
        self._last_lr = schedulers[k].get_last_lr()

    def recursive_undo(self, sched=None) -> None:
        """Decrement `last_epoch` of every (nested) child scheduler by one."""
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self.recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def step(self) -> None:
        self.last_epoch += 1
        k = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[k]
        if k > 0 and self._milestones[k - 1] == self.last_epoch:
            scheduler._update_lr(0)  # restart scheduler k at its epoch 0 (closed form)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_CompositeScheduler):
    r"""Step several schedulers together: each multiplies the current rate by its own recursive
    factor, so the factors compose. For example, with ConstantLR(factor=0.1, total_iters=2)
    chained with ExponentialLR(gamma=0.9):

        η_t = η₀ · (0.1 if t < 2 else 1) · 0.9^t

    In general (for schedulers whose recursive form multiplies the current rate) η_t = η₀ ·
    ∏_j f_j(t), where η₀ · f_j(t) is scheduler j's closed form alone.
    """

    def __init__(self, schedulers, optimizer=None):
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler to be chained, but got no scheduler.")
        optimizer = optimizer or schedulers[0].optimizer
        _check_children(type(self).__name__, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = _group_values(self._schedulers[-1].optimizer, "lr")

    def step(self) -> None:
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _group_values(self._schedulers[-1].optimizer, "lr")
