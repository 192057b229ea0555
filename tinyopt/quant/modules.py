"""Quantized layers that run integer-only, and the fused float layers they are made from.

Integer-only Linear / Conv2d (Jacob et al. 2018, §2.2-2.4).  With input x ≈ S_x (q_x − Z_x),
symmetric per-channel weights W ≈ S_w[o] q_w (Z_w = 0) and output y ≈ S_y (q_y − Z_y):

    acc[o]  = Σ_k (q_x[k] − Z_x) · q_w[o, k]  +  b_q[o]                       int32
            = Σ_k q_x[k] q_w[o, k]  −  Z_x Σ_k q_w[o, k]  +  b_q[o]           (int8 × int8 matmul kernel)
    b_q[o]  = round(b[o] / (S_x S_w[o]))                                      bias in int32, scale S_x S_w[o]
    M[o]    = S_x S_w[o] / S_y  =  M0[o] · 2⁻³¹ · 2⁻ⁿ⁽ᵒ⁾,  M0 ∈ [2³⁰, 2³¹)     fixed-point multiplier
    q_y[o]  = clamp(Z_y + requantize(acc[o]; M0[o], n[o]), q_lo, q_hi)       `kernels.fixed_point`

A fused ReLU is the clamp's lower bound q_lo = max(q_min, Z_y) (real 0 is the integer Z_y).
For a convolution, padding uses the value Z_x (real 0), and the sum runs over (c, i, j).
Activations between quantized layers travel as `QActivation`s (int8 data + S, Z); max pooling,
flatten, ReLU and dropout act on the integers directly (`QuantMaxPool2d`, ...), so a CNN runs
from the first quantize to the final logits without float arithmetic in the data path.  A
`QActivation` is also a Tensor whose `.data` is the dequantized float array, computed on first
use, so any float module or loss can consume it.

Activations are int8 (q ∈ [−128, 127]).  A quint8 observer's (S, Z) become int8 by Z ← Z − 128
(and q ← q − 128): the same reals, the int8 kernel's operand type.
"""
from __future__ import annotations

import numpy as np

from tinyopt.kernels import affine_u8 as KA
from tinyopt.kernels import conv_input_u8 as KI
from tinyopt.kernels import conv_int8 as KC
from tinyopt.kernels import gemm_u8s8 as KU
from tinyopt.kernels import linear_int8 as KL
from tinyopt.kernels import fixed_point as KR
from tinyopt.nn import functional as F
from tinyopt.nn.conv import Conv2d
from tinyopt.nn.linear import Linear
from tinyopt.nn.module import Module, ShapeError
from tinyopt.quant.affine import QTensor, quantize_array
from tinyopt.tensor import Tensor

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ----------------------------------------------------------------------------- fused float modules


class LinearReLU(Module):
    """Linear followed by ReLU, one module (torch.ao.nn.intrinsic.LinearReLU)."""

    def __init__(self, linear: Linear, relu=None):
        super().__init__()
        self.linear = linear

    def forward(self, x):
        return F.relu(self.linear(x))


class ConvReLU2d(Module):
    """Conv2d followed by ReLU, one module (torch.ao.nn.intrinsic.ConvReLU2d)."""

    def __init__(self, conv: Conv2d, relu=None):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return F.relu(self.conv(x))


def base_layer(module):
    """(the Linear/Conv2d inside, whether a ReLU is fused)."""
    if isinstance(module, LinearReLU):
        return module.linear, True
    if isinstance(module, ConvReLU2d):
        return module.conv, True
    return module, False


# ----------------------------------------------------------------------------- quantized activations


