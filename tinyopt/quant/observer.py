"""Observers: watch the tensors that flow through a layer and choose its (S, Z).

Names, arguments and results follow `torch.ao.quantization.observer`:

- `MinMaxObserver`              running min and max of everything seen;
- `MovingAverageMinMaxObserver`  min ← min + c·(min_batch − min) (same for max), c = averaging_constant;
                                 the first batch sets them directly;
- `PerChannelMinMaxObserver`     min and max per slice along `ch_axis` (per-channel weights);
- `PercentileObserver`           (not in torch; tinyopt's answer to outliers, in place of torch's
                                 `HistogramObserver`, whose L2 search is not reproduced here) keeps
                                 a histogram and takes the range [P_p, P_(100−p)] instead of
                                 [min, max], so a few outliers do not stretch the scale.

`calculate_qparams()` turns the observed range into (scale, zero_point) with
`choose_qparams` (see its docstring for the formulas), returning arrays of shape (1,) per tensor
or (C,) per channel, equal to torch's for the same data.

Quantization range: `dtype` sets [q_min, q_max] (quint8 [0, 255], qint8 [−128, 127], low-bit
types their own); `reduce_range=True` drops one bit (quint8 [0, 127], qint8 [−64, 63]), as torch
does for fbgemm's 16-bit intermediate overflow (tinyopt's kernels accumulate exactly in int32 and
do not need it); `quant_min`/`quant_max` set a custom range (and reduce_range halves it).
"""
from __future__ import annotations

import numpy as np

from tinyopt.ops.dims import normalize_dim

from tinyopt.nn.module import Module
from tinyopt.quant.affine import EPS, as_qdtype, choose_qparams, quint8

PER_TENSOR_AFFINE = "per_tensor_affine"
PER_TENSOR_SYMMETRIC = "per_tensor_symmetric"
PER_CHANNEL_AFFINE = "per_channel_affine"
PER_CHANNEL_SYMMETRIC = "per_channel_symmetric"
QSCHEMES = (PER_TENSOR_AFFINE, PER_TENSOR_SYMMETRIC, PER_CHANNEL_AFFINE, PER_CHANNEL_SYMMETRIC)

# torch's names work too
per_tensor_affine, per_tensor_symmetric = PER_TENSOR_AFFINE, PER_TENSOR_SYMMETRIC
per_channel_affine, per_channel_symmetric = PER_CHANNEL_AFFINE, PER_CHANNEL_SYMMETRIC


def as_qscheme(qscheme) -> str:
    name = str(qscheme).replace("torch.", "")
    if name not in QSCHEMES:
        raise ValueError(f"unsupported qscheme {qscheme!r}; choose one of {QSCHEMES}")
    return name


def calculate_qmin_qmax(quant_min, quant_max, dtype, reduce_range: bool):
    """[q_min, q_max] as torch's `calculate_qmin_qmax`: the dtype's range (reduced by one bit when
    asked), or the custom range (halved when reduce_range)."""
    qd = as_qdtype(dtype)
    if (quant_min is None) != (quant_max is None):
        raise ValueError("give both quant_min and quant_max, or neither")
    if quant_min is not None:
        if not quant_min <= 0 <= quant_max:
            raise ValueError(f"the quantization range must contain 0, got [{quant_min}, {quant_max}]")
        if quant_min >= quant_max:
            raise ValueError(f"quant_min must be < quant_max, got [{quant_min}, {quant_max}]")
        if quant_min < qd.qmin or quant_max > qd.qmax:
            raise ValueError(f"[{quant_min}, {quant_max}] does not fit {qd.name} [{qd.qmin}, {qd.qmax}]")
        if reduce_range:
            return quant_min // 2, quant_max // 2
        return int(quant_min), int(quant_max)
    if reduce_range and qd.bits == 8:
        return (-64, 63) if qd.signed else (0, 127)
    return qd.qmin, qd.qmax


def _as_array(x) -> np.ndarray:
    from tinyopt.tensor import Tensor

    return np.asarray(x.data if isinstance(x, Tensor) else x)


class NonFiniteBatch(ValueError):
    """An observer was given a batch holding NaN or ±∞; its statistics were left unchanged."""


