"""Loss modules with torch.nn's names, called as loss(input, target); the formulas are in
`tinyopt.nn.functional` (the Keras-style losses, called as loss(y_true, y_pred), are in `tinyopt.keras.losses`)."""
from __future__ import annotations

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn.module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        # torch keeps the class weights as a buffer (saved in state_dict, not trained)
        self.register_buffer("weight", None if weight is None else np.asarray(weight))


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy on logits, with class `weight`s, an `ignore_index` and label smoothing;
    see `F.cross_entropy`."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        _refuse_legacy(size_average, reduce)
        super().__init__(weight, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):  # noqa: A002
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities; see `F.nll_loss`."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None, reduction: str = "mean"):
        _refuse_legacy(size_average, reduce)
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):  # noqa: A002
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


def _refuse_legacy(size_average, reduce) -> None:
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch and not supported: use reduction='mean', "
                         "'sum' or 'none'")


class MSELoss(_Loss):
    def forward(self, input, target):  # noqa: A002
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):  # noqa: A002
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):  # noqa: A002
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        _refuse_legacy(size_average, reduce)
        super().__init__(reduction)
        self.register_buffer("weight", None if weight is None else np.asarray(weight))
        self.register_buffer("pos_weight", None if pos_weight is None else np.asarray(pos_weight))

    def forward(self, input, target):  # noqa: A002
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class BCELoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        _refuse_legacy(size_average, reduce)
        super().__init__(reduction)
        self.register_buffer("weight", None if weight is None else np.asarray(weight))

    def forward(self, input, target):  # noqa: A002
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class KLDivLoss(Module):
    """KL(target ‖ input) pointwise, `input` as log-probabilities, `target` as probabilities (or
    log-probabilities with `log_target=True`); see `F.kl_div`. reduction is 'mean' (the default,
    which warns: it is not the KL divergence), 'batchmean' (what distillation uses), 'sum' or 'none'."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        _refuse_legacy(size_average, reduce)
        super().__init__()
        if reduction not in ("mean", "batchmean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'batchmean', 'sum' or 'none', got {reduction!r}")
        self.reduction, self.log_target = reduction, bool(log_target)

    def forward(self, input, target):  # noqa: A002
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, log_target={self.log_target}"