class QActivation(Tensor):
    """int8 activations q with their (S, Z); `.data` is S (q − Z) in float32, computed when asked.

    A Tensor without a graph (quantized inference records none): its autograd state is set up by
    Tensor's own hook for subclasses that build `.data` themselves (`_init_graph_fields`); nothing
    here touches Tensor's fields."""

    def __init__(self, q: np.ndarray | None, scale: float, zero_point: int):
        self._q = q
        self.scale = float(scale)
        self.zero_point = int(zero_point)
        self._dequantized = None
        self._init_graph_fields()

    @property
    def q(self) -> np.ndarray:
        return self._q

    @property
    def data(self):
        if self._dequantized is None:
            self._dequantized = ((self.q.astype(np.int32) - self.zero_point).astype(np.float32)
                                 * np.float32(self.scale))
        return self._dequantized

    @data.setter
    def data(self, value):  # pragma: no cover - Tensor API compatibility
        self._dequantized = np.asarray(value)

    @property
    def shape(self):
        return self.q.shape

    @property
    def ndim(self):
        return self.q.ndim

    def __repr__(self):
        return f"QActivation(shape={self.q.shape}, scale={self.scale:.6g}, zero_point={self.zero_point})"


class ConvQActivation(QActivation):
    """A QuantConv2d's output, computed when first used: int8 [N, O, Ho, Wo] from its int8 input.

    `.q` runs the convolution (int32 accumulators) and requantizes.  A following `QuantMaxPool2d`
    with non-overlapping k×k windows instead calls `pooled(k)`, which takes the max of the
    accumulators and requantizes once per window — the same integers (requantization is
    non-decreasing, so it commutes with max), k² times fewer requantizations and no int8
    intermediate; for a stride-1 convolution on a VNNI CPU the convolution, the max and the
    requantization run image by image in one kernel (`kernels.conv_int8.conv2d_requant_pool`)."""

    def __init__(self, layer, q_x, s_x, z_x):
        super().__init__(None, layer.scale, layer.zero_point)      # q: computed on first use
        self._layer, self._q_x, self._s_x, self._z_x = layer, q_x, s_x, z_x

    @property
    def q(self):
        if self._q is None:
            q_x = self._q_x.int8() if isinstance(self._q_x, KI.PaddedU8) else self._q_x
            acc = self._layer.conv_acc(q_x, self._z_x)
            self._q = self._layer.requantize_acc(acc, self._s_x, self._z_x)
            self._q_x = None
        return self._q

    def pooled(self, k: int) -> QActivation:
        if self._q is not None:
            return QActivation(KC.max_pool2d_int8(self._q, k), self.scale, self.zero_point)
        q = self._layer.conv_requantize_pool(self._q_x, self._s_x, self._z_x, k)
        return QActivation(q, self.scale, self.zero_point)

    @property
    def shape(self):
        if self._q is not None:
            return self._q.shape
        kh, kw = self._layer.kernel_size
        ho, wo = KC.conv_output_size(self._q_x.shape[2], self._q_x.shape[3], kh, kw, self._layer.stride,
                                     self._layer.padding)
        return (self._q_x.shape[0], self._layer.out_channels, ho, wo)

    @property
    def ndim(self):
        return 4


def activation_qparams(observer):
    """(S, Z, q_min, q_max) of an activation observer, moved to int8 if it was quint8."""
    scale, zp = observer.calculate_qparams()
    scale, zp = float(scale[0]), int(zp[0])
    qmin, qmax = observer.quant_min, observer.quant_max
    if not observer.dtype.signed:
        zp, qmin, qmax = zp - 128, qmin - 128, qmax - 128
    if qmin < -128 or qmax > 127:
        raise ValueError(f"activation range [{qmin}, {qmax}] does not fit int8")
    return scale, zp, qmin, qmax


def quantize_input(x, scale, zero_point, qmin=-128, qmax=127):
    """A float Tensor → int8 q = clamp(round(x/S + Z)); a QActivation passes through as (q, S, Z)."""
    if isinstance(x, QActivation):
        return x.q, x.scale, x.zero_point
    arr = x.data if isinstance(x, Tensor) else np.asarray(x)
    q, finite = KA.quantize_i8(arr, scale, zero_point, qmin, qmax)  # one pass (quantize_array's arithmetic)
    if not finite:
        raise ValueError("cannot quantize an input that contains NaN or Inf")
    return q, scale, zero_point


