"""Keras weight initializers: `initializer(shape, dtype, rng=None) -> ndarray`, in Keras' layout.

Shapes are Keras': a Dense kernel is (in, units), a Conv2D kernel (kh, kw, in, filters). The fans
are Keras' (the same numbers torch computes from its own layout):

    fan_in = in · kh · kw,   fan_out = out · kh · kw          (Dense: kh · kw = 1)

| name (string)      | class            | values                                                      |
|--------------------|------------------|-------------------------------------------------------------|
| `glorot_uniform`   | `GlorotUniform`  | U(−a, a), a = √(6 / (fan_in + fan_out))  (Keras' default kernel) |
| `glorot_normal`    | `GlorotNormal`   | truncated N(0, σ²), σ = √(2 / (fan_in + fan_out)) / 0.8796  |
| `he_normal`        | `HeNormal`       | truncated N(0, σ²), σ = √(2 / fan_in) / 0.8796              |
| `he_uniform`       | `HeUniform`      | U(−a, a), a = √(6 / fan_in)                                 |
| `lecun_normal`     | `LecunNormal`    | truncated N(0, σ²), σ = √(1 / fan_in) / 0.8796              |
| `random_normal`    | `RandomNormal`   | N(mean, stddev²), defaults mean 0, stddev 0.05              |
| `random_uniform`   | `RandomUniform`  | U(minval, maxval), defaults −0.05, 0.05                     |
| `zeros` / `ones`   | `Zeros` / `Ones` | 0 / 1  (`zeros` is Keras' default bias)                     |
| `constant`         | `Constant`       | value                                                       |

"Truncated" is Keras' `truncated_normal`: values beyond 2σ are drawn again; 0.87962566 is the
standard deviation of a unit normal truncated at ±2, so dividing by it keeps the variance at
scale / fan (Keras' `VarianceScaling`).

Randomness, as Keras 3: an initializer given `seed=` (an int) draws the same values at every call
(`np.random.default_rng(seed)` afresh); without a seed it draws from `rng` (the layer's `rng=`, or
tinyopt's default generator, which `keras.utils.set_random_seed` resets).
"""
from __future__ import annotations

import math

import numpy as np

from tinyopt.random import resolve

_TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [−2, 2]


def compute_fans(shape) -> tuple:
    """(fan_in, fan_out) of a kernel in Keras' layout: the last axis is out, the one before it in,
    the others the receptive field (Keras' `compute_fans`)."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: subclasses implement `draw(shape, rng)`; `get_config()` gives the arguments."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"{type(self).__name__}: seed must be an int or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)

    def __call__(self, shape, dtype="float32", rng=None) -> np.ndarray:
        shape = tuple(int(d) for d in shape)
        gen = np.random.default_rng(self.seed) if self.seed is not None else resolve(rng)
        return np.asarray(self.draw(shape, gen), dtype=dtype).reshape(shape)

    def draw(self, shape, rng):  # pragma: no cover - interface
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _truncated_normal(rng, shape, std: float) -> np.ndarray:
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():  # redraw the tails (the expected number of rounds is small: P(|z| > 2) ≈ 4.6%)
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * std


class VarianceScaling(Initializer):
    """Keras' VarianceScaling: variance scale / fan, fan chosen by `mode` ('fan_in', 'fan_out',
    'fan_avg'), drawn from 'truncated_normal', 'untruncated_normal' or 'uniform'."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal", seed=None):
        super().__init__(seed)
        if not (isinstance(scale, (int, float)) and not isinstance(scale, bool)) or not scale > 0:
            raise ValueError(f"VarianceScaling: scale must be a positive number, got {scale!r}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError("VarianceScaling: distribution must be 'truncated_normal', 'untruncated_normal' or "
                             f"'uniform', got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def draw(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, size=shape)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(variance), size=shape)
        return _truncated_normal(rng, shape, math.sqrt(variance) / _TRUNCATED_STD)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


class _Preset(VarianceScaling):
    preset: dict = {}

    def __init__(self, seed=None):
        super().__init__(seed=seed, **self.preset)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    """U(−a, a), a = √(6 / (fan_in + fan_out)) (Glorot & Bengio 2010); Keras' default kernel."""
    preset = {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}


class GlorotNormal(_Preset):
    """Truncated N(0, σ²), σ = √(2 / (fan_in + fan_out)) / 0.8796."""
    preset = {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}


class HeNormal(_Preset):
    """Truncated N(0, σ²), σ = √(2 / fan_in) / 0.8796 (He et al. 2015)."""
    preset = {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}


class HeUniform(_Preset):
    """U(−a, a), a = √(6 / fan_in)."""
    preset = {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


class LecunNormal(_Preset):
    """Truncated N(0, σ²), σ = √(1 / fan_in) / 0.8796."""
    preset = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


class RandomNormal(Initializer):
    """N(mean, stddev²); Keras' defaults mean=0, stddev=0.05."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = _number(mean, "RandomNormal mean"), _number(stddev, "RandomNormal stddev")
        if self.stddev < 0:
            raise ValueError(f"RandomNormal stddev must be >= 0, got {stddev}")

    def draw(self, shape, rng):
        return rng.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    """U(minval, maxval); Keras' defaults −0.05, 0.05."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = _number(minval, "RandomUniform minval"), _number(maxval, "RandomUniform maxval")
        if self.minval > self.maxval:
            raise ValueError(f"RandomUniform needs minval <= maxval, got {minval} > {maxval}")

    def draw(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class Constant(Initializer):
    """Every value is `value`."""

    def __init__(self, value: float = 0.0):
        super().__init__(None)
        self.value = _number(value, "Constant value")

    def draw(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


CLASSES = {cls.__name__: cls for cls in (
    VarianceScaling, GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal, RandomNormal, RandomUniform,
    Constant, Zeros, Ones)}

NAMES = {
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_normal": HeNormal,
    "he_uniform": HeUniform, "lecun_normal": LecunNormal, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "zeros": Zeros, "ones": Ones, "constant": Constant,
    "variance_scaling": VarianceScaling,
}


def get(identifier) -> Initializer:
    """An Initializer from a name ('glorot_uniform', 'he_normal', 'zeros', ...), a class name
    ('HeNormal'), an Initializer, or a `{"class_name": ..., "config": ...}` dict (as `serialize` gives)."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = NAMES.get(identifier.lower()) or CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"unknown initializer {identifier!r}; choose one of {sorted(NAMES)}")
        return cls()
    if isinstance(identifier, dict) and set(identifier) == {"class_name", "config"}:
        cls = CLASSES.get(identifier["class_name"])
        if cls is None or not isinstance(identifier["config"], dict):
            raise ValueError(f"unknown initializer {identifier!r}")
        return cls.from_config(identifier["config"])
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    raise TypeError(f"an initializer must be a name or a keras.initializers object, got {identifier!r}")


def serialize(initializer: Initializer) -> dict:
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


__all__ = ["Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Initializer", "LecunNormal", "Ones",
           "RandomNormal", "RandomUniform", "VarianceScaling", "Zeros", "compute_fans", "get", "serialize"]
