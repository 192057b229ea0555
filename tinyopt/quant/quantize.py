"""Workflows, with torch.ao.quantization's eager-mode names:

- `quantize_dynamic(model)`              int8 weights now; activations quantized per batch at run time.
- `prepare(model, qconfig)` → calibrate → `convert(model)`      static post-training quantization (PTQ).
- `prepare_qat(model, qconfig)` → train → `convert(model)`      quantization-aware training (QAT).
- `fuse_modules(model, [[...], ...])`    Conv+BN folding, Conv/Linear+ReLU fusion; `fuse_known(model)`
                                         finds those patterns in Sequentials by itself.

What gets quantized: Linear and Conv2d (groups = 1, dilation = 1, symmetric padding), alone or fused
with ReLU.  `convert` also swaps MaxPool2d, Flatten, ReLU, Dropout and Identity for versions that
act on int8 directly, so a CNN runs integer-only end to end (see `tinyopt.quant.modules`).

A `QConfig(activation, weight)` holds two factories (observer or FakeQuantize classes with bound
arguments).  `qconfig` may be one QConfig for every layer, or a dict from module name (exact, as
in `named_modules()`) or module type to QConfig (or None: leave that layer in float), with the
key "" as the default — that is how a mixed int8/int4 model is made.

Errors (NaN/Inf input, convert before calibration, a zero-range observer, an unsupported layer)
are raised before anything is changed, and by default the model is copied (`inplace=False`), as
in torch.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import numpy as np

from tinyopt.nn.activation import ReLU
from tinyopt.nn.batchnorm import BatchNorm1d, BatchNorm2d
from tinyopt.nn.conv import Conv2d
from tinyopt.ops.conv_pool import same_padding
from tinyopt.nn.container import Sequential
from tinyopt.nn.dropout import Dropout
from tinyopt.nn import functional as F
from tinyopt.nn.linear import Flatten, Identity, Linear
from tinyopt.nn.module import Module
from tinyopt.nn.parameter import Parameter
from tinyopt.nn.pooling import MaxPool2d
from tinyopt.quant.affine import as_qdtype, quantize_array
from tinyopt.quant.fake_quantize import FakeQuantize
from tinyopt.quant.modules import (
    ConvReLU2d, DynamicQuantConv2d, DynamicQuantLinear, LinearReLU, QuantConv2d, QuantFlatten, QuantIdentity,
    QuantLinear, QuantMaxPool2d, QuantReLU, activation_qparams, base_layer,
)
from tinyopt.quant.observer import (
    MinMaxObserver, MovingAverageMinMaxObserver, NonFiniteBatch, PerChannelMinMaxObserver,
)
from tinyopt.tensor import Tensor


class QuantizationError(ValueError):
    """A model that cannot be prepared or converted as asked; the model is left unchanged."""


# ----------------------------------------------------------------------------- qconfig


@dataclass(frozen=True)
class QConfig:
    """How to quantize one layer: `activation()` and `weight()` build its observers/fake-quantizers."""
    activation: object
    weight: object


def with_args(cls, **kwargs):
    """A factory `cls(**kwargs)` (torch's `Observer.with_args`)."""
    factory = functools.partial(cls, **kwargs)
    factory.__name__ = f"{cls.__name__}.with_args"
    return factory


def _weight_range(bits: int):
    """Symmetric signed weights of `bits` bits: [−2^(b−1), 2^(b−1) − 1], dtype for packing."""
    if bits not in (2, 4, 8):
        raise ValueError(f"weight bits must be 8, 4 or 2, got {bits}")
    dtype = {8: "qint8", 4: "qint4", 2: "qint2"}[bits]
    return dtype, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _activation_range(bits: int):
    if not 2 <= bits <= 8:
        raise ValueError(f"activation bits must be between 2 and 8, got {bits}")
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def get_default_qconfig(weight_bits: int = 8, activation_bits: int = 8, activation_observer=MinMaxObserver,
                        reduce_range: bool = False) -> QConfig:
    """Static PTQ: activations int8 per-tensor affine (MinMaxObserver), weights per-channel symmetric
    with `weight_bits` bits (8, 4 or 2; stored packed below 8).

    `reduce_range=True` (torch's name and x86 default) quantizes activations to 7 bits ([−64, 63]):
    half the resolution, and in exchange the integer layers' u8 × s8 products run on `vpmaddubsw`,
    exact on any AVX2 CPU (`kernels.gemm_u8s8`); on a CPU with VNNI both ranges are equally fast."""
    wd, wmin, wmax = _weight_range(weight_bits)
    amin, amax = _activation_range(min(activation_bits, 7) if reduce_range else activation_bits)
    return QConfig(
        activation=with_args(activation_observer, dtype="qint8", qscheme="per_tensor_affine", quant_min=amin, quant_max=amax),
        weight=with_args(PerChannelMinMaxObserver, dtype=wd, qscheme="per_channel_symmetric", quant_min=wmin, quant_max=wmax),
    )


def get_default_qat_qconfig(weight_bits: int = 8, activation_bits: int = 8, reduce_range: bool = False) -> QConfig:
    """QAT: FakeQuantize on activations (moving-average min/max) and weights (per-channel symmetric);
    `reduce_range` as in `get_default_qconfig`."""
    wd, wmin, wmax = _weight_range(weight_bits)
    amin, amax = _activation_range(min(activation_bits, 7) if reduce_range else activation_bits)
    return QConfig(
        activation=with_args(FakeQuantize, observer=MovingAverageMinMaxObserver, dtype="qint8",
                             qscheme="per_tensor_affine", quant_min=amin, quant_max=amax),
        weight=with_args(FakeQuantize, observer=PerChannelMinMaxObserver, dtype=wd,
                         qscheme="per_channel_symmetric", quant_min=wmin, quant_max=wmax),
    )


default_qconfig = get_default_qconfig()
default_qat_qconfig = get_default_qat_qconfig()


def _resolve_qconfig(spec, name: str, module):
    if isinstance(spec, QConfig) or spec is None:
        return spec
    if not isinstance(spec, dict):
        raise TypeError(f"qconfig must be a QConfig, None or a dict, got {type(spec).__name__}")
    if name in spec:
        return spec[name]
    for key, value in spec.items():
        if isinstance(key, type) and isinstance(module, key):
            return value
    return spec.get("", None)


# ----------------------------------------------------------------------------- model surgery helpers


def _set_submodule(model: Module, name: str, new: Module) -> None:
    parent = model
    *path, last = name.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, last, new)


