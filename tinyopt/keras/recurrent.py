"""Keras recurrent layers — SimpleRNN, LSTM, GRU — and Embedding, wrapping tinyopt.nn's layers.

Keras and torch compute the same cells; they differ in layout and defaults, and only that is here:

* **Batch first.** Keras sequences are (batch, timesteps, features): the wrapped nn layer runs with
  batch_first=True. `return_sequences=False` (Keras' default) returns only the last output
  (batch, units); `return_state=True` returns [output, h_T] ([output, h_T, c_T] for the LSTM).
* **Weights.** `get_weights()` gives Keras' arrays: kernel (input_dim, G·units) = W_ihᵀ,
  recurrent_kernel (units, G·units) = W_hhᵀ, and one bias. The gate blocks are in Keras' order:
  SimpleRNN one block; LSTM i, f, c, o (torch's i, f, g, o: the same order, c ≡ g); GRU z, r, h
  (torch's r, z, n: the first two blocks swap). Keras' SimpleRNN and LSTM have ONE bias (G·units,),
  so the wrapped layer's bias_hh is held at 0 and frozen (training it too would give the sum
  b_ih + b_hh twice the gradient step of Keras' single bias). Keras' GRU (reset_after=True, its
  default) has two, bias (2, 3·units) = [b_ih; b_hh], exactly torch's pair.
* **Initialisers (Keras' defaults).** kernel glorot_uniform U(−√(6/(fan_in+fan_out)), …) on the
  (input_dim, G·units) matrix, recurrent_kernel orthogonal, bias zeros — with the LSTM's forget-gate
  block at 1 (unit_forget_bias=True).

Embedding: Keras' `layers.Embedding(input_dim, output_dim)`, initialised U(−0.05, 0.05) (Keras'
"uniform"), on top of nn.Embedding; float inputs holding integers are accepted (Keras casts them).
"""
from __future__ import annotations

import numpy as np

from tinyopt import nn
from tinyopt.keras.layers import Layer
from tinyopt.nn import init
from tinyopt.nn.module import ShapeError
from tinyopt.tensor import Tensor

# Keras gate blocks, listed by the torch block each one is (torch order: RNN [h]; LSTM [i, f, g, o];
# GRU [r, z, n]). Keras GRU is [z, r, h] = torch blocks [1, 0, 2].
_KERAS_BLOCKS = {"SimpleRNN": [0], "LSTM": [0, 1, 2, 3], "GRU": [1, 0, 2]}


def orthogonal(shape, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """Keras' Orthogonal initialiser: QR of a standard normal (max(r, c), min(r, c)) matrix, the
    signs of diag(R) folded into Q so the result is uniformly distributed, transposed to (r, c)."""
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


def _glorot(shape, rng: np.random.Generator) -> np.ndarray:
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape)