def int8_times_weight(q_x: np.ndarray, qmin: int, qmax: int, packed_w) -> np.ndarray:
    """Σ_k q_x[i, k] · W[o, k] (int32, exact) for int8 activations known to lie in [qmin, qmax], by the
    u8 × s8 kernel (`kernels.gemm_u8s8`): u = q_x − qmin ∈ [0, qmax − qmin] is unsigned, and

        Σ_k q_x w = Σ_k u w + qmin · Σ_k w

    When the activation range spans at most 128 values (7 bits: `reduce_range=True` in the qconfig,
    like torch's) u ≤ 127 and `vpmaddubsw` is exact on any AVX2 CPU; a full 8-bit range uses VNNI
    where the CPU has it, else the exact int16 kernel.  The quantization config chooses: nothing
    else does."""
    q = np.ascontiguousarray(q_x)
    if qmin == -128:
        u = q.view(np.uint8) ^ np.uint8(0x80)                     # q + 128: flip the sign bit
    else:
        u = (q.astype(np.int16) - np.int16(qmin)).astype(np.uint8)
    raw = KU.matmul_u8s8(u, packed_w, seven_bit=qmax - qmin <= 127)
    if qmin:
        raw += (qmin * packed_w.col_sum).astype(np.int32)
    return raw


# ----------------------------------------------------------------------------- integer-only layers


class _QuantLayer(Module):
    """Shared by QuantLinear and QuantConv2d: weights, bias, qparams and the requantization."""

    def _setup(self, w_q: np.ndarray, w_scale: np.ndarray, weight_qdtype, bias, in_qparams, out_qparams, relu, name):
        self.name = name
        self.weight_q = QTensor(w_q, w_scale, np.zeros(w_scale.size, np.int64), weight_qdtype, axis=0)
        self.w_int8 = np.ascontiguousarray(w_q.astype(np.int8))     # compute copy (low-bit values unpacked)
        self.w_scale = np.asarray(w_scale, np.float64)
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        self.w_sum = self.w_int8.reshape(self.w_int8.shape[0], -1).astype(np.int64).sum(axis=1)
        self.input_scale, self.input_zero_point, self.input_qmin, self.input_qmax = in_qparams
        self.scale, self.zero_point, qmin, qmax = out_qparams
        self.relu = bool(relu)
        self.out_qmin = max(qmin, self.zero_point) if self.relu else qmin
        self.out_qmax = qmax
        self._cache = {}
        self.float_output = False     # True: return S_x S_w[o] · acc[o] as float (the model's last layer)

    def _float_from_acc(self, acc: np.ndarray, s_x, z_x) -> np.ndarray:
        """Dequantize straight from the int32 accumulators: y[o] = S_x S_w[o] (acc[o] + b_q[o] − Z_x Σ q_w).

        Used for the model's output (logits): requantizing them to int8 first would round close
        logits onto the same level and turn their order into ties."""
        offset, _, _, _ = self.requant_params(s_x, z_x)
        return ((acc.astype(np.int64) + offset) * (s_x * self.w_scale)).astype(np.float32)

    def requant_params(self, s_x: float, z_x: int):
        """(b_q − Z_x Σ q_w as int64 [O], M0 [O], n [O]) for input scale S_x and zero point Z_x."""
        key = (s_x, z_x)
        if key not in self._cache:
            acc_scale = s_x * self.w_scale                              # S_x S_w[o]
            if self.bias is None:
                b_q = np.zeros(self.w_scale.size, np.int64)
            else:
                b_q = np.clip(np.rint(self.bias / acc_scale), INT32_MIN, INT32_MAX).astype(np.int64)
            offset = b_q - z_x * self.w_sum
            m0, n = KR.quantize_multiplier(acc_scale / self.scale)      # M = S_x S_w / S_y
            channels = self.w_int8.shape[0]                             # per output channel, as the kernels take them
            self._cache[key] = (KR.per_channel(offset, channels), KR.per_channel(m0, channels),
                                KR.per_channel(n, channels), b_q)
        return self._cache[key]

    def _requantize(self, acc: np.ndarray, s_x, z_x) -> np.ndarray:
        """int32 accumulators, channels last → int8 outputs (offset b_q − Z_x Σ q_w added inside)."""
        offset, m0, n, _ = self.requant_params(s_x, z_x)
        return KR.requantize(acc, m0, n, self.zero_point, self.out_qmin, self.out_qmax, axis=-1,
                             out_dtype=np.int8, offset=offset)

    def weight_nbytes(self) -> int:
        """Stored weight bytes (packed for < 8 bits) + int32 bias + per-channel scales."""
        bias_bytes = 0 if self.bias is None else 4 * self.bias.size
        return self.weight_q.nbytes + bias_bytes + self.weight_q.qparams_nbytes + 16