def _get_submodule(model: Module, name: str) -> Module:
    m = model
    for part in name.split("."):
        if part not in m._modules:
            raise QuantizationError(f"{type(model).__name__} has no submodule {name!r}")
        m = m._modules[part]
    return m


QUANTIZABLE = (Linear, Conv2d, LinearReLU, ConvReLU2d)


def _check_supported(name: str, module) -> None:
    layer, _ = base_layer(module)
    if isinstance(layer, Conv2d):
        problems = []
        if layer.groups != 1:
            problems.append(f"groups={layer.groups}")
        if tuple(layer.dilation) != (1, 1):
            problems.append(f"dilation={layer.dilation}")
        if isinstance(layer.padding, str) and layer.padding == "same":
            (t, b), (l, r) = same_padding(layer.kernel_size, layer.dilation)
            if t != b or l != r:
                problems.append("asymmetric 'same' padding")
        if problems:
            raise QuantizationError(f"layer {name!r} ({layer!r}) is not supported by QuantConv2d: " + ", ".join(problems))
    elif not isinstance(layer, Linear):
        raise QuantizationError(
            f"layer {name!r} is a {type(module).__name__}, which tinyopt cannot quantize; supported: "
            "Linear, Conv2d, LinearReLU, ConvReLU2d (fuse BatchNorm into the convolution first)")