def finite_batch(x, who: str) -> np.ndarray:
    """x as float32, or `NonFiniteBatch` naming how many NaN and ±∞ it holds and where the first is.
    A non-finite value has no place on a grid of finite step; recorded, it would turn min/max
    into NaN/±∞ and the observer would later look as if it had seen no data at all."""
    arr = _as_array(x).astype(np.float32, copy=False)
    if arr.size and not np.all(np.isfinite(arr)):
        nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise NonFiniteBatch(
            f"{who}: the batch (shape {arr.shape}) holds {nan} NaN and {inf} ±Inf values (first at index "
            f"{first}: {arr[first]}); nothing was recorded. Calibrate with finite inputs (check the data and "
            "the float model's outputs)")
    return arr


class ObserverBase(Module):
    """Common settings; subclasses record statistics in `forward(x)` (returning x unchanged)."""

    def __init__(self, dtype="quint8", qscheme=PER_TENSOR_AFFINE, reduce_range=False, quant_min=None,
                 quant_max=None, eps=EPS, is_dynamic=False):
        super().__init__()
        self.dtype = as_qdtype(dtype)
        self.qscheme = as_qscheme(qscheme)
        self.reduce_range = bool(reduce_range)
        self.has_customized_qrange = quant_min is not None and quant_max is not None
        self.quant_min, self.quant_max = calculate_qmin_qmax(quant_min, quant_max, self.dtype, reduce_range)
        self.eps = np.float32(eps)
        self.is_dynamic = is_dynamic

    def _store(self, **values) -> None:
        """Set buffers (min_val, max_val, histogram) to new values: in the buffer's own memory when the
        shape is unchanged (as torch's copy_, so a reference kept to the buffer sees the update), else
        as a new Tensor (a per-channel observer's first batch sets the number of channels)."""
        for name, value in values.items():
            buffer, array = getattr(self, name), np.asarray(value)
            if buffer is not None and buffer.data.shape == array.shape:
                buffer.data[...] = array
                buffer._version.value += 1
            else:
                setattr(self, name, array.astype(np.float64 if name == "histogram" else np.float32, copy=False))

    @property
    def symmetric(self) -> bool:
        return self.qscheme in (PER_TENSOR_SYMMETRIC, PER_CHANNEL_SYMMETRIC)

    @property
    def per_channel(self) -> bool:
        return self.qscheme in (PER_CHANNEL_AFFINE, PER_CHANNEL_SYMMETRIC)

    def _qparams_from(self, min_val, max_val):
        return choose_qparams(min_val, max_val, self.quant_min, self.quant_max, symmetric=self.symmetric,
                              unsigned=not self.dtype.signed, customized_range=self.has_customized_qrange,
                              eps=self.eps)

    def has_observed(self) -> bool:
        return bool(np.all(np.isfinite(self.min_val.data)) and np.all(np.isfinite(self.max_val.data)))

    def calculate_qparams(self):
        """(scale float32 array, zero_point int64 array), shape (1,) per tensor or (C,) per channel.

        Before any data was observed, returns scale 1 and zero point 0, like torch."""
        if not self.has_observed():
            return np.ones(1, np.float32), np.zeros(1, np.int64)
        scale, zp = self._qparams_from(self.min_val.data, self.max_val.data)
        return np.atleast_1d(scale).astype(np.float32), np.atleast_1d(zp).astype(np.int64)

    def extra_repr(self) -> str:
        return (f"dtype={self.dtype.name}, qscheme={self.qscheme}, quant_min={self.quant_min}, "
                f"quant_max={self.quant_max}, min_val={self.min_val.data}, max_val={self.max_val.data}")


