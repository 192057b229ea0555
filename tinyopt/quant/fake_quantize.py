"""`FakeQuantize`: the module that observes a tensor and fake-quantizes it, for quantization-aware
training (QAT).  The op itself — x̂ = S (clamp(round(x/S) + Z, q_min, q_max) − Z) with the
straight-through gradient — lives in `tinyopt.ops.quant` with its backward, and is called through
`tinyopt.nn.functional.fake_quantize_per_tensor_affine` / `fake_quantize_per_channel_affine`
(re-exported here and in `tinyopt.quant`, torch's names).

An observer (by default MovingAverageMinMaxObserver) updates (S, Z) from each batch while
`observer_enabled`, and the fake quantization runs while `fake_quant_enabled` — the same switches
as torch's `torch.ao.quantization.FakeQuantize`.
"""
from __future__ import annotations

import numpy as np

from tinyopt.nn import functional as F
from tinyopt.nn.functional import fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine
from tinyopt.nn.module import Module
from tinyopt.ops.quant import FakeQuantizeAffine as FakeQuantizeFunction  # the op, under its former name
from tinyopt.quant.observer import MovingAverageMinMaxObserver


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
                return F.fake_quantize_per_channel_affine(x, self.scale.data, self.zero_point.data, self.ch_axis,
                                                        self.quant_min, self.quant_max)
            return F.fake_quantize_per_tensor_affine(x, float(self.scale.data[0]), int(self.zero_point.data[0]),
                                                   self.quant_min, self.quant_max)
        return x

    def extra_repr(self):
        return (f"fake_quant_enabled={self.fake_quant_enabled}, observer_enabled={self.observer_enabled}, "
                f"quant_min={self.quant_min}, quant_max={self.quant_max}, dtype={self.dtype.name}, "
                f"qscheme={self.qscheme}, scale={self.scale.data}, zero_point={self.zero_point.data}")


__all__ = ["FakeQuantize", "FakeQuantizeFunction", "fake_quantize_per_channel_affine", "fake_quantize_per_tensor_affine"]
