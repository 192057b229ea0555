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
omitted) for its initial weights or dropout masks; `kernel_initializer=` / `bias_initializer=`
take a name or a `keras.initializers` object (whose own `seed=` wins over `rng=`).

Weights in Keras' layout. `layer.get_weights()` and `model.get_weights()` return what Keras
returns, so `x @ kernel + bias` reproduces a Dense layer: a Dense kernel is (in, units) (nn.Linear
stores its transpose), a Conv2D kernel (kh, kw, in, filters) (nn.Conv2d stores (filters, in, kh,
kw)), BatchNormalization gives [gamma, beta, moving_mean, moving_variance]. `state_dict()` stays
torch's layout (it is the nn modules' own). `set_weights` checks every array before it changes any.

The functional API. `Input(shape)` returns a symbolic `KerasTensor` (a shape and the layer that
made it, no values); calling a layer on KerasTensors builds the layer for their shapes and returns
a new KerasTensor that remembers the call (`layers.Add()([a, b])` for the merge layers).
`keras.Model(inputs, outputs)` (in `tinyopt.keras.models`) walks these records back from the
outputs and runs the calls in order on real Tensors.

`get_config()` / `from_config(config)` give a JSON-able description of each layer (its
constructor arguments), which `model.save` stores next to the weights.
"""
from __future__ import annotations

import numpy as np

from tinyopt import nn
from tinyopt.functions import cat
from tinyopt.keras import initializers
from tinyopt.nn import functional as F
from tinyopt.keras import trainable as _trainable
from tinyopt.nn import init
from tinyopt.nn.module import Module, ShapeError
from tinyopt.nn.parameter import Parameter
from tinyopt.random import resolve
from tinyopt.tensor import Tensor

# ----------------------------------------------------------------------------- argument checks


def positive_int(value, what: str) -> int:
    """`value` if it is a positive int (a bool, a str such as "10", or 10.0 are refused, not converted)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a positive int, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{what} must be a positive int, got {value}")
    return int(value)


