"""Fused gate kernels of the recurrent cells (one time step), forward and backward, each as a NumPy
reference and a Numba twin.

The matrix products stay outside (BLAS does them): the caller passes the pre-activations

    RNN:   a = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh                       (B, H)
    LSTM:  a = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh = [a_i, a_f, a_g, a_o] (B, 4H), torch's gate order
    GRU:   gi = W_ih x_t + b_ih = [gi_r, gi_z, gi_n],  gh = W_hh h_{t−1} + b_hh = [gh_r, gh_z, gh_n]   (B, 3H)

and a kernel applies the element-wise rest of the cell in one pass (instead of a dozen NumPy
temporaries per step):

    RNN:   h = tanh(a)  or  relu(a)
    LSTM:  i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o);  c = f ⊙ c_{t−1} + i ⊙ g;  h = o ⊙ tanh(c)
    GRU:   r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r ⊙ gh_n);  h = (1 − z) ⊙ n + z ⊙ h_{t−1}

The backward kernels take ∂L/∂h (and ∂L/∂c for the LSTM) of the step's outputs and return the
gradients of the pre-activations (and of the state that skips the matrix product):

    RNN:   ∂a = ∂h ⊙ (1 − h²)   (tanh)   or   ∂h ⊙ [h > 0]   (relu)
    LSTM:  ∂c_tot = ∂c + ∂h ⊙ o ⊙ (1 − tanh²c)
           ∂a_i = ∂c_tot ⊙ g ⊙ i(1 − i),  ∂a_f = ∂c_tot ⊙ c_{t−1} ⊙ f(1 − f),
           ∂a_g = ∂c_tot ⊙ i ⊙ (1 − g²),  ∂a_o = ∂h ⊙ tanh c ⊙ o(1 − o),   ∂c_{t−1} = ∂c_tot ⊙ f
    GRU:   ∂n_pre = ∂h ⊙ (1 − z) ⊙ (1 − n²),  ∂z_pre = ∂h ⊙ (h_{t−1} − n) ⊙ z(1 − z),
           ∂r_pre = ∂n_pre ⊙ gh_n ⊙ r(1 − r)
           ∂gi = [∂r_pre, ∂z_pre, ∂n_pre],  ∂gh = [∂r_pre, ∂z_pre, ∂n_pre ⊙ r],  ∂h_{t−1} (direct) = ∂h ⊙ z

σ is evaluated as 1/(1 + e^(−x)) for x ≥ 0 and e^x/(1 + e^x) otherwise, so no exponential overflows.
In float32 the Numba twins evaluate tanh by a rational approximation (below; error < 4e-7) and
σ(x) = ½ + ½ tanh(x/2), so their loops vectorise; in float64 both twins use the exact functions.
Every kernel writes into output arrays the caller allocates once for all steps (no allocation per
step); the arrays are C-contiguous 2-D float32 or float64.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba.extending import overload

from .backend import dispatch


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


# float32 tanh for the Numba twins: the rational approximation Eigen uses (`generic_fast_tanh_float`,
# numerator of degree 13, denominator of degree 6, input clamped to [−9, 9] where tanh rounds to ±1).
# It is call-free, so LLVM vectorises the loops; a call to the C library's scalar tanhf per element
# keeps them scalar, slower than NumPy's own SIMD np.tanh on the whole array. Its error is below 4e-7
# (a few float32 ulps); float64 keeps math.tanh, exact to the last bit like the reference.
_A1, _A3, _A5, _A7 = (np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04),
                      np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08))
_A9, _A11, _A13 = np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = (np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03),
                      np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06))
_NINE, _HALF = np.float32(9.0), np.float32(0.5)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _tanh32(x):
    x = min(max(x, -_NINE), _NINE)
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sig32(x):
    return _HALF + _HALF * _tanh32(_HALF * x)   # σ(x) = ½ + ½ tanh(x/2)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sig64(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# `_tanh(x)` and `_sig(x)` inside the kernels pick their implementation by x's type at compile time
# (numba `overload`), so each kernel compiles once per dtype with no branch in its loop (a branch
# on the dtype inside the loop stopped LLVM from vectorising it). As plain Python (NUMBA_DISABLE_JIT=1)
# they are the float64 formulas.
def _tanh(x):
    return math.tanh(x)


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@overload(_tanh)
def _tanh_impl(x):
    if x == numba.types.float32:
        return lambda x: _tanh32(x)
    return lambda x: math.tanh(x)


@overload(_sig)
def _sig_impl(x):
    if x == numba.types.float32:
        return lambda x: _sig32(x)
    return lambda x: _sig64(x)


# ----------------------------------------------------------------------------- RNN (tanh / relu)


def rnn_forward_reference(a: np.ndarray, relu: bool, h_out: np.ndarray) -> None:
    h_out[...] = np.maximum(a, 0) if relu else np.tanh(a)


@numba.njit(cache=True, error_model="numpy")
def _rnn_forward(a, relu, h_out):
    zero = a.dtype.type(0)
    for b in range(a.shape[0]):
        ab, hb = a[b], h_out[b]   # row views: contiguous 1-D loops, which LLVM vectorises
        for j in range(ab.shape[0]):
            v = ab[j]
            hb[j] = (v if v > zero else zero) if relu else _tanh(v)


def rnn_forward_numba(a, relu, h_out):
    _rnn_forward(a, bool(relu), h_out)


def rnn_backward_reference(dh: np.ndarray, h: np.ndarray, relu: bool, da_out: np.ndarray) -> None:
    da_out[...] = dh * (h > 0) if relu else dh * (1 - h * h)


@numba.njit(cache=True, error_model="numpy")
def rnn_backward_numba(dh, h, relu, da_out):
    one, zero = dh.dtype.type(1), dh.dtype.type(0)
    for b in range(dh.shape[0]):
        dhb, hb, dab = dh[b], h[b], da_out[b]
        for j in range(dhb.shape[0]):
            v = hb[j]
            if relu:
                dab[j] = dhb[j] if v > zero else zero
            else:
                dab[j] = dhb[j] * (one - v * v)


# ----------------------------------------------------------------------------- LSTM


def lstm_forward_reference(a: np.ndarray, c_prev: np.ndarray, gates_out: np.ndarray, c_out: np.ndarray,
                           h_out: np.ndarray) -> None:
    """a (B, 4H) pre-activations in the order i, f, g, o → gates_out (B, 4H) = [i, f, g, o]
    activated, c_out and h_out (B, H)."""
    H = c_prev.shape[1]
    i, f, g, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
    gates_out[:, :H], gates_out[:, H:2 * H], gates_out[:, 2 * H:3 * H], gates_out[:, 3 * H:] = i, f, g, o
    c_out[...] = f * c_prev + i * g
    h_out[...] = o * np.tanh(c_out)


@numba.njit(cache=True, error_model="numpy")
def _lstm_forward(a, c_prev, gates_out, c_out, h_out):
    B, H = c_prev.shape
    for b in range(B):
        # Row views of each gate block: the inner loop then reads and writes contiguous 1-D arrays
        # and vectorises (indexing a[b, H + j] directly kept the loop scalar).
        ai, af, ag, ao = a[b, :H], a[b, H:2 * H], a[b, 2 * H:3 * H], a[b, 3 * H:]
        gi, gf, gg, go = gates_out[b, :H], gates_out[b, H:2 * H], gates_out[b, 2 * H:3 * H], gates_out[b, 3 * H:]
        cp, cb, hb = c_prev[b], c_out[b], h_out[b]
        for j in range(H):
            i = _sig(ai[j])
            f = _sig(af[j])
            g = _tanh(ag[j])
            o = _sig(ao[j])
            gi[j], gf[j], gg[j], go[j] = i, f, g, o
            c = f * cp[j] + i * g
            cb[j] = c
            hb[j] = o * _tanh(c)


def lstm_forward_numba(a, c_prev, gates_out, c_out, h_out):
    _lstm_forward(a, c_prev, gates_out, c_out, h_out)


def lstm_backward_reference(dh: np.ndarray, dc: np.ndarray, gates: np.ndarray, c_prev: np.ndarray, c: np.ndarray,
                            da_out: np.ndarray, dc_prev_out: np.ndarray) -> None:
    """∂L/∂h, ∂L/∂c of the step, its activated gates and cells → ∂a (B, 4H) and ∂c_{t−1} (B, H)."""
    H = c.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    tc = np.tanh(c)
    dc_tot = dc + dh * o * (1 - tc * tc)
    da_out[:, :H] = dc_tot * g * i * (1 - i)
    da_out[:, H:2 * H] = dc_tot * c_prev * f * (1 - f)
    da_out[:, 2 * H:3 * H] = dc_tot * i * (1 - g * g)
    da_out[:, 3 * H:] = dh * tc * o * (1 - o)
    dc_prev_out[...] = dc_tot * f


@numba.njit(cache=True, error_model="numpy")
def _lstm_backward(dh, dc, gates, c_prev, c, da_out, dc_prev_out):
    B, H = c.shape
    one = dh.dtype.type(1)
    for b in range(B):
        gi, gf, gg, go = gates[b, :H], gates[b, H:2 * H], gates[b, 2 * H:3 * H], gates[b, 3 * H:]
        di, df, dg, do = da_out[b, :H], da_out[b, H:2 * H], da_out[b, 2 * H:3 * H], da_out[b, 3 * H:]
        dhb, dcb, cpb, cb, dcp = dh[b], dc[b], c_prev[b], c[b], dc_prev_out[b]
        for j in range(H):
            i, f, g, o = gi[j], gf[j], gg[j], go[j]
            tc = _tanh(cb[j])
            d_h = dhb[j]
            dc_tot = dcb[j] + d_h * o * (one - tc * tc)
            di[j] = dc_tot * g * i * (one - i)
            df[j] = dc_tot * cpb[j] * f * (one - f)
            dg[j] = dc_tot * i * (one - g * g)
            do[j] = d_h * tc * o * (one - o)
            dcp[j] = dc_tot * f


def lstm_backward_numba(dh, dc, gates, c_prev, c, da_out, dc_prev_out):
    _lstm_backward(dh, dc, gates, c_prev, c, da_out, dc_prev_out)


# ----------------------------------------------------------------------------- GRU


def gru_forward_reference(gi: np.ndarray, gh: np.ndarray, h_prev: np.ndarray, gates_out: np.ndarray,
                          h_out: np.ndarray) -> None:
    """gi, gh (B, 3H) in the order r, z, n → gates_out (B, 3H) = [r, z, n] and h_out (B, H)."""
    H = h_prev.shape[1]
    r = _sigmoid(gi[:, :H] + gh[:, :H])
    z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    gates_out[:, :H], gates_out[:, H:2 * H], gates_out[:, 2 * H:] = r, z, n
    h_out[...] = (1 - z) * n + z * h_prev


@numba.njit(cache=True, error_model="numpy")
def _gru_forward(gi, gh, h_prev, gates_out, h_out):
    B, H = h_prev.shape
    one = gi.dtype.type(1)
    for b in range(B):
        xr, xz, xn = gi[b, :H], gi[b, H:2 * H], gi[b, 2 * H:]
        hr, hz, hn = gh[b, :H], gh[b, H:2 * H], gh[b, 2 * H:]
        gr, gz, gn = gates_out[b, :H], gates_out[b, H:2 * H], gates_out[b, 2 * H:]
        hp, hb = h_prev[b], h_out[b]
        for j in range(H):
            r = _sig(xr[j] + hr[j])
            z = _sig(xz[j] + hz[j])
            n = _tanh(xn[j] + r * hn[j])
            gr[j], gz[j], gn[j] = r, z, n
            hb[j] = (one - z) * n + z * hp[j]


def gru_forward_numba(gi, gh, h_prev, gates_out, h_out):
    _gru_forward(gi, gh, h_prev, gates_out, h_out)


def gru_backward_reference(dh: np.ndarray, gates: np.ndarray, gh: np.ndarray, h_prev: np.ndarray,
                           dgi_out: np.ndarray, dgh_out: np.ndarray, dh_prev_out: np.ndarray) -> None:
    """∂L/∂h of the step, its gates [r, z, n], gh and h_{t−1} → ∂gi, ∂gh (B, 3H) and the direct
    part of ∂h_{t−1} (B, H) (the caller adds ∂gh W_hh)."""
    H = h_prev.shape[1]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    dn = dh * (1 - z) * (1 - n * n)
    dz = dh * (h_prev - n) * z * (1 - z)
    dr = dn * gh[:, 2 * H:] * r * (1 - r)
    dgi_out[:, :H], dgi_out[:, H:2 * H], dgi_out[:, 2 * H:] = dr, dz, dn
    dgh_out[:, :H], dgh_out[:, H:2 * H], dgh_out[:, 2 * H:] = dr, dz, dn * r
    dh_prev_out[...] = dh * z


@numba.njit(cache=True, error_model="numpy")
def gru_backward_numba(dh, gates, gh, h_prev, dgi_out, dgh_out, dh_prev_out):
    B, H = h_prev.shape
    one = dh.dtype.type(1)
    for b in range(B):
        gr, gz, gn = gates[b, :H], gates[b, H:2 * H], gates[b, 2 * H:]
        ir, iz, in_ = dgi_out[b, :H], dgi_out[b, H:2 * H], dgi_out[b, 2 * H:]
        hr, hz, hn = dgh_out[b, :H], dgh_out[b, H:2 * H], dgh_out[b, 2 * H:]
        ghn, hp, dhb, dhp = gh[b, 2 * H:], h_prev[b], dh[b], dh_prev_out[b]
        for j in range(H):
            r, z, n = gr[j], gz[j], gn[j]
            d_h = dhb[j]
            dn = d_h * (one - z) * (one - n * n)
            dz = d_h * (hp[j] - n) * z * (one - z)
            dr = dn * ghn[j] * r * (one - r)
            ir[j], iz[j], in_[j] = dr, dz, dn
            hr[j], hz[j], hn[j] = dr, dz, dn * r
            dhp[j] = d_h * z


rnn_forward = dispatch(rnn_forward_reference, rnn_forward_numba)
rnn_backward = dispatch(rnn_backward_reference, rnn_backward_numba)
lstm_forward = dispatch(lstm_forward_reference, lstm_forward_numba)
lstm_backward = dispatch(lstm_backward_reference, lstm_backward_numba)
gru_forward = dispatch(gru_forward_reference, gru_forward_numba)
gru_backward = dispatch(gru_backward_reference, gru_backward_numba)
