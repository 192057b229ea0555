"""One training epoch, shared by `tinyopt train` (tinyopt.train), Keras `fit` (tinyopt.keras.models)
and quantization-aware fine-tuning (tinyopt.quant.reporting.train_qat).

For each mini-batch (X, Y) the epoch runs the PyTorch step:

    Ŷ = model(X);  L = loss_fn(Ŷ, Y)                (a scalar Tensor)
    if L is NaN or ±∞:  hooks.on_non_finite(step)   (nothing has been applied yet; default: raise)
    optimizer.zero_grad();  L.backward();  optimizer.step()
    scheduler.step()                                (a per-step schedule, when one is given)
    hooks.on_step_end(step)

The non-finite check comes *before* the update, so a NaN or infinite loss never reaches the
weights or the optimizer's state: `TrainingDiverged` names the epoch, the step, the global step
and the learning rate of the step that failed, and whether the weights themselves are still
finite (an update can overflow a weight while its loss was finite; the next loss then shows it).

The callers differ only in what they do around each step, and that goes into a `Hooks` object:

| caller            | on_step_begin            | on_step_end                                   | on_non_finite              |
|-------------------|--------------------------|-----------------------------------------------|----------------------------|
| tinyopt.train     | -                        | lr per step, loss and accuracy sums, tqdm bar | raise, hint `--lr`         |
| keras `fit`       | `on_train_batch_begin`   | logs, metrics, `on_train_batch_end`, tqdm bar | callbacks see it; raise unless one stops training (TerminateOnNaN) |
| `train_qat`       | freeze the observers     | -                                             | raise                      |

`minibatches(x, y, batch_size, order)` slices aligned arrays in a given order (Keras and QAT draw
`order = rng.permutation(n)` per epoch); `tinyopt.train` passes a `DataLoader`. `Meter` keeps
size-weighted sums (an epoch's loss is the mean over its samples, as torch scripts and Keras
report it); `ProgressBar` is a tqdm bar, or nothing when it is off.
"""
from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np

from tinyopt.autograd import no_grad
from tinyopt.dtypes import is_floating_point
from tinyopt.tensor import Tensor


class TrainingDiverged(RuntimeError):
    """A loss (training or validation) became NaN or infinite. The message names the epoch, the
    step and the learning rate; the attributes hold them (`epoch` and `step` count from 1, `None`
    where they do not apply)."""

    def __init__(self, message: str, *, what: str = "loss", value: float = math.nan, epoch=None, step=None,
                 global_step=None, lr=None):
        super().__init__(message)
        self.what, self.value, self.epoch, self.step, self.global_step, self.lr = what, value, epoch, step, global_step, lr


@dataclasses.dataclass
class Step:
    """One mini-batch as the hooks see it. `epoch` and `index` count from 0 (the epoch, the batch
    within it); `global_step` is this batch's position across epochs (= updates applied before it);
    `lr` is the learning rate it is (or would have been) applied with."""

    epoch: int
    index: int
    global_step: int
    lr: float | None
    inputs: object
    targets: object
    size: int
    output: Tensor | None = None
    loss: float | None = None
    applied: bool = False
    model: object = None     # the model being trained


@dataclasses.dataclass
class EpochResult:
    steps: int               # batches seen (applied or not)
    global_step: int         # updates applied in total, after this epoch
    seen: int                # samples in the applied batches
    loss: float              # their size-weighted mean loss (NaN when none was applied)
    stopped: bool = False    # hooks.should_stop() ended the epoch early
    skipped: int = 0         # non-finite batches that on_non_finite let pass without an update