def _flag(value, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def _shape(value, what: str) -> tuple:
    """A sample shape: a tuple of positive ints (an int is a 1-D shape)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{what} must be a tuple of positive ints, got {value!r}")
    return tuple(positive_int(d, f"{what}[{i}]") for i, d in enumerate(value))

# ----------------------------------------------------------------------------- activations

ACTIVATIONS = {
    None: None, "linear": None,
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=-1), "leaky_relu": nn.LeakyReLU,
}


def activation_module(activation):
    """Turn Keras' `activation=` (a name, None, a Module or a callable on Tensors) into a Module or None."""
    if isinstance(activation, type) and issubclass(activation, Module):
        raise TypeError(f"activation must be a name, None, a Module instance or a callable, got the class "
                        f"{activation.__name__}; pass {activation.__name__}()")
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

    def get_config(self):
        return {"l2": self.l2}


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

    def get_config(self):
        return {"l1": self.l1}


def l2(l2: float = 0.01) -> L2:  # noqa: E741 - Keras' name
    return L2(l2)


def l1(l1: float = 0.01) -> L1:  # noqa: E741
    return L1(l1)


_REGULARIZERS = {"L1": L1, "L2": L2}


def regularizer(identifier):
    """None, an L1/L2 object, a name ('l1', 'l2': Keras' default factor 0.01) or a serialized dict."""
    if identifier is None or isinstance(identifier, (L1, L2)):
        return identifier
    if isinstance(identifier, str) and identifier.upper() in _REGULARIZERS:
        return _REGULARIZERS[identifier.upper()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _REGULARIZERS:
        return _REGULARIZERS[identifier["class_name"]](**identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise ValueError(f"unknown regularizer {identifier!r}; use 'l1', 'l2' or keras.regularizers.l1/l2(factor)")


def _serialize(obj, what: str, layer):
    """JSON form of an initializer or a regularizer (None stays None)."""
    if obj is None:
        return None
    if isinstance(obj, initializers.Initializer):
        return initializers.serialize(obj)
    if isinstance(obj, (L1, L2)):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    raise ValueError(f"layer {layer.name!r}: its {what} {obj!r} cannot be saved (only keras initializers, "
                     "l1/l2 regularizers and activation names are); save_weights() saves the weights alone")


# ----------------------------------------------------------------------------- symbolic tensors


class KerasTensor:
    """A symbolic tensor of the functional API: a shape (batch axis None), a dtype, and the call
    that produced it (`layer`, applied to the KerasTensors `inputs`). It holds no values."""

    def __init__(self, shape, dtype: str = "float32", layer=None, inputs=(), name=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.layer = layer
        self.inputs = list(inputs)
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self):
        who = f", produced by {self.layer.name!r}" if self.layer is not None and self.layer.name else ""
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}{who}>"

    def __array__(self, *args, **kwargs):
        raise TypeError("a KerasTensor is symbolic (it has a shape, no values): build a keras.Model(inputs, "
                        "outputs) and call it, or model.predict(x), to compute values")


def _symbolic(x) -> bool:
    return isinstance(x, KerasTensor) or (isinstance(x, (list, tuple)) and any(isinstance(t, KerasTensor) for t in x))


# ----------------------------------------------------------------------------- base class


class Layer(Module):
    """Base of the Keras layers: a Module with a name, a lazy `build`, and shape bookkeeping.

    Subclasses implement `build(input_shape) -> output_shape` (shapes without the batch axis)
    and `call(x)`; `get_config()` returns their constructor arguments."""

    kind = "layer"  # used for automatic names: dense, dense_1, ...
    trainable = _trainable.layer_property  # layer.trainable = False freezes it (tinyopt.keras.trainable)

    def __init__(self, input_shape=None, name=None, rng=None):
        super().__init__()
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            raise ValueError(f"a layer name must be a non-empty string without '.', got {name!r}")
        self.name = name
        self.rng = rng
        self.built = False
        self.input_spec = _shape(input_shape, f"{type(self).__name__} input_shape") if input_shape is not None else None
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
        if not self.trainable:
            _trainable.apply(self)  # weights created after `trainable = False` start frozen
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

    def __call__(self, *args, **kwargs):
        if args and _symbolic(args[0]):
            return self._symbolic_call(args[0])
        return super().__call__(*args, **kwargs)

    def _symbolic_call(self, inputs) -> KerasTensor:
        """Calling a layer on KerasTensors: build it for their shapes, record the call."""
        if isinstance(inputs, (list, tuple)):
            if not all(isinstance(t, KerasTensor) for t in inputs):
                raise TypeError(f"layer {self.name!r}: mix of KerasTensors and other values in {inputs!r}")
            if len(inputs) != 1:
                raise TypeError(f"layer {self.name!r} ({type(self).__name__}) takes one input, got a list of "
                                f"{len(inputs)}; merge them first (layers.Concatenate, layers.Add)")
            inputs = inputs[0]
        shape = inputs.shape[1:]
        if not self.built:
            self._build(shape)
        elif tuple(shape) != self.built_input_shape:
            raise ShapeError(f"layer {self.name!r} ({type(self).__name__}) was built for inputs of shape "
                             f"{(None,) + self.built_input_shape}, got {inputs.shape}")
        return KerasTensor((None,) + tuple(self.output_shape), layer=self, inputs=[inputs])

    def regularization_losses(self):
        """Tensors to add to the training loss (from kernel_regularizer / bias_regularizer)."""
        return []

    @property
    def losses(self) -> list:
        """Keras' `layer.losses`: the regularization penalties, as scalar Tensors of the current weights."""
        return list(self.regularization_losses())

    def count_params(self) -> int:
        """Keras' count: every weight, trainable or not (BatchNormalization's moving statistics too)."""
        return sum(int(np.size(w)) for w in self.get_weights())

    # ------------------------------------------------------------------ weights, Keras' layout
    def _weight_slots(self) -> list:
        """[(name, array stored in the nn module, to_keras, from_keras)] in Keras' order; the
        functions map the stored array to Keras' layout and back (identity by default)."""
        same = (lambda a: a)
        return [(name, p.data, same, same) for name, p in self.named_parameters()]

    def get_weights(self) -> list:
        """Copies of the weights in Keras' layout and order."""
        return [np.array(to_keras(stored)) for _, stored, to_keras, _ in self._weight_slots()]

    def _plan_weights(self, weights) -> list:
        """Check `weights` (a list in Keras' layout) against this layer; return [(target, value)]
        to apply. Changes nothing."""
        slots = self._weight_slots()
        weights = list(weights)
        if len(weights) != len(slots):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) has {len(slots)} weights "
                             f"{[n for n, *_ in slots]}, got {len(weights)}")
        plan = []
        for (name, stored, to_keras, from_keras), w in zip(slots, weights):
            w = np.asarray(w.data if isinstance(w, Tensor) else w)
            if w.dtype.kind not in "fiub":
                raise TypeError(f"layer {self.name!r}: weight {name!r} must be a numeric array, got dtype {w.dtype}")
            expected = np.shape(to_keras(stored))
            if w.shape != expected:
                raise ValueError(f"layer {self.name!r}: weight {name!r} has shape {expected} (Keras' layout), "
                                 f"got {w.shape}")
            plan.append((stored, from_keras(w)))
        return plan

    def set_weights(self, weights) -> None:
        """Set the weights from a list in Keras' layout (as get_weights returns); all are checked first."""
        for target, value in self._plan_weights(weights):
            target[...] = value

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        config = {"name": self.name}
        if self.input_spec is not None:
            config["input_shape"] = list(self.input_spec)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _activation_config(layer) -> str | None:
    if layer.activation_name is None or isinstance(layer.activation_name, str) and layer.activation_name in ACTIVATIONS:
        return layer.activation_name
    raise ValueError(f"layer {layer.name!r}: its activation {layer.activation_name} cannot be saved (only names such "
                     "as 'relu' can); save_weights() saves the weights alone")


