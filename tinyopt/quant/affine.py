"""Affine (uniform) quantization: the map between real numbers and small integers.

Jacob et al. 2018 ("Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference", §2.1) and gemmlowp write every real value r of a tensor as

    r = S · (q − Z)                      S > 0 the scale (a real), Z the zero point (an integer)

so that the real 0 is exactly the integer Z (zero padding stays exact).  Quantizing inverts it:

    q = clamp( round(r / S + Z),  q_min, q_max )          round = half to even (like torch)

and dequantizing is r̂ = S · (q − Z).  Inside [S(q_min − Z), S(q_max − Z)] the round trip errs by at
most S/2; outside, values saturate to q_min or q_max.  Like torch (fbgemm), r / S is computed as
r · (1/S) in float32 with 1/S rounded to float32, and Z is added *before* rounding, so results match
`torch.quantize_per_tensor` bit for bit, ties included.  (torch's fake quantization, and ours in
`fake_quantize.py`, round first and add Z after: round(r/S) + Z.  The two differ only when r/S is
exactly halfway between integers and Z is odd.)

Schemes: *affine* (asymmetric) picks Z so that [min, max] maps onto [q_min, q_max];
*symmetric* fixes Z = 0 (int) or the middle of the range (uint), so S = max|r| / ((q_max − q_min)/2).
(The seeds' formula w_q = round(w · Q) is the symmetric case with Q = 1/S.)  Per-channel quantization
gives every slice along `axis` (e.g. each output channel of a weight) its own S and Z.

Integer types (`QDTYPES`): int8/qint8 [−128, 127], uint8/quint8 [0, 255], int32/qint32, and the
low-bit int4 [−8, 7], uint4 [0, 15], int2 [−2, 1], uint2 [0, 3].  Low-bit values are stored packed,
8/bits values per byte (element i in bits [bits·(i mod k), bits·(i mod k + 1)) of byte i div k,
two's complement), so a 4-bit tensor takes half the bytes of an int8 one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyopt.ops.dims import normalize_dim
from tinyopt.dtypes import is_floating_point


@dataclass(frozen=True)
class QDtype:
    """An integer type for quantized values: its name, bit width, range and container dtype."""
    name: str
    bits: int
    signed: bool

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def container(self):
        """The NumPy dtype that holds one unpacked value."""
        if self.bits == 32:
            return np.int32
        return np.int8 if self.signed else np.uint8

    @property
    def packed(self) -> bool:
        return self.bits < 8

    def __repr__(self):
        return f"tinyopt.quant.{self.name}"


qint8 = QDtype("qint8", 8, True)
quint8 = QDtype("quint8", 8, False)
qint32 = QDtype("qint32", 32, True)
qint4 = QDtype("qint4", 4, True)
quint4 = QDtype("quint4", 4, False)
qint2 = QDtype("qint2", 2, True)
quint2 = QDtype("quint2", 2, False)

QDTYPES = {
    "qint8": qint8, "int8": qint8, "quint8": quint8, "uint8": quint8, "qint32": qint32, "int32": qint32,
    "qint4": qint4, "int4": qint4, "quint4": quint4, "uint4": quint4, "quint4x2": quint4,
    "qint2": qint2, "int2": qint2, "quint2": quint2, "uint2": quint2, "quint2x4": quint2,
}


def as_qdtype(dtype) -> QDtype:
    """A QDtype from a QDtype, a name ('int8', 'quint8', 'int4', ...), a NumPy int8/uint8/int32
    dtype, or a torch quantized dtype (torch.qint8 → qint8)."""
    if isinstance(dtype, QDtype):
        return dtype
    name = dtype
    if not isinstance(dtype, str):
        name = str(dtype).replace("torch.", "")
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name in QDTYPES:
        return QDTYPES[name]
    raise ValueError(f"unsupported quantized dtype {dtype!r}; choose one of {sorted(set(QDTYPES))}")


# ----------------------------------------------------------------------------- bit packing


def pack_bits(values: np.ndarray, bits: int, signed: bool | None = None) -> np.ndarray:
    """Pack integers of the `bits`-bit range into uint8 bytes, 8/bits values per byte.

    The range is [−2^(bits−1), 2^(bits−1) − 1] with `signed=True`, [0, 2^bits − 1] with False;
    None (default) accepts either one (all values in one of them).  A value outside is a
    ValueError naming it: masking it to `bits` bits would silently store another number.
    The flat array is padded with zeros to a multiple of 8/bits; `unpack_bits` needs the count."""
    if bits not in (1, 2, 4):
        raise ValueError(f"pack_bits packs 1, 2 or 4 bits per value, got {bits}")
    values = np.asarray(values)
    if values.dtype.kind not in "iub":
        raise TypeError(f"pack_bits packs integers, got {values.dtype}")
    flat = values.reshape(-1).astype(np.int64)
    ranges = {True: (-(1 << (bits - 1)), (1 << (bits - 1)) - 1), False: (0, (1 << bits) - 1)}
    allowed = [ranges[signed]] if signed is not None else [ranges[True], ranges[False]]
    if flat.size and not any(lo <= flat.min() and flat.max() <= hi for lo, hi in allowed):
        lo, hi = allowed[0] if len(allowed) == 1 else (ranges[True][0], ranges[False][1])
        bad = flat[(flat < lo) | (flat > hi)]
        bad = bad if bad.size else flat[[int(np.argmin(flat)), int(np.argmax(flat))]]
        which = {True: "signed ", False: "unsigned ", None: ""}[signed]
        raise ValueError(f"pack_bits: values {bad[:4].tolist()} do not fit {bits} {which}bits "
                         f"({' or '.join(f'[{a}, {b}]' for a, b in allowed)}); quantize or clamp them first")
    per_byte = 8 // bits
    flat = flat & ((1 << bits) - 1)                                                 # two's complement field
    pad = (-flat.size) % per_byte
    flat = np.concatenate([flat, np.zeros(pad, np.int64)]).reshape(-1, per_byte)
    shifts = np.arange(per_byte, dtype=np.int64) * bits
    return (flat << shifts).sum(axis=1).astype(np.uint8)


def unpack_bits(packed: np.ndarray, bits: int, signed: bool, count: int) -> np.ndarray:
    """Inverse of `pack_bits`: the first `count` values, sign-extended when `signed`, as int8/uint8."""
    per_byte = 8 // bits
    shifts = np.arange(per_byte, dtype=np.int64) * bits
    fields = (np.asarray(packed, np.int64)[:, None] >> shifts) & ((1 << bits) - 1)
    fields = fields.reshape(-1)[:count]
    if signed:
        fields = np.where(fields >= 1 << (bits - 1), fields - (1 << bits), fields)
        return fields.astype(np.int8)
    return fields.astype(np.uint8)


# ----------------------------------------------------------------------------- QTensor


class QTensor:
    """A quantized tensor: integers q plus (S, Z) per tensor or per channel, r̂ = S (q − Z).

    `int_repr()` gives the integers unpacked (int8/uint8/int32); `storage` holds them as stored
    (packed bytes for < 8 bits); `nbytes` counts the stored integers only (S and Z are extra,
    see `qparams_nbytes`).  Method names follow torch's quantized tensors.
    """

    def __init__(self, q: np.ndarray, scale, zero_point, dtype, axis=None):
        self.qdtype = as_qdtype(dtype)
        q = np.asarray(q)
        self.shape = q.shape
        self.axis = axis
        self.scale = np.asarray(scale, np.float32) if axis is not None else np.float32(scale)
        self.zero_point = np.asarray(zero_point, np.int64) if axis is not None else int(zero_point)
        if self.qdtype.packed:
            self.storage = pack_bits(q, self.qdtype.bits, self.qdtype.signed)
        else:
            self.storage = np.ascontiguousarray(q, dtype=self.qdtype.container)

    # torch-style accessors
    def int_repr(self) -> np.ndarray:
        if self.qdtype.packed:
            flat = unpack_bits(self.storage, self.qdtype.bits, self.qdtype.signed, int(np.prod(self.shape)))
            return flat.reshape(self.shape)
        return self.storage

    def q_scale(self) -> float:
        if self.axis is not None:
            raise RuntimeError("q_scale() is for per-tensor quantization; use q_per_channel_scales()")
        return float(self.scale)

    def q_zero_point(self) -> int:
        if self.axis is not None:
            raise RuntimeError("q_zero_point() is for per-tensor quantization; use q_per_channel_zero_points()")
        return int(self.zero_point)

    def q_per_channel_scales(self) -> np.ndarray:
        return self.scale

    def q_per_channel_zero_points(self) -> np.ndarray:
        return self.zero_point

    def q_per_channel_axis(self) -> int:
        return self.axis

    @property
    def dtype(self) -> QDtype:
        return self.qdtype

    @property
    def nbytes(self) -> int:
        return int(self.storage.nbytes)

    @property
    def qparams_nbytes(self) -> int:
        """Bytes for the scales (float32) and zero points (int32)."""
        return int(np.size(self.scale)) * 8

    def dequantize(self):
        """r̂ = S (q − Z) as a float32 tinyopt Tensor."""
        from tinyopt.tensor import Tensor

        return Tensor(dequantize_array(self))

    def __repr__(self):
        if self.axis is None:
            qp = f"scale={self.q_scale():.6g}, zero_point={self.q_zero_point()}"
        else:
            qp = f"per-channel axis={self.axis}, {np.size(self.scale)} scales"
        return f"QTensor(shape={self.shape}, dtype={self.qdtype.name}, {qp}, {self.nbytes} bytes)"


# ----------------------------------------------------------------------------- checks


def _as_float_array(x, what="x") -> np.ndarray:
    from tinyopt.tensor import Tensor

    arr = x.data if isinstance(x, Tensor) else np.asarray(x)
    if not is_floating_point(arr.dtype):
        raise TypeError(f"{what} must be a floating-point tensor, got {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"cannot quantize {what}: it contains NaN or Inf (first at index {tuple(int(i) for i in bad)}: "
            f"{arr[tuple(bad)]}); a finite scale cannot represent it"
        )
    return arr.astype(np.float32, copy=False)


def _check_qparams(scale, zero_point, qd: QDtype):
    scale = np.asarray(scale, np.float64)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"scale must be finite and > 0, got {scale}")
    zp = np.asarray(zero_point)
    if np.any(zp < qd.qmin) or np.any(zp > qd.qmax):
        raise ValueError(f"zero_point {zero_point} is outside the {qd.name} range [{qd.qmin}, {qd.qmax}]")


def quantize_array(x: np.ndarray, scale, zero_point, qmin: int, qmax: int) -> np.ndarray:
    """q = clamp(round_half_even(x · (1/S) + Z), qmin, qmax) as int64, in float32 like fbgemm.

    `scale` and `zero_point` are scalars or arrays already broadcastable against x."""
    inv_scale = np.float32(1.0) / np.asarray(scale, np.float32)
    shifted = np.asarray(x, np.float32) * inv_scale + np.asarray(zero_point, np.float32)
    return np.clip(np.rint(shifted), qmin, qmax).astype(np.int64)


def dequantize_array(q) -> np.ndarray:
    """r̂ = S (q − Z) in float32, for a QTensor (or use S, Z yourself on an int array)."""
    values = q.int_repr().astype(np.int64)
    scale, zp = q.scale, q.zero_point
    if q.axis is not None:
        shape = [1] * values.ndim
        shape[q.axis] = -1
        scale, zp = scale.reshape(shape), np.asarray(zp).reshape(shape)
    return ((values - zp).astype(np.float32) * np.asarray(scale, np.float32)).astype(np.float32)


# ----------------------------------------------------------------------------- public functions


def quantize_per_tensor(x, scale: float, zero_point: int, dtype="qint8") -> QTensor:
    """q = clamp(round(x / S + Z), q_min, q_max) with one (S, Z) for the whole tensor.

    Same arguments and result as `torch.quantize_per_tensor(x, scale, zero_point, dtype)`;
    `dtype` also takes the low-bit types ('int4', 'uint4', 'int2', 'uint2'), stored packed.
    Raises ValueError for NaN/Inf in x, a scale ≤ 0 and a zero point outside the dtype's range.
    """
    qd = as_qdtype(dtype)
    arr = _as_float_array(x)
    _check_qparams(scale, zero_point, qd)
    q = quantize_array(arr, np.float32(scale), int(zero_point), qd.qmin, qd.qmax)
    return QTensor(q, scale, zero_point, qd)


def quantize_per_channel(x, scales, zero_points, axis: int, dtype="qint8") -> QTensor:
    """q[..., c, ...] = clamp(round(x / S_c + Z_c), q_min, q_max): one (S_c, Z_c) per slice along `axis`.

    Like `torch.quantize_per_channel(x, scales, zero_points, axis, dtype)`."""
    qd = as_qdtype(dtype)
    arr = _as_float_array(x)
    axis = normalize_dim(axis, arr.ndim, "quantize_per_channel")
    scales = np.asarray(scales, np.float32).reshape(-1)
    zero_points = np.asarray(zero_points, np.int64).reshape(-1)
    if scales.size != arr.shape[axis] or zero_points.size != arr.shape[axis]:
        raise ValueError(
            f"quantize_per_channel: axis {axis} of x {arr.shape} has {arr.shape[axis]} channels, "
            f"got {scales.size} scales and {zero_points.size} zero points"
        )
    _check_qparams(scales, zero_points, qd)
    shape = [1] * arr.ndim
    shape[axis] = -1
    q = quantize_array(arr, scales.reshape(shape), zero_points.reshape(shape), qd.qmin, qd.qmax)
    return QTensor(q, scales, zero_points, qd, axis=axis)


def dequantize(q: QTensor):
    """r̂ = S (q − Z) as a float32 Tensor (like `torch.dequantize`)."""
    if not isinstance(q, QTensor):
        raise TypeError(f"dequantize expects a QTensor, got {type(q).__name__}")
    return q.dequantize()


# ----------------------------------------------------------------------------- choosing S and Z

EPS = np.float32(np.finfo(np.float32).eps)


def choose_qparams(min_val, max_val, qmin: int, qmax: int, symmetric: bool = False, unsigned: bool = False,
                   customized_range: bool = False, eps=EPS):
    """(S, Z) from an observed range [min_val, max_val], torch's `_calculate_qparams` step by step
    (float32 arithmetic; works elementwise for per-channel arrays).

    The range is first widened to contain 0:  m₋ = min(min_val, 0),  m₊ = max(max_val, 0).

    affine:     S = (m₊ − m₋) / (q_max − q_min),   Z = clamp(q_min − round(m₋ / S), q_min, q_max)
    symmetric:  S = max(−m₋, m₊) / ((q_max − q_min) / 2),
                Z = 0 for signed types; for unsigned, 128 (or ⌊(q_min + q_max)/2⌋ for a custom range)

    S is floored at `eps` (float32 machine epsilon) so a range of zero width still gives S > 0.
    """
    min_val = np.asarray(min_val, np.float32)
    max_val = np.asarray(max_val, np.float32)
    min_neg = np.minimum(min_val, np.float32(0))
    max_pos = np.maximum(max_val, np.float32(0))
    if symmetric:
        max_pos = np.maximum(-min_neg, max_pos)
        scale = (max_pos / np.float32((qmax - qmin) / 2)).astype(np.float32)
        scale = np.maximum(scale, np.float32(eps))
        if unsigned:
            zp_value = (qmin + qmax) // 2 if customized_range else 128
        else:
            zp_value = 0
        zero_point = np.full(scale.shape, zp_value, np.int64)
    else:
        scale = ((max_pos - min_neg) / np.float32(qmax - qmin)).astype(np.float32)
        scale = np.maximum(scale, np.float32(eps))
        zero_point = qmin - np.rint(min_neg / scale).astype(np.int64)
        zero_point = np.clip(zero_point, qmin, qmax)
    return scale, zero_point