def _conv_padding(layer: Conv2d):
    if isinstance(layer.padding, str):
        if layer.padding == "valid":
            return (0, 0)
        (t, _), (l, _) = same_padding(layer.kernel_size, layer.dilation)
        return (t, l)
    return tuple(layer.padding)


def _targets(model: Module, qconfig, types=QUANTIZABLE):
    """[(name, module, qconfig)] for every quantizable module with a qconfig, in registration order.
    Raises QuantizationError for a module named or typed in the qconfig that cannot be quantized."""
    found = []
    if isinstance(qconfig, dict):
        names = dict(model.named_modules())
        for key, value in qconfig.items():
            if isinstance(key, str) and key and value is not None:
                if key not in names:
                    raise QuantizationError(f"qconfig names {key!r}, which is not a submodule of {type(model).__name__}")
                _check_supported(key, names[key])
            elif isinstance(key, type) and value is not None and not issubclass(key, QUANTIZABLE):
                raise QuantizationError(
                    f"qconfig asks to quantize {key.__name__} layers, which tinyopt cannot quantize; supported: "
                    "Linear, Conv2d, LinearReLU, ConvReLU2d")
    skip_inside = set()
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in skip_inside):
            continue
        if isinstance(module, types):
            qc = _resolve_qconfig(qconfig, name, module)
            if qc is not None:
                _check_supported(name, module)
                found.append((name, module, qc))
            if isinstance(module, (LinearReLU, ConvReLU2d)):
                skip_inside.add(name)
    return found


# ----------------------------------------------------------------------------- fusion


def _fold_bn(layer, bn, out_features: int):
    """A copy of `layer` (Conv2d or Linear, weight [O, ...]) equal to bn(layer(x)) in evaluation
    mode, the running statistics folded into the weight and bias:

        γ̂[o] = γ[o] / √(σ²[o] + ε)
        W'[o] = W[o] · γ̂[o]                 b'[o] = (b[o] − μ[o]) · γ̂[o] + β[o]

    computed in float64, stored in the layer's dtype.  All checks come first: `layer` is never
    changed, and a raise returns nothing."""
    if bn.running_mean is None:
        raise QuantizationError(f"cannot fold {bn!r}: it keeps no running statistics (track_running_stats=False)")
    if bn.num_features != out_features:
        raise QuantizationError(f"cannot fold {bn!r} into {layer!r}: {bn.num_features} features vs "
                                f"{out_features} output channels")
    gamma = bn.weight.data if bn.weight is not None else np.ones(bn.num_features, np.float32)
    beta = bn.bias.data if bn.bias is not None else np.zeros(bn.num_features, np.float32)
    g_hat = gamma.astype(np.float64) / np.sqrt(bn.running_var.data.astype(np.float64) + bn.eps)
    bias = layer.bias.data.astype(np.float64) if layer.bias is not None else np.zeros(out_features)
    w = layer.weight.data
    per_row = g_hat.reshape((-1,) + (1,) * (w.ndim - 1))
    fused = copy.deepcopy(layer)
    fused.weight = Parameter((w.astype(np.float64) * per_row).astype(w.dtype))
    fused.bias = Parameter(((bias - bn.running_mean.data) * g_hat + beta).astype(w.dtype))
    return fused


def fold_conv_bn(conv: Conv2d, bn) -> Conv2d:
    """A new Conv2d equal to bn(conv(x)) in evaluation mode (see `_fold_bn` for the formula)."""
    return _fold_bn(conv, bn, conv.out_channels)


def fold_linear_bn(linear: Linear, bn) -> Linear:
    """Linear followed by BatchNorm1d, folded the same way (row o of W scaled by γ̂[o])."""
    return _fold_bn(linear, bn, linear.out_features)