def _initial(initializer, shape, rng) -> np.ndarray:
    return initializer(shape, "float32", rng=rng)


# ----------------------------------------------------------------------------- Dense


class Dense(Layer):
    """y = activation(x W + b), wrapping `nn.Linear` (which stores Wᵀ, shape (units, in)).

    W (in, units) is drawn by `kernel_initializer` (Keras' default 'glorot_uniform'), b by
    `bias_initializer` (default 'zeros'), both in Keras' layout."""

    kind = "dense"

    def __init__(self, units: int, activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, input_shape=None,
                 input_dim=None, name=None, rng=None):
        if input_dim is not None and input_shape is None:
            input_shape = (positive_int(input_dim, "Dense input_dim"),)
        super().__init__(input_shape, name, rng)
        self.units = positive_int(units, "Dense units")
        self.use_bias = _flag(use_bias, "Dense use_bias")
        self.activation_name = activation if isinstance(activation, str) or activation is None else repr(activation)
        self.activation = activation_module(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizer(kernel_regularizer)
        self.bias_regularizer = regularizer(bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) < 1:
            raise ShapeError(f"Dense layer {self.name!r} needs inputs with a feature axis, got shape {(None,) + input_shape}")
        rng = self._generator()
        fan_in = input_shape[-1]
        self.linear = nn.Linear(fan_in, self.units, bias=self.use_bias, rng=rng)
        self.linear.weight.data[...] = _initial(self.kernel_initializer, (fan_in, self.units), rng).T
        if self.use_bias:
            self.linear.bias.data[...] = _initial(self.bias_initializer, (self.units,), rng)
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

    def _weight_slots(self):
        """[kernel (in, units), bias (units,)], Keras' layout."""
        if not self.built:
            return []
        slots = [("kernel", self.linear.weight.data, np.transpose, np.transpose)]
        if self.use_bias:
            slots.append(("bias", self.linear.bias.data, lambda a: a, lambda a: a))
        return slots

    def get_config(self):
        return dict(super().get_config(), units=self.units, activation=_activation_config(self),
                    use_bias=self.use_bias,
                    kernel_initializer=_serialize(self.kernel_initializer, "kernel_initializer", self),
                    bias_initializer=_serialize(self.bias_initializer, "bias_initializer", self),
                    kernel_regularizer=_serialize(self.kernel_regularizer, "kernel_regularizer", self),
                    bias_regularizer=_serialize(self.bias_regularizer, "bias_regularizer", self))

    def extra_repr(self):
        return f"name={self.name!r}, units={self.units}, activation={self.activation_name!r}"


# ----------------------------------------------------------------------------- convolution and pooling


def _pair(v, what: str) -> tuple:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (positive_int(v, what),) * 2
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise ValueError(f"{what} must be a positive int or a pair of them, got {v!r}")
    return tuple(positive_int(a, what) for a in v)


def _padding(padding, who: str) -> str:
    if padding not in ("valid", "same"):
        raise ValueError(f"{who} padding must be 'valid' or 'same', got {padding!r}")
    return padding


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


def _conv_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _reregister_activation(layer) -> None:
    if layer.activation is not None:  # re-register so the activation follows the wrapped module
        act = layer.activation
        del layer.activation
        layer.activation = act


class Conv2D(Layer):
    """Keras Conv2D on channels-last images (N, H, W, C), wrapping `nn.Conv2d` (channels first):

        y = activation(transpose_NHWC(conv2d(transpose_NCHW(x), W, b)))

    `padding` is 'valid' (no padding) or 'same' (output size ⌈H/stride⌉). The kernel is drawn in
    Keras' layout (kh, kw, in, filters) by `kernel_initializer` (default 'glorot_uniform')."""

    kind = "conv2d"

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid", activation=None,
                 use_bias: bool = True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, input_shape=None, name=None, rng=None):
        super().__init__(input_shape, name, rng)
        self.filters = positive_int(filters, "Conv2D filters")
        self.kernel_size = _pair(kernel_size, "Conv2D kernel_size")
        self.strides = _pair(strides, "Conv2D strides")
        self.padding = _padding(padding, "Conv2D")
        self.use_bias = _flag(use_bias, "Conv2D use_bias")
        self.activation_name = activation if isinstance(activation, str) or activation is None else repr(activation)
        self.activation = activation_module(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizer(kernel_regularizer)
        self.bias_regularizer = regularizer(bias_regularizer)

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
        rng = self._generator()
        self.conv = nn.Conv2d(c, self.filters, self.kernel_size, stride=self.strides, padding=pad, bias=self.use_bias,
                              rng=rng)
        kernel = _initial(self.kernel_initializer, (kh, kw, c, self.filters), rng)
        self.conv.weight.data[...] = kernel.transpose(3, 2, 0, 1)
        if self.use_bias:
            self.conv.bias.data[...] = _initial(self.bias_initializer, (self.filters,), rng)
        _reregister_activation(self)
        return (oh, ow, self.filters)

    def call(self, x):
        y = self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return y if self.activation is None else self.activation(y)

    def regularization_losses(self):
        out = []
        if self.built and self.kernel_regularizer is not None:
            out.append(self.kernel_regularizer(self.conv.weight))
        if self.built and self.use_bias and self.bias_regularizer is not None:
            out.append(self.bias_regularizer(self.conv.bias))
        return out

    def _weight_slots(self):
        """[kernel (kh, kw, in, filters), bias (filters,)], Keras' layout."""
        if not self.built:
            return []
        slots = [("kernel", self.conv.weight.data, lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))]
        if self.use_bias:
            slots.append(("bias", self.conv.bias.data, lambda a: a, lambda a: a))
        return slots

    def get_config(self):
        return dict(super().get_config(), filters=self.filters, kernel_size=list(self.kernel_size),
                    strides=list(self.strides), padding=self.padding, activation=_activation_config(self),
                    use_bias=self.use_bias,
                    kernel_initializer=_serialize(self.kernel_initializer, "kernel_initializer", self),
                    bias_initializer=_serialize(self.bias_initializer, "bias_initializer", self),
                    kernel_regularizer=_serialize(self.kernel_regularizer, "kernel_regularizer", self),
                    bias_regularizer=_serialize(self.bias_regularizer, "bias_regularizer", self))

    def extra_repr(self):
        return (f"name={self.name!r}, filters={self.filters}, kernel_size={self.kernel_size}, "
                f"strides={self.strides}, padding={self.padding!r}, activation={self.activation_name!r}")