class MinMaxObserver(ObserverBase):
    """min_val = min over all observed x, max_val = max over all observed x (per tensor)."""

    def __init__(self, dtype="quint8", qscheme=PER_TENSOR_AFFINE, reduce_range=False, quant_min=None,
                 quant_max=None, eps=EPS, is_dynamic=False):
        if as_qscheme(qscheme) in (PER_CHANNEL_AFFINE, PER_CHANNEL_SYMMETRIC):
            raise ValueError("MinMaxObserver is per tensor; use PerChannelMinMaxObserver for per-channel qschemes")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps, is_dynamic)
        if self.symmetric and self.reduce_range and self.dtype == quint8:
            raise NotImplementedError("cannot reduce range for symmetric quantization for quint8 (as torch)")
        self.register_buffer("min_val", np.float32(np.inf))
        self.register_buffer("max_val", np.float32(-np.inf))

    def forward(self, x):
        arr = finite_batch(x, type(self).__name__)
        if arr.size == 0:
            return x
        self._store(min_val=np.minimum(np.float32(arr.min()), self.min_val.data))
        self._store(max_val=np.maximum(np.float32(arr.max()), self.max_val.data))
        return x

    def reset_min_max_vals(self):
        self._store(min_val=np.float32(np.inf), max_val=np.float32(-np.inf))


class MovingAverageMinMaxObserver(MinMaxObserver):
    """min ← min + c (min_batch − min), max ← max + c (max_batch − max); the first batch sets them.

    c = `averaging_constant` (torch's default 0.01).  Used by FakeQuantize during QAT, where the
    activations drift while the weights train."""

    def __init__(self, averaging_constant=0.01, dtype="quint8", qscheme=PER_TENSOR_AFFINE, reduce_range=False,
                 quant_min=None, quant_max=None, eps=EPS, is_dynamic=False):
        if not 0 < averaging_constant <= 1:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps, is_dynamic)
        self.averaging_constant = averaging_constant

    def forward(self, x):
        arr = finite_batch(x, type(self).__name__)
        if arr.size == 0:
            return x
        cur_min, cur_max = np.float32(arr.min()), np.float32(arr.max())
        if not self.has_observed():
            self._store(min_val=cur_min, max_val=cur_max)
        else:
            c = np.float32(self.averaging_constant)
            self._store(min_val=np.float32(self.min_val.data + c * (cur_min - self.min_val.data)))
            self._store(max_val=np.float32(self.max_val.data + c * (cur_max - self.max_val.data)))
        return x


class PerChannelMinMaxObserver(ObserverBase):
    """min_val[c], max_val[c] over each slice x[..., c, ...] along `ch_axis` (default 0: a weight's
    output channels).  Default qscheme per_channel_affine, like torch."""

    def __init__(self, ch_axis=0, dtype="quint8", qscheme=PER_CHANNEL_AFFINE, reduce_range=False,
                 quant_min=None, quant_max=None, eps=EPS, is_dynamic=False):
        if as_qscheme(qscheme) not in (PER_CHANNEL_AFFINE, PER_CHANNEL_SYMMETRIC):
            raise ValueError(f"PerChannelMinMaxObserver needs a per-channel qscheme, got {qscheme!r}")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps, is_dynamic)
        self.ch_axis = ch_axis
        self.register_buffer("min_val", np.zeros(0, np.float32))
        self.register_buffer("max_val", np.zeros(0, np.float32))

    def has_observed(self) -> bool:
        return self.min_val.data.size > 0

    def forward(self, x):
        arr = finite_batch(x, type(self).__name__)
        if arr.size == 0:
            return x
        axis = normalize_dim(self.ch_axis, arr.ndim, f"{type(self).__name__}(ch_axis={self.ch_axis})")
        y = np.moveaxis(arr, axis, 0).reshape(arr.shape[axis], -1)
        cur_min, cur_max = y.min(axis=1), y.max(axis=1)
        if not self.has_observed():
            self._store(min_val=cur_min, max_val=cur_max)
        else:
            if cur_min.shape != self.min_val.data.shape:
                raise ValueError(
                    f"PerChannelMinMaxObserver saw {self.min_val.data.size} channels before, now {cur_min.size} "
                    f"(input shape {arr.shape}, ch_axis={self.ch_axis})")
            self._store(min_val=np.minimum(cur_min, self.min_val.data))
            self._store(max_val=np.maximum(cur_max, self.max_val.data))
        return x

    def calculate_qparams(self):
        if not self.has_observed():
            return np.ones(1, np.float32), np.zeros(1, np.int64)
        scale, zp = self._qparams_from(self.min_val.data, self.max_val.data)
        return scale.astype(np.float32), zp.astype(np.int64)

    def reset_min_max_vals(self):
        self._store(min_val=np.zeros(0, np.float32), max_val=np.zeros(0, np.float32))


