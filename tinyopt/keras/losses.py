"""Keras loss names and objects, resolved onto tinyopt.nn's losses (no second implementation).

Keras losses are called as `loss(y_true, y_pred)`; torch-style `nn` loss modules as
`loss(input, target)`. `get(identifier)` returns a callable with Keras' argument order either way.

    sparse_categorical_crossentropy:  ℓ_n = −log p_{n, y_n}             (integer labels y_n)
    categorical_crossentropy:         ℓ_n = −Σ_c y_{n,c} log p_{n,c}    (one-hot y)
    mean_squared_error:               ℓ_n = mean_j (y_{n,j} − ŷ_{n,j})²
    binary_crossentropy:              ℓ_n = −mean_j [y log p + (1 − y) log(1 − p)]

`p` are probabilities (the model ends in softmax/sigmoid); with `from_logits=True` the loss
applies the (log-)softmax itself. The batch loss is the mean over samples (Keras'
"sum_over_batch_size").
"""
from __future__ import annotations

import numpy as np

from tinyopt import nn
from tinyopt.nn import functional as F
from tinyopt.nn.module import Module
from tinyopt.tensor import Tensor


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

    def get_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


def integer_labels(y, who: str = "sparse_categorical_crossentropy", num_classes=None) -> np.ndarray:
    """Class labels as int64, checked: integers, or floats that are whole numbers (3.0 from a float
    array); anything else (1.5, NaN, a string) is refused with the first bad value named, never
    truncated (Keras casts 1.7 to 1 silently). With `num_classes`, labels outside [0, C) are refused.
    A trailing axis of size 1 ((N, 1) label columns, as Keras accepts) is dropped."""
    labels = np.asarray(y.data if isinstance(y, Tensor) else y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dtype.kind == "b" or labels.dtype.kind not in "iuf":
        raise TypeError(f"{who} needs integer class labels, got an array of dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(-1))[0])
            raise ValueError(
                f"{who} needs integer class labels, got float labels such as {labels.reshape(-1)[first]!r} (at flat "
                f"index {first}); they are not truncated. For one-hot or soft targets use categorical_crossentropy; "
                "else pass integers, e.g. y.astype('int64')")
    labels = labels.astype(np.int64)
    if num_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(f"{who}: label {bad} is outside [0, {num_classes}) for a model with {num_classes} outputs")
    return labels


class SparseCategoricalCrossentropy(_KerasLoss):
    """Keras' sparse categorical cross-entropy: integer `y_true`, probabilities (or logits with
    `from_logits=True`) in `y_pred`. ℓ_n = −log p_{n, y_n}. Called as loss(y_true, y_pred).
    Float labels are accepted only when they are whole numbers (`integer_labels`)."""

    def __call__(self, y_true, y_pred: Tensor) -> Tensor:
        labels = integer_labels(y_true, "SparseCategoricalCrossentropy")
        return F.nll_loss(self._log_probs(y_pred), labels, reduction=self.reduction)

    def get_config(self):
        return {"from_logits": self.from_logits}


class MeanSquaredError:
    """ℓ = mean over samples and features of (y − ŷ)²."""

    def __call__(self, y_true, y_pred: Tensor) -> Tensor:
        y = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true, dtype=y_pred.dtype)
        if y.shape != y_pred.shape:
            y = y.reshape(y_pred.shape) if y.size == y_pred.size else y
        return F.mse_loss(y_pred, y)

    def __repr__(self):
        return "MeanSquaredError()"

    def get_config(self):
        return {}


class BinaryCrossentropy:
    """ℓ = −[y log p + (1 − y) log(1 − p)], mean over samples and outputs; p clipped to [ε, 1 − ε]
    with ε = 1e-7 like Keras (or computed from logits with `from_logits=True`)."""

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred: Tensor) -> Tensor:
        y = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true, dtype=y_pred.dtype)
        if y.shape != y_pred.shape and y.size == y_pred.size:
            y = y.reshape(y_pred.shape)
        if self.from_logits:
            return F.binary_cross_entropy_with_logits(y_pred, y)
        return F.binary_cross_entropy(y_pred, y, eps=1e-7)

    def __repr__(self):
        return f"BinaryCrossentropy(from_logits={self.from_logits})"

    def get_config(self):
        return {"from_logits": self.from_logits}


