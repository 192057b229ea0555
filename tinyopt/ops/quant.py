"""Fake quantization (quantization-aware training) with the straight-through estimator.

Forward (float in, float out, values snapped to the quantization grid):

    x̂ = S · (clamp(round(x / S) + Z, q_min, q_max) − Z)

round has derivative 0 almost everywhere, which would stop all learning.  The straight-through
estimator (STE; Bengio et al. 2013, used by Jacob et al. 2018 §3) treats round as the identity
inside the clamp range and the clamp as a clamp:

    ∂x̂/∂x = 1   if q_min ≤ round(x / S) + Z ≤ q_max      (the value is representable)
            0   otherwise                                 (saturated: the gradient stops)

exactly torch's `fake_quantize_per_tensor_affine` / `_per_channel_affine` backward.  S and Z
are constants here (not learned; LSQ-style learned scales are not implemented).

round is half to even (NumPy's `rint`, torch's `nearbyint`) and 1/S is taken in float32, as in
torch's CPU kernel, so the grids agree bit for bit.

The arguments are checked before anything runs (`check_fake_quant_args`): q_min ≤ q_max and
q_min ≤ Z ≤ q_max (torch raises for both), and every S finite and > 0.  torch accepts S = 0 and
returns zeros (or NaN for S = ∞) silently; here that is an error, since no grid has step 0.

Users call `tinyopt.nn.functional.fake_quantize_per_tensor_affine` /
`fake_quantize_per_channel_affine` (or the `tinyopt.quant.FakeQuantize` module).
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function


def check_fake_quant_args(scale, zero_point, quant_min, quant_max, where="fake_quantize"):
    """Raise ValueError unless q_min ≤ q_max, q_min ≤ Z ≤ q_max and S finite and > 0 (every entry
    of per-channel arrays)."""
    for name, v in (("quant_min", quant_min), ("quant_max", quant_max)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{where}: {name} must be an int, got {type(v).__name__} {v!r}")
    if quant_min > quant_max:
        raise ValueError(f"{where}: quant_min ({quant_min}) must be <= quant_max ({quant_max})")
    s = np.asarray(scale, np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)) or not np.all(s > 0):
        bad = s.reshape(-1)[~(np.isfinite(s.reshape(-1)) & (s.reshape(-1) > 0))] if s.size else s
        raise ValueError(f"{where}: scale must be finite and > 0 (the grid's step), got {bad.tolist()[:4]}")
    z = np.asarray(zero_point)
    if z.dtype.kind == "f":
        if not np.all(np.isfinite(z)) or not np.all(z == np.round(z)):
            raise ValueError(f"{where}: zero_point must hold integers, got {z.reshape(-1).tolist()[:4]}")
    elif z.dtype.kind not in "iu":
        raise TypeError(f"{where}: zero_point must be an int (or an int array), got {z.dtype}")
    if z.size and (z.min() < quant_min or z.max() > quant_max):
        raise ValueError(f"{where}: zero_point must lie in [quant_min, quant_max] = [{quant_min}, {quant_max}], "
                         f"got {z.reshape(-1).tolist()[:4]}")


def _grid(x, scale, zero_point):
    """q_unclamped = round(x · (1/S)) + Z (1/S in float32, half to even), as float32."""
    inv_scale = np.float32(1.0) / np.asarray(scale, np.float32)
    return np.rint(x.astype(np.float32, copy=False) * inv_scale) + np.asarray(zero_point, np.float32)


class FakeQuantizeAffine(Function):
    """x̂ = S (clamp(round(x/S) + Z, q_min, q_max) − Z); gradient 1 inside the range, 0 outside.

    `scale`/`zero_point` are scalars, or arrays already shaped to broadcast along the channel axis."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, quant_min, quant_max):
        q = _grid(x, scale, zero_point)
        inside = (q >= quant_min) & (q <= quant_max)
        ctx.save_for_backward(inside)
        s = np.asarray(scale, np.float32)
        out = (np.clip(q, quant_min, quant_max) - np.asarray(zero_point, np.float32)) * s
        return out.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def channel_shape(ndim: int, axis: int) -> list:
    """[1, …, −1, …, 1]: the shape that broadcasts one value per slice along `axis` (already normalised)."""
    shape = [1] * ndim
    shape[axis] = -1
    return shape


__all__ = ["FakeQuantizeAffine", "channel_shape", "check_fake_quant_args"]