class _Recurrent(Layer):
    """Shared part of SimpleRNN / LSTM / GRU (subclasses set `kind`, `gates`, `nn_class`)."""

    gates = 1
    keras_name = "SimpleRNN"

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", use_bias: bool = True,
                 return_sequences: bool = False, return_state: bool = False, go_backwards: bool = False,
                 input_shape=None, name=None, rng=None, **kwargs):
        super().__init__(input_shape, name, rng)
        if isinstance(units, bool) or int(units) != units or int(units) <= 0:
            raise ValueError(f"{self.keras_name} needs a positive integer number of units, got {units}")
        unsupported = {k: v for k, v in kwargs.items() if v not in (None, 0, 0.0, False)}
        if unsupported:
            raise NotImplementedError(f"{self.keras_name}: options {sorted(unsupported)} are not implemented in tinyopt")
        self.units, self.use_bias = int(units), bool(use_bias)
        self.return_sequences, self.return_state, self.go_backwards = return_sequences, return_state, go_backwards
        self.activation_name, self.recurrent_activation_name = activation, recurrent_activation
        self._check_activations(activation, recurrent_activation)

    def _check_activations(self, activation, recurrent_activation):
        if activation != "tanh":
            raise NotImplementedError(f"{self.keras_name}: only activation='tanh' is implemented, got {activation!r}")
        if recurrent_activation != "sigmoid":
            raise NotImplementedError(f"{self.keras_name}: only recurrent_activation='sigmoid' is implemented, "
                                      f"got {recurrent_activation!r}")

    def _make(self, input_dim: int):  # pragma: no cover - interface
        raise NotImplementedError

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"{self.keras_name} layer {self.name!r} expects inputs of shape (batch, timesteps, "
                             f"features), got {(None,) + tuple(input_shape)}")
        self.rnn = self._make(input_shape[-1])
        rng = self._generator()
        G, U = self.gates, self.units
        kernel = _glorot((input_shape[-1], G * U), rng)
        recurrent = orthogonal((U, G * U), rng)
        weights = [kernel, recurrent]
        if self.use_bias:
            weights.append(self._initial_bias())
        self.set_weights([w.astype(np.float32) for w in weights])
        return (input_shape[0], U) if self.return_sequences else (U,)

    def _initial_bias(self):
        return np.zeros(self.gates * self.units)

    def call(self, x):
        if self.go_backwards:
            x = x.flip(1)
        out, state = self.rnn(x)
        states = list(state) if isinstance(state, tuple) else [state]
        states = [s[0] for s in states]   # (1, B, U) → (B, U)
        y = out if self.return_sequences else out[:, -1]
        return [y] + states if self.return_state else y

    # Keras' layout: blocks reordered and transposed -------------------------------------------
    def _to_keras(self, w: np.ndarray) -> np.ndarray:
        """torch (G·U, …) stacked blocks → the same blocks in Keras order, transposed to (…, G·U)."""
        U = self.units
        blocks = [w[k * U:(k + 1) * U] for k in _KERAS_BLOCKS[self.keras_name]]
        return np.concatenate(blocks, axis=0).T.copy()

    def _from_keras(self, w: np.ndarray) -> np.ndarray:
        U = self.units
        w = np.asarray(w).T
        order = _KERAS_BLOCKS[self.keras_name]
        blocks = [None] * len(order)
        for position, k in enumerate(order):
            blocks[k] = w[position * U:(position + 1) * U]
        return np.concatenate(blocks, axis=0)

    def _keras_shapes(self):
        G, U = self.gates, self.units
        shapes = [(self.rnn.input_size, G * U), (U, G * U)]
        if self.use_bias:
            shapes.append((G * U,))
        return shapes

    def get_weights(self) -> list:
        """[kernel (input_dim, G·units), recurrent_kernel (units, G·units), bias], Keras' layout."""
        r = self.rnn
        out = [self._to_keras(r.weight_ih_l0.data), self._to_keras(r.weight_hh_l0.data)]
        if self.use_bias:
            out.append(self._to_keras((r.bias_ih_l0.data + r.bias_hh_l0.data)[:, None]).reshape(-1))
        return out

    def set_weights(self, weights) -> None:
        """Validates every array against Keras' shapes first, then writes them all."""
        shapes = self._keras_shapes()
        if len(weights) != len(shapes):
            raise ValueError(f"layer {self.name!r} has {len(shapes)} weights, got {len(weights)}")
        for w, s in zip(weights, shapes):
            if tuple(np.shape(w)) != s:
                raise ValueError(f"layer {self.name!r}: weight of shape {s} cannot take {np.shape(w)}")
        r = self.rnn
        r.weight_ih_l0.data[...] = self._from_keras(weights[0])
        r.weight_hh_l0.data[...] = self._from_keras(weights[1])
        if self.use_bias:
            r.bias_ih_l0.data[...] = self._from_keras(np.asarray(weights[2])[None, :]).reshape(-1)
            r.bias_hh_l0.data[...] = 0

    def count_params(self) -> int:
        return sum(int(np.prod(s)) for s in self._keras_shapes())

    def _nn_kwargs(self):
        return dict(bias=self.use_bias, batch_first=True)

    def _freeze_hh_bias(self, rnn):
        if self.use_bias:
            rnn.bias_hh_l0.data[...] = 0
            rnn.bias_hh_l0.requires_grad = False   # Keras has one bias: b_hh stays 0
        return rnn

    def extra_repr(self):
        return (f"name={self.name!r}, units={self.units}, return_sequences={self.return_sequences}, "
                f"return_state={self.return_state}")


class SimpleRNN(_Recurrent):
    """Keras SimpleRNN: h_t = activation(x_t K + h_{t−1} R + b), activation "tanh" or "relu"
    (K = kernel, R = recurrent_kernel; nn.RNN with W_ih = Kᵀ, W_hh = Rᵀ)."""

    kind = "simple_rnn"
    keras_name = "SimpleRNN"
    gates = 1

    def _check_activations(self, activation, recurrent_activation):
        if activation not in ("tanh", "relu"):
            raise NotImplementedError(f"SimpleRNN: activation must be 'tanh' or 'relu' in tinyopt, got {activation!r}")

    def _make(self, input_dim):
        return self._freeze_hh_bias(nn.RNN(input_dim, self.units, nonlinearity=self.activation_name,
                                           **self._nn_kwargs()))