def _fuse_group(mods):
    """The fused replacement for a list of modules [Conv2d|Linear, (BatchNorm), (ReLU)]."""
    types = tuple(type(m) for m in mods)
    first = mods[0]
    rest = list(mods[1:])
    if isinstance(first, Conv2d) and rest and isinstance(rest[0], BatchNorm2d):
        first = fold_conv_bn(first, rest.pop(0))
    elif isinstance(first, Linear) and rest and isinstance(rest[0], BatchNorm1d):
        first = fold_linear_bn(first, rest.pop(0))
    if not rest:
        return first
    if len(rest) == 1 and isinstance(rest[0], ReLU):
        return ConvReLU2d(first) if isinstance(first, Conv2d) else LinearReLU(first)
    raise QuantizationError(
        f"cannot fuse {[t.__name__ for t in types]}; supported: Conv2d+BatchNorm2d(+ReLU), Conv2d+ReLU, "
        "Linear+BatchNorm1d(+ReLU), Linear+ReLU")


def fuse_modules(model: Module, modules_to_fuse, inplace: bool = False) -> Module:
    """torch.ao.quantization.fuse_modules: each group of names becomes one fused module in the
    first position; the others become Identity.  BatchNorm is folded with its running statistics,
    so call this on a model in evaluation mode (or after training)."""
    if modules_to_fuse and isinstance(modules_to_fuse[0], str):
        modules_to_fuse = [modules_to_fuse]
    plan = []
    for group in modules_to_fuse:
        mods = [_get_submodule(model, n) for n in group]
        plan.append((group, _fuse_group(mods)))          # all checks (and folding) before any change
    if not inplace:
        model = copy.deepcopy(model)
        plan = [(group, copy.deepcopy(fused)) for group, fused in plan]
    for group, fused in plan:
        _set_submodule(model, group[0], fused)
        for n in group[1:]:
            _set_submodule(model, n, Identity())
    return model


def find_fusable(model: Module):
    """Groups of names to fuse, found in every Sequential: Conv2d(+BatchNorm2d)(+ReLU) and
    Linear(+BatchNorm1d)(+ReLU), each with at least two members."""
    groups = []
    for name, module in model.named_modules():
        if not isinstance(module, Sequential):
            continue
        items = list(module._modules.items())
        i = 0
        while i < len(items):
            child_name, child = items[i]
            if isinstance(child, (Conv2d, Linear)):
                bn_type = BatchNorm2d if isinstance(child, Conv2d) else BatchNorm1d
                group = [child_name]
                j = i + 1
                if j < len(items) and isinstance(items[j][1], bn_type):
                    group.append(items[j][0])
                    j += 1
                if j < len(items) and isinstance(items[j][1], ReLU):
                    group.append(items[j][0])
                    j += 1
                if len(group) > 1:
                    groups.append([f"{name}.{g}" if name else g for g in group])
                i = j
            else:
                i += 1
    return groups


def fuse_known(model: Module, inplace: bool = False) -> Module:
    """`fuse_modules` on every group `find_fusable` finds."""
    groups = find_fusable(model)
    return fuse_modules(model, groups, inplace=inplace) if groups else (model if inplace else copy.deepcopy(model))


# ----------------------------------------------------------------------------- prepared (observed / QAT) layers


