"""The fused int8 convolutions' input: X̃ + 128 as uint8, padded and flattened, read in place.

    u[n, c, y, x] = X̃[n, c, y, x] + 128        X̃ = X padded by (ph, pw) with the pad value

The VNNI kernels (`conv_int8`, `conv_int8_channels`, `conv_int8_sliding`) take u as `vpdpbusd`'s
unsigned operand: Σ u·W = Σ X̃·W + 128 Σ W. In a quantized network the pad value is the input's
zero point Z_x (the integer for real 0). Two ways to make u:

- `pad_u8(x, …)` from int8 X: one fill of the border, one shifted copy (u = x XOR 0x80);
- `quantize_pad_u8(x, S, Z, qmin, qmax, …)` from the float input of a network's first layer:
  q = clamp(round_half_even(x/S + Z), qmin, qmax) (`affine_u8.quantize_i8`'s arithmetic) written
  straight into u, one pass instead of quantizing to int8 and then padding a copy; the same
  bytes as `pad_u8(quantize_i8(x), …, pad_value=Z)`.

A `PaddedU8` carries the buffer with its geometry and `slack` zero bytes past the last image (for
the kernels' reads past its end); `.int8()` gives X back for the paths that need it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .affine_u8 import quantize_i8_reference
from .backend import dispatch

SLACK = 128        # quantize_pad_u8's spare bytes: more than any fused kernel reads past the end


class PaddedU8(NamedTuple):
    flat: np.ndarray      # uint8 [N·C·Hp·Wp + slack]
    shape: tuple          # (N, C, H, W) of X
    padding: tuple        # (ph, pw)
    pad_value: int        # the int8 value of X̃'s border

    @property
    def hp(self) -> int:
        return self.shape[2] + 2 * self.padding[0]

    @property
    def wp(self) -> int:
        return self.shape[3] + 2 * self.padding[1]

    @property
    def slack(self) -> int:
        n, c = self.shape[0], self.shape[1]
        return self.flat.size - n * c * self.hp * self.wp

    @property
    def ndim(self) -> int:
        return 4

    def padded(self) -> np.ndarray:
        """u as uint8 [N, C, Hp, Wp] (a view)."""
        n, c = self.shape[0], self.shape[1]
        return self.flat[:n * c * self.hp * self.wp].reshape(n, c, self.hp, self.wp)

    def int8(self) -> np.ndarray:
        """X (int8 [N, C, H, W], a new array): the interior of u − 128."""
        ph, pw = self.padding
        h, w = self.shape[2], self.shape[3]
        return np.ascontiguousarray(self.padded()[:, :, ph:ph + h, pw:pw + w] ^ np.uint8(0x80)).view(np.int8)


def _empty(shape, padding, slack):
    n, c, h, w = shape
    size = n * c * (h + 2 * padding[0]) * (w + 2 * padding[1])
    flat = np.empty(size + slack, np.uint8)
    flat[size:] = 0
    return flat


def pad_u8(x: np.ndarray, padding, pad_value: int, slack: int) -> PaddedU8:
    """int8 NCHW X → `PaddedU8` (u = X̃ + 128, the border pad_value + 128, `slack` zero bytes after)."""
    ph, pw = padding
    h, w = x.shape[2], x.shape[3]
    out = PaddedU8(_empty(x.shape, padding, slack), tuple(x.shape), (ph, pw), int(pad_value))
    img = out.padded()
    if ph or pw:
        img[...] = np.uint8((int(pad_value) + 128) & 0xFF)
    np.bitwise_xor(x.view(np.uint8), np.uint8(0x80), out=img[:, :, ph:ph + h, pw:pw + w])   # u = x + 128
    return out


def ensure_padded(x, padding, pad_value: int, slack: int) -> PaddedU8:
    """x as a `PaddedU8` with this padding and pad value and at least `slack` spare bytes: x itself
    when it already is one, else padded (again) from its int8 values."""
    padding = (int(padding[0]), int(padding[1]))
    if isinstance(x, PaddedU8):
        if x.padding == padding and x.pad_value == int(pad_value) and x.slack >= slack:
            return x
        x = x.int8()
    return pad_u8(x, padding, pad_value, slack)


def quantize_pad_u8_reference(x, scale, zero_point, qmin, qmax, padding, slack=SLACK):
    """(`PaddedU8` of q = quantize_i8(x) padded with Z, whether x is all finite) by NumPy."""
    q, finite = quantize_i8_reference(x, scale, zero_point, qmin, qmax)
    return pad_u8(q, padding, zero_point, slack), finite


@njit(cache=True, parallel=True)
def _quantize_pad_u8(x, inv_scale, zp, qmin, qmax, ph, pw, pad_u8_value, img, finite):
    """img[n, c, ph + y, pw + x] = clamp(rint(x·(1/S) + Z)) + 128, the border pad_u8_value;
    finite[n] = whether image n is all finite.  Threads over images."""
    n, c, h, w = x.shape
    for b in prange(n):
        ok = True
        for ch in range(c):
            plane = img[b, ch]
            if ph or pw:
                plane[:, :] = pad_u8_value
            for y in range(h):
                src = x[b, ch, y]
                dst = plane[ph + y, pw:pw + w]
                for xx in range(w):
                    v = src[xx]
                    ok &= (v - v) == 0                     # False for NaN and ±inf
                    q = min(max(np.rint(v * inv_scale + zp), qmin), qmax)
                    dst[xx] = np.uint8(np.int32(q) + 128)
        finite[b] = ok


def quantize_pad_u8_numba(x, scale, zero_point, qmin, qmax, padding, slack=SLACK):
    x = np.asarray(x, np.float32)
    ph, pw = int(padding[0]), int(padding[1])
    out = PaddedU8(_empty(x.shape, (ph, pw), slack), tuple(x.shape), (ph, pw), int(zero_point))
    finite = np.empty(x.shape[0], np.bool_)
    _quantize_pad_u8(x, np.float32(1.0) / np.float32(scale), np.float32(zero_point), np.float32(qmin),
                     np.float32(qmax), ph, pw, np.uint8((int(zero_point) + 128) & 0xFF), out.padded(), finite)
    return out, bool(finite.all())


quantize_pad_u8 = dispatch(quantize_pad_u8_reference, quantize_pad_u8_numba)
quantize_pad_u8.__doc__ = quantize_pad_u8_reference.__doc__

__all__ = ["PaddedU8", "SLACK", "ensure_padded", "pad_u8", "quantize_pad_u8", "quantize_pad_u8_numba",
           "quantize_pad_u8_reference"]
