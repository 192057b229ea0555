"""Feature ("hint") distillation: FitNets (Romero et al. 2015, https://arxiv.org/abs/1412.6550).

A *hint* is the output u(x) of a teacher layer; the *guided* layer is a student layer with output
v(x), usually thinner. A learned regressor r maps the student's features to the teacher's shape,
and the student is trained to make them agree:

    L_hint = mean over elements of (r(v(x)) − u(x))²        (F.mse_loss)

u is a constant (the teacher runs under `no_grad`); the gradient reaches the student's layers
below the guided one and the regressor's weights. FitNets writes ½‖u − r(v)‖² (a sum): the same
minimiser, a factor ½·numel apart (absorbed into the weight β of the hint term). FitNets
regresses with a convolution; `FeatureHint.conv` builds the 1×1 one (the common choice when
the spatial sizes agree), `FeatureHint.linear` a Linear one for flat features.

FitNets trains in two stages: (1) the student's layers up to the guided one and the regressor,
on L_hint alone (`Distiller.hint_loss`); (2) the whole student by knowledge distillation
(`Distiller` with β = 0, or with the hint term kept, β > 0).
"""
from __future__ import annotations

from tinyopt import nn
from tinyopt.errors import ShapeError
from tinyopt.nn import functional as F
from tinyopt.nn.module import Module


class FeatureHint(Module):
    """Records the outputs of `teacher_layer` and `student_layer` (forward hooks) and compares
    them through `regressor`: `loss()` = mse(regressor(v), u) for the last forward of each.

    The regressor is this module's only child, so `hint.parameters()` is what the optimizer must
    train besides the student. `remove()` takes the hooks off both layers."""

    def __init__(self, teacher_layer: Module, student_layer: Module, regressor: Module):
        for what, m in (("teacher_layer", teacher_layer), ("student_layer", student_layer), ("regressor", regressor)):
            if not isinstance(m, Module):
                raise TypeError(f"FeatureHint: {what} must be a tinyopt.nn.Module, got {type(m).__name__}")
        super().__init__()
        self.regressor = regressor
        object.__setattr__(self, "_features", {"teacher": None, "student": None})
        object.__setattr__(self, "_handles", [
            teacher_layer.register_forward_hook(lambda m, args, out: self._record("teacher", out.detach())),
            student_layer.register_forward_hook(lambda m, args, out: self._record("student", out)),
        ])

    @classmethod
    def conv(cls, teacher_layer, student_layer, student_channels: int, teacher_channels: int, rng=None):
        """A hint through a 1×1 convolution (student_channels → teacher_channels), for (N, C, H, W) features."""
        return cls(teacher_layer, student_layer, nn.Conv2d(student_channels, teacher_channels, 1, rng=rng))

    @classmethod
    def linear(cls, teacher_layer, student_layer, student_features: int, teacher_features: int, rng=None):
        """A hint through a Linear map, for (N, F) features."""
        return cls(teacher_layer, student_layer, nn.Linear(student_features, teacher_features, rng=rng))

    def _record(self, which: str, output) -> None:
        self._features[which] = output

    def loss(self):
        """mse(regressor(v), u) of the features recorded by the last forward of both networks."""
        u, v = self._features["teacher"], self._features["student"]
        if u is None or v is None:
            missing = [k for k in ("teacher", "student") if self._features[k] is None]
            raise RuntimeError(f"FeatureHint: no {' or '.join(missing)} features recorded; run both networks first")
        r = self.regressor(v)
        if tuple(r.shape) != tuple(u.shape):
            raise ShapeError(f"FeatureHint: the regressor {self.regressor!r} maps student features of shape "
                             f"{tuple(v.shape)} to {tuple(r.shape)}, but the teacher's hint has shape {tuple(u.shape)}")
        self._features["teacher"] = self._features["student"] = None  # each recorded pair is used once
        return F.mse_loss(r, u)

    def forward(self):
        return self.loss()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


__all__ = ["FeatureHint"]
