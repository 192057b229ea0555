"""Keras metric names. Each metric maps (y_true, y_pred ndarrays) to one value per sample; the
model averages them over the epoch, weighting by batch size (so the epoch value is the mean over
all samples seen, as in Keras).

    sparse_categorical_accuracy:  1[argmax_c ŷ_{n,c} = y_n]
    categorical_accuracy:         1[argmax_c ŷ_{n,c} = argmax_c y_{n,c}]
    binary_accuracy:              mean_j 1[(ŷ_{n,j} > 0.5) = y_{n,j}]

`"accuracy"` (or `"acc"`) picks one of these from the loss, as Keras does, and is reported under
the name `accuracy`.
"""
from __future__ import annotations

import numpy as np


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
    if callable(identifier):
        return getattr(identifier, "__name__", type(identifier).__name__), identifier
    raise TypeError(f"a metric must be a name or a callable, got {type(identifier).__name__}")


__all__ = ["binary_accuracy", "categorical_accuracy", "get", "mean_absolute_error", "mean_squared_error",
           "sparse_categorical_accuracy"]