def requantization_steps(layer, raw_acc, x_vals, w_vals, s_x, z_x, o) -> dict:
    """Every stage of one output element of an integer-only layer (QuantLinear or QuantConv2d):
    the raw Σ q_x·q_w `raw_acc` of output channel `o`, over the inputs `x_vals` and weights `w_vals`
    it summed, through offset, fixed-point requantization and clamp, with the float reference.
    Shared by both layers' `explain()` (printed by `format_steps`)."""
    offset, m0, n, b_q = layer.requant_params(s_x, z_x)
    m0_o, n_o = int(m0[o] if m0.size > 1 else m0[0]), int(n[o] if n.size > 1 else n[0])
    total = raw_acc + int(offset[o])
    left, right = max(-n_o, 0), max(n_o, 0)
    x = int(np.clip(total << left, INT32_MIN, INT32_MAX))
    y = int(KR.srdhm_reference(np.int64(x), np.int64(m0_o)))
    z = int(KR.rounding_divide_by_pot_reference(np.int64(y), right))
    q = int(np.clip(z + layer.zero_point, layer.out_qmin, layer.out_qmax))
    m_real = s_x * layer.w_scale[o] / layer.scale
    float_acc = float(np.dot(x_vals.astype(np.int64) - z_x, w_vals.reshape(-1).astype(np.int64)))
    real_out = float_acc * s_x * layer.w_scale[o] + (0.0 if layer.bias is None else layer.bias[o])
    simulated = int(np.clip(np.rint(real_out / layer.scale) + layer.zero_point, layer.out_qmin, layer.out_qmax))
    return {
        "output_channel": o, "input_scale": s_x, "input_zero_point": z_x, "weight_scale": float(layer.w_scale[o]),
        "sum_qx_qw": raw_acc, "minus_zx_sum_qw": int(-z_x * layer.w_sum[o]), "bias_int32": int(b_q[o]),
        "accumulator": total, "M": float(m_real), "M0": m0_o, "shift": n_o,
        "M0_as_fraction": m0_o / 2**31, "after_left_shift": x, "after_srdhm": y, "after_rounding_shift": z,
        "output_zero_point": layer.zero_point, "clamp": (layer.out_qmin, layer.out_qmax), "q_out": q,
        "real_out": (q - layer.zero_point) * layer.scale,
        "float_reference": real_out, "float_simulation_q": simulated,
    }


class QuantLinear(_QuantLayer):
    """Integer-only Linear (+ fused ReLU): int8 in, int8 weights, int32 accumulation, int8 out."""

    def __init__(self, w_q, w_scale, weight_qdtype, bias, in_qparams, out_qparams, relu=False, name=""):
        super().__init__()
        self._setup(w_q, w_scale, weight_qdtype, bias, in_qparams, out_qparams, relu, name)
        self.in_features, self.out_features = w_q.shape[1], w_q.shape[0]
        self.packed_w = KU.pack_b_u8s8(np.ascontiguousarray(self.w_int8.T))

    def accumulate(self, x):
        q_x, s_x, z_x = quantize_input(x, self.input_scale, self.input_zero_point, self.input_qmin, self.input_qmax)
        if q_x.shape[-1] != self.in_features:
            raise ShapeError(f"QuantLinear {self.name!r} expects input of shape (*, {self.in_features}), "
                             f"got input of shape {tuple(q_x.shape)}")
        lead = q_x.shape[:-1]
        acc = int8_times_weight(q_x.reshape(-1, self.in_features), self.input_qmin, self.input_qmax, self.packed_w)
        return acc.reshape(lead + (self.out_features,)), q_x, s_x, z_x

    def forward(self, x):
        """One fused kernel (`kernels.linear_int8`): the int8 product and the requantization (or,
        for the model's output, the scale to float) in one pass, the same integers as
        `accumulate` followed by `_requantize` / `_float_from_acc`."""
        q_x, s_x, z_x = quantize_input(x, self.input_scale, self.input_zero_point, self.input_qmin, self.input_qmax)
        if q_x.shape[-1] != self.in_features:
            raise ShapeError(f"QuantLinear {self.name!r} expects input of shape (*, {self.in_features}), "
                             f"got input of shape {tuple(q_x.shape)}")
        lead = q_x.shape[:-1]
        rows = np.ascontiguousarray(q_x.reshape(-1, self.in_features))
        offset, m0, n, _ = self.requant_params(s_x, z_x)
        if self.float_output:
            y = KL.linear_int8_float(rows, self.packed_w, self.input_qmin, self.input_qmax, offset,
                                     s_x * self.w_scale).reshape(lead + (self.out_features,))
            return Tensor(np.maximum(y, 0) if self.relu else y)
        q = KL.linear_int8(rows, self.packed_w, self.input_qmin, self.input_qmax, offset, m0, n, self.zero_point,
                           self.out_qmin, self.out_qmax)
        return QActivation(q.reshape(lead + (self.out_features,)), self.scale, self.zero_point)

    def explain(self, x, index):
        """Step through one output element: index = (row, o) of a 2-D input batch. Returns a dict
        of every stage (also printed nicely by `format_steps`)."""
        acc, q_x, s_x, z_x = self.accumulate(x)
        row, o = index
        return requantization_steps(self, int(acc[row, o]), q_x[row], self.w_int8[o], s_x, z_x, o)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, weight={self.weight_q.qdtype.name}, "
                f"scale={self.scale:.4g}, zero_point={self.zero_point}, relu={self.relu}")


