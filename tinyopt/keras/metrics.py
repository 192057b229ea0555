"""Keras metric names. Each metric maps (y_true, y_pred ndarrays) to one value per sample; the
model averages them over the epoch, weighting by batch size (so the epoch value is the mean over
all samples seen, as in Keras).

    sparse_categorical_accuracy:  1[argmax_c ŷ_{n,c} = y_n]
    categorical_accuracy:         1[argmax_c ŷ_{n,c} = argmax_c y_{n,c}]
    binary_accuracy:              mean_j 1[(ŷ_{n,j} > 0.5) = y_{n,j}]

`"accuracy"` (or `"acc"`) picks one of these from the loss, as Keras does, and is reported under
the name `accuracy`.

Metric objects (Keras' classes) keep a running weighted mean over the batches they are given:

    update_state(y_true, y_pred, sample_weight=None):   total += Σ_n w_n v_n,  count += Σ_n w_n
    result() = total / count   (0 before any update, as Keras' divide_no_nan)
    reset_state():              total = count = 0

with v_n the per-sample value above (`Mean.update_state(values, sample_weight)` averages the
values themselves). `result()` is a scalar float32 Tensor (`float(m.result())`,
`m.result().numpy()`). A metric object passed to `compile(metrics=[...])` is reported under its
`name` (e.g. `sparse_categorical_accuracy`), as in Keras.
"""
from __future__ import annotations

import numpy as np

from tinyopt.tensor import Tensor


def sparse_categorical_accuracy(y_true, y_pred):
    labels = np.asarray(y_true).reshape(len(y_pred))
    return (np.argmax(y_pred, axis=-1) == labels).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5):
    y_true = np.asarray(y_true).reshape(y_pred.shape)
    hit = ((y_pred > threshold) == (y_true > 0.5)).astype(np.float64)
    return hit.reshape(len(hit), -1).mean(axis=1)


def mean_squared_error(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64).reshape(y_pred.shape)
    d = (y_pred - y_true).reshape(len(y_pred), -1)
    return (d * d).mean(axis=1)


def mean_absolute_error(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64).reshape(y_pred.shape)
    return np.abs(y_pred - y_true).reshape(len(y_pred), -1).mean(axis=1)


NAMES = {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
}


def _values(x) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, Tensor) else x)


class Metric:
    """Base of the metric objects: a weighted running mean (see the module docstring)."""

    default_name = "metric"

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a metric name must be a string, got {name!r}")
        self.name = name or self.default_name
        self.reset_state()

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def _add(self, values, sample_weight) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if sample_weight is None:
            w = np.ones_like(values)
        else:
            w = np.asarray(_values(sample_weight), dtype=np.float64)
            if w.size != values.size:
                raise ValueError(f"{type(self).__name__}: sample_weight has {w.size} values for {values.size} samples")
            w = w.reshape(-1)
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError(f"{type(self).__name__}: sample_weight must be finite and >= 0")
        self.total += float(np.sum(values * w))
        self.count += float(np.sum(w))

    def result(self) -> Tensor:
        return Tensor(np.array(self.total / self.count if self.count else 0.0, dtype=np.float32))

    def __call__(self, *args, **kwargs) -> Tensor:
        self.update_state(*args, **kwargs)
        return self.result()

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(Metric):
    """The weighted mean of every value given: `update_state(values, sample_weight=None)`."""

    default_name = "mean"

    def update_state(self, values, sample_weight=None) -> None:
        self._add(_values(values), sample_weight)


class MeanMetricWrapper(Metric):
    """The weighted mean of `fn(y_true, y_pred)` (one value per sample) over every batch given."""

    def __init__(self, fn, name=None, dtype=None):
        self.fn = fn
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_pred = _values(y_pred)
        if y_pred.ndim == 0 or len(y_pred) == 0:
            raise ValueError(f"{type(self).__name__}: y_pred needs a batch of at least one sample, got shape {y_pred.shape}")
        self._add(self.fn(_values(y_true), y_pred), sample_weight)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """Fraction of samples with argmax_c ŷ_{n,c} = y_n (integer labels)."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class CategoricalAccuracy(MeanMetricWrapper):
    """Fraction of samples with argmax_c ŷ_{n,c} = argmax_c y_{n,c} (one-hot labels)."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """Fraction of outputs with (ŷ > threshold) = (y > 0.5)."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold: float = 0.5):
        self.threshold = float(threshold)
        super().__init__(lambda y, p: binary_accuracy(y, p, self.threshold), name, dtype)


class MeanSquaredError(MeanMetricWrapper):
    """Mean over samples of mean_j (y_{n,j} − ŷ_{n,j})²."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean over samples of mean_j |y_{n,j} − ŷ_{n,j}|."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name, dtype)


def get(identifier, loss_kind: str = "sparse"):
    """(name, per-sample function) for a metric name or a callable `(y_true, y_pred) -> per-sample values`."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            fn = {"sparse": sparse_categorical_accuracy, "categorical": categorical_accuracy,
                  "binary": binary_accuracy}.get(loss_kind)
            if fn is None:
                raise ValueError("metrics=['accuracy'] needs a classification loss; name the metric explicitly instead")
            return "accuracy", fn
        if key not in NAMES:
            raise ValueError(f"unknown metric {identifier!r}; choose 'accuracy' or one of {sorted(NAMES)}")
        return key, NAMES[key]
    if isinstance(identifier, MeanMetricWrapper):
        return identifier.name, identifier.fn
    if isinstance(identifier, Metric):
        raise TypeError(f"{type(identifier).__name__} cannot be a compiled metric (it averages values, not "
                        "(y_true, y_pred)); update it yourself in a callback")
    if isinstance(identifier, type) and issubclass(identifier, MeanMetricWrapper):
        return get(identifier(), loss_kind)
    if callable(identifier):
        return getattr(identifier, "__name__", type(identifier).__name__), identifier
    raise TypeError(f"a metric must be a name or a callable, got {type(identifier).__name__}")


__all__ = ["BinaryAccuracy", "CategoricalAccuracy", "Mean", "MeanAbsoluteError", "MeanMetricWrapper",
           "MeanSquaredError", "Metric", "SparseCategoricalAccuracy", "binary_accuracy", "categorical_accuracy", "get", "mean_absolute_error", "mean_squared_error",
           "sparse_categorical_accuracy"]