class _TorchOrder:
    """Adapts a torch-style loss module, called (input, target), to Keras' (y_true, y_pred)."""

    def __init__(self, module: Module):
        self.module = module

    def __call__(self, y_true, y_pred):
        return self.module(y_pred, y_true)

    def __repr__(self):
        return repr(self.module)


NAMES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy,
}


def get(identifier):
    """A loss callable `(y_true, y_pred) -> scalar Tensor` from a Keras name, a Keras-style loss object,
    a torch-style `nn` loss module, or any callable taking (y_true, y_pred)."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in NAMES:
            raise ValueError(f"unknown loss {identifier!r}; choose one of {sorted(NAMES)} or pass a loss object")
        return NAMES[key]()
    if isinstance(identifier, Module):
        return _TorchOrder(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(f"loss must be a name, a loss object or a callable, got {type(identifier).__name__}")


CLASSES = {cls.__name__: cls for cls in (
    SparseCategoricalCrossentropy, CategoricalCrossentropy, MeanSquaredError, BinaryCrossentropy)}


def serialize(loss):
    """JSON form of a loss given to compile (a Keras name or one of the classes above), else None."""
    if type(loss).__name__ in CLASSES and type(loss) is CLASSES[type(loss).__name__]:
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    return None


def deserialize(config):
    return CLASSES[config["class_name"]](**config["config"])


def kind(loss) -> str:
    """'sparse', 'categorical', 'binary' or 'other': which accuracy Keras would pair with this loss."""
    if isinstance(loss, _TorchOrder):
        loss = loss.module
        if isinstance(loss, (nn.CrossEntropyLoss, nn.NLLLoss)):
            return "sparse"
        if isinstance(loss, (nn.BCELoss, nn.BCEWithLogitsLoss)):
            return "binary"
        return "other"
    if isinstance(loss, SparseCategoricalCrossentropy):
        return "sparse"
    if isinstance(loss, CategoricalCrossentropy):
        return "categorical"
    if isinstance(loss, BinaryCrossentropy):
        return "binary"
    return "other"


__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "MeanSquaredError", "SparseCategoricalCrossentropy", "get",
    "integer_labels", "kind",
]


class KLDivergence:
    """Keras' KL divergence: ℓ_n = Σ_c y_{n,c} · log(y_{n,c} / ŷ_{n,c}), with y and ŷ clipped to [ε, 1]
    (ε = 1e-7, Keras' epsilon), the batch loss the mean over samples. Called as loss(y_true, y_pred)
    with probabilities in both (the Keras distillation example passes softmax(z_t/T), softmax(z_s/T)).
    It equals `F.kl_div(log ŷ, y, reduction='batchmean')` wherever no clipping happens."""

    def __init__(self, reduction: str = "sum_over_batch_size", epsilon: float = 1e-7):
        if reduction not in _KERAS_REDUCTIONS:
            raise ValueError(f"reduction must be one of {sorted(k for k in _KERAS_REDUCTIONS if k)}, got {reduction!r}")
        self.reduction, self.epsilon = _KERAS_REDUCTIONS[reduction], epsilon

    def __call__(self, y_true, y_pred: Tensor) -> Tensor:
        y = y_true if isinstance(y_true, Tensor) else Tensor(np.asarray(y_true, dtype=y_pred.dtype))
        if tuple(y.shape) != tuple(y_pred.shape):
            raise ValueError(f"KLDivergence needs y_true and y_pred of the same shape, got {tuple(y.shape)} and "
                             f"{tuple(y_pred.shape)}")
        y = y.clip(self.epsilon, 1.0)
        p = y_pred.clip(self.epsilon, 1.0)
        return F._reduce((y * (y / p).log()).sum(axis=-1), self.reduction)

    def __repr__(self):
        return "KLDivergence()"


NAMES["kl_divergence"] = NAMES["kld"] = NAMES["kullback_leibler_divergence"] = KLDivergence
__all__ += ["KLDivergence"]
