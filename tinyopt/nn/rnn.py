"""Recurrent layers with torch.nn's names, signatures, parameter layouts and initialisation:
RNN, LSTM, GRU (multi-layer, bidirectional, batch_first, dropout between layers, PackedSequence
input) and the single-step RNNCell, LSTMCell, GRUCell.

A torch state_dict loads unchanged: the parameters are `weight_ih_l{k}` (G·H, I_k),
`weight_hh_l{k}` (G·H, H), `bias_ih_l{k}`, `bias_hh_l{k}` (G·H), with the suffix `_reverse` for
the backward direction, where G·H stacks the gates in torch's order (LSTM: i, f, g, o; GRU: r, z, n)
and I_k is input_size for k = 0 and D·H above it (D = 2 if bidirectional). Every parameter starts
U(−1/√H, 1/√H), drawn in that order from `generator` (or `rng=`, a Generator or an int seed).

The math of each step is in `tinyopt.kernels.recurrent`; the time loop and BPTT in
`tinyopt.ops.recurrent`; these classes only arrange layers, directions and shapes.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from tinyopt.functions import cat, stack
from tinyopt.nn import functional as F
from tinyopt.nn import init
from tinyopt.nn.module import Module, ShapeError
from tinyopt.nn.parameter import Parameter
from tinyopt.nn.utils.rnn import PackedSequence, _padded_sorted
from tinyopt.random import resolve
from tinyopt.tensor import Tensor

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_sizes(input_size, hidden_size, num_layers=1):
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"{name} should be of type int, got: {type(v).__name__}")
    if hidden_size <= 0:
        raise ValueError("hidden_size must be greater than zero")
    if num_layers <= 0:
        raise ValueError("num_layers must be greater than zero")
    if input_size <= 0:
        raise ValueError("input_size must be greater than zero")


def _generator(generator, rng):
    source = generator if generator is not None else rng
    return resolve(source) if source is not None else None


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU (torch's `nn.RNNBase`); `mode` is "RNN_TANH",
    "RNN_RELU", "LSTM" or "GRU"."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, generator=None, rng=None):
        super().__init__()
        _check_sizes(input_size, hidden_size, num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          UserWarning, stacklevel=3)
        if proj_size != 0:
            raise NotImplementedError("LSTM(proj_size=...) (LSTM with projections) is not implemented in tinyopt; "
                                      "use proj_size=0")
        if device not in (None, "cpu"):
            raise ValueError(f"tinyopt runs on the CPU only, got device={device!r}")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.generator = _generator(generator, rng)
        dtype = np.float32 if dtype is None else dtype
        gate = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = "_reverse" if direction == 1 else ""
                shapes = [("weight_ih", (gate, layer_input)), ("weight_hh", (gate, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (gate,)), ("bias_hh", (gate,))]
                for kind, shape in shapes:
                    name = f"{kind}_l{layer}{suffix}"
                    setattr(self, name, Parameter(np.zeros(shape, dtype=dtype)))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ U(−1/√H, 1/√H) (torch's RNNBase.reset_parameters)."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        rng = self.generator if self.generator is not None else resolve(None)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv, generator=rng)

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in self._flat_weights_names if n.endswith(f"_l{k}{s}")]
                for k in range(self.num_layers) for s in (("", "_reverse") if self.bidirectional else ("",))]

    def _layer_params(self, layer: int, direction: int):
        s = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        w_ih, w_hh = getattr(self, "weight_ih" + s), getattr(self, "weight_hh" + s)
        if self.bias:
            return w_ih, w_hh, getattr(self, "bias_ih" + s), getattr(self, "bias_hh" + s)
        return w_ih, w_hh, None, None

    def _run_direction(self, x, state, params, lengths, reverse):
        """One layer, one direction → (output (T, B, H), final state as a tuple)."""
        if self.mode == "LSTM":
            out, h, c = F.lstm_layer(x, state[0], state[1], *params, lengths=lengths, reverse=reverse)
            return out, (h, c)
        if self.mode == "GRU":
            out, h = F.gru_layer(x, state[0], *params, lengths=lengths, reverse=reverse)
        else:
            nonlinearity = "relu" if self.mode == "RNN_RELU" else "tanh"
            out, h = F.rnn_layer(x, state[0], *params, nonlinearity=nonlinearity, lengths=lengths, reverse=reverse)
        return out, (h,)

    def _check_state(self, h, expected):
        if tuple(h.shape) != expected:
            raise ShapeError(f"{self!r}: Expected hidden size {expected}, got {list(h.shape)}")

    def forward(self, input, hx=None):  # noqa: A002 - torch's name
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        if packed:
            x, lengths = _padded_sorted(input)
            batched = True
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{name}: input must be a Tensor or a PackedSequence, got {type(input).__name__}")
            if input.ndim not in (2, 3):
                raise ShapeError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead "
                                 f"(shape {tuple(input.shape)})")
            batched, lengths = input.ndim == 3, None
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"{self!r}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {x.shape[-1]} (input shape {tuple(x.shape)})")
        T, B = x.shape[0], x.shape[1]
        D = 2 if self.bidirectional else 1
        expected = (self.num_layers * D, B, self.hidden_size)
        n_states = 2 if self.mode == "LSTM" else 1
        if hx is None:
            zeros = Tensor(np.zeros(expected, dtype=x.dtype))
            states = (zeros,) * n_states
        else:
            states = tuple(hx) if self.mode == "LSTM" else (hx,)
            if self.mode == "LSTM" and len(states) != 2:
                raise ValueError(f"{name}: hx must be a tuple (h_0, c_0)")
            if not batched:
                for h in states:
                    if h.ndim != 2:
                        raise ShapeError(f"{name}: For unbatched 2-D input, hx should also be 2-D but got "
                                         f"{h.ndim}-D tensor")
                states = tuple(h.unsqueeze(1) for h in states)
            for h in states:
                self._check_state(h, expected)
            if packed and input.sorted_indices is not None:
                states = tuple(h[:, input.sorted_indices.data] for h in states)

        finals = [[] for _ in range(n_states)]
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                out, final = self._run_direction(layer_in, tuple(s[k] for s in states), self._layer_params(layer, d),
                                                  lengths, reverse=d == 1)
                outs.append(out)
                for i, f in enumerate(final):
                    finals[i].append(f)
            layer_in = outs[0] if D == 1 else cat(outs, dim=2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True, generator=self.generator)
        output = layer_in
        final_states = tuple(stack(f, dim=0) for f in finals)

        if packed:
            if input.unsorted_indices is not None:
                final_states = tuple(h[:, input.unsorted_indices.data] for h in final_states)
            valid = np.arange(T)[:, None] < lengths[None, :]
            t_idx, b_idx = np.nonzero(valid)
            output = input._replace(data=output[t_idx, b_idx])
        elif not batched:
            output = output.squeeze(1)
            final_states = tuple(h.squeeze(1) for h in final_states)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (final_states if self.mode == "LSTM" else final_states[0])

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN (torch's nn.RNN). For each layer and time step,

        h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)        (nonlinearity="relu": max(·, 0))

    Seed 003 writes the same cell as h_t = tanh(W · [h_{t−1}, x_t] + b) with one matrix W acting on
    the concatenation [h_{t−1}; x_t]. Split W by columns, W = [W_hh | W_ih] (the first H columns see
    h, the rest see x): then W · [h; x] = W_hh h + W_ih x, and b = b_ih + b_hh. torch keeps the two
    blocks (and two biases) apart so that x W_ihᵀ can be one GEMM over all time steps before the
    recurrence starts (see ops/recurrent.py). `tutorials/09_rnn.py` checks the identity numerically.

    Input (T, B, I) (or (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence); h_0
    (L·D, B, H), zeros when omitted. Returns (output (T, B, D·H): the last layer's h_t for every t,
    h_n (L·D, B, H): every layer's final h). With dropout p > 0, the output of every layer but the
    last goes through dropout (masks from `generator`) in training mode.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, generator=None, rng=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype, generator=generator, rng=rng)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997; torch's nn.LSTM, gate order i, f, g, o):

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t−1} + b_hi)      input gate
        f_t = σ(W_if x_t + b_if + W_hf h_{t−1} + b_hf)      forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t−1} + b_hg)   candidate cell
        o_t = σ(W_io x_t + b_io + W_ho h_{t−1} + b_ho)      output gate
        c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)

    weight_ih_l{k} = [W_ii; W_if; W_ig; W_io] (4H, I_k), weight_hh_l{k} likewise (4H, H). The cell
    path c_{t−1} → c_t is multiplied only by f_t (no matrix, no squashing), so the gradient through
    time does not vanish while the forget gate stays open. Keras orders the same gates i, f, c, o
    with kernels transposed (layers.LSTM converts). Returns (output, (h_n, c_n)); hx = (h_0, c_0).
    proj_size is not implemented (refused).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, generator=None, rng=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, generator=generator, rng=rng)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014; torch's nn.GRU, gate order r, z, n):

        r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)           reset gate
        z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)           update gate
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn)) candidate
        h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}

    b_hn sits inside r_t ⊙ (…), so the two biases are not interchangeable (torch's and Keras'
    `reset_after=True` convention; the original paper applies r before the product: r ⊙ h).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, generator=None, rng=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype, generator=generator, rng=rng)


class RNNCellBase(Module):
    """One time step of RNN / LSTM / GRU, torch's parameter names weight_ih, weight_hh, bias_ih,
    bias_hh (no layer suffix), init U(−1/√H, 1/√H). Input (B, I) or unbatched (I,)."""

    mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, num_chunks: int = 1,
                 device=None, dtype=None, *, generator=None, rng=None):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        if device not in (None, "cpu"):
            raise ValueError(f"tinyopt runs on the CPU only, got device={device!r}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        dtype = np.float32 if dtype is None else dtype
        self.weight_ih = Parameter(np.zeros((num_chunks * hidden_size, input_size), dtype=dtype))
        self.weight_hh = Parameter(np.zeros((num_chunks * hidden_size, hidden_size), dtype=dtype))
        if bias:
            self.bias_ih = Parameter(np.zeros(num_chunks * hidden_size, dtype=dtype))
            self.bias_hh = Parameter(np.zeros(num_chunks * hidden_size, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.generator = _generator(generator, rng)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        rng = self.generator if self.generator is not None else resolve(None)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv, generator=rng)

    def _prepare(self, input, hx, n_states):  # noqa: A002
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ShapeError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead "
                             f"(shape {tuple(input.shape)})")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{self!r}: input has inconsistent input_size: got {input.shape[-1]} expected "
                             f"{self.input_size} (input shape {tuple(input.shape)})")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        B = x.shape[0]
        if hx is None:
            states = (Tensor(np.zeros((B, self.hidden_size), dtype=x.dtype)),) * n_states
        else:
            states = tuple(hx) if n_states == 2 else (hx,)
            states = tuple(h if batched else h.unsqueeze(0) for h in states)
            for h in states:
                if tuple(h.shape) != (B, self.hidden_size):
                    raise ShapeError(f"{self!r}: hidden of shape {tuple(h.shape)} does not match "
                                     f"{(B, self.hidden_size)}")
        return x.unsqueeze(0), states, batched

    def _params(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu); returns h' (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None, *, generator=None, rng=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Invalid nonlinearity selected for RNN. Can be either ``tanh`` or ``relu``, "
                             f"got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype, generator=generator, rng=rng)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):  # noqa: A002
        x, (h,), batched = self._prepare(input, hx, 1)
        _, h = F.rnn_layer(x, h, *self._params(), nonlinearity=self.nonlinearity)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (equations in nn.LSTM): (h', c') from x and (h, c)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 generator=None, rng=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype, generator=generator, rng=rng)

    def forward(self, input, hx=None):  # noqa: A002
        x, (h, c), batched = self._prepare(input, hx, 2)
        _, h, c = F.lstm_layer(x, h, c, *self._params())
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (equations in nn.GRU): h' from x and h."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 generator=None, rng=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype, generator=generator, rng=rng)

    def forward(self, input, hx=None):  # noqa: A002
        x, (h,), batched = self._prepare(input, hx, 1)
        _, h = F.gru_layer(x, h, *self._params())
        return h if batched else h.squeeze(0)


__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]
