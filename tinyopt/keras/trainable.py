"""Keras' `trainable` flag, on layers and on models.

`layer.trainable = False` freezes the layer's weights (`requires_grad = False`: they get no
gradient, so the optimizer leaves them alone) and, as in Keras since TF 2.0, runs any
BatchNorm inside it in inference mode (its moving statistics are used and not updated; see
`tinyopt.transfer.freeze`). Set before the layer is built, it applies when the weights are
created. `model.trainable = False` sets the flag on every layer of the model, as Keras does.
`model.summary()` counts trainable and non-trainable parameters from `requires_grad`.
Unlike Keras, no recompile is needed: the optimizer skips parameters without a gradient.
"""
from __future__ import annotations

from tinyopt import transfer


def _check(value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"trainable must be True or False, got {value!r}")
    return value


def _get(self) -> bool:
    return self.__dict__.get("_trainable", True)


def _set_layer(self, value) -> None:
    object.__setattr__(self, "_trainable", _check(value))
    apply(self)


def _set_model(self, value) -> None:
    value = _check(value)
    for layer in getattr(self, "_layers", []):
        layer.trainable = value
    object.__setattr__(self, "_trainable", value)


def apply(layer) -> None:
    """Freeze or unfreeze `layer`'s current weights according to its flag (called again after build)."""
    (transfer.unfreeze if _get(layer) else transfer.freeze)(layer)


layer_property = property(_get, _set_layer, doc="Whether the layer's weights are trained (Keras' `trainable`).")
model_property = property(_get, _set_model, doc="Set `trainable` on every layer of the model (Keras' `trainable`).")

__all__ = ["apply", "layer_property", "model_property"]
