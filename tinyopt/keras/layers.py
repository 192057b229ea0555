"""Keras-style layers that wrap tinyopt.nn modules (no second implementation of the math).

A Keras layer differs from a torch module in three ways, and only these are added here:

1. **Lazy shapes.** `Dense(64)` does not know its input size; it is *built* when the input shape
   is first known (from `input_shape=` on the first layer, `Sequential.build`, or the first call).
   `build(input_shape)` creates the wrapped `nn` module and returns the output shape (both
   without the batch axis).
2. **Channels last.** Keras images are (N, H, W, C); tinyopt.nn (like torch) uses (N, C, H, W).
   `Conv2D` and `MaxPooling2D` transpose to channels-first, call `nn.Conv2d` / `nn.MaxPool2d`, and
   transpose back. `Flatten` therefore flattens in (H, W, C) order, as Keras does.
3. **Keras defaults.** Kernels start Glorot-uniform (`U(−√(6/(fan_in+fan_out)), +…)`), biases at zero,
   and an `activation=` string adds the activation after the layer.

Every layer takes `rng=` (an `np.random.Generator` or an int seed; the default generator when
omitted) for its initial weights or dropout masks.
"""
from __future__ import annotations

import inspect

import numpy as np

from tinyopt import nn
from tinyopt.nn import init
from tinyopt.nn.module import Module, ShapeError
from tinyopt.random import resolve

# ----------------------------------------------------------------------------- activations

ACTIVATIONS = {
    None: None, "linear": None,
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=-1), "leaky_relu": nn.LeakyReLU,
}


def activation_module(activation):
    """Turn Keras' `activation=` (a name, None, a Module or a callable on Tensors) into a Module or None."""
    if isinstance(activation, Module) or activation is None:
        return activation
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(k for k in ACTIVATIONS if k)}")
        factory = ACTIVATIONS[key]
        return None if factory is None else factory()
    if callable(activation):
        return _Lambda(activation)
    raise TypeError(f"activation must be a name, None, a Module or a callable, got {type(activation).__name__}")


