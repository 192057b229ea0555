"""A Keras-style API on tinyopt's engine: `Sequential([...])`, `compile`, `fit`, callbacks.

The seed articles' Keras code runs with only its import line changed:

    import tinyopt as tf                      # instead of: import tensorflow as tf
    from tinyopt.keras import datasets, layers, models

Layers wrap `tinyopt.nn` modules, losses wrap `tinyopt.nn` losses and optimizers build
`tinyopt.optim` optimizers: there is no second implementation of the math here.
"""
from tinyopt.keras import callbacks, datasets, layers, losses, metrics, models, optimizers, regularizers, utils
from tinyopt.keras import initializers
from tinyopt.keras.callbacks import History
from tinyopt.keras.layers import Input, KerasTensor
from tinyopt.keras.models import Model, Sequential

__all__ = [
    "History", "Input", "Model", "Sequential", "callbacks", "datasets", "layers", "losses", "metrics", "models",
    "optimizers", "regularizers", "utils", "initializers", "KerasTensor",
]
from tinyopt.keras.distiller import Distiller  # noqa: E402  (the Keras distillation example's model)

__all__ += ["Distiller"]
from tinyopt.keras import mixed_precision  # noqa: E402 - keras.mixed_precision.set_global_policy(...)
