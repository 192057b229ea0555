"""Loss modules: torch.nn's (called as loss(input, target)) and the Keras-style ones the seed
articles use (called as loss(y_true, y_pred), Keras' argument order)."""
from __future__ import annotations

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn.module import Module
from tinyopt.tensor import Tensor


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on logits; see `F.cross_entropy`."""

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input, target):  # noqa: A002
        return F.cross_entropy(input, target, reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    def forward(self, input, target):  # noqa: A002
        return F.nll_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    def forward(self, input, target):  # noqa: A002
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):  # noqa: A002
        return F.l1_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.pos_weight = pos_weight

    def forward(self, input, target):  # noqa: A002
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction, pos_weight=self.pos_weight)


class BCELoss(_Loss):
    def forward(self, input, target):  # noqa: A002
        return F.binary_cross_entropy(input, target, reduction=self.reduction)


# ----------------------------------------------------------------------------- Keras-style

_KERAS_REDUCTIONS = {"sum_over_batch_size": "mean", "auto": "mean", "sum": "sum", "none": "none", None: "none"}


class _KerasLoss:
    def __init__(self, from_logits: bool = False, reduction: str = "sum_over_batch_size", epsilon: float = 1e-7):
        if reduction not in _KERAS_REDUCTIONS:
            raise ValueError(f"reduction must be one of {sorted(k for k in _KERAS_REDUCTIONS if k)}, got {reduction!r}")
        self.from_logits = from_logits
        self.reduction = _KERAS_REDUCTIONS[reduction]
        self.epsilon = epsilon  # Keras' backend.epsilon(): probabilities are clipped to [ε, 1 − ε]

    def _log_probs(self, y_pred: Tensor) -> Tensor:
        if self.from_logits:
            return F.log_softmax(y_pred, axis=-1)
        # Keras renormalises probabilities to sum to 1, then clips before the log.
        probs = y_pred / y_pred.sum(axis=-1, keepdims=True)
        return probs.clip(self.epsilon, 1 - self.epsilon).log()

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class CategoricalCrossentropy(_KerasLoss):
    """Keras' categorical cross-entropy: one-hot (or soft) `y_true`, `y_pred` probabilities, or
    logits with `from_logits=True`. ℓ_n = −Σ_c y_{n,c} log p_{n,c}. Called as loss(y_true, y_pred)."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, reduction: str = "sum_over_batch_size"):
        super().__init__(from_logits, reduction)
        self.label_smoothing = label_smoothing

    def __call__(self, y_true, y_pred: Tensor) -> Tensor:
        y = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true, dtype=y_pred.dtype)
        if y.shape != y_pred.shape:
            raise ValueError(
                f"CategoricalCrossentropy needs one-hot y_true of y_pred's shape {tuple(y_pred.shape)}, got {y.shape} "
                "(for integer labels use SparseCategoricalCrossentropy)"
            )
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / y.shape[-1]
        return F._reduce(-(self._log_probs(y_pred) * y).sum(axis=-1), self.reduction)


class SparseCategoricalCrossentropy(_KerasLoss):
    """Keras' sparse categorical cross-entropy: integer `y_true`, probabilities (or logits with
    `from_logits=True`) in `y_pred`. ℓ_n = −log p_{n, y_n}. Called as loss(y_true, y_pred)."""

    def __call__(self, y_true, y_pred: Tensor) -> Tensor:
        labels = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true)
        if labels.ndim == 2 and labels.shape[1] == 1:  # Keras accepts (N, 1) label columns
            labels = labels[:, 0]
        return F.nll_loss(self._log_probs(y_pred), labels.astype(np.int64), reduction=self.reduction)
