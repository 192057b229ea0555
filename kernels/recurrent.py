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
Every kernel writes into output arrays the caller allocates once for all steps (no allocation per
step); the arrays are C-contiguous 2-D float32 or float64.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .backend import dispatch


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


@numba.njit(cache=True, inline="always")
def _sig(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# ----------------------------------------------------------------------------- RNN (tanh / relu)


def rnn_forward_reference(a: np.ndarray, relu: bool, h_out: np.ndarray) -> None:
    h_out[...] = np.maximum(a, 0) if relu else np.tanh(a)


@numba.njit(cache=True)
def _rnn_forward(a, relu, h_out):
    B, H = a.shape
    for b in range(B):
        for j in range(H):
            v = a[b, j]
            h_out[b, j] = (v if v > 0 else 0.0) if relu else math.tanh(v)


def rnn_forward_numba(a, relu, h_out):
    _rnn_forward(a, bool(relu), h_out)


def rnn_backward_reference(dh: np.ndarray, h: np.ndarray, relu: bool, da_out: np.ndarray) -> None:
    da_out[...] = dh * (h > 0) if relu else dh * (1 - h * h)


@numba.njit(cache=True)
def _rnn_backward(dh, h, relu, da_out):
    B, H = dh.shape
    for b in range(B):
        for j in range(H):
            v = h[b, j]
            if relu:
                da_out[b, j] = dh[b, j] if v > 0 else 0.0
            else:
                da_out[b, j] = dh[b, j] * (1.0 - v * v)


def rnn_backward_numba(dh, h, relu, da_out):
    _rnn_backward(dh, h, bool(relu), da_out)


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


@numba.njit(cache=True)
def lstm_forward_numba(a, c_prev, gates_out, c_out, h_out):
    B, H = c_prev.shape
    for b in range(B):
        for j in range(H):
            i = _sig(a[b, j])
            f = _sig(a[b, H + j])
            g = math.tanh(a[b, 2 * H + j])
            o = _sig(a[b, 3 * H + j])
            gates_out[b, j] = i
            gates_out[b, H + j] = f
            gates_out[b, 2 * H + j] = g
            gates_out[b, 3 * H + j] = o
            c = f * c_prev[b, j] + i * g
            c_out[b, j] = c
            h_out[b, j] = o * math.tanh(c)


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


@numba.njit(cache=True)
def lstm_backward_numba(dh, dc, gates, c_prev, c, da_out, dc_prev_out):
    B, H = c.shape
    for b in range(B):
        for j in range(H):
            i = gates[b, j]
            f = gates[b, H + j]
            g = gates[b, 2 * H + j]
            o = gates[b, 3 * H + j]
            tc = math.tanh(c[b, j])
            d_h = dh[b, j]
            dc_tot = dc[b, j] + d_h * o * (1.0 - tc * tc)
            da_out[b, j] = dc_tot * g * i * (1.0 - i)
            da_out[b, H + j] = dc_tot * c_prev[b, j] * f * (1.0 - f)
            da_out[b, 2 * H + j] = dc_tot * i * (1.0 - g * g)
            da_out[b, 3 * H + j] = d_h * tc * o * (1.0 - o)
            dc_prev_out[b, j] = dc_tot * f


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


@numba.njit(cache=True)
def gru_forward_numba(gi, gh, h_prev, gates_out, h_out):
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            r = _sig(gi[b, j] + gh[b, j])
            z = _sig(gi[b, H + j] + gh[b, H + j])
            n = math.tanh(gi[b, 2 * H + j] + r * gh[b, 2 * H + j])
            gates_out[b, j] = r
            gates_out[b, H + j] = z
            gates_out[b, 2 * H + j] = n
            h_out[b, j] = (1.0 - z) * n + z * h_prev[b, j]


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


@numba.njit(cache=True)
def gru_backward_numba(dh, gates, gh, h_prev, dgi_out, dgh_out, dh_prev_out):
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            r = gates[b, j]
            z = gates[b, H + j]
            n = gates[b, 2 * H + j]
            d_h = dh[b, j]
            dn = d_h * (1.0 - z) * (1.0 - n * n)
            dz = d_h * (h_prev[b, j] - n) * z * (1.0 - z)
            dr = dn * gh[b, 2 * H + j] * r * (1.0 - r)
            dgi_out[b, j] = dr
            dgi_out[b, H + j] = dz
            dgi_out[b, 2 * H + j] = dn
            dgh_out[b, j] = dr
            dgh_out[b, H + j] = dz
            dgh_out[b, 2 * H + j] = dn * r
            dh_prev_out[b, j] = d_h * z


rnn_forward = dispatch(rnn_forward_reference, rnn_forward_numba)
rnn_backward = dispatch(rnn_backward_reference, rnn_backward_numba)
lstm_forward = dispatch(lstm_forward_reference, lstm_forward_numba)
lstm_backward = dispatch(lstm_backward_reference, lstm_backward_numba)
gru_forward = dispatch(gru_forward_reference, gru_forward_numba)
gru_backward = dispatch(gru_backward_reference, gru_backward_numba)