class LSTM(_Recurrent):
    """Keras LSTM (gates i, f, c, o; equations in nn.LSTM). unit_forget_bias=True starts the forget
    gate's bias at 1, so f ≈ σ(1) ≈ 0.73 and the cell state is kept early in training."""

    kind = "lstm"
    keras_name = "LSTM"
    gates = 4

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", use_bias: bool = True,
                 unit_forget_bias: bool = True, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, input_shape=None, name=None, rng=None, **kwargs):
        super().__init__(units, activation, recurrent_activation, use_bias, return_sequences, return_state,
                         go_backwards, input_shape, name, rng, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    def _initial_bias(self):
        b = np.zeros(4 * self.units)
        if self.unit_forget_bias:
            b[self.units:2 * self.units] = 1.0
        return b

    def _make(self, input_dim):
        return self._freeze_hh_bias(nn.LSTM(input_dim, self.units, **self._nn_kwargs()))


class GRU(_Recurrent):
    """Keras GRU with reset_after=True (its default, and torch's formula; equations in nn.GRU).
    Keras orders the gates z, r, h; bias is (2, 3·units) = [input bias; recurrent bias]."""

    kind = "gru"
    keras_name = "GRU"
    gates = 3

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", use_bias: bool = True,
                 return_sequences: bool = False, return_state: bool = False, go_backwards: bool = False,
                 reset_after: bool = True, input_shape=None, name=None, rng=None, **kwargs):
        if not reset_after:
            raise NotImplementedError("GRU(reset_after=False) (the GRU of Cho et al., r applied before W_hh) is not "
                                      "implemented; tinyopt's GRU is torch's, which is Keras' reset_after=True")
        super().__init__(units, activation, recurrent_activation, use_bias, return_sequences, return_state,
                         go_backwards, input_shape, name, rng, **kwargs)
        self.reset_after = True

    def _initial_bias(self):
        return np.zeros((2, 3 * self.units))

    def _make(self, input_dim):
        return nn.GRU(input_dim, self.units, **self._nn_kwargs())

    def _keras_shapes(self):
        shapes = super()._keras_shapes()
        if self.use_bias:
            shapes[2] = (2, 3 * self.units)
        return shapes

    def get_weights(self) -> list:
        r = self.rnn
        out = [self._to_keras(r.weight_ih_l0.data), self._to_keras(r.weight_hh_l0.data)]
        if self.use_bias:
            out.append(np.stack([self._to_keras(r.bias_ih_l0.data[:, None]).reshape(-1),
                                 self._to_keras(r.bias_hh_l0.data[:, None]).reshape(-1)]))
        return out

    def set_weights(self, weights) -> None:
        shapes = self._keras_shapes()
        if len(weights) != len(shapes):
            raise ValueError(f"layer {self.name!r} has {len(shapes)} weights, got {len(weights)}")
        for w, s in zip(weights, shapes):
            if tuple(np.shape(w)) != s:
                raise ValueError(f"layer {self.name!r}: weight of shape {s} cannot take {np.shape(w)}")
        r = self.rnn
        r.weight_ih_l0.data[...] = self._from_keras(weights[0])
        r.weight_hh_l0.data[...] = self._from_keras(weights[1])
        if self.use_bias:
            b = np.asarray(weights[2])
            r.bias_ih_l0.data[...] = self._from_keras(b[0][None, :]).reshape(-1)
            r.bias_hh_l0.data[...] = self._from_keras(b[1][None, :]).reshape(-1)


class Embedding(Layer):
    """Keras Embedding: integer indices (batch, …) → vectors (batch, …, output_dim), wrapping
    nn.Embedding; weights [embeddings (input_dim, output_dim)] start U(−0.05, 0.05)."""

    kind = "embedding"

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = False, input_length=None,
                 input_shape=None, name=None, rng=None, **kwargs):
        if input_shape is None and input_length is not None:
            input_shape = (int(input_length),)
        super().__init__(input_shape, name, rng)
        if mask_zero:
            raise NotImplementedError("Embedding(mask_zero=True): masks are not implemented in tinyopt; pad and "
                                      "pack the sequences with tinyopt.nn.utils.rnn instead")
        unsupported = {k: v for k, v in kwargs.items() if v is not None}
        if unsupported:
            raise NotImplementedError(f"Embedding: options {sorted(unsupported)} are not implemented in tinyopt")
        if int(input_dim) <= 0 or int(output_dim) <= 0:
            raise ValueError(f"Embedding needs positive input_dim and output_dim, got {input_dim}, {output_dim}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)

    def build(self, input_shape):
        self.embedding = nn.Embedding(self.input_dim, self.output_dim)
        init.uniform_(self.embedding.weight, -0.05, 0.05, generator=self._generator())
        return tuple(input_shape) + (self.output_dim,)

    def call(self, x):
        idx = x.data if isinstance(x, Tensor) else np.asarray(x)
        if not np.issubdtype(idx.dtype, np.integer):
            if not np.all(idx == np.round(idx)):
                raise ValueError(f"Embedding layer {self.name!r} needs integer indices, got non-integer values")
            idx = idx.astype(np.int64)
        return self.embedding(idx)

    def extra_repr(self):
        return f"name={self.name!r}, input_dim={self.input_dim}, output_dim={self.output_dim}"


__all__ = ["GRU", "LSTM", "Embedding", "SimpleRNN", "orthogonal"]
