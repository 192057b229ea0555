"""tinyopt: a small deep-learning engine for learning, teaching and verifying neural-network optimization."""
import importlib

from tinyopt.autograd import Function, enable_grad, gradcheck, is_grad_enabled, no_grad
from tinyopt.random import default_generator, manual_seed
from tinyopt.tensor import Tensor, cat, concatenate, maximum, minimum, ones, stack, tensor, where, zeros

from tinyopt import nn, optim, data, datasets  # noqa: E402  (subpackages need the names above)
from tinyopt.checkpoint import load, save  # noqa: E402
from tinyopt.warmup import warmup  # noqa: E402

__version__ = "0.1.0"

# Heavier subpackages (matplotlib, the Keras layer, quantization, verification) load on first use.
_LAZY = ("keras", "models", "plot", "quant", "verify", "train", "kernels")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"tinyopt.{name}")
    raise AttributeError(f"module 'tinyopt' has no attribute {name!r}")


__all__ = [
    "Function", "Tensor", "cat", "concatenate", "data", "datasets", "default_generator", "enable_grad",
    "gradcheck", "is_grad_enabled", "load", "manual_seed", "maximum", "minimum", "nn", "no_grad", "ones",
    "optim", "save", "stack", "tensor", "warmup", "where", "zeros", *_LAZY,
]
