"""The functional front end over the ops (torch.nn.functional's names, signatures and defaults).

Every layer in `tinyopt.nn` calls these; they validate arguments with torch's messages and apply an
op from `tinyopt.ops` (or compose a few Tensor methods, when no hand-written backward pays off).
Dims are torch's `dim=` (NumPy's `axis=` is accepted as an alias).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from tinyopt import dtypes
from tinyopt.errors import ShapeError
from tinyopt.kernels import batchnorm as _BN_KERNELS
from tinyopt.ops import batchnorm as BN
from tinyopt.ops import conv_pool as CP
from tinyopt.ops import dims as D
from tinyopt.ops import elementwise as E
from tinyopt.ops import nn as NN
from tinyopt.ops import quant as QO
from tinyopt.ops import resample as RS
from tinyopt.ops import shape as S
from tinyopt.ops.precision import float32_region
from tinyopt.random import resolve
from tinyopt.autograd.grad_mode import is_grad_enabled as _grad_enabled
from tinyopt.tensor import Tensor, _operand, _softmax_dim, where

# ----------------------------------------------------------------------------- activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 - torch's names
    """max(x, 0). `inplace=True` writes into `input` (torch's option)."""
    return E.ReLU.apply_(input) if inplace else E.ReLU.apply(input)


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    return E.Sigmoid.apply(input)


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    return E.Tanh.apply(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    """x for x > 0, negative_slope · x otherwise."""
    out = where(input.data > 0, input, input * negative_slope)
    return input.copy_(out) if inplace else out


def gelu(input: Tensor, approximate: str = "none") -> Tensor:  # noqa: A002
    """x · Φ(x) (exact, with erf) or torch's tanh approximation; see `ops.elementwise.GELU`."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return E.GELU.apply(input, approximate=approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """SiLU / swish: x · σ(x)."""
    out = input * E.Sigmoid.apply(input)
    return input.copy_(out) if inplace else out


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """x for x > 0, α (eˣ − 1) otherwise."""
    out = where(input.data > 0, input, (input.clamp(max=0.0).exp() - 1) * alpha)
    return input.copy_(out) if inplace else out


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """(1/β) log(1 + e^(βx)), and x where βx > threshold (torch's cut-off for stability)."""
    bx = input * beta
    soft = ((-bx.abs()).exp() + 1).log() / beta + input.clamp(min=0.0)
    return where(bx.data > threshold, input, soft)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:  # noqa: A002
    return input.clamp(min_val, max_val)


def relu6(input: Tensor) -> Tensor:  # noqa: A002
    return input.clamp(0.0, 6.0)


def softmax(input: Tensor, dim=None, _stacklevel=3, dtype=None, *, axis=None) -> Tensor:  # noqa: A002
    """exp(x_i − max x) / Σ_j exp(x_j − max x) along `dim` (torch's implicit dim, with its warning, if omitted)."""
    x = input if dtype is None else input.to(dtype)
    return NN.Softmax.apply(x, axis=_softmax_dim(axis if axis is not None else dim, x.ndim, "softmax"))


def log_softmax(input: Tensor, dim=None, _stacklevel=3, dtype=None, *, axis=None) -> Tensor:  # noqa: A002
    """x_i − max x − log Σ_j exp(x_j − max x) along `dim`."""
    x = input if dtype is None else input.to(dtype)
    return NN.LogSoftmax.apply(x, axis=_softmax_dim(axis if axis is not None else dim, x.ndim, "log_softmax"))


# ----------------------------------------------------------------------------- layers


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """y = x Wᵀ + b (one fused autograd node; see `ops.nn.Linear`)."""
    return NN.Linear.apply(input, weight, bias)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *,  # noqa: A002
            generator=None, rng=None) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1−p), so
    the expected activation is unchanged and evaluation needs no rescaling. The mask is drawn from
    `generator` (`rng=` is the older name)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        out = input * 0.0
    else:
        keep = resolve(generator if generator is not None else rng).random(input.shape) >= p
        out = input * (keep / (1.0 - p)).astype(input.dtype)
    return input.copy_(out) if inplace else out


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:  # noqa: A002
    """x / max(‖x‖_p, ε) along `dim` (torch's F.normalize)."""
    return input / input.norm(p, dim=dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """x1 · x2 / (max(‖x1‖, ε) · max(‖x2‖, ε)) along `dim` (torch 2's form: each norm clamped)."""
    dot = (x1 * x2).sum(dim=dim)
    return dot / (x1.norm(dim=dim).clamp(min=eps) * x2.norm(dim=dim).clamp(min=eps))


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    """Integer labels of any shape → int64 one-hot vectors in a new last dim of length num_classes
    (max label + 1 when −1)."""
    labels = np.asarray(tensor.data if isinstance(tensor, Tensor) else tensor)
    if not np.issubdtype(labels.dtype, np.integer):
        raise RuntimeError(f"one_hot is only applicable to index tensors (integers), got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and labels.max() >= num_classes:
        raise RuntimeError(f"Class values must be smaller than num_classes ({num_classes}), got {labels.max()}")
    return Tensor._wrap(np.eye(num_classes, dtype=np.int64)[labels])


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:  # noqa: A002
    """torch's F.pad: `pad` lists (before, after) pairs starting from the LAST dim:
    (left, right) pads the last dim, (left, right, top, bottom) the last two, and so on. Modes:
    "constant" (with `value`, 0 by default), "reflect", "replicate", "circular"."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"Padding length must be divisible by 2 and at most twice the number of dims, got {len(pad)} "
                         f"for a {input.ndim}-D input")
    if mode not in S.Pad.MODES:
        raise NotImplementedError(f"padding mode {mode!r} is not supported; use one of {sorted(S.Pad.MODES)}")
    if any(p < 0 for p in pad):
        raise NotImplementedError("negative padding (cropping) is not supported; slice the tensor instead")
    width = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        width[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode != "constant" and value is not None:
        raise ValueError(f"padding mode {mode!r} doesn't take in value argument")
    if mode != "constant" and not (len(pad) // 2 in (input.ndim - 1, input.ndim - 2) and 1 <= len(pad) // 2 <= 3):
        # torch pads only the trailing (spatial) dims in these modes: (N, C, W) / (C, W) with 2 values, and so on
        raise NotImplementedError(f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor in mode "
                                  f"{mode!r}: pad the last 1, 2 or 3 dims of a (N, C, ...) or (C, ...) input")
    return S.Pad.apply(input, pad_width=tuple(width), mode=mode, value=0.0 if value is None else value)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,  # noqa: A002
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing `normalized_shape` dims of each sample (Ba et al. 2016):

        μ = mean(x),  σ² = mean((x − μ)²)   over those dims (biased)
        y = (x − μ) / √(σ² + ε) · γ + β
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ShapeError(f"layer_norm: input of shape {tuple(input.shape)} does not end with normalized_shape {shape}")
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    mean = input.mean(dim=dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dim=dims, keepdim=True)
    out = centered / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def batch_norm(input: Tensor, running_mean, running_var, weight: Tensor | None = None,  # noqa: A002
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.batch_norm (formulas in `tinyopt.nn.batchnorm`). `running_mean`/`running_var`
    are Tensors (a module's buffers), ndarrays or None, updated in place when `training` is True (a
    Tensor's version counter records the write, as torch's); in evaluation they are required and used
    to normalise. In training, forward and backward are one kernel each (`ops.batchnorm`)."""
    if input.ndim < 2:
        raise ShapeError(f"batch_norm expects input of shape (N, C, *), got {tuple(input.shape)}")
    c = input.shape[1]
    axes = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    for name, array in (("running_mean", running_mean), ("running_var", running_var)):
        if array is not None and np.shape(array) != (c,):
            raise ShapeError(f"batch_norm: {name} has shape {np.shape(array)}, input of shape {tuple(input.shape)} needs ({c},)")
    if training:
        m = input.numel() // c
        if m <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input of shape {tuple(input.shape)}")
        if input.dtype in (np.float32, np.float64) and all(p is None or p.dtype == input.dtype for p in (weight, bias)):
            # One fused node (ops.batchnorm, kernels.batchnorm): same formula, one kernel each way.
            stats = {}
            out = BN.BatchNormTrain.apply(input, weight, bias, eps=eps, stats_out=stats)
            batch_mean, batch_var = stats["mean"], stats["var"]
        else:  # half precision or mixed dtypes: the composed formula (NumPy's promotion rules)
            mean = input.mean(dim=axes, keepdim=True)
            centered = input - mean
            var = (centered * centered).mean(dim=axes, keepdim=True)
            out = centered / (var + eps).sqrt()
            if weight is not None:
                out = out * weight.reshape(shape)
            if bias is not None:
                out = out + bias.reshape(shape)
            batch_mean, batch_var = mean.data.reshape(c), var.data.reshape(c)
        for running, batch, correction in ((running_mean, batch_mean, 1.0), (running_var, batch_var, m / (m - 1))):
            if running is None:
                continue
            array = running.data if isinstance(running, Tensor) else running
            array *= 1 - momentum
            array += momentum * batch.astype(array.dtype) * correction  # × 1.0 is exact for the mean
            if isinstance(running, Tensor):
                running._version.value += 1
        return out
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm in evaluation needs running_mean and running_var (track_running_stats=True)")
        running_mean, running_var = np.asarray(running_mean), np.asarray(running_var)  # a Tensor's data
        if (input.dtype in (np.float32, np.float64) and all(p is None or p.dtype == input.dtype for p in (weight, bias))
                and not (_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias)))):
            # Nothing to differentiate: one pass of y = x·s + t per channel (kernels.batchnorm.batch_norm_eval,
            # torch's CPU formula); with a gradient to compute, the composed formula below.
            x3 = input.data.reshape(input.shape[0], c, -1)
            y = _BN_KERNELS.batch_norm_eval(x3, running_mean, running_var, None if weight is None else weight.data,
                                            None if bias is None else bias.data, eps)
            return Tensor._wrap(y.reshape(input.shape))
        mean = np.asarray(running_mean, dtype=input.dtype).reshape(shape)
        inv_std = (1.0 / np.sqrt(np.asarray(running_var, dtype=input.dtype) + eps)).astype(input.dtype).reshape(shape)
        x_hat = (input - mean) * inv_std
    if weight is not None:
        x_hat = x_hat * weight.reshape(shape)
    if bias is not None:
        x_hat = x_hat + bias.reshape(shape)
    return x_hat


# ----------------------------------------------------------------------------- convolution and pooling


def _unbatched(fn, input: Tensor, *args, **kwargs) -> Tensor:  # noqa: A002
    """Run a 4-D op on an unbatched (C, H, W) input, as torch accepts."""
    if input.ndim == 3:
        y = fn.apply(input.reshape((1,) + tuple(input.shape)), *args, **kwargs)
        return y.reshape(y.shape[1:])
    return fn.apply(input, *args, **kwargs)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,  # noqa: A002
           dilation=1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv2d: input (N, C, H, W) or unbatched (C, H, W), weight
    (O, C/groups, kH, kW), bias (O,) or None. `padding` is an int, a pair, 'valid' or 'same'.
    Formula and algorithm: `tinyopt.ops.conv_pool`."""
    return _unbatched(CP.Conv2dFunction, input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                      groups=groups)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,  # noqa: A002
               return_indices: bool = False):
    """torch.nn.functional.max_pool2d. With `return_indices=True` also returns the flat index
    (y·W + x) of each maximum in its (H, W) plane, as an int64 Tensor (torch's convention)."""
    holder = {} if return_indices else None
    y = _unbatched(CP.MaxPool2dFunction, input, kernel_size=kernel_size, stride=stride, padding=padding,
                   dilation=dilation, ceil_mode=ceil_mode, indices_out=holder)
    if not return_indices:
        return y
    return y, Tensor._wrap(holder["indices"].reshape(y.shape).astype(np.int64))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,  # noqa: A002
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """torch.nn.functional.avg_pool2d (count_include_pad=True by default, as torch)."""
    return _unbatched(CP.AvgPool2dFunction, input, kernel_size=kernel_size, stride=stride, padding=padding,
                      ceil_mode=ceil_mode, count_include_pad=count_include_pad, divisor_override=divisor_override)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """Average-pool to a fixed (OH, OW) whatever the input size (None keeps that input dim)."""
    if input.ndim not in (3, 4):
        raise ShapeError(f"adaptive_avg_pool2d expects input of shape (N, C, H, W) or (C, H, W), got {tuple(input.shape)}")
    size = (output_size, output_size) if isinstance(output_size, numbers.Integral) or output_size is None else tuple(output_size)
    h, w = input.shape[-2:]
    size = (h if size[0] is None else int(size[0]), w if size[1] is None else int(size[1]))
    if min(size) <= 0:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size}")
    return _unbatched(CP.AdaptiveAvgPool2dFunction, input, output_size=size)


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",  # noqa: A002
                align_corners: bool | None = None) -> Tensor:
    """Resize (N, C, H, W) images to `size` or by `scale_factor`; modes "nearest" and "bilinear"
    (formulas in `tinyopt.ops.resample`)."""
    if input.ndim != 4:
        raise NotImplementedError(f"interpolate supports 4-D input (N, C, H, W) only, got {input.ndim}-D")
    if mode not in ("nearest", "bilinear"):
        raise NotImplementedError(f"interpolate mode {mode!r} is not supported; use 'nearest' or 'bilinear'")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("either size or scale_factor should be defined (not both)")
    h, w = input.shape[2:]
    scales = (None, None)
    if size is not None:
        out = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    else:
        scales = (scale_factor, scale_factor) if isinstance(scale_factor, numbers.Number) else tuple(scale_factor)
        out = (int(math.floor(h * scales[0])), int(math.floor(w * scales[1])))
    rows = RS.resize_matrix(h, out[0], mode, bool(align_corners), scales[0])
    cols = RS.resize_matrix(w, out[1], mode, bool(align_corners), scales[1])
    return RS.Resize2d.apply(input, rows, cols)