def learning_rate(optimizer) -> float | None:
    """The learning rate of the first parameter group (None for an optimizer without groups)."""
    groups = getattr(optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


def first_non_finite(model) -> str | None:
    """The name of the first parameter or buffer of `model` holding a NaN or ±∞, else None."""
    for name, value in model.state_dict().items():
        value = np.asarray(value)
        if (value.dtype.kind == "c" or is_floating_point(value.dtype)) and not np.all(np.isfinite(value)):
            return name
    return None


def divergence_message(what: str, value: float, *, epoch=None, step=None, global_step=None, lr=None,
                       model=None, hint: str = "") -> str:
    """'loss became nan at epoch 2, step 5 (global step 17) with learning rate 0.1; ...' (`epoch`,
    `step` and `global_step` count from 1 here)."""
    where = []
    if epoch is not None:
        where.append(f"epoch {epoch}")
    if step is not None:
        where.append(f"step {step}")
    text = f"{what} became {value}"
    if where:
        text += " at " + ", ".join(where)
    if global_step is not None:
        text += f" (global step {global_step})"
    text += f" with learning rate {lr:g}" if lr is not None else ""
    if model is not None:
        bad = first_non_finite(model)
        text += (f"; the weights are no longer finite ({bad} holds NaN/inf), an earlier update overflowed"
                 if bad else "; the weights are still finite")
    return f"{text}: {hint}" if hint else text


class Hooks:
    """What a caller does around each step of `train_epoch`; every method is optional."""

    def on_step_begin(self, step: Step) -> None:
        """Before the forward pass."""

    def on_step_end(self, step: Step) -> None:
        """After the update (`step.applied` is True) and the per-step scheduler step."""

    def on_non_finite(self, step: Step) -> None:
        """The loss of `step` is NaN or ±∞ and nothing was applied. Raise to end training (the
        default raises `TrainingDiverged`); return to skip the batch (the epoch goes on unless
        `should_stop()` says otherwise)."""
        raise self.diverged(step, self.divergence_hint(step))

    def should_stop(self) -> bool:
        """Checked after every batch; True ends the epoch."""
        return False

    def divergence_hint(self, step: Step) -> str:
        if step.global_step == 0:
            return "before any update, so not the learning rate: check the inputs, the targets and the initial weights"
        return "this step was not applied; lower the learning rate" + (f", e.g. to {step.lr / 10:g}" if step.lr else "")

    def diverged(self, step: Step, hint: str) -> TrainingDiverged:
        message = divergence_message("loss", step.loss, epoch=step.epoch + 1, step=step.index + 1,
                                     global_step=step.global_step + 1, lr=step.lr, model=step.model, hint=hint)
        return TrainingDiverged(message, what="loss", value=step.loss, epoch=step.epoch + 1, step=step.index + 1,
                                global_step=step.global_step + 1, lr=step.lr)


def train_step(model, optimizer, inputs, targets, loss_fn, scheduler=None, scaler=None, *, epoch: int = 0,
               index: int = 0, global_step: int = 0) -> Step:
    """One step (see the module docstring) on one batch; returns its `Step`. When the loss is not
    finite, `step.applied` is False and neither the gradients, the weights, the optimizer nor the
    scheduler were touched.

    `loss_fn(output, targets)` returns a scalar Tensor. `scaler` (optional) follows torch's
    `GradScaler` protocol: `scaler.scale(L).backward(); scaler.step(optimizer); scaler.update()`."""
    x = as_model_input(inputs)
    step = Step(epoch, index, global_step, learning_rate(optimizer), inputs, targets, size=batch_length(inputs),
                model=model)
    step.output = model(x)
    loss = loss_fn(step.output, targets)
    step.loss = float(loss.item())
    if not math.isfinite(step.loss):
        return step
    optimizer.zero_grad()
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if scheduler is not None:
        scheduler.step()
    step.applied = True
    return step


def train_epoch(model, optimizer, batches, loss_fn, *, scheduler=None, scaler=None, hooks: Hooks | None = None,
                epoch: int = 0, global_step: int = 0, max_steps: int | None = None,
                train_mode: bool = True) -> EpochResult:
    """Run `train_step` on every (inputs, targets) of `batches` (an iterable: a DataLoader,
    `minibatches(...)`), calling `hooks` around each step; stop early after `max_steps` updates or
    when `hooks.should_stop()`. `scheduler` is stepped after every update (a per-epoch schedule
    such as ReduceLROnPlateau is the caller's, after validation). `train_mode`: put the model in
    training mode first (dropout on), as `model.train()` at the top of a torch epoch."""
    hooks = hooks if hooks is not None else Hooks()
    if train_mode:
        model.train()
    steps, applied, skipped, seen, loss_sum, stopped = 0, 0, 0, 0, 0.0, False
    for index, (inputs, targets) in enumerate(batches):
        if max_steps is not None and applied >= max_steps:
            break
        hooks.on_step_begin(Step(epoch, index, global_step + applied, learning_rate(optimizer), inputs, targets,
                                 size=batch_length(inputs), model=model))
        step = train_step(model, optimizer, inputs, targets, loss_fn, scheduler, scaler, epoch=epoch, index=index,
                          global_step=global_step + applied)
        steps += 1
        if step.applied:
            applied += 1
            seen += step.size
            loss_sum += step.loss * step.size
            hooks.on_step_end(step)
        else:
            hooks.on_non_finite(step)
            skipped += 1
        if hooks.should_stop():
            stopped = True
            break
    return EpochResult(steps, global_step + applied, seen, loss_sum / seen if seen else math.nan, stopped, skipped)


# ----------------------------------------------------------------------------- building blocks


def batch_length(inputs) -> int:
    """The number of samples in a batch: len(inputs), or of its first array when `inputs` is a
    tuple of arrays (a model with several inputs, e.g. a Keras functional model)."""
    return len(inputs[0]) if isinstance(inputs, tuple) else len(inputs)


def as_model_input(inputs):
    """What the model is called with: a Tensor, or a tuple of Tensors for a tuple of arrays."""
    if isinstance(inputs, tuple):
        return tuple(a if isinstance(a, Tensor) else Tensor(a) for a in inputs)
    return inputs if isinstance(inputs, Tensor) else Tensor(inputs)


def minibatches(x, y, batch_size: int, order=None):
    """(x[idx], y[idx]) for consecutive slices idx of `order` (default: 0..n-1), the last one
    shorter when batch_size does not divide n. `x` may be a tuple of aligned arrays (several model
    inputs); each is sliced the same way."""
    if isinstance(x, tuple):
        for xb, yb in minibatches(np.arange(len(x[0])), y, batch_size, order):
            yield tuple(a[xb] for a in x), yb
        return
    if order is None:  # in order: slices (views, no copy)
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]


