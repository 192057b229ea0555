"""Fake quantization for quantization-aware training (QAT), with a straight-through estimator.

Forward (float in, float out, values snapped to the quantization grid):

    x̂ = S · (clamp(round(x / S) + Z, q_min, q_max) − Z)

round has derivative 0 almost everywhere, which would stop all learning.  The straight-through
estimator (STE; Bengio et al. 2013, used by Jacob et al. 2018 §3) treats round as the identity
inside the clamp range and the clamp as a clamp:

    ∂x̂/∂x = 1   if q_min ≤ round(x / S) + Z ≤ q_max      (the value is representable)
            0   otherwise                                 (saturated: the gradient stops)

exactly torch's `fake_quantize_per_tensor_affine` / `_per_channel_affine` backward.  S and Z
are constants here (not learned; LSQ-style learned scales are not implemented).

`FakeQuantize` is the module: an observer (by default MovingAverageMinMaxObserver) updates
(S, Z) from each batch while `observer_enabled`, and the fake quantization runs while
`fake_quant_enabled` — the same switches as torch's `torch.ao.quantization.FakeQuantize`.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function
from tinyopt.nn.module import Module
from tinyopt.quant.observer import MovingAverageMinMaxObserver


def _grid(x, scale, zero_point, qmin, qmax):
    """q_unclamped = round(x · (1/S)) + Z (1/S in float32, half to even), as float32."""
    inv_scale = np.float32(1.0) / np.asarray(scale, np.float32)
    return np.rint(x.astype(np.float32, copy=False) * inv_scale) + np.asarray(zero_point, np.float32)


class FakeQuantizeFunction(Function):
    """x̂ = S (clamp(round(x/S) + Z, q_min, q_max) − Z); gradient 1 inside the range, 0 outside.

    `scale`/`zero_point` are scalars, or arrays already shaped to broadcast along the channel axis."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, quant_min, quant_max):
        q = _grid(x, scale, zero_point, quant_min, quant_max)
        inside = (q >= quant_min) & (q <= quant_max)
        ctx.save_for_backward(inside)
        s = np.asarray(scale, np.float32)
        out = (np.clip(q, quant_min, quant_max) - np.asarray(zero_point, np.float32)) * s
        return out.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quantize_per_tensor_affine(x, scale: float, zero_point: int, quant_min: int, quant_max: int):
    """Like `torch.fake_quantize_per_tensor_affine` (differentiable, STE)."""
    return FakeQuantizeFunction.apply(x, np.float32(scale), int(zero_point), quant_min, quant_max)


def fake_quantize_per_channel_affine(x, scale, zero_point, axis: int, quant_min: int, quant_max: int):
    """Like `torch.fake_quantize_per_channel_affine`: one (S_c, Z_c) per slice along `axis`."""
    shape = [1] * x.ndim
    shape[axis] = -1
    scale = np.asarray(scale, np.float32).reshape(shape)
    zero_point = np.asarray(zero_point, np.int64).reshape(shape)
    return FakeQuantizeFunction.apply(x, scale, zero_point, quant_min, quant_max)


class FakeQuantize(Module):
    """Observe, then fake-quantize: the QAT stand-in for a quantized tensor.

    FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=None, quant_max=None, **observer_kwargs)

    forward(x):  if observer_enabled: observer(x); (S, Z) ← observer.calculate_qparams()
                 if fake_quant_enabled: x ← fake_quantize(x, S, Z)  (per tensor or per channel)
    """

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min=None, quant_max=None, **observer_kwargs):
        super().__init__()
        if quant_min is not None or quant_max is not None:
            observer_kwargs.update(quant_min=quant_min, quant_max=quant_max)
        self.activation_post_process = observer(**observer_kwargs)
        obs = self.activation_post_process
        self.quant_min, self.quant_max = obs.quant_min, obs.quant_max
        self.dtype, self.qscheme = obs.dtype, obs.qscheme
        self.ch_axis = getattr(obs, "ch_axis", -1)
        self.is_per_channel = obs.per_channel
        self.register_buffer("scale", np.ones(1, np.float32))
        self.register_buffer("zero_point", np.zeros(1, np.int64))
        self.observer_enabled = True
        self.fake_quant_enabled = True

    @classmethod
    def with_args(cls, **kwargs):
        """A factory with bound arguments, like torch's `FakeQuantize.with_args(...)`."""
        def make():
            return cls(**kwargs)
        make.with_args_of = (cls, kwargs)
        return make

    def enable_observer(self, enabled: bool = True):
        self.observer_enabled = bool(enabled)
        return self

    def disable_observer(self):
        return self.enable_observer(False)

    def enable_fake_quant(self, enabled: bool = True):
        self.fake_quant_enabled = bool(enabled)
        return self

    def disable_fake_quant(self):
        return self.enable_fake_quant(False)

    def calculate_qparams(self):
        return self.activation_post_process.calculate_qparams()

    def forward(self, x):
        if self.observer_enabled:
            self.activation_post_process(x.detach() if hasattr(x, "detach") else x)
            self.scale, self.zero_point = self.calculate_qparams()
        if self.fake_quant_enabled:
            if self.is_per_channel:
                return fake_quantize_per_channel_affine(x, self.scale, self.zero_point, self.ch_axis % x.ndim,
                                                        self.quant_min, self.quant_max)
            return fake_quantize_per_tensor_affine(x, float(self.scale[0]), int(self.zero_point[0]),
                                                   self.quant_min, self.quant_max)
        return x

    def extra_repr(self):
        return (f"fake_quant_enabled={self.fake_quant_enabled}, observer_enabled={self.observer_enabled}, "
                f"quant_min={self.quant_min}, quant_max={self.quant_max}, dtype={self.dtype.name}, "
                f"qscheme={self.qscheme}, scale={self.scale}, zero_point={self.zero_point}")