class QuantConv2d(_QuantLayer):
    """Integer-only Conv2d (+ fused ReLU) through int8 im2col and the int8 matmul kernel."""

    def __init__(self, w_q, w_scale, weight_qdtype, bias, in_qparams, out_qparams, stride, padding, relu=False, name=""):
        super().__init__()
        self._setup(w_q, w_scale, weight_qdtype, bias, in_qparams, out_qparams, relu, name)
        self.stride, self.padding = stride, padding
        self.in_channels, self.out_channels = w_q.shape[1], w_q.shape[0]
        self.kernel_size = w_q.shape[2:]
        self.packed_w = KC.pack_conv_weight(self.w_int8)
        self.w_pairs = KC.pack_conv_weight_pairs(self.w_int8)
        self.w_quads = KC.pack_conv_weight_quads(self.w_int8)
        self.w_channels = {}      # lanes → the channels-layout kernel's packed weights, made on first use

    def accumulate(self, x):
        q_x, s_x, z_x = self._input(x)
        acc = KC.conv2d_int8_nhwc(np.ascontiguousarray(q_x), self.w_int8, self.stride, self.padding, pad_value=z_x,
                                  packed_w=self.packed_w)
        return acc, q_x, s_x, z_x                                   # acc int32 [N, Ho, Wo, O]

    def forward(self, x):
        if self.float_output:
            acc, _, s_x, z_x = self.accumulate(x)
            y = self._float_from_acc(acc, s_x, z_x)
            return Tensor(np.ascontiguousarray((np.maximum(y, 0) if self.relu else y).transpose(0, 3, 1, 2)))
        if not isinstance(x, QActivation) and tuple(self.stride) == (1, 1):
            # the network's float input: quantized straight into the fused kernels' padded uint8
            # layout (one pass; the same integers as quantize_input, then padding)
            arr = x.data if isinstance(x, Tensor) else np.asarray(x)
            self._check_input_shape(arr.shape)
            xu, finite = KI.quantize_pad_u8(arr, self.input_scale, self.input_zero_point, self.input_qmin,
                                            self.input_qmax, KC._pair(self.padding))
            if not finite:
                raise ValueError("cannot quantize an input that contains NaN or Inf")
            return ConvQActivation(self, xu, self.input_scale, self.input_zero_point)
        q_x, s_x, z_x = self._input(x)
        return ConvQActivation(self, np.ascontiguousarray(q_x), s_x, z_x)

    def conv_acc(self, q_x, z_x):
        """The int32 accumulators [N, O, Ho, Wo] (padding with Z_x, the integer for real 0)."""
        return KC.conv2d_int8_acc(q_x, self.w_int8, self.stride, self.padding, pad_value=z_x,
                                  packed_w=self.packed_w, w_pairs=self.w_pairs, w_quads=self.w_quads)

    def conv_requantize_pool(self, q_x, s_x, z_x, pool):
        """int8 [N, O, Ho/pool, Wo/pool]: convolution, k×k max and requantization (fused for stride 1)."""
        if tuple(self.stride) != (1, 1):
            return self.requantize_acc(self.conv_acc(q_x, z_x), s_x, z_x, pool=pool)
        offset, m0, n, _ = self.requant_params(s_x, z_x)
        return KC.conv2d_requant_pool(q_x, self.w_int8, self.padding, z_x, offset, m0, n, self.zero_point,
                                      self.out_qmin, self.out_qmax, pool, w_quads=self.w_quads,
                                      w_channels=self.w_channels)

    def requantize_acc(self, acc, s_x, z_x, pool=1):
        """int32 accumulators [N, O, Ho, Wo] → int8 [N, O, Ho/pool, Wo/pool] (requantize, then max
        pool; fused: the max is taken on the accumulators)."""
        offset, m0, n, _ = self.requant_params(s_x, z_x)
        return KC.requantize_pool_nchw(acc, offset, m0, n, self.zero_point, self.out_qmin, self.out_qmax, pool)

    def _check_input_shape(self, shape):
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ShapeError(f"QuantConv2d {self.name!r} expects input of shape (N, {self.in_channels}, H, W), "
                             f"got input of shape {tuple(shape)}")

    def _input(self, x):
        q_x, s_x, z_x = quantize_input(x, self.input_scale, self.input_zero_point, self.input_qmin, self.input_qmax)
        self._check_input_shape(q_x.shape)
        return q_x, s_x, z_x

    def explain(self, x, index):
        """Step through output element index = (n, o, y, x)."""
        acc, q_x, s_x, z_x = self.accumulate(x)
        b, o, yy, xx = index
        acc = acc.transpose(0, 3, 1, 2)
        (ph, pw), (sh, sw) = self.padding, self.stride
        kh, kw = self.kernel_size
        padded = np.pad(q_x[b], ((0, 0), (ph, ph), (pw, pw)), constant_values=z_x)
        patch = padded[:, yy * sh:yy * sh + kh, xx * sw:xx * sw + kw]
        return requantization_steps(self, int(acc[b, o, yy, xx]), patch.reshape(-1), self.w_int8[o], s_x, z_x, o)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={tuple(self.kernel_size)}, stride={self.stride}, "
                f"padding={self.padding}, weight={self.weight_q.qdtype.name}, scale={self.scale:.4g}, "
                f"zero_point={self.zero_point}, relu={self.relu}")