class MaxPooling2D(Layer):
    """Keras MaxPooling2D on (N, H, W, C), wrapping `nn.MaxPool2d`: each output is the maximum of a
    pool_size window; `strides` defaults to `pool_size`."""

    kind = "max_pooling2d"

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.padding = _padding(padding, "MaxPooling2D")
        self.pool_size = _pair(pool_size, "MaxPooling2D pool_size")
        self.strides = _pair(strides, "MaxPooling2D strides") if strides is not None else self.pool_size

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"MaxPooling2D layer {self.name!r} expects (None, H, W, C), got {(None,) + input_shape}")
        h, w, c = input_shape
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        if self.padding == "same":
            pad = (_same_padding(h, kh, sh, f"MaxPooling2D {self.name!r}"), _same_padding(w, kw, sw, f"MaxPooling2D {self.name!r}"))
        else:
            pad = (0, 0)
        oh, ow = _conv_out(h, kh, sh, pad[0]), _conv_out(w, kw, sw, pad[1])
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"MaxPooling2D layer {self.name!r}: pool {self.pool_size} is larger than the input "
                             f"{(None,) + input_shape}")
        kwargs = dict(stride=self.strides)
        if pad != (0, 0):
            kwargs["padding"] = pad
        self.pool = nn.MaxPool2d(self.pool_size, **kwargs)
        return (oh, ow, c)

    def call(self, x):
        return self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def get_config(self):
        return dict(super().get_config(), pool_size=list(self.pool_size), strides=list(self.strides),
                    padding=self.padding)

    def extra_repr(self):
        return f"name={self.name!r}, pool_size={self.pool_size}, strides={self.strides}"