class ObservedLayer(Module):
    """A float layer with its quantizers: input and output observers (PTQ) or fake-quantizers (QAT),
    and a weight observer/fake-quantizer.

    forward(x) = output_q( relu?( op(input_q(x), weight_q(W), b) ) )

    In PTQ the weight is used in float (its observer runs at convert).  In QAT the weight is
    fake-quantized on every forward, so training sees the rounding it will get, and the
    straight-through estimator lets the float weights learn.  Only the first quantized layer's
    input is fake-quantized in QAT: later layers receive the previous layer's (already
    fake-quantized) output, as they will receive its int8 output after convert.
    """

    def __init__(self, module, qconfig: QConfig, qat: bool, name: str, first: bool):
        super().__init__()
        self.module = module
        self.qconfig_ = qconfig
        self.qat = qat
        self.layer_name = name
        layer, self.relu = base_layer(module)
        self.is_conv = isinstance(layer, Conv2d)
        self.input_quant = qconfig.activation()
        self.weight_quant = qconfig.weight()
        self.output_quant = qconfig.activation()
        if qat and not first and isinstance(self.input_quant, FakeQuantize):
            self.input_quant.disable_fake_quant()      # observe only

    @property
    def layer(self):
        return base_layer(self.module)[0]

    def forward(self, x):
        try:
            x = self.input_quant(x)
        except NonFiniteBatch as e:
            raise NonFiniteBatch(f"layer {self.layer_name!r}, input observer: {e}") from None
        layer = self.layer
        if self.qat:
            w = self.weight_quant(layer.weight)
            if self.is_conv:
                y = F.conv2d(x, w, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
            else:
                y = F.linear(x, w, layer.bias)
        else:
            y = layer(x)
        if self.relu:
            y = F.relu(y)
        try:
            return self.output_quant(y)
        except NonFiniteBatch as e:
            raise NonFiniteBatch(f"layer {self.layer_name!r}, output observer: {e}") from None

    def extra_repr(self):
        return f"{self.layer_name!r}, qat={self.qat}"


def _observer_of(q):
    return q.activation_post_process if isinstance(q, FakeQuantize) else q


def _prepare(model, qconfig, inplace, qat):
    qconfig = default_qat_qconfig if (qat and qconfig is None) else (default_qconfig if qconfig is None else qconfig)
    targets = _targets(model, qconfig)                     # raises before any change
    if any(name == "" for name, _, _ in targets):
        raise QuantizationError("prepare() needs the layers inside a model, not a bare layer: wrap it in Sequential")
    if not targets:
        raise QuantizationError(f"nothing to quantize in {type(model).__name__}: no Linear/Conv2d layer has a qconfig")
    if not inplace:
        model = copy.deepcopy(model)
        targets = _targets(model, qconfig)
    for i, (name, module, qc) in enumerate(targets):
        wrapped = ObservedLayer(module, qc, qat=qat, name=name, first=(i == 0))
        _set_submodule(model, name, wrapped)
    return model.train(qat) if qat else model.eval()


def prepare(model: Module, qconfig=None, inplace: bool = False) -> Module:
    """Static PTQ, step 1: wrap each quantizable layer with observers; then run calibration batches
    through the returned model (in evaluation mode) and call `convert`."""
    return _prepare(model, qconfig, inplace, qat=False)


def prepare_qat(model: Module, qconfig=None, inplace: bool = False) -> Module:
    """QAT, step 1: wrap each quantizable layer with fake-quantizers (weights and activations);
    train the returned model (its parameters are the original layers' parameters), then `convert`."""
    return _prepare(model, qconfig, inplace, qat=True)


# ----------------------------------------------------------------------------- convert


def _quantize_weight(name, layer, weight_quant, qat):
    """(w_q int array, per-channel scales, qdtype) from the weight observer (run on W now in PTQ)."""
    obs = _observer_of(weight_quant)
    w = layer.weight.data
    _check_finite_weight(name, w)
    if not qat or not obs.has_observed():
        obs = copy.deepcopy(obs)           # observe W on a copy: a convert() that raises later changes nothing
        obs(w)
    scale, zp = obs.calculate_qparams()
    if np.any(zp != 0):
        raise QuantizationError(f"layer {name!r}: integer-only layers need symmetric weights (zero point 0); "
                                f"use qscheme='per_channel_symmetric' or 'per_tensor_symmetric' for weights")
    shape = [-1] + [1] * (w.ndim - 1)
    scale = np.broadcast_to(scale, (w.shape[0],)) if scale.size == 1 else scale
    w_q = quantize_array(w, scale.reshape(shape), 0, obs.quant_min, obs.quant_max).astype(np.int8)
    qd = obs.dtype
    if qd.bits > 8:
        raise QuantizationError(f"layer {name!r}: weights of {qd.name} do not fit the int8 kernel")
    return w_q, np.asarray(scale, np.float32).copy(), qd


def _check_finite_weight(name, w, param="weight"):
    """QuantizationError naming the layer and the parameter when it holds NaN or ±∞."""
    if not np.all(np.isfinite(w)):
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(w))[0])
        raise QuantizationError(
            f"layer {name!r}: the {param} contains NaN or Inf ({int(np.isnan(w).sum())} NaN, {int(np.isinf(w).sum())} "
            f"±Inf; first at index {first}: {w[first]}); no finite scale represents it. Retrain or repair the "
            "weights before quantizing")