def format_steps(steps: dict) -> str:
    """The stages of `explain()` as aligned text."""
    s = steps
    lines = [
        f"output channel o = {s['output_channel']}",
        f"  Σ q_x·q_w                     = {s['sum_qx_qw']}",
        f"  − Z_x·Σ q_w  (Z_x = {s['input_zero_point']})       = {s['minus_zx_sum_qw']}",
        f"  + b_q = round(b / (S_x S_w))   = {s['bias_int32']}",
        f"  accumulator (int32)           = {s['accumulator']}",
        f"  M = S_x S_w / S_y              = {s['M']:.9g}",
        f"  M0 = {s['M0']} (= {s['M0_as_fraction']:.9f} · 2³¹), shift n = {s['shift']}",
        f"  SRDHM(acc·2^max(−n,0), M0)    = {s['after_srdhm']}",
        f"  rounding shift by max(n, 0)   = {s['after_rounding_shift']}",
        f"  + Z_y ({s['output_zero_point']}), clamp to {s['clamp']} = {s['q_out']}",
        f"  float reference: y = {s['float_reference']:.6g} → round(y/S_y) + Z_y = {s['float_simulation_q']}",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- dynamic quantization


class _DynamicMixin:
    """Activations quantized per call: (S_x, Z_x) from this batch's min and max (int8 affine),
    acc as in the static layers, output in float: y = S_x S_w[o] (acc[o]) + b[o]."""

    @staticmethod
    def batch_qparams(arr, qmin=-128, qmax=127):
        from tinyopt.quant.affine import choose_qparams

        if not np.all(np.isfinite(arr)):
            raise ValueError("cannot quantize an input that contains NaN or Inf")
        s, z = choose_qparams(arr.min(), arr.max(), qmin, qmax)
        return float(s), int(z)


class DynamicQuantLinear(Module, _DynamicMixin):
    """Linear with int8 weights; activations quantized per batch; float output (torch's dynamic Linear)."""

    def __init__(self, w_q, w_scale, weight_qdtype, bias, name="", reduce_range: bool = False):
        super().__init__()
        self.name = name
        self.weight_q = QTensor(w_q, w_scale, np.zeros(w_scale.size, np.int64), weight_qdtype, axis=0)
        self.w_int8 = np.ascontiguousarray(w_q.astype(np.int8))
        self.w_scale = np.asarray(w_scale, np.float32)
        self.bias = None if bias is None else np.asarray(bias, np.float32)
        self.w_sum = self.w_int8.astype(np.int64).sum(axis=1)
        self.in_features, self.out_features = w_q.shape[1], w_q.shape[0]
        self.packed_w = KU.pack_b_u8s8(np.ascontiguousarray(self.w_int8.T))
        self.reduce_range = bool(reduce_range)

    def forward(self, x):
        """Per batch: (S_x, Z_x) from min and max; q_u = clamp(round(x/S_x) + Z_u, 0, q_hi) as uint8,
        with q_hi = 255 (Z_u = Z_x + 128: the int8 affine grid, shifted) or 127 with `reduce_range`
        (torch's x86 default, 7 bits: the `vpmaddubsw` kernel is then exact without VNNI);
        acc[o] = Σ_k (q_u − Z_u) W[o, k] in int32, y = S_x S_w[o] acc[o] + b[o]."""
        arr = x.data if isinstance(x, Tensor) else np.asarray(x)
        if arr.shape[-1] != self.in_features:
            raise ShapeError(f"DynamicQuantLinear {self.name!r} expects input of shape (*, {self.in_features}), "
                             f"got input of shape {tuple(arr.shape)}")
        from tinyopt.quant.affine import choose_qparams

        lo, hi, finite = KA.minmax_finite(arr)                  # one pass (kernels.affine_u8)
        if not finite:
            raise ValueError(f"DynamicQuantLinear {self.name!r}: cannot quantize an input that contains NaN or Inf")
        if self.reduce_range:
            s_x, z_u = choose_qparams(lo, hi, 0, 127)
            q_hi = 127
        else:
            s_x, z_x = choose_qparams(lo, hi, -128, 127)
            z_u, q_hi = z_x + 128, 255
        s_x, z_u = float(s_x), int(z_u)
        q_u = KA.quantize_u8(arr.reshape(-1, self.in_features), s_x, z_u, q_hi)
        acc = KU.matmul_u8s8(q_u, self.packed_w, seven_bit=self.reduce_range)
        # exact in int32 (|Σ (q_u − Z_u) w| < 2³¹ by K's bound), then y = S_x S_w[o] · acc + b, one pass
        y = KA.dequantize_acc(acc, z_u, self.w_sum, np.float32(s_x) * self.w_scale, self.bias)
        return Tensor(y.reshape(arr.shape[:-1] + (self.out_features,)))

    def weight_nbytes(self):
        return self.weight_q.nbytes + (0 if self.bias is None else 4 * self.bias.size) + self.weight_q.qparams_nbytes

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, weight={self.weight_q.qdtype.name}, "
                f"dynamic{', reduce_range' if self.reduce_range else ''}")


