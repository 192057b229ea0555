"""Weight initialisation, with torch.nn.init's names, formulas and defaults.

Every function takes `generator=` (an `np.random.Generator`); without it the default generator
(`tinyopt.manual_seed`) is used. They fill `tensor.data` in place and return the tensor.
"""
from __future__ import annotations

import math

import numpy as np

from tinyopt.random import resolve


def calculate_gain(nonlinearity: str, param=None) -> float:
    """Recommended gain for an activation (torch.nn.init.calculate_gain)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "conv_transpose1d", "conv_transpose2d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor):
    """fan_in = shape[1]·receptive field, fan_out = shape[0]·receptive field (torch's convention
    for weights stored as (out, in, *kernel))."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    tensor.data[...] = resolve(generator).uniform(a, b, size=tensor.shape)
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    tensor.data[...] = resolve(generator).normal(mean, std, size=tensor.shape)
    return tensor


def constant_(tensor, value: float):
    tensor.data[...] = value
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) (Glorot & Bengio 2010; Keras' default)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """U(−bound, bound) with bound = gain·√(3 / fan) (He et al. 2015).

    torch's Linear and Conv2d call this with a = √5, which gives bound = 1/√fan_in."""
    gain = calculate_gain(nonlinearity, a)
    bound = gain * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    gain = calculate_gain(nonlinearity, a)
    return normal_(tensor, 0.0, gain / math.sqrt(_fan(tensor, mode)), generator)