class _Lambda(Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# ----------------------------------------------------------------------------- regularizers


class L2:
    """Keras `regularizers.l2(l)`: adds l·Σ w² to the training loss (Keras' convention: no ½)."""

    def __init__(self, l2: float = 0.01):
        if l2 < 0:
            raise ValueError(f"L2 factor must be >= 0, got {l2}")
        self.l2 = float(l2)

    def __call__(self, weight):
        return (weight * weight).sum() * self.l2

    def __repr__(self):
        return f"L2(l2={self.l2})"


class L1:
    """Keras `regularizers.l1(l)`: adds l·Σ |w| to the training loss."""

    def __init__(self, l1: float = 0.01):
        if l1 < 0:
            raise ValueError(f"L1 factor must be >= 0, got {l1}")
        self.l1 = float(l1)

    def __call__(self, weight):
        return weight.abs().sum() * self.l1

    def __repr__(self):
        return f"L1(l1={self.l1})"


def l2(l2: float = 0.01) -> L2:  # noqa: E741 - Keras' name
    return L2(l2)


def l1(l1: float = 0.01) -> L1:  # noqa: E741
    return L1(l1)


# ----------------------------------------------------------------------------- base class


class Layer(Module):
    """Base of the Keras layers: a Module with a name, a lazy `build`, and shape bookkeeping.

    Subclasses implement `build(input_shape) -> output_shape` (shapes without the batch axis)
    and `call(x)`."""

    kind = "layer"  # used for automatic names: dense, dense_1, ...

    def __init__(self, input_shape=None, name=None, rng=None):
        super().__init__()
        self.name = name
        self.rng = rng
        self.built = False
        self.input_spec = tuple(input_shape) if input_shape is not None else None
        self.output_shape = None

    def _generator(self) -> np.random.Generator:
        return resolve(self.rng)

    def build(self, input_shape: tuple) -> tuple:  # pragma: no cover - interface
        raise NotImplementedError

    def _build(self, input_shape) -> tuple:
        input_shape = tuple(int(d) for d in input_shape)
        self.output_shape = tuple(self.build(input_shape))
        self.built_input_shape = input_shape
        self.built = True
        return self.output_shape

    def call(self, x):  # pragma: no cover - interface
        raise NotImplementedError

    def forward(self, x):
        if not self.built:
            self._build(x.shape[1:])
        elif tuple(x.shape[1:]) != self.built_input_shape:
            raise ShapeError(
                f"layer {self.name!r} ({type(self).__name__}) was built for inputs of shape "
                f"{(None,) + self.built_input_shape}, got {(None,) + tuple(x.shape[1:])}"
            )
        return self.call(x)

    def regularization_losses(self):
        """Tensors to add to the training loss (from kernel_regularizer / bias_regularizer)."""
        return []

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def get_weights(self) -> list:
        return [p.data.copy() for p in self.parameters()]

    def set_weights(self, weights) -> None:
        params = list(self.parameters())
        if len(weights) != len(params):
            raise ValueError(f"layer {self.name!r} has {len(params)} weights, got {len(weights)}")
        for p, w in zip(params, weights):
            if tuple(np.shape(w)) != p.shape:
                raise ValueError(f"layer {self.name!r}: weight of shape {p.shape} cannot take {np.shape(w)}")
            p.data[...] = w

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


# ----------------------------------------------------------------------------- Dense


class Dense(Layer):
    """y = activation(x W + b), wrapping `nn.Linear` (which stores Wᵀ, shape (units, in))."""

    kind = "dense"

    def __init__(self, units: int, activation=None, use_bias: bool = True, input_shape=None, input_dim=None,
                 kernel_regularizer=None, bias_regularizer=None, name=None, rng=None):
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        super().__init__(input_shape, name, rng)
        if int(units) <= 0:
            raise ValueError(f"Dense needs a positive number of units, got {units}")
        self.units = int(units)
        self.use_bias = use_bias
        self.activation_name = activation if isinstance(activation, str) or activation is None else repr(activation)
        self.activation = activation_module(activation)
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer

    def build(self, input_shape):
        if len(input_shape) < 1:
            raise ShapeError(f"Dense layer {self.name!r} needs inputs with a feature axis, got shape {(None,) + input_shape}")
        rng = self._generator()
        self.linear = nn.Linear(input_shape[-1], self.units, bias=self.use_bias, rng=rng)
        init.xavier_uniform_(self.linear.weight, generator=rng)  # Keras' glorot_uniform
        if self.use_bias:
            init.zeros_(self.linear.bias)
        if self.activation is not None:  # re-register so the activation follows the linear map
            act = self.activation
            del self.activation
            self.activation = act
        return input_shape[:-1] + (self.units,)

    def call(self, x):
        y = self.linear(x)
        return y if self.activation is None else self.activation(y)

    def regularization_losses(self):
        out = []
        if self.built and self.kernel_regularizer is not None:
            out.append(self.kernel_regularizer(self.linear.weight))
        if self.built and self.use_bias and self.bias_regularizer is not None:
            out.append(self.bias_regularizer(self.linear.bias))
        return out

    def get_weights(self):
        """[kernel (in, units), bias (units,)], Keras' layout."""
        w = [self.linear.weight.data.T.copy()]
        return w + ([self.linear.bias.data.copy()] if self.use_bias else [])

    def set_weights(self, weights):
        super().set_weights([np.asarray(weights[0]).T] + list(weights[1:]))

    def extra_repr(self):
        return f"name={self.name!r}, units={self.units}, activation={self.activation_name!r}"


# ----------------------------------------------------------------------------- convolution and pooling


def _pair(v, what: str) -> tuple:
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"{what} must be an int or a pair, got {v}")
    return v