class DynamicQuantConv2d(Module, _DynamicMixin):
    """Conv2d with int8 weights; activations quantized per batch; float output."""

    def __init__(self, w_q, w_scale, weight_qdtype, bias, stride, padding, name=""):
        super().__init__()
        self.name = name
        self.weight_q = QTensor(w_q, w_scale, np.zeros(w_scale.size, np.int64), weight_qdtype, axis=0)
        self.w_int8 = np.ascontiguousarray(w_q.astype(np.int8))
        self.w_scale = np.asarray(w_scale, np.float32)
        self.bias = None if bias is None else np.asarray(bias, np.float32)
        self.w_sum = self.w_int8.reshape(self.w_int8.shape[0], -1).astype(np.int64).sum(axis=1)
        self.stride, self.padding = stride, padding
        self.in_channels = w_q.shape[1]
        self.packed_w = KC.pack_conv_weight(self.w_int8)
        self.w_pairs = KC.pack_conv_weight_pairs(self.w_int8)
        self.w_quads = KC.pack_conv_weight_quads(self.w_int8)
        self.w_channels = {}      # lanes → the channels-layout kernel's packed weights, made on first use

    def forward(self, x):
        arr = x.data if isinstance(x, Tensor) else np.asarray(x)
        if arr.ndim != 4 or arr.shape[1] != self.in_channels:
            raise ShapeError(f"DynamicQuantConv2d {self.name!r} expects input of shape (N, {self.in_channels}, H, W), "
                             f"got input of shape {tuple(arr.shape)}")
        s_x, z_x = self.batch_qparams(arr)
        q_x = quantize_array(arr, s_x, z_x, -128, 127).astype(np.int8)
        acc = KC.conv2d_int8_acc(q_x, self.w_int8, self.stride, self.padding, pad_value=z_x, packed_w=self.packed_w,
                                 w_pairs=self.w_pairs, w_quads=self.w_quads)                                    # int32 [N, O, Ho, Wo]
        per_channel = (-1, 1, 1)
        y = ((acc - (z_x * self.w_sum).reshape(per_channel)).astype(np.float32)
             * (np.float32(s_x) * self.w_scale).reshape(per_channel))
        if self.bias is not None:
            y = y + self.bias.reshape(per_channel)
        return Tensor(np.ascontiguousarray(y, dtype=np.float32))

    def weight_nbytes(self):
        return self.weight_q.nbytes + (0 if self.bias is None else 4 * self.bias.size) + self.weight_q.qparams_nbytes