def _check_observed(name, obs, what):
    if not obs.has_observed():
        raise QuantizationError(
            f"convert() before calibration: the {what} observer of layer {name!r} has seen no data; run "
            "calibration batches through the prepared model (model(x)) before convert()")
    lo, hi = np.min(obs.min_val.data), np.max(obs.max_val.data)
    if not hi > lo:
        raise QuantizationError(
            f"the {what} observer of layer {name!r} saw a zero range (min = max = {lo}); its scale would be "
            "meaningless: calibrate with varied data, or leave this layer in float (qconfig None)")


def _convert_layer(wrapper: ObservedLayer):
    name, layer = wrapper.layer_name, wrapper.layer
    in_obs, out_obs = _observer_of(wrapper.input_quant), _observer_of(wrapper.output_quant)
    _check_observed(name, in_obs, "input")
    _check_observed(name, out_obs, "output")
    if layer.bias is not None:
        _check_finite_weight(name, layer.bias.data, "bias")
    w_q, w_scale, qd = _quantize_weight(name, layer, wrapper.weight_quant, wrapper.qat)
    in_qp, out_qp = activation_qparams(in_obs), activation_qparams(out_obs)
    bias = None if layer.bias is None else layer.bias.data
    if wrapper.is_conv:
        return QuantConv2d(w_q, w_scale, qd, bias, in_qp, out_qp, tuple(layer.stride), _conv_padding(layer),
                           relu=wrapper.relu, name=name)
    return QuantLinear(w_q, w_scale, qd, bias, in_qp, out_qp, relu=wrapper.relu, name=name)


PASS_THROUGH = ((MaxPool2d, QuantMaxPool2d), (Flatten, QuantFlatten), (ReLU, QuantReLU), (Dropout, QuantIdentity),
                (Identity, QuantIdentity))


def convert(model: Module, inplace: bool = False, float_logits: bool = True) -> Module:
    """Replace every prepared layer by its integer-only version (QuantLinear / QuantConv2d) and
    MaxPool2d/Flatten/ReLU/Dropout/Identity by int8 pass-throughs.  All layers are checked and
    built first; on an error nothing is replaced.

    `float_logits=True`: the last quantized layer (in registration order, the output layer of a
    chain) returns floats dequantized from its int32 accumulators instead of int8 — where the
    model's output is dequantized anyway, this keeps close logits apart (int8 logits tie for
    about 2 % of Fashion-MNIST test images, and argmax then picks arbitrarily).  False: every
    layer, the last included, outputs int8 (`QActivation`)."""
    wrappers = [(n, m) for n, m in model.named_modules() if isinstance(m, ObservedLayer)]
    if not wrappers:
        raise QuantizationError("convert() needs a model returned by prepare() or prepare_qat()")
    if not inplace:
        model = copy.deepcopy(model)
        wrappers = [(n, m) for n, m in model.named_modules() if isinstance(m, ObservedLayer)]
    new = [(n, _convert_layer(m)) for n, m in wrappers]        # every check happens here
    inside = [n for n, _ in wrappers]
    passes = []
    for n, m in model.named_modules():
        if any(n == w or n.startswith(w + ".") for w in inside):
            continue
        for cls, qcls in PASS_THROUGH:
            if type(m) is cls:
                passes.append((n, qcls(m)))
    if float_logits:
        new[-1][1].float_output = True
    for n, q in new + passes:
        _set_submodule(model, n, q)
    return model.eval()