class Meter:
    """Sums of per-batch values weighted by batch size: `add({"loss": L·n, ...}, n)` then `means()`
    (sums over samples divided by the sample count; pass counts, e.g. correct predictions, as they
    are)."""

    def __init__(self):
        self.sums: dict = {}
        self.count = 0

    def add(self, sums: dict, count: int) -> None:
        for k, v in sums.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += count

    def means(self) -> dict:
        return {k: s / self.count for k, s in self.sums.items()} if self.count else {}


class ProgressBar:
    """A tqdm bar on stdout (or nothing when `enabled` is False); `update(postfix)` advances it by
    one step, `close(postfix)` finishes it. Also a context manager (closes on error, too)."""

    def __init__(self, total: int, desc: str, enabled: bool, leave: bool = False):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step", leave=leave, file=sys.stdout)

    def update(self, postfix: dict | None = None) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def close(self, postfix: dict | None = None) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix)
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class evaluation:
    """`with evaluation(model): ...` runs in evaluation mode (dropout off, BatchNorm's running
    statistics) without recording a graph, and puts the model back in the mode it was in."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad = no_grad()
        self.no_grad.__enter__()
        return self.model

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


__all__ = [
    "EpochResult", "Hooks", "Meter", "ProgressBar", "Step", "TrainingDiverged", "divergence_message", "evaluation",
    "first_non_finite", "learning_rate", "minibatches", "train_epoch", "train_step", "as_model_input", "batch_length",
]