# ----------------------------------------------------------------------------- integer pass-through modules


class QuantMaxPool2d(Module):
    """Max pooling on the integers (max commutes with the increasing map q ↦ S(q − Z))."""

    def __init__(self, pool):
        super().__init__()
        self.pool = pool

    def forward(self, x):
        if not isinstance(x, QActivation):
            return self.pool(x)
        p = self.pool
        k, st = p.kernel_size, p.stride
        if (isinstance(k, int) and k == st and p.padding == 0 and p.dilation == 1 and not p.ceil_mode):
            # non-overlapping windows, on int8 (kernels.conv_int8.max_pool2d_int8)
            if isinstance(x, ConvQActivation):
                return x.pooled(k)                     # fused with the convolution's requantization
            return QActivation(KC.max_pool2d_int8(x.q, k), x.scale, x.zero_point)
        pooled = F.max_pool2d(Tensor(x.q.astype(np.float32)), k, st, p.padding, p.dilation, p.ceil_mode)
        return QActivation(pooled.data.astype(np.int8), x.scale, x.zero_point)


class QuantFlatten(Module):
    def __init__(self, flatten):
        super().__init__()
        self.flatten = flatten

    def forward(self, x):
        if not isinstance(x, QActivation):
            return self.flatten(x)
        start = self.flatten.start_dim % x.q.ndim
        end = self.flatten.end_dim % x.q.ndim
        shape = x.q.shape[:start] + (-1,) + x.q.shape[end + 1:]
        return QActivation(x.q.reshape(shape), x.scale, x.zero_point)


class QuantReLU(Module):
    """ReLU on integers: max(q, Z) (Z is the integer for real 0)."""

    def __init__(self, relu=None):
        super().__init__()

    def forward(self, x):
        if not isinstance(x, QActivation):
            return F.relu(x)
        return QActivation(np.maximum(x.q, np.int8(x.zero_point)), x.scale, x.zero_point)


class QuantIdentity(Module):
    """Identity and evaluation-mode Dropout: the integers pass unchanged."""

    def __init__(self, module=None):
        super().__init__()
        self.module = module

    def forward(self, x):
        if isinstance(x, QActivation) or self.module is None:
            return x
        return self.module(x)