def _same_padding(size: int, k: int, s: int, who: str) -> int:
    """Keras 'same': out = ⌈size/s⌉, total padding P = max((out−1)·s + k − size, 0), split P//2
    before and P − P//2 after. nn layers pad symmetrically, so P must be even."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    if total % 2:
        raise NotImplementedError(
            f"{who}: padding='same' needs asymmetric padding here (kernel {k}, stride {s}, size {size}); "
            "use an odd kernel size with stride 1, or padding='valid'"
        )
    return total // 2


def _nn_class(name: str):
    cls = getattr(nn, name, None)
    if cls is None:
        raise NotImplementedError(f"tinyopt.nn.{name} is not available in this version of tinyopt")
    return cls


def _accepts(cls, arg: str) -> bool:
    try:
        return arg in inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


class Conv2D(Layer):
    """Keras Conv2D on channels-last images (N, H, W, C), wrapping `nn.Conv2d` (channels first):

        y = activation(transpose_NHWC(conv2d(transpose_NCHW(x), W, b)))

    `padding` is 'valid' (no padding) or 'same' (output size ⌈H/stride⌉)."""

    kind = "conv2d"

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid", activation=None,
                 use_bias: bool = True, input_shape=None, kernel_regularizer=None, name=None, rng=None):
        super().__init__(input_shape, name, rng)
        if int(filters) <= 0:
            raise ValueError(f"Conv2D needs a positive number of filters, got {filters}")
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.use_bias = use_bias
        self.activation_name = activation if isinstance(activation, str) or activation is None else repr(activation)
        self.activation = activation_module(activation)
        self.kernel_regularizer = kernel_regularizer

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(
                f"Conv2D layer {self.name!r} expects channels-last images (None, H, W, C), got {(None,) + input_shape}; "
                "add a channel axis, e.g. x[..., None]"
            )
        h, w, c = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        if self.padding == "same":
            pad = (_same_padding(h, kh, sh, f"Conv2D {self.name!r}"), _same_padding(w, kw, sw, f"Conv2D {self.name!r}"))
        else:
            pad = (0, 0)
        oh, ow = _conv_out(h, kh, sh, pad[0]), _conv_out(w, kw, sw, pad[1])
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"Conv2D layer {self.name!r}: kernel {self.kernel_size} is larger than the input {(None,) + input_shape}")
        Conv2d = _nn_class("Conv2d")
        rng = self._generator()
        kwargs = dict(stride=self.strides, padding=pad, bias=self.use_bias)
        if _accepts(Conv2d, "rng"):
            kwargs["rng"] = rng
        self.conv = Conv2d(c, self.filters, self.kernel_size, **kwargs)
        init.xavier_uniform_(self.conv.weight, generator=rng)
        if self.use_bias:
            init.zeros_(self.conv.bias)
        if self.activation is not None:
            act = self.activation
            del self.activation
            self.activation = act
        return (oh, ow, self.filters)

    def call(self, x):
        y = self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return y if self.activation is None else self.activation(y)

    def regularization_losses(self):
        if self.built and self.kernel_regularizer is not None:
            return [self.kernel_regularizer(self.conv.weight)]
        return []

    def get_weights(self):
        """[kernel (kh, kw, in, filters), bias (filters,)], Keras' layout."""
        w = [self.conv.weight.data.transpose(2, 3, 1, 0).copy()]
        return w + ([self.conv.bias.data.copy()] if self.use_bias else [])

    def set_weights(self, weights):
        super().set_weights([np.asarray(weights[0]).transpose(3, 2, 0, 1)] + list(weights[1:]))

    def extra_repr(self):
        return (f"name={self.name!r}, filters={self.filters}, kernel_size={self.kernel_size}, "
                f"strides={self.strides}, padding={self.padding!r}, activation={self.activation_name!r}")