# ----------------------------------------------------------------------------- normalization


class BatchNormalization(Layer):
    """Keras BatchNormalization over the feature axis `axis` (default −1: channels last).

    For each feature c, with the m values of c in the batch (every axis but `axis`):

        training:   μ_B = (1/m) Σ x,   σ²_B = (1/m) Σ (x − μ_B)²      (biased)
                    y = γ (x − μ_B) / √(σ²_B + ε) + β
                    moving_mean     ← momentum · moving_mean     + (1 − momentum) · μ_B
                    moving_variance ← momentum · moving_variance + (1 − momentum) · σ²_B
        inference:  y = γ (x − moving_mean) / √(moving_variance + ε) + β

    Keras' defaults: momentum=0.99, epsilon=1e-3, γ = 1, β = 0, moving_mean = 0, moving_variance = 1.

    Against torch's `nn.BatchNorm2d`: Keras' `momentum` weights the *old* average, torch's the new
    batch, so Keras' 0.99 is torch's `momentum=0.01` (torch = 1 − Keras); torch's default ε is 1e-5;
    torch's running variance takes the unbiased σ²_B · m/(m − 1), Keras 3's the biased σ²_B from
    `ops.moments` (used here; `unbiased_moving_variance=True` gives torch's, which TF-Keras 2's fused
    kernel also used). The normalisation itself is `F.batch_norm`
    (its backward comes out of the chain rule); only the moving averages are updated here.
    A batch with m = 1 gives y = β in training (Keras accepts it; torch refuses it).
    Moving statistics are updated only when `layer.trainable` (Keras' rule, when that attribute
    exists and is False, the layer runs in inference mode)."""

    kind = "batch_normalization"

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 unbiased_moving_variance: bool = False, input_shape=None, name=None):
        super().__init__(input_shape, name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"BatchNormalization axis must be an int, got {axis!r}")
        for what, v in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not np.isfinite(v):
                raise ValueError(f"BatchNormalization {what} must be a finite number, got {v!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1] (Keras: the weight of the old average), "
                             f"got {momentum}")
        if not epsilon > 0:
            raise ValueError(f"BatchNormalization epsilon must be > 0, got {epsilon}")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = _flag(center, "BatchNormalization center"), _flag(scale, "BatchNormalization scale")
        self.unbiased_moving_variance = _flag(unbiased_moving_variance, "unbiased_moving_variance")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        ndim = len(input_shape) + 1
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ShapeError(f"BatchNormalization layer {self.name!r}: axis {self.axis} is not a feature axis of "
                             f"inputs of shape {(None,) + input_shape}")
        self.feature_axis = self.axis % ndim
        c = input_shape[self.feature_axis - 1]
        rng = self._generator()
        if self.scale:
            self.gamma = Parameter(_initial(self.gamma_initializer, (c,), rng))
        if self.center:
            self.beta = Parameter(_initial(self.beta_initializer, (c,), rng))
        self.register_buffer("moving_mean", _initial(self.moving_mean_initializer, (c,), rng))
        self.register_buffer("moving_variance", _initial(self.moving_variance_initializer, (c,), rng))
        return input_shape

    def call(self, x):
        perm = None
        if self.feature_axis != 1:  # F.batch_norm wants the features on axis 1
            perm = [0, self.feature_axis] + [d for d in range(1, x.ndim) if d != self.feature_axis]
            x = x.permute(*perm)
        gamma, beta = getattr(self, "gamma", None), getattr(self, "beta", None)
        if self.training and getattr(self, "trainable", True):
            c = x.shape[1]
            m = x.numel() // c
            if m > 1:
                y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=self.epsilon)
            else:  # x̂ = 0 exactly (x − μ_B = 0); keep the graph so the gradient is the true zero
                y = (x - x.detach()) * (1.0 if gamma is None else gamma.reshape((1, c) + (1,) * (x.ndim - 2)))
                y = y if beta is None else y + beta.reshape((1, c) + (1,) * (x.ndim - 2))
            axes = (0,) + tuple(range(2, x.ndim))
            mean = x.data.mean(axis=axes, dtype=np.float64)
            var = x.data.var(axis=axes, dtype=np.float64)
            if self.unbiased_moving_variance and m > 1:
                var = var * (m / (m - 1))
            self.moving_mean[...] = self.momentum * self.moving_mean + (1 - self.momentum) * mean
            self.moving_variance[...] = self.momentum * self.moving_variance + (1 - self.momentum) * var
        else:
            y = F.batch_norm(x, self.moving_mean, self.moving_variance, gamma, beta, training=False, eps=self.epsilon)
        if perm is not None:
            y = y.permute(*np.argsort(perm).tolist())
        return y

    def _weight_slots(self):
        """[gamma, beta, moving_mean, moving_variance] (those that exist), Keras' order."""
        if not self.built:
            return []
        same = (lambda a: a)
        names = (["gamma"] if self.scale else []) + (["beta"] if self.center else [])
        slots = [(n, getattr(self, n).data, same, same) for n in names]
        return slots + [(n, getattr(self, n), same, same) for n in ("moving_mean", "moving_variance")]

    def get_config(self):
        return dict(super().get_config(), axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
                    center=self.center, scale=self.scale, unbiased_moving_variance=self.unbiased_moving_variance,
                    **{k: _serialize(getattr(self, k), k, self) for k in (
                        "beta_initializer", "gamma_initializer", "moving_mean_initializer",
                        "moving_variance_initializer")})

    def extra_repr(self):
        return f"name={self.name!r}, axis={self.axis}, momentum={self.momentum}, epsilon={self.epsilon}"


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
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def build(self, input_shape):
        self.dropout = nn.Dropout(self.rate, rng=self.rng)  # None: the default generator at each call, like nn.Dropout
        return input_shape

    def call(self, x):
        return self.dropout(x)

    def get_config(self):
        return dict(super().get_config(), rate=self.rate)

    def extra_repr(self):
        return f"name={self.name!r}, rate={self.rate}"


