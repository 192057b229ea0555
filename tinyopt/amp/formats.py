"""The number formats of mixed precision made visible: float32, float16, bfloat16, and fixed point.

A binary floating-point number with p fraction bits and exponent bias B is

    x = (−1)^s · 1.f · 2^(e − B)        (normal: 1 ≤ e ≤ 2B; e = 2B + 1 is ±∞/NaN)
    x = (−1)^s · 0.f · 2^(1 − B)        (subnormal: e = 0)

so representable numbers are spaced ulp(x) = 2^(⌊log₂|x|⌋ − p) apart (never below 2^(1 − B − p)):
the *relative* rounding error is at most 2^−(p+1) over the whole normal range.

    format     bits  exponent  fraction p  bias  max              smallest normal   smallest subnormal
    float32    32    8         23          127   3.4·10³⁸         2⁻¹²⁶ ≈ 1.2·10⁻³⁸  2⁻¹⁴⁹ ≈ 1.4·10⁻⁴⁵
    float16    16    5         10          15    65504            2⁻¹⁴ ≈ 6.1·10⁻⁵    2⁻²⁴ ≈ 6.0·10⁻⁸
    bfloat16   16    8         7           127   3.4·10³⁸         2⁻¹²⁶              2⁻¹³³

Fixed point with f fraction bits in a b-bit signed integer (seed 002's `round(x · 2¹⁰)`, f = 10) is
q(x) = round(x · 2^f) / 2^f: a *constant* absolute error ≤ 2^−(f+1), so small numbers lose all their
digits (|x| < 2^−(f+1) becomes 0) and large ones overflow early (|x| > (2^(b−1) − 1)/2^f ≈ 32 for
b = 16). That is not half precision.

`round_to(x, dtype)` rounds float64 values to a format by the definition above (round to nearest,
ties to even, subnormals, overflow to ±∞), independently of NumPy's casts; the tests check that it
equals `x.astype(float16)` and ml_dtypes' bfloat16.
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from tinyopt import dtypes


@dataclass(frozen=True)
class FloatFormat:
    name: str
    bits: int
    exponent_bits: int
    fraction_bits: int   # p: the stored mantissa bits (the leading 1 of normals is implicit)

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def max(self) -> float:
        return (2.0 - 2.0 ** -self.fraction_bits) * 2.0 ** self.bias

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.fraction_bits)

    @property
    def eps(self) -> float:
        """ulp(1): the gap between 1 and the next representable number."""
        return 2.0 ** -self.fraction_bits

    @property
    def dtype(self) -> np.dtype:
        return np.dtype({"float32": np.float32, "float16": np.float16, "bfloat16": dtypes.bfloat16}[self.name])


FORMATS = {
    "float32": FloatFormat("float32", 32, 8, 23),
    "float16": FloatFormat("float16", 16, 5, 10),
    "bfloat16": FloatFormat("bfloat16", 16, 8, 7),
}


def format_of(dtype) -> FloatFormat:
    """The FloatFormat of float32, float16 or bfloat16 (a dtype, or its name)."""
    name = dtypes.as_dtype(dtype).name
    if name not in FORMATS:
        raise ValueError(f"no float format for {name}; use one of {', '.join(FORMATS)}")
    return FORMATS[name]


def round_to(x, dtype) -> np.ndarray:
    """float64 values of `x` rounded to `dtype` (round to nearest, ties to even), from the definition:
    the quantum at x is 2^(max(⌊log₂|x|⌋, 1 − B) − p); values past max + ½ulp(max) become ±∞."""
    fmt = format_of(dtype)
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    finite = np.isfinite(x) & (x != 0)
    v = x[finite]
    _, k = np.frexp(v)                                  # v = m · 2^k, 0.5 ≤ |m| < 1: ⌊log₂|v|⌋ = k − 1
    e = np.maximum(k - 1, 1 - fmt.bias)                 # below the normal range the spacing stays fixed
    quantum = np.ldexp(1.0, e - fmt.fraction_bits)
    r = np.rint(v / quantum) * quantum                  # rint: ties to even; v / quantum is exact
    r[np.abs(r) > fmt.max] = np.inf * np.sign(r[np.abs(r) > fmt.max])
    out[finite] = r
    return out


def spacing(x, dtype) -> np.ndarray:
    """ulp(x): the distance from |x| to the next larger representable number of `dtype`."""
    fmt = format_of(dtype)
    x = np.abs(np.asarray(x, dtype=np.float64))
    _, k = np.frexp(np.where(x == 0, fmt.smallest_normal, x))
    return np.ldexp(1.0, np.maximum(k - 1, 1 - fmt.bias) - fmt.fraction_bits)


def fields(x, dtype) -> tuple:
    """(sign, biased exponent, fraction) bit fields of x stored as `dtype`, as ints."""
    fmt = format_of(dtype)
    stored = np.asarray(x, dtype=np.float64).astype(fmt.dtype)
    word = int(stored.view({32: np.uint32, 16: np.uint16}[fmt.bits]))
    return (word >> (fmt.bits - 1), (word >> fmt.fraction_bits) & ((1 << fmt.exponent_bits) - 1),
            word & ((1 << fmt.fraction_bits) - 1))


def bit_string(x, dtype) -> str:
    """'s eeeee ffffffffff': the bits of x stored as `dtype` (sign, exponent, fraction)."""
    fmt = format_of(dtype)
    s, e, f = fields(x, dtype)
    return f"{s} {e:0{fmt.exponent_bits}b} {f:0{fmt.fraction_bits}b}"


def decode(x, dtype) -> float:
    """The value of x's bit fields by the formula of the module docstring (checks `fields`)."""
    fmt = format_of(dtype)
    s, e, f = fields(x, dtype)
    if e == 2 ** fmt.exponent_bits - 1:
        return float("nan") if f else (-1) ** s * float("inf")
    if e == 0:
        return (-1) ** s * (f / 2 ** fmt.fraction_bits) * 2.0 ** (1 - fmt.bias)
    return (-1) ** s * (1 + f / 2 ** fmt.fraction_bits) * 2.0 ** (e - fmt.bias)


