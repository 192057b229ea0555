"""tinyopt: a small deep-learning engine for learning, teaching and verifying neural-network optimization."""
from tinyopt.autograd import Function, enable_grad, gradcheck, is_grad_enabled, no_grad
from tinyopt.random import default_generator, manual_seed
from tinyopt.tensor import Tensor, cat, concatenate, maximum, minimum, ones, stack, tensor, where, zeros

from tinyopt import nn, optim, data, datasets  # noqa: E402  (subpackages need the names above)

__version__ = "0.1.0"

__all__ = [
    "Function", "Tensor", "cat", "concatenate", "data", "datasets", "default_generator", "enable_grad",
    "gradcheck", "is_grad_enabled", "manual_seed", "maximum", "minimum", "nn", "no_grad", "ones",
    "optim", "stack", "tensor", "where", "zeros",
]
