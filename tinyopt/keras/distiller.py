"""The Keras distillation example's `Distiller`, on tinyopt (keras.io/examples/vision/knowledge_distillation).

    distiller = keras.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(), metrics=["accuracy"],
                      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=10)
    distiller.fit(x_train, y_train, epochs=3)
    distiller.evaluate(x_test, y_test)

The loss of a batch, as the example's `compute_loss` writes it (Keras' convention for α):

    L = α · student_loss_fn(y, z_s) + (1 − α) · T² · distillation_loss_fn(softmax(z_t/T), softmax(z_s/T))

with z_t = teacher(x, training=False) (evaluation mode, no graph) and z_s = student(x). Keras' α
weights the *hard* (label) term; `tinyopt.nn.functional.kd_loss`'s α, the PyTorch habit, weights
the soft term: Keras' α = 0.1 is kd_loss's α = 0.9. With `KLDivergence` and logits, L equals
`F.kd_loss(z_s, z_t, y, T, 1 − α)` up to Keras' clipping of probabilities at 1e-7.

`evaluate` reports this loss too (Keras 3's `compute_loss` serves both) with the metrics of the
student's predictions; `predict` and `distiller(x)` return the student's outputs. Only the
student is trained: the teacher is held but is not a child module (not in `parameters()`, not
in `state_dict()`), and runs in evaluation mode whatever mode `fit` sets.
"""
from __future__ import annotations

from tinyopt.distill.distiller import check_alpha, check_temperature
from tinyopt.keras import losses as losses_module
from tinyopt.keras.models import Sequential, _as_float_input
from tinyopt.loop import evaluation
from tinyopt.nn import functional as F
from tinyopt.nn.module import Module
from tinyopt.tensor import Tensor


class Distiller(Sequential):
    """A model that trains `student` on `teacher`'s softened outputs; `compile` then `fit`."""

    def __init__(self, student: Module, teacher: Module, name: str = "distiller"):
        for what, m in (("student", student), ("teacher", teacher)):
            if not isinstance(m, Module):
                raise TypeError(f"Distiller: {what} must be a keras model or tinyopt.nn.Module, got {type(m).__name__}")
        if student is teacher:
            raise ValueError("Distiller: teacher and student must be different models")
        super().__init__(name=name)
        self.add_module("student", student)
        object.__setattr__(self, "teacher", teacher)  # held, not a child: never trained or saved
        object.__setattr__(self, "_last", None)
        object.__setattr__(self, "student_loss_fn", None)
        object.__setattr__(self, "distillation_loss_fn", None)
        object.__setattr__(self, "alpha", None)
        object.__setattr__(self, "temperature", None)

    # ------------------------------------------------------------------ building
    def build(self, input_shape) -> None:
        shape = (None,) + tuple(input_shape)[1:]
        for m in (self.student, self.teacher):
            if isinstance(m, Sequential) and not m.built:
                m.build(shape)
        object.__setattr__(self, "input_shape", shape)
        out = getattr(self.student, "output_shape", None)
        object.__setattr__(self, "output_shape", tuple(out) if out is not None else None)
        object.__setattr__(self, "built", True)

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(_as_float_input(x))
        if not self.built:
            self.build((None,) + tuple(x.shape[1:]))
        with evaluation(self.teacher):  # teacher(x, training=False), no graph
            z_t = self.teacher(x)
        z_s = self.student(x)
        object.__setattr__(self, "_last", (z_s, z_t))
        return z_s

    call = forward

    def regularization_loss(self):
        reg = getattr(self.student, "regularization_loss", None)
        return reg() if reg is not None else None

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="adam", metrics=None, student_loss_fn=None, distillation_loss_fn=None,
                alpha: float = 0.1, temperature: float = 3):
        """optimizer, metrics as for any model; student_loss_fn(y, z_s) the label loss;
        distillation_loss_fn(p_teacher, p_student) on the softened probabilities; alpha weights the
        label loss (Keras' convention); temperature T > 0."""
        if student_loss_fn is None or distillation_loss_fn is None:
            raise ValueError("Distiller.compile needs student_loss_fn and distillation_loss_fn, e.g. "
                             "keras.losses.SparseCategoricalCrossentropy(from_logits=True) and keras.losses.KLDivergence()")
        alpha, temperature = check_alpha(alpha), check_temperature(temperature)
        distillation = losses_module.get(distillation_loss_fn)
        # The student's loss decides what metrics=["accuracy"] means; then the loss becomes the combined one.
        super().compile(optimizer=optimizer, loss=student_loss_fn, metrics=metrics)
        object.__setattr__(self, "student_loss_fn", self.loss)
        object.__setattr__(self, "distillation_loss_fn", distillation)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "temperature", temperature)
        object.__setattr__(self, "loss", self.compute_loss)

    def compute_loss(self, y, y_pred):
        """α · student_loss + (1 − α) · T² · distillation_loss, for the last batch `forward` saw."""
        if self._last is None or y_pred is not self._last[0]:
            raise RuntimeError("Distiller.compute_loss takes the output of the last distiller(x) call")
        z_t = self._last[1]
        T = self.temperature
        student_loss = self.student_loss_fn(y, y_pred)
        distillation_loss = self.distillation_loss_fn(F.softmax(z_t / T, dim=1), F.softmax(y_pred / T, dim=1)) * (T * T)
        return student_loss * self.alpha + distillation_loss * (1.0 - self.alpha)

    def summary(self, print_fn=print, line_length: int = 65) -> str:
        """The student's summary (the model that is trained)."""
        if not isinstance(self.student, Sequential):
            raise TypeError("Distiller.summary needs a keras student model")
        return self.student.summary(print_fn=print_fn, line_length=line_length)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, temperature={self.temperature}"


__all__ = ["Distiller"]