class PercentileObserver(ObserverBase):
    """Range [P_p, P_(100 − p)] of everything observed, read from a histogram (tinyopt's own).

    The histogram has `bins` equal bins over [min, max] seen so far.  When a new batch widens the
    range, the old counts move to the new bins that contain their old bin centres (an
    approximation of at most one old bin width), then the batch is added exactly.  Percentiles
    interpolate linearly inside a bin.  With p = 0 it is the MinMaxObserver's range.
    """

    def __init__(self, percentile=0.01, bins=2048, dtype="quint8", qscheme=PER_TENSOR_AFFINE, reduce_range=False,
                 quant_min=None, quant_max=None, eps=EPS, is_dynamic=False):
        if not 0 <= percentile < 50:
            raise ValueError(f"percentile must be in [0, 50) (the tail cut on each side, in %), got {percentile}")
        if as_qscheme(qscheme) not in (PER_TENSOR_AFFINE, PER_TENSOR_SYMMETRIC):
            raise ValueError("PercentileObserver is per tensor")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps, is_dynamic)
        self.percentile = float(percentile)
        self.bins = int(bins)
        self.register_buffer("histogram", np.zeros(self.bins, np.float64))
        self.register_buffer("min_val", np.float32(np.inf))
        self.register_buffer("max_val", np.float32(-np.inf))

    def forward(self, x):
        arr = finite_batch(x, type(self).__name__).reshape(-1)
        if arr.size == 0:
            return x
        lo, hi = np.float32(min(arr.min(), self.min_val.data)), np.float32(max(arr.max(), self.max_val.data))
        if self.has_observed() and (lo < self.min_val.data or hi > self.max_val.data) and self.histogram.data.sum() > 0:
            old_edges = np.linspace(self.min_val.data, self.max_val.data, self.bins + 1)
            centres = (old_edges[:-1] + old_edges[1:]) / 2
            moved, _ = np.histogram(centres, bins=self.bins, range=(lo, hi) if hi > lo else (lo, lo + 1e-12),
                                    weights=self.histogram.data)
            self._store(histogram=moved)
        counts, _ = np.histogram(arr, bins=self.bins, range=(lo, hi) if hi > lo else (lo, lo + 1e-12))
        self._store(histogram=self.histogram.data + counts)
        self._store(min_val=lo, max_val=hi)
        return x

    def percentile_range(self):
        """(P_p, P_(100−p)) of the histogram, linear inside bins."""
        if self.percentile == 0 or self.max_val.data <= self.min_val.data:
            return np.float32(self.min_val.data), np.float32(self.max_val.data)
        edges = np.linspace(self.min_val.data, self.max_val.data, self.bins + 1)
        cdf = np.concatenate([[0.0], np.cumsum(self.histogram.data)]) / self.histogram.data.sum()
        lo = np.interp(self.percentile / 100, cdf, edges)
        hi = np.interp(1 - self.percentile / 100, cdf, edges)
        return np.float32(lo), np.float32(hi)

    def calculate_qparams(self):
        if not self.has_observed():
            return np.ones(1, np.float32), np.zeros(1, np.int64)
        lo, hi = self.percentile_range()
        scale, zp = self._qparams_from(lo, hi)
        return np.atleast_1d(scale).astype(np.float32), np.atleast_1d(zp).astype(np.int64)


class PlaceholderObserver(ObserverBase):
    """Records nothing: marks an activation quantized per batch at run time (dynamic quantization)."""

    def __init__(self, dtype="qint8", qscheme=PER_TENSOR_AFFINE, is_dynamic=True, **kwargs):
        super().__init__(dtype, qscheme, is_dynamic=is_dynamic, **kwargs)
        self.register_buffer("min_val", np.float32(np.inf))
        self.register_buffer("max_val", np.float32(-np.inf))

    def forward(self, x):
        return x
