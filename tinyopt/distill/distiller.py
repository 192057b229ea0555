"""`Distiller`: knowledge distillation in the PyTorch-style loop (Hinton, Vinyals & Dean 2015).

For each mini-batch (X, Y):

    z_t = teacher(X)             evaluation mode, under no_grad: a constant (dropout off, BatchNorm's
                                 running statistics, no graph, the teacher never changes)
    z_s = student(X)             the student's mode (training mode in an epoch)
    L   = F.kd_loss(z_s, z_t, Y, T, α) + β · Σ_h L_hint,h
        = α · T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α) · CE(z_s, Y) + β · Σ_h L_hint,h
    optimizer.zero_grad(); L.backward(); optimizer.step()      (over `distiller.parameters()`)

`Distiller` is an `nn.Module` whose children are the student and the hints' regressors, so
`distiller.parameters()` is exactly what is trained and `state_dict()` holds the student (keys
`student.*`) and the regressors (`hints.*`); the teacher is held but is not a child (it is not
trained, not saved, and `distiller.train()` leaves it alone). Calling `distiller(x)` returns the
student's logits and records the teacher's for that batch; `distiller.criterion(output, y)` is the
loss of that batch, in the `loss_fn(output, targets)` form that `tinyopt.loop.train_epoch` calls,
so `fit` is the shared epoch loop (a NaN loss is never applied).

Seed 004's "distillation", `student(teacher(inputs))` trained on the labels, is something else: a
network stacked on the teacher's outputs, which never sees the soft targets as targets and needs
the teacher at inference time.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from tinyopt.distill.hints import FeatureHint
from tinyopt.loop import evaluation, minibatches, train_epoch, train_step
from tinyopt.nn import functional as F
from tinyopt.nn.container import ModuleList
from tinyopt.nn.module import Module
from tinyopt.random import resolve
from tinyopt.tensor import Tensor


def check_temperature(T) -> float:
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or not math.isfinite(T) or T <= 0:
        raise ValueError(f"temperature T must be a positive finite number, got {T!r}")
    return float(T)


def check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return float(alpha)


class Distiller(Module):
    """Train `student` to match `teacher` (see the module docstring for the step).

    T: temperature (> 0); alpha: weight of the soft term (the PyTorch convention of `F.kd_loss`;
    Keras' example weights the hard term, see `tinyopt.keras.Distiller`); hints: `FeatureHint`s
    (FitNets), weighted by beta (>= 0)."""

    def __init__(self, teacher: Module, student: Module, T: float = 4.0, alpha: float = 0.9, hints=(),
                 beta: float = 1.0):
        for what, m in (("teacher", teacher), ("student", student)):
            if not isinstance(m, Module):
                raise TypeError(f"Distiller: {what} must be a tinyopt.nn.Module, got {type(m).__name__}")
        if teacher is student:
            raise ValueError("Distiller: teacher and student must be different modules")
        T, alpha = check_temperature(T), check_alpha(alpha)
        hints = list(hints)
        for h in hints:
            if not isinstance(h, FeatureHint):
                raise TypeError(f"Distiller: hints must be FeatureHint objects, got {type(h).__name__}")
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta >= 0 or not math.isfinite(beta):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        student_params = {id(p) for p in student.parameters()}
        if any(id(p) in student_params for p in teacher.parameters()):
            raise ValueError("Distiller: teacher and student share parameters; the teacher would be trained too")
        super().__init__()
        self.student = student
        self.hints = ModuleList(hints)
        object.__setattr__(self, "teacher", teacher)  # held, not a child: not trained, not in state_dict
        self.T, self.alpha, self.beta = T, alpha, float(beta)
        object.__setattr__(self, "_last", None)

    # ------------------------------------------------------------------ forward and loss
    def teacher_logits(self, x) -> Tensor:
        """The teacher's logits in evaluation mode, without a graph (its mode is restored after)."""
        with evaluation(self.teacher):
            return self.teacher(x)

    def forward(self, x) -> Tensor:
        """The student's logits for x; the teacher's are recorded for `criterion`."""
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        z_t = self.teacher_logits(x)
        z_s = self.student(x)
        object.__setattr__(self, "_last", (z_s, z_t))
        return z_s

    def criterion(self, output: Tensor, target=None) -> Tensor:
        """L for the batch whose student logits are `output` (the last `distiller(x)`)."""
        if self._last is None or output is not self._last[0]:
            raise RuntimeError("Distiller.criterion takes the output of the last distiller(x) call; "
                               "call distiller(x) first (or use distiller.loss(x, y))")
        z_s, z_t = self._last
        loss = F.kd_loss(z_s, z_t, target, T=self.T, alpha=self.alpha)
        if len(self.hints) and self.beta:
            loss = loss + self._hint_sum() * self.beta
        return loss

    def _hint_sum(self):
        total = None
        for h in self.hints:
            term = h.loss()
            total = term if total is None else total + term
        return total

    def loss(self, x, y=None) -> Tensor:
        """L for one batch (forward and criterion together)."""
        return self.criterion(self(x), y)

    def hint_loss(self, x) -> Tensor:
        """Σ_h L_hint,h alone: FitNets' first stage (train the student's lower layers and the regressors)."""
        if not len(self.hints):
            raise RuntimeError("Distiller.hint_loss needs hints=[FeatureHint(...)]")
        self(x)
        return self._hint_sum()

    # ------------------------------------------------------------------ training
    def step(self, x, y, optimizer):
        """One optimisation step on (x, y) (`tinyopt.loop.train_step`); returns its `Step`
        (`step.loss`, `step.applied` False when the loss was not finite and nothing changed)."""
        self.train()
        return train_step(self, optimizer, x, y, self.criterion)

    def fit(self, x, y, optimizer, epochs: int = 1, batch_size: int = 64, rng=None, scheduler=None) -> list:
        """`epochs` epochs over the arrays x, y, shuffled by `rng` (a Generator or a seed) each epoch;
        returns the mean training loss of each epoch."""
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same number of samples, got {len(x)} and {len(y)}")
        gen = resolve(rng)
        losses, global_step = [], 0
        for epoch in range(epochs):
            result = train_epoch(self, optimizer, minibatches(x, y, batch_size, gen.permutation(len(x))),
                                 self.criterion, scheduler=scheduler, epoch=epoch, global_step=global_step)
            global_step = result.global_step
            losses.append(result.loss)
        return losses

    def extra_repr(self) -> str:
        return f"T={self.T}, alpha={self.alpha}" + (f", beta={self.beta}" if len(self.hints) else "")


__all__ = ["Distiller", "check_alpha", "check_temperature"]