# ----------------------------------------------------------------------------- dynamic quantization


def quantize_dynamic(model: Module, qconfig_spec=None, dtype="qint8", weight_bits: int = 8, inplace: bool = False,
                     reduce_range: bool = False):
    """torch.ao.quantization.quantize_dynamic: Linear (and here Conv2d) layers get int8 weights
    (per-channel symmetric) now and quantize their input per batch at run time; outputs are float.
    `reduce_range=True`: Linear inputs are quantized to 7 bits (torch's x86 default), which makes
    the `vpmaddubsw` kernel exact on AVX2 CPUs without VNNI (see `DynamicQuantLinear`).

    `qconfig_spec`: a set of layer types (default {Linear}) or of module names."""
    if as_qdtype(dtype).name != "qint8":
        raise QuantizationError(f"dynamic quantization supports dtype qint8 weights, got {dtype!r}")
    spec = {Linear} if qconfig_spec is None else set(qconfig_spec)
    for key in spec:
        if isinstance(key, type) and not issubclass(key, (Linear, Conv2d)):
            raise QuantizationError(f"quantize_dynamic cannot quantize {key.__name__} layers; supported: Linear, Conv2d")
    wd, wmin, wmax = _weight_range(weight_bits)

    def selected(name, module):
        return type(module) in spec or name in spec

    def plan(m):
        targets = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, (Linear, Conv2d)) and selected(n, mod)]
        for n, mod in targets:
            _check_supported(n, mod)
            _check_finite_weight(n, mod.weight.data)
            if mod.bias is not None:
                _check_finite_weight(n, mod.bias.data, "bias")
        return targets

    if not plan(model):
        raise QuantizationError(f"nothing to quantize in {type(model).__name__} for {sorted(getattr(k, '__name__', k) for k in spec)}")
    if not inplace:
        model = copy.deepcopy(model)
    built = []
    for n, mod in plan(model):
        obs = PerChannelMinMaxObserver(dtype=wd, qscheme="per_channel_symmetric", quant_min=wmin, quant_max=wmax)
        obs(mod.weight.data)
        scale, _ = obs.calculate_qparams()
        shape = [-1] + [1] * (mod.weight.ndim - 1)
        w_q = quantize_array(mod.weight.data, scale.reshape(shape), 0, wmin, wmax).astype(np.int8)
        bias = None if mod.bias is None else mod.bias.data
        if isinstance(mod, Conv2d):
            q = DynamicQuantConv2d(w_q, scale, as_qdtype(wd), bias, tuple(mod.stride), _conv_padding(mod), name=n)
        else:
            q = DynamicQuantLinear(w_q, scale, as_qdtype(wd), bias, name=n, reduce_range=reduce_range)
        built.append((n, q))
    if any(n == "" for n, _ in built):
        return built[0][1]
    for n, q in built:
        _set_submodule(model, n, q)
    return model.eval()


# ----------------------------------------------------------------------------- sizes


def model_size_bytes(model: Module) -> dict:
    """Bytes of the model's weights: quantized layers count their stored integers (packed below
    8 bits), int32/float32 bias and per-channel scales; float layers count float32 parameters.
    Returns {'total': ..., 'quantized_layers': ..., 'float_params': ...}."""
    quant = 0
    counted = set()
    for _, m in model.named_modules():
        if hasattr(m, "weight_nbytes") and callable(m.weight_nbytes):
            quant += m.weight_nbytes()
            counted.add(id(m))
    float_bytes = 0
    for name, m in model.named_modules():
        if id(m) in counted:
            continue
        for p in m._parameters.values():
            if p is not None:
                float_bytes += p.data.nbytes
    return {"total": quant + float_bytes, "quantized_layers": quant, "float_params": float_bytes}