@dataclass(frozen=True)
class FixedPoint:
    """Signed fixed point: q(x) = clip(round(x · 2^f), −2^(b−1), 2^(b−1) − 1) / 2^f (seed 002: f = 10).

    `overflow="saturate"` clips (what an int16 cast after clipping gives); "wrap" wraps around as an
    unchecked int16 cast would."""

    fraction_bits: int = 10
    total_bits: int = 16
    overflow: str = "saturate"

    @property
    def max(self) -> float:
        return (2 ** (self.total_bits - 1) - 1) / 2 ** self.fraction_bits

    @property
    def resolution(self) -> float:
        return 2.0 ** -self.fraction_bits

    def quantize(self, x) -> np.ndarray:
        q = np.rint(np.asarray(x, dtype=np.float64) * 2 ** self.fraction_bits)
        lo, hi = -(2 ** (self.total_bits - 1)), 2 ** (self.total_bits - 1) - 1
        if self.overflow == "saturate":
            q = np.clip(q, lo, hi)
        elif self.overflow == "wrap":
            q = (q - lo) % 2 ** self.total_bits + lo
        else:
            raise ValueError(f"overflow must be 'saturate' or 'wrap', got {self.overflow!r}")
        return q / 2 ** self.fraction_bits


def relative_error(x, fmt) -> np.ndarray:
    """|round(x) − x| / |x| for a dtype name/dtype (a float format) or a FixedPoint."""
    x = np.asarray(x, dtype=np.float64)
    r = fmt.quantize(x) if isinstance(fmt, FixedPoint) else round_to(x, fmt)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(r - x) / np.abs(x)


def table() -> list[dict]:
    """One row per float format (what the module docstring's table shows), checked against ml_dtypes.finfo."""
    rows = []
    for fmt in FORMATS.values():
        info = ml_dtypes.finfo(fmt.dtype)
        assert float(info.max) == fmt.max and float(info.smallest_normal) == fmt.smallest_normal
        rows.append({"format": fmt.name, "bits": fmt.bits, "exponent": fmt.exponent_bits,
                     "fraction": fmt.fraction_bits, "bias": fmt.bias, "max": fmt.max,
                     "smallest_normal": fmt.smallest_normal, "smallest_subnormal": fmt.smallest_subnormal,
                     "eps": fmt.eps})
    return rows


__all__ = ["FORMATS", "FixedPoint", "FloatFormat", "bit_string", "decode", "fields", "format_of",
           "relative_error", "round_to", "spacing", "table"]