class Activation(Layer):
    """Applies an activation by name (Keras `layers.Activation('relu')`)."""

    kind = "activation"

    def __init__(self, activation, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.activation_name = activation if isinstance(activation, str) or activation is None else repr(activation)
        self.fn = activation_module(activation)

    def build(self, input_shape):
        return input_shape

    def call(self, x):
        return x if self.fn is None else self.fn(x)

    def get_config(self):
        return dict(super().get_config(), activation=_activation_config(self))


class Reshape(Layer):
    """Reshape each sample to `target_shape` (batch axis kept)."""

    kind = "reshape"

    def __init__(self, target_shape, input_shape=None, name=None):
        super().__init__(input_shape, name)
        self.target_shape = _shape(target_shape, "Reshape target_shape")

    def build(self, input_shape):
        if int(np.prod(input_shape)) != int(np.prod(self.target_shape)):
            raise ShapeError(f"Reshape layer {self.name!r} cannot reshape {(None,) + input_shape} to {(None,) + self.target_shape}")
        return self.target_shape

    def call(self, x):
        return x.reshape((x.shape[0],) + self.target_shape)

    def get_config(self):
        return dict(super().get_config(), target_shape=list(self.target_shape))


class InputLayer(Layer):
    """Declares the input shape (Keras `InputLayer`); does nothing else. `Input(shape)` makes one
    and returns its symbolic output."""

    kind = "input_layer"

    def __init__(self, shape=None, input_shape=None, name=None):
        super().__init__(shape if shape is not None else input_shape, name)
        if self.input_spec is None:
            raise ValueError("InputLayer needs shape=, the shape of one sample (without the batch axis)")
        self.output = KerasTensor((None,) + self.input_spec, layer=self, inputs=())
        self._build(self.input_spec)

    def build(self, input_shape):
        return input_shape

    def call(self, x):
        return x

    def get_config(self):
        return {"name": self.name, "shape": list(self.input_spec)}


def Input(shape, name=None, batch_size=None, dtype=None) -> KerasTensor:  # noqa: N802 - Keras' name
    """`keras.Input(shape)`: a symbolic input of samples of `shape` (no batch axis), the start of a
    functional model; `Sequential([keras.Input(shape), ...])` takes it too. float32 only."""
    if dtype not in (None, "float32", np.float32):
        raise NotImplementedError(f"keras.Input(dtype={dtype!r}): tinyopt's Keras models take float32 inputs")
    if batch_size is not None:
        positive_int(batch_size, "Input batch_size")  # accepted, not enforced (Keras only records it)
    return InputLayer(shape=shape, name=name).output


# ----------------------------------------------------------------------------- merge layers


class _Merge(Layer):
    """Base of layers that take a list of inputs (the functional API's branches)."""

    def _symbolic_call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2 or not all(isinstance(t, KerasTensor) for t in inputs):
            raise TypeError(f"{type(self).__name__} layer {self.name!r} takes a list of at least two KerasTensors, "
                            f"got {inputs!r}")
        shapes = [tuple(t.shape[1:]) for t in inputs]
        if not self.built:
            self._build(shapes)
        elif shapes != self.built_input_shape:
            raise ShapeError(f"{type(self).__name__} layer {self.name!r} was built for inputs of shapes "
                             f"{self.built_input_shape}, got {shapes}")
        return KerasTensor((None,) + tuple(self.output_shape), layer=self, inputs=list(inputs))

    def _build(self, input_shapes):
        input_shapes = [tuple(int(d) for d in s) for s in input_shapes]
        self.output_shape = tuple(self.build(input_shapes))
        self.built_input_shape = input_shapes
        self.built = True
        return self.output_shape

    def forward(self, xs):
        if not isinstance(xs, (list, tuple)) or len(xs) < 2:
            raise TypeError(f"{type(self).__name__} layer {self.name!r} takes a list of at least two tensors")
        shapes = [tuple(x.shape[1:]) for x in xs]
        if not self.built:
            self._build(shapes)
        elif shapes != self.built_input_shape:
            raise ShapeError(f"{type(self).__name__} layer {self.name!r} was built for inputs of shapes "
                             f"{self.built_input_shape}, got {shapes}")
        return self.call(list(xs))


class _Elementwise(_Merge):
    def build(self, input_shapes):
        try:
            return tuple(np.broadcast_shapes(*input_shapes))
        except ValueError:
            raise ShapeError(f"{type(self).__name__} layer {self.name!r}: input shapes "
                             f"{[(None,) + s for s in input_shapes]} do not broadcast") from None

    def call(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = self.op(out, x)
        return out


class Add(_Elementwise):
    """y = x₁ + x₂ + … (shapes broadcast, as NumPy's)."""
    kind = "add"

    @staticmethod
    def op(a, b):
        return a + b


class Subtract(_Elementwise):
    """y = x₁ − x₂ (exactly two inputs)."""
    kind = "subtract"

    def build(self, input_shapes):
        if len(input_shapes) != 2:
            raise ValueError(f"Subtract layer {self.name!r} takes exactly two inputs, got {len(input_shapes)}")
        return super().build(input_shapes)

    @staticmethod
    def op(a, b):
        return a - b


class Multiply(_Elementwise):
    """y = x₁ · x₂ · … (elementwise)."""
    kind = "multiply"

    @staticmethod
    def op(a, b):
        return a * b


class Average(_Elementwise):
    """y = (x₁ + … + x_k) / k."""
    kind = "average"

    def call(self, xs):
        return Add.call(self, xs) * (1.0 / len(xs))

    op = staticmethod(Add.op)


class Concatenate(_Merge):
    """Join the inputs along `axis` (default −1, the features); every other axis must agree."""

    kind = "concatenate"

    def __init__(self, axis: int = -1, name=None):
        super().__init__(None, name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Concatenate axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def build(self, input_shapes):
        ndim = len(input_shapes[0]) + 1
        if any(len(s) + 1 != ndim for s in input_shapes) or not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ShapeError(f"Concatenate layer {self.name!r}: cannot join inputs of shapes "
                             f"{[(None,) + s for s in input_shapes]} along axis {self.axis}")
        a = self.axis % ndim - 1
        rest = {s[:a] + s[a + 1:] for s in input_shapes}
        if len(rest) != 1:
            raise ShapeError(f"Concatenate layer {self.name!r}: inputs of shapes {[(None,) + s for s in input_shapes]} "
                             f"differ on an axis other than {self.axis}")
        out = list(input_shapes[0])
        out[a] = sum(s[a] for s in input_shapes)
        return tuple(out)

    def call(self, xs):
        return cat(xs, dim=self.axis)

    def get_config(self):
        return dict(super().get_config(), axis=self.axis)


CLASSES = {cls.__name__: cls for cls in (
    Dense, Conv2D, MaxPooling2D, BatchNormalization, Flatten, Dropout, Activation, Reshape, InputLayer,
    Add, Subtract, Multiply, Average, Concatenate)}


def deserialize(config: dict) -> Layer:
    """A layer from `{"class_name": ..., "config": ...}` (as a saved model stores it)."""
    if not isinstance(config, dict) or set(config) != {"class_name", "config"} or not isinstance(config["config"], dict):
        raise ValueError(f"a layer config is {{'class_name': ..., 'config': {{...}}}}, got {str(config)[:80]}")
    cls = CLASSES.get(config["class_name"])
    if cls is None:
        raise ValueError(f"unknown layer class {config['class_name']!r}; known: {sorted(CLASSES)}")
    return cls.from_config(dict(config["config"]))


def serialize(layer: Layer) -> dict:
    if type(layer).__name__ not in CLASSES:
        raise ValueError(f"layer {layer.name!r} of class {type(layer).__name__} cannot be saved (known layers: "
                         f"{sorted(CLASSES)}); save_weights() saves the weights alone")
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


__all__ = [
    "Activation", "Add", "Average", "BatchNormalization", "Concatenate", "Conv2D", "Dense", "Dropout", "Flatten",
    "Input", "InputLayer", "KerasTensor", "L1", "L2", "Layer", "MaxPooling2D", "Multiply", "Reshape", "Subtract",
    "l1", "l2",
]

from tinyopt.keras.recurrent import GRU, LSTM, Embedding, SimpleRNN  # noqa: E402 - recurrent layers: keras/recurrent.py
__all__ += ["Embedding", "GRU", "LSTM", "SimpleRNN"]