# ----------------------------------------------------------------------------- losses


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction!r} is not a valid value for reduction: use 'mean', 'sum' or 'none'")


def _labels(target) -> np.ndarray:
    labels = np.asarray(target.data if isinstance(target, Tensor) else target)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"class-index targets must be integers, got dtype {labels.dtype}")
    return labels


def _check_labels(target, input_shape, ignore_index: int = -100) -> np.ndarray:
    """Integer class labels of shape (N,) for an (N, C) input, each in [0, C) or the ignored label."""
    labels = _labels(target)
    if len(input_shape) != 2 or labels.shape != (input_shape[0],):
        raise ValueError(
            f"expected input of shape (N, C) and labels of shape (N,), got {tuple(input_shape)} and {labels.shape}"
        )
    n_classes = input_shape[1]
    used = labels[labels != ignore_index]
    if used.size and (used.min() < 0 or used.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got values from {used.min()} to {used.max()}")
    return labels


def _check_weight(weight, n_classes: int):
    if weight is None:
        return None
    w = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have one entry per class, shape ({n_classes},), got {w.shape}")
    return w


def _classes_last(input: Tensor, target):  # noqa: A002
    """(N, C, d1, ...) with targets (N, d1, ...) → (N·d1·…, C) and (N·d1·…,) (torch's K-dim losses)."""
    if input.ndim <= 2:
        return input, target, None
    c = input.shape[1]
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    flat = input.permute(*perm).reshape(-1, c)
    target = np.asarray(target.data if isinstance(target, Tensor) else target)
    return flat, target.reshape(-1), (input.shape[0],) + tuple(input.shape[2:])


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:  # noqa: A002
    """ℓ_n = −w_{y_n} · input[n, y_n] for log-probabilities (N, C) (or (N, C, d1, ...)) and labels (N,)
    (or (N, d1, ...)); ignored labels give 0 and, for 'mean', the sum is divided by Σ w_{y_n} over the
    labels that are not ignored (torch's weighted mean)."""
    input = float32_region(input)  # noqa: A001 - under autocast, losses run in float32 (torch's fp32 list)
    flat, target, spatial = _classes_last(input, target)
    labels = _check_labels(target, flat.shape, ignore_index)
    w = _check_weight(weight, flat.shape[1])
    keep = labels != ignore_index
    safe = np.where(keep, labels, 0)
    w_n = (np.ones(len(labels)) if w is None else w[safe]) * keep
    picked = flat[np.arange(labels.shape[0]), safe] * w_n.astype(flat.dtype)
    if reduction == "mean":
        return -picked.sum() / np.asarray(w_n.sum(), dtype=flat.dtype)
    loss = _reduce(-picked, reduction)
    return loss.reshape(spatial) if reduction == "none" and spatial is not None else loss


def cross_entropy(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean",  # noqa: A002
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from raw logits (torch.nn.functional.cross_entropy).

    With integer labels y: ℓ_n = −w_{y_n} log softmax(z_n)[y_n] = w_{y_n} (−z_{n,y} + log Σ_c exp(z_{n,c}));
    'mean' divides by Σ_n w_{y_n} (labels equal to `ignore_index` count neither way).
    With a float target of the logits' shape (class probabilities p): ℓ_n = −Σ_c w_c p_{n,c} log softmax(z_n)_c.
    `label_smoothing` ε mixes the target with the uniform distribution: (1−ε)·target + ε/C, i.e.
    ℓ_n = (1−ε) ℓ_n^{nll} + (ε/C) Σ_c −w_c log softmax(z_n)_c   (torch's form, also with weights).
    The log-softmax subtracts the row maximum first, so logits of ±1000 stay finite.
    """
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction!r} is not a valid value for reduction: use 'mean', 'sum' or 'none'")
    input = float32_region(input)  # noqa: A001
    raw_target = np.asarray(target.data if isinstance(target, Tensor) else target)
    flat, raw_flat, spatial = _classes_last(input, raw_target) if not dtypes.is_floating_point(raw_target.dtype) \
        else (input, raw_target, None)
    w = _check_weight(weight, flat.shape[-1])
    if dtypes.is_floating_point(raw_target.dtype):
        if raw_target.shape != tuple(input.shape):
            raise ValueError(f"probability targets must have the logits' shape {tuple(input.shape)}, got {raw_target.shape}")
        probs = raw_target
        if label_smoothing:
            probs = (1 - label_smoothing) * probs + label_smoothing / input.shape[1]
        if w is not None:
            probs = probs * w.reshape((1, -1) + (1,) * (input.ndim - 2))
        per_row = -(log_softmax(input, dim=1) * probs.astype(input.dtype)).sum(dim=1)
        return _reduce(per_row, reduction)
    labels = _check_labels(raw_flat, flat.shape, ignore_index)
    if not label_smoothing:
        # The common case as one fused node (ops.nn.CrossEntropy); same formula, no scatter.
        loss = NN.CrossEntropy.apply(flat, labels, reduction=reduction, weight=w, ignore_index=ignore_index)
        return loss.reshape(spatial) if reduction == "none" and spatial is not None else loss
    log_p = log_softmax(flat, dim=1)
    keep = (labels != ignore_index).astype(flat.dtype)
    nll = nll_loss(log_p, labels, weight=w, ignore_index=ignore_index, reduction="none")
    class_w = np.ones(flat.shape[1], dtype=flat.dtype) if w is None else w.astype(flat.dtype)
    smooth = -(log_p * class_w).sum(dim=1) * keep / flat.shape[1]
    per_row = nll * (1 - label_smoothing) + smooth * label_smoothing
    if reduction == "mean":
        safe = np.where(labels != ignore_index, labels, 0)
        denominator = (class_w[safe] * keep).sum()
        return per_row.sum() / np.asarray(denominator, dtype=flat.dtype)
    loss = _reduce(per_row, reduction)
    return loss.reshape(spatial) if reduction == "none" and spatial is not None else loss


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002 - torch's name
    """ℓ = (x − y)²."""
    _check_same_shape("mse_loss", input, target)
    input = float32_region(input)  # noqa: A001
    diff = input - _operand(target)
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """ℓ = |x − y|."""
    _check_same_shape("l1_loss", input, target)
    input = float32_region(input)  # noqa: A001
    return _reduce((input - _operand(target)).abs(), reduction)


def smooth_l1_loss(input: Tensor, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:  # noqa: A002
    """ℓ = ½ d²/β where |d| < β, else |d| − ½β, d = x − y (Huber's loss divided by β)."""
    _check_same_shape("smooth_l1_loss", input, target)
    input = float32_region(input)  # noqa: A001
    d = (input - _operand(target)).abs()
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(where(d.data < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def _check_same_shape(name, input, target) -> None:  # noqa: A002
    shape = np.shape(target.data if isinstance(target, Tensor) else target)
    if shape != tuple(input.shape):
        # torch broadcasts with a UserWarning; so does tinyopt, since a (N,) target against (N, 1)
        # outputs silently computes an (N, N) loss.
        warnings.warn(f"{name}: using a target size ({shape}) that is different to the input size "
                      f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", UserWarning, stacklevel=3)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction: str = "mean",  # noqa: A002
                                     pos_weight=None) -> Tensor:
    """ℓ = −w·[w_p·y·log σ(x) + (1 − y)·log(1 − σ(x))], computed stably as
    (1 − y)·x + (1 + (w_p − 1)·y)·(log(1 + e^(−|x|)) + max(−x, 0))   (torch's formulation)."""
    input = float32_region(input)  # noqa: A001
    y = _operand(target)
    # log(1 + e^(−x)) = log(1 + e^(−|x|)) + max(−x, 0). At x = 0 both terms have a kink; abs' (0) = 0
    # and maximum's tie rule (½ to each side) give the true derivative −½ there (relu would give 0).
    softplus_neg = (1 + (-input.abs()).exp()).log() + (-input).maximum(0.0)
    if pos_weight is None:
        loss = (1 - y) * input + softplus_neg
    else:
        loss = (1 - y) * input + (1 + (_operand(pos_weight) - 1) * y) * softplus_neg
    if weight is not None:
        loss = loss * _operand(weight)
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean", eps: float = 1e-12) -> Tensor:  # noqa: A002
    """ℓ = −w·[y·log p + (1 − y)·log(1 − p)] on probabilities p (clamped away from 0 and 1)."""
    input = float32_region(input)  # noqa: A001
    y = _operand(target)
    p = input.clamp(eps, 1 - eps)
    loss = -(y * p.log() + (1 - y) * (1 - p).log())
    if weight is not None:
        loss = loss * _operand(weight)
    return _reduce(loss, reduction)


def fake_quantize_per_tensor_affine(input: Tensor, scale: float, zero_point: int, quant_min: int,  # noqa: A002
                                    quant_max: int) -> Tensor:
    """x̂ = S (clamp(round(x/S) + Z, q_min, q_max) − Z), gradient 1 where representable, else 0 (the
    straight-through estimator, `tinyopt.ops.quant`). Like `torch.fake_quantize_per_tensor_affine`;
    ValueError for q_min > q_max, Z outside [q_min, q_max], or S not finite and > 0."""
    scale = float(np.asarray(scale, np.float64).reshape(-1)[0]) if np.size(scale) == 1 else scale
    if np.size(scale) != 1 or np.size(zero_point) != 1:
        raise ValueError("fake_quantize_per_tensor_affine: scale and zero_point must be scalars; "
                         "use fake_quantize_per_channel_affine for one per channel")
    zero_point = np.asarray(zero_point).reshape(-1)[0]
    QO.check_fake_quant_args(scale, zero_point, quant_min, quant_max, "fake_quantize_per_tensor_affine")
    return QO.FakeQuantizeAffine.apply(input, np.float32(scale), int(zero_point), int(quant_min), int(quant_max))


def fake_quantize_per_channel_affine(input: Tensor, scale, zero_point, axis: int, quant_min: int,  # noqa: A002
                                     quant_max: int) -> Tensor:
    """`fake_quantize_per_tensor_affine` with one (S_c, Z_c) per slice along `axis`. Like
    `torch.fake_quantize_per_channel_affine`; `axis` out of range is an IndexError, as in torch."""
    arr = input.data if isinstance(input, Tensor) else np.asarray(input)
    axis = D.normalize_dim(axis, arr.ndim, "fake_quantize_per_channel_affine")
    scale = np.asarray(scale.data if isinstance(scale, Tensor) else scale, np.float32).reshape(-1)
    zero_point = np.asarray(zero_point.data if isinstance(zero_point, Tensor) else zero_point).reshape(-1)
    if scale.size != arr.shape[axis] or zero_point.size != arr.shape[axis]:
        raise ValueError(f"fake_quantize_per_channel_affine: axis {axis} of the input {arr.shape} has "
                         f"{arr.shape[axis]} channels, but {scale.size} scales and {zero_point.size} zero points")
    QO.check_fake_quant_args(scale, zero_point, quant_min, quant_max, "fake_quantize_per_channel_affine")
    shape = QO.channel_shape(arr.ndim, axis)
    return QO.FakeQuantizeAffine.apply(input, scale.reshape(shape), zero_point.astype(np.int64).reshape(shape),
                                       int(quant_min), int(quant_max))


__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "conv2d", "cosine_similarity", "cross_entropy", "dropout", "elu", "gelu", "hardtanh", "interpolate", "l1_loss", "layer_norm",
    "leaky_relu", "linear", "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "normalize", "one_hot", "pad", "relu", "relu6",
    "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "tanh",
    "fake_quantize_per_channel_affine", "fake_quantize_per_tensor_affine",
]


# ----------------------------------------------------------------------------- distillation losses

_KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)


def kl_div(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",  # noqa: A002
           log_target: bool = False) -> Tensor:
    """Pointwise Kullback-Leibler divergence, torch.nn.functional.kl_div.

    `input` holds log-probabilities log q (e.g. `log_softmax` of a student's logits); `target` holds
    probabilities p, or log-probabilities log p with `log_target=True` (torch's order: the
    *target* is the first argument of KL, KL(p ‖ q)). Pointwise:

        log_target=False:  ℓ = p · (log p − log q) = xlogy(p, p) − p · log q   (ℓ = 0 where p = 0)
        log_target=True:   ℓ = exp(log p) · (log p − log q)

    Reductions: 'none' (ℓ, the broadcast shape), 'sum' (Σ ℓ), 'batchmean' (Σ ℓ / N with N =
    input.shape[0]: for rows of distributions this is the mean over the batch of KL(p_n ‖ q_n),
    the KL divergence proper), and the default 'mean' (Σ ℓ / numel, i.e. batchmean / C), which is
    *not* the KL divergence: it warns, as torch does. Distillation uses 'batchmean'.
    ∂ℓ/∂log q = −p; a target that requires grad gets ∂ℓ/∂p = log p + 1 − log q.
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch and not supported: use reduction=")
    if reduction not in ("mean", "batchmean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction: use 'mean', 'batchmean', 'sum' or 'none'")
    if reduction == "mean":
        warnings.warn(_KL_MEAN_WARNING, UserWarning, stacklevel=2)
    t = _operand(target)
    if isinstance(t, numbers.Number):
        t = Tensor._wrap(np.asarray(t, dtype=input.dtype))
    if log_target:
        loss = t.exp() * (t - input)
    else:
        # xlogy(p, p): log is taken of 1 where p = 0, so 0 · log 0 = 0 and its gradient is finite;
        # a negative p gives NaN, as in torch.
        safe = where(t.data == 0, 1.0, t)
        loss = t * safe.log() - t * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim != 0 else total
    return _reduce(loss, reduction)


def kd_loss(student_logits: Tensor, teacher_logits, target=None, T: float = 4.0, alpha: float = 0.9) -> Tensor:
    """Knowledge-distillation loss (Hinton, Vinyals & Dean 2015, https://arxiv.org/abs/1503.02531).

    With logits z_s (student) and z_t (teacher) of shape (N, C), temperature T and labels y:

        p^T = softmax(z_t / T),   q^T = softmax(z_s / T)
        L = α · T² · (1/N) Σ_n KL(p^T_n ‖ q^T_n) + (1 − α) · (1/N) Σ_n CE(z_s,n, y_n)

    (the form most PyTorch code writes, `α·T²·kl_div(log_softmax(z_s/T), softmax(z_t/T),
    reduction='batchmean') + (1−α)·cross_entropy(z_s, y)`). With `target=None` it is the soft
    term alone, T² · KL (α is not applied).

    Why T²: ∂KL(p^T ‖ q^T)/∂z_s,i = (1/T)(q^T_i − p^T_i). For T large compared with the logits
    (and logits of zero mean per row), softmax(z/T)_i ≈ (1 + z_i/T)/C, so the gradient is
    ≈ (1/(C T²)) (z_s,i − z_t,i): the soft targets' gradients shrink as 1/T². Multiplying by T²
    keeps their size roughly independent of T, so α means the same thing at every temperature
    and the soft term does not vanish next to the hard one (Hinton et al., section 2). In the
    limit it is logit matching: T² · KL → (1/(2C)) Σ_i (z_s,i − z_t,i)² (Hinton et al. 2.1).

    Conventions: here α weights the soft (distillation) term. The Keras example
    (keras.io/examples/vision/knowledge_distillation) writes α·student_loss + (1−α)·distill_loss
    with α = 0.1, i.e. its α is this (1 − α); `tinyopt.keras.Distiller` keeps Keras' meaning.
    KL differs from the cross-entropy −Σ p^T log q^T used in some code only by the teacher's
    entropy, a constant for the student: same gradients, but KL is 0 when the two agree.
    The teacher logits are used as given: pass them computed under `no_grad` (as
    `tinyopt.distill.Distiller` does) or detached, unless the teacher should learn too.
    The softmaxes are computed as log-softmaxes (KL with log_target=True), so a confident
    teacher at T = 1 does not underflow to log 0.
    """
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or not math.isfinite(T) or T <= 0:
        raise ValueError(f"temperature T must be a positive finite number, got {T!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    z_t = _operand(teacher_logits)
    if student_logits.ndim != 2 or tuple(z_t.shape) != tuple(student_logits.shape):
        raise ShapeError(f"kd_loss needs student and teacher logits of the same shape (N, C), got student "
                         f"{tuple(student_logits.shape)} and teacher {tuple(z_t.shape)}")
    if target is not None:
        _check_labels(target, tuple(student_logits.shape))
    soft = kl_div(log_softmax(student_logits / T, dim=1), log_softmax(z_t / T, dim=1), reduction="batchmean",
                  log_target=True) * float(T * T)
    if target is None:
        return soft
    return soft * float(alpha) + cross_entropy(student_logits, target) * float(1.0 - alpha)


__all__ += ["kd_loss", "kl_div"]
# ----------------------------------------------------------------------------- embedding and recurrent layers
# (added with nn.Embedding and nn.RNN / LSTM / GRU; the ops are in ops/embedding.py and ops/recurrent.py)

from tinyopt.ops import embedding as _EMB  # noqa: E402
from tinyopt.ops import recurrent as _REC  # noqa: E402


def embedding(input, weight: Tensor, padding_idx=None, max_norm=None, norm_type: float = 2.0,  # noqa: A002
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """out[…, :] = weight[input[…], :] (torch's F.embedding). The row `padding_idx` gets no gradient;
    with `max_norm`, every row looked up whose `norm_type`-norm exceeds max_norm is first rescaled in
    place to max_norm / (‖w‖ + 1e−7) · w (torch's renorm, outside autograd)."""
    idx = np.asarray(input.data if isinstance(input, Tensor) else input)
    if not np.issubdtype(idx.dtype, np.integer):
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {idx.dtype} instead")
    n = weight.shape[0]
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"index out of range in self: indices must be in [0, {n}), got min {idx.min()}, max {idx.max()}")
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"Padding_idx must be within num_embeddings ({n}), got {padding_idx}")
        padding_idx = padding_idx + n if padding_idx < 0 else padding_idx
    if sparse:
        raise NotImplementedError("embedding(sparse=True): tinyopt has no sparse gradients; use sparse=False")
    if max_norm is not None:
        if max_norm <= 0:
            raise ValueError(f"max_norm must be positive, got {max_norm}")
        rows = np.unique(idx)
        w = weight.data[rows]
        norms = np.sum(np.abs(w) ** norm_type, axis=1) ** (1.0 / norm_type)
        scale = np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        weight.data[rows] = (w * scale[:, None]).astype(weight.dtype)
        weight._version.value += 1
    return _EMB.Embedding.apply(weight, idx.astype(np.intp), padding_idx=padding_idx,
                                scale_grad_by_freq=scale_grad_by_freq)


def _check_recurrent(name, input, hx, weight_ih, weight_hh, gates):  # noqa: A002
    if input.ndim != 3:
        raise ShapeError(f"{name}: expected input of shape (T, B, input_size), got {tuple(input.shape)}")
    hidden = weight_hh.shape[1]
    if tuple(weight_ih.shape) != (gates * hidden, input.shape[2]) or tuple(weight_hh.shape) != (gates * hidden, hidden):
        raise ShapeError(f"{name}: weights of shape {tuple(weight_ih.shape)}, {tuple(weight_hh.shape)} do not fit input "
                         f"{tuple(input.shape)} (expected ({gates * hidden}, {input.shape[2]}) and ({gates * hidden}, {hidden}))")
    for h in hx:
        if tuple(h.shape) != (input.shape[1], hidden):
            raise ShapeError(f"{name}: expected a state of shape {(input.shape[1], hidden)}, got {tuple(h.shape)}")
    for what, t in (("weight_ih", weight_ih), ("weight_hh", weight_hh), *(("hx", h) for h in hx)):
        if t.dtype != input.dtype:
            raise RuntimeError(f"{name}: input and {what} must have the same dtype, got {input.dtype} and {t.dtype} "
                               "(convert the module with .double() / .float(), or the input with .to(dtype))")


def rnn_layer(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih=None, bias_hh=None, *,  # noqa: A002
              nonlinearity: str = "tanh", lengths=None, reverse: bool = False):
    """One layer, one direction of torch's nn.RNN on time-major input (T, B, I):
    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh) (or relu). Returns (output (T, B, H), h_n (B, H)).
    `lengths` (B,) marks steps t ≥ len_b as padding (see ops/recurrent.py). Not a torch function:
    tinyopt's building block of nn.RNN and nn.RNNCell."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    _check_recurrent("rnn_layer", input, (hx,), weight_ih, weight_hh, 1)
    out = _REC.RNNLayer.apply(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, relu=nonlinearity == "relu",
                              lengths=lengths, reverse=reverse)
    T = input.shape[0]
    return out[:T], out[T]


def lstm_layer(input: Tensor, hx: Tensor, cx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih=None,  # noqa: A002
               bias_hh=None, *, lengths=None, reverse: bool = False):
    """One layer, one direction of torch's nn.LSTM (gates i, f, g, o). Returns (output, h_n, c_n)."""
    _check_recurrent("lstm_layer", input, (hx, cx), weight_ih, weight_hh, 4)
    out = _REC.LSTMLayer.apply(input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, lengths=lengths, reverse=reverse)
    T = input.shape[0]
    return out[:T], out[T], out[T + 1]


def gru_layer(input: Tensor, hx: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias_ih=None, bias_hh=None, *,  # noqa: A002
              lengths=None, reverse: bool = False):
    """One layer, one direction of torch's nn.GRU (gates r, z, n). Returns (output, h_n)."""
    _check_recurrent("gru_layer", input, (hx,), weight_ih, weight_hh, 3)
    out = _REC.GRULayer.apply(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, lengths=lengths, reverse=reverse)
    T = input.shape[0]
    return out[:T], out[T]


__all__ += ["embedding", "gru_layer", "lstm_layer", "rnn_layer"]