class MaxPooling2D(Layer):
    """Keras MaxPooling2D on (N, H, W, C), wrapping `nn.MaxPool2d`: each output is the maximum of a
    pool_size window; `strides` defaults to `pool_size`."""

    kind = "max_pooling2d"

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", input_shape=None, name=None):
        super().__init__(input_shape, name)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides, "strides") if strides is not None else self.pool_size
        self.padding = padding

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"MaxPooling2D layer {self.name!r} expects (None, H, W, C), got {(None,) + input_shape}")
        h, w, c = input_shape
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        if self.padding == "same":
            pad = (_same_padding(h, kh, sh, f"MaxPooling2D {self.name!r}"), _same_padding(w, kw, sw, f"MaxPooling2D {self.name!r}"))
        else:
            pad = (0, 0)
        MaxPool2d = _nn_class("MaxPool2d")
        kwargs = dict(stride=self.strides)
        if pad != (0, 0):
            kwargs["padding"] = pad
        self.pool = MaxPool2d(self.pool_size, **kwargs)
        return (_conv_out(h, kh, sh, pad[0]), _conv_out(w, kw, sw, pad[1]), c)

    def call(self, x):
        return self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def extra_repr(self):
        return f"name={self.name!r}, pool_size={self.pool_size}, strides={self.strides}"


# ----------------------------------------------------------------------------- shape-only layers


class Flatten(Layer):
    """(N, d1, d2, ...) → (N, d1·d2·…), in C order (so channels-last images flatten as Keras does)."""

    kind = "flatten"

    def __init__(self, input_shape=None, name=None):
        super().__init__(input_shape, name)

    def build(self, input_shape):
        self.flatten = nn.Flatten()
        return (int(np.prod(input_shape)),)

    def call(self, x):
        return self.flatten(x)


class Dropout(Layer):
    """Inverted dropout (`nn.Dropout`): in training, zero each value with probability `rate` and scale
    the rest by 1/(1 − rate); the identity in evaluation/prediction."""

    kind = "dropout"

    def __init__(self, rate: float, input_shape=None, name=None, rng=None, seed=None):
        super().__init__(input_shape, name, rng if rng is not None else seed)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def build(self, input_shape):
        self.dropout = nn.Dropout(self.rate, rng=self.rng)  # None: the default generator at each call, like nn.Dropout
        return input_shape

    def call(self, x):
        return self.dropout(x)

    def extra_repr(self):
        return f"name={self.name!r}, rate={self.rate}"


class Activation(Layer):
    """Applies an activation by name (Keras `layers.Activation('relu')`)."""

    kind = "activation"

    def __init__(self, activation, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.activation_name = activation
        self.fn = activation_module(activation)

    def build(self, input_shape):
        return input_shape

    def call(self, x):
        return x if self.fn is None else self.fn(x)


class Reshape(Layer):
    """Reshape each sample to `target_shape` (batch axis kept)."""

    kind = "reshape"

    def __init__(self, target_shape, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.target_shape = tuple(int(d) for d in target_shape)

    def build(self, input_shape):
        if int(np.prod(input_shape)) != int(np.prod(self.target_shape)):
            raise ShapeError(f"Reshape layer {self.name!r} cannot reshape {(None,) + input_shape} to {(None,) + self.target_shape}")
        return self.target_shape

    def call(self, x):
        return x.reshape((x.shape[0],) + self.target_shape)


class InputLayer(Layer):
    """Declares the input shape (Keras `layers.Input(shape=...)` / `InputLayer`); does nothing else."""

    kind = "input"

    def __init__(self, shape=None, input_shape=None, name=None):
        super().__init__(shape if shape is not None else input_shape, name)

    def build(self, input_shape):
        return input_shape

    def call(self, x):
        return x


def Input(shape, name=None) -> InputLayer:  # noqa: N802 - Keras' name
    return InputLayer(shape=shape, name=name)


__all__ = [
    "Activation", "Conv2D", "Dense", "Dropout", "Flatten", "Input", "InputLayer", "L1", "L2", "Layer",
    "MaxPooling2D", "Reshape", "l1", "l2",
]

from tinyopt.keras.recurrent import GRU, LSTM, Embedding, SimpleRNN  # noqa: E402 - recurrent layers: keras/recurrent.py
__all__ += ["Embedding", "GRU", "LSTM", "SimpleRNN"]
