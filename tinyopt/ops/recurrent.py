"""Recurrent layers as ops: one layer, one direction, all time steps in one autograd node, with
backpropagation through time (BPTT) written out.

Notation (torch's): input x (T, B, I) time-major, hidden size H, initial state h₀ (B, H) (and c₀ for
the LSTM), weights W_ih (G·H, I), W_hh (G·H, H), biases b_ih, b_hh (G·H) with G = 1 (RNN), 4 (LSTM:
gates i, f, g, o) or 3 (GRU: r, z, n). The cell equations and their derivatives are in
`tinyopt.kernels.recurrent`, which applies them element-wise in one fused pass per step.

Forward, for t = 1 … T:

    P = x W_ihᵀ (+ b_ih)            ONE matrix product for all T·B rows: the input does not depend on h
    a_t = P_t + h_{t−1} W_hhᵀ (+ b_hh)     one (B, H) × (H, G·H) product per step: the recurrence
    h_t (, c_t) = cell(a_t, h_{t−1} (, c_{t−1}))   the fused gate kernel

Backward (BPTT), for t = T … 1, with ∂h_T, ∂c_T given by the gradient of (h_n, c_n) and ∂y_t by the
gradient of the output sequence:

    ∂a_t (, ∂c_{t−1}) = cell_backward(∂h_t + ∂y_t (, ∂c_t))      the fused backward kernel
    ∂h_{t−1} = ∂a_t W_hh  (+ the direct part, for the GRU)
then, once for all steps (three more single GEMMs):
    ∂W_hh = Σ_t ∂a_tᵀ h_{t−1},  ∂W_ih = Σ_t ∂a_tᵀ x_t,  ∂x_t = ∂a_t W_ih,  ∂b = Σ_{t,b} ∂a_t.

The per-step Jacobian ∂h_t/∂h_{t−1} = diag(cell′) W_hh is what multiplies T times: the vanishing /
exploding gradient of tutorials/09_rnn.py.

Variable lengths (`lengths`, one per batch column, what a PackedSequence carries): steps t ≥ len_b
of column b are padding. They leave the state unchanged (h_t = h_{t−1}) and output 0, so padded steps
change neither the outputs, nor h_n, nor any gradient. `reverse=True` reads each column backwards
within its own length (x_{len−1}, …, x_0), as torch's backward direction does.

Each op returns ONE array stacking the output sequence and the final state(s), (T + 1, B, H) or
(T + 2, B, H) for the LSTM: rows 0…T−1 are y, row T is h_n, row T + 1 is c_n; the functional front
end (`nn.functional.rnn_layer` …) slices them apart.
"""
from __future__ import annotations

import numpy as np

from tinyopt.autograd.function import Function
from tinyopt.kernels import recurrent as K


def _order(T: int, B: int, lengths, reverse: bool):
    """(time index (T, B) of the step processed at position t, or None for the identity; the
    padding mask (T, B, 1) or None). The index map is its own inverse."""
    if lengths is None:
        return (np.arange(T)[::-1, None].repeat(B, 1) if reverse else None), None
    lengths = np.asarray(lengths)
    t = np.arange(T)[:, None]
    valid = t < lengths[None, :]
    src = np.where(valid, lengths[None, :] - 1 - t, t) if reverse else None
    return src, valid[:, :, None]


def _reorder(a: np.ndarray, src) -> np.ndarray:
    if src is None:
        return a
    return a[src, np.arange(a.shape[1])[None, :]]


def _projection(x, w_ih, bias):
    """P = x W_ihᵀ + bias for all T·B rows at once: (T, B, G·H), C-contiguous."""
    T, B, _ = x.shape
    p = np.matmul(x.reshape(T * B, -1), w_ih.T).reshape(T, B, -1)
    if bias is not None:
        p += bias
    return p


def _bias_sum(b_ih, b_hh):
    if b_ih is None:
        return None
    return b_ih + b_hh


def _stack_output(Hs, src, mask, extra=()):
    """(T + 1 + len(extra), B, H): outputs in the caller's time order (0 at padding), then h_n, extra."""
    T = Hs.shape[0] - 1
    out = np.empty((T + 1 + len(extra),) + Hs.shape[1:], dtype=Hs.dtype)
    y = Hs[1:] if mask is None else Hs[1:] * mask
    out[:T] = _reorder(y, src)
    out[T] = Hs[T]
    for k, e in enumerate(extra):
        out[T + 1 + k] = e
    return out


def _weight_grads(ctx, dP, dA_hh, x, w_ih, w_hh, Hs, src, state_grads):
    """The gradients of forward's arguments (x, *states, w_ih, w_hh, b_ih, b_hh), in that order, from
    ∂P (the input projection's pre-activations, processing order) and ∂A_hh (those of the hidden
    product; the same array for RNN and LSTM, where both biases enter the same sum). Each is one GEMM
    over all T·B rows."""
    n = len(state_grads)
    need_x, need_w_ih, need_w_hh = ctx.needs_input_grad[0], ctx.needs_input_grad[n + 1], ctx.needs_input_grad[n + 2]
    T, B, G = dA_hh.shape
    dP_caller = _reorder(dP, src)   # back to the caller's time order, where x lives
    dx = np.matmul(dP_caller, w_ih) if need_x else None
    dw_ih = np.matmul(dP_caller.reshape(T * B, G).T, x.reshape(T * B, -1)) if need_w_ih else None
    dw_hh = np.matmul(dA_hh.reshape(T * B, G).T, Hs[:T].reshape(T * B, -1)) if need_w_hh else None
    if ctx.has_bias:
        db_ih = dP.sum(axis=(0, 1))
        db_hh = dA_hh.sum(axis=(0, 1)) if dA_hh is not dP else db_ih.copy()
    else:
        db_ih = db_hh = None
    return (dx, *state_grads, dw_ih, dw_hh, db_ih, db_hh)


class RNNLayer(Function):
    """Elman RNN, torch's `nn.RNN` for one layer and direction: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)
    (or relu). forward(x, h0, w_ih, w_hh, b_ih, b_hh, relu, lengths, reverse) → (T + 1, B, H)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, relu=False, lengths=None, reverse=False):
        T, B, _ = x.shape
        src, mask = _order(T, B, lengths, reverse)
        P = _reorder(_projection(x, w_ih, _bias_sum(b_ih, b_hh)), src)
        Hs = np.empty((T + 1,) + h0.shape, dtype=x.dtype)
        Hs[0] = h0
        a = np.empty_like(h0)
        for t in range(T):
            np.matmul(Hs[t], w_hh.T, out=a)
            a += P[t]
            K.rnn_forward(a, relu, Hs[t + 1])
            if mask is not None:
                np.copyto(Hs[t + 1], Hs[t], where=~mask[t])
        ctx.save_for_backward(x, w_ih, w_hh, Hs)
        ctx.relu, ctx.src, ctx.mask, ctx.has_bias = relu, src, mask, b_ih is not None
        return _stack_output(Hs, src, mask)

    @staticmethod
    def backward(ctx, grad):
        x, w_ih, w_hh, Hs = ctx.saved_tensors
        T = x.shape[0]
        src, mask = ctx.src, ctx.mask
        dY = _reorder(grad[:T], src)
        if mask is not None:
            dY = dY * mask
        dh = grad[T].copy()
        dA = np.empty((T,) + dh.shape, dtype=dh.dtype)
        for t in range(T - 1, -1, -1):
            K.rnn_backward(dh + dY[t], Hs[t + 1], ctx.relu, dA[t])
            if mask is None:
                dh = dA[t] @ w_hh
            else:
                dA[t] *= mask[t]
                dh = np.where(mask[t], dA[t] @ w_hh, dh)
        return _weight_grads(ctx, dA, dA, x, w_ih, w_hh, Hs, src, (dh,))


class LSTMLayer(Function):
    """LSTM, torch's `nn.LSTM` for one layer and direction (gates i, f, g, o; see kernels.recurrent).
    forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse) → (T + 2, B, H)."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, reverse=False):
        T, B, _ = x.shape
        H = h0.shape[1]
        src, mask = _order(T, B, lengths, reverse)
        P = _reorder(_projection(x, w_ih, _bias_sum(b_ih, b_hh)), src)
        Hs = np.empty((T + 1, B, H), dtype=x.dtype)
        Cs = np.empty((T + 1, B, H), dtype=x.dtype)
        gates = np.empty((T, B, 4 * H), dtype=x.dtype)
        Hs[0], Cs[0] = h0, c0
        a = np.empty((B, 4 * H), dtype=x.dtype)
        for t in range(T):
            np.matmul(Hs[t], w_hh.T, out=a)
            a += P[t]
            K.lstm_forward(a, Cs[t], gates[t], Cs[t + 1], Hs[t + 1])
            if mask is not None:
                np.copyto(Hs[t + 1], Hs[t], where=~mask[t])
                np.copyto(Cs[t + 1], Cs[t], where=~mask[t])
        ctx.save_for_backward(x, w_ih, w_hh, Hs, Cs, gates)
        ctx.src, ctx.mask, ctx.has_bias = src, mask, b_ih is not None
        return _stack_output(Hs, src, mask, (Cs[T],))

    @staticmethod
    def backward(ctx, grad):
        x, w_ih, w_hh, Hs, Cs, gates = ctx.saved_tensors
        T = x.shape[0]
        src, mask = ctx.src, ctx.mask
        dY = _reorder(grad[:T], src)
        if mask is not None:
            dY = dY * mask
        dh, dc = grad[T].copy(), grad[T + 1].copy()
        dc_prev = np.empty_like(dc)
        dA = np.empty(gates.shape, dtype=dh.dtype)
        for t in range(T - 1, -1, -1):
            K.lstm_backward(dh + dY[t], dc, gates[t], Cs[t], Cs[t + 1], dA[t], dc_prev)
            if mask is None:
                dh = dA[t] @ w_hh
                dc, dc_prev = dc_prev, dc
            else:
                dA[t] *= mask[t]
                dh = np.where(mask[t], dA[t] @ w_hh, dh)
                dc = np.where(mask[t], dc_prev, dc)
        return _weight_grads(ctx, dA, dA, x, w_ih, w_hh, Hs, src, (dh, dc))


class GRULayer(Function):
    """GRU, torch's `nn.GRU` for one layer and direction (gates r, z, n; n = tanh(W_in x + b_in +
    r ⊙ (W_hn h + b_hn)), so b_hh stays inside the product with r). forward(x, h0, w_ih, w_hh, b_ih,
    b_hh, lengths, reverse) → (T + 1, B, H)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *, lengths=None, reverse=False):
        T, B, _ = x.shape
        H = h0.shape[1]
        src, mask = _order(T, B, lengths, reverse)
        P = _reorder(_projection(x, w_ih, b_ih), src)
        Hs = np.empty((T + 1, B, H), dtype=x.dtype)
        GH = np.empty((T, B, 3 * H), dtype=x.dtype)
        gates = np.empty((T, B, 3 * H), dtype=x.dtype)
        Hs[0] = h0
        for t in range(T):
            np.matmul(Hs[t], w_hh.T, out=GH[t])
            if b_hh is not None:
                GH[t] += b_hh
            K.gru_forward(P[t], GH[t], Hs[t], gates[t], Hs[t + 1])
            if mask is not None:
                np.copyto(Hs[t + 1], Hs[t], where=~mask[t])
        ctx.save_for_backward(x, w_ih, w_hh, Hs, GH, gates)
        ctx.src, ctx.mask, ctx.has_bias = src, mask, b_ih is not None
        return _stack_output(Hs, src, mask)

    @staticmethod
    def backward(ctx, grad):
        x, w_ih, w_hh, Hs, GH, gates = ctx.saved_tensors
        T = x.shape[0]
        src, mask = ctx.src, ctx.mask
        dY = _reorder(grad[:T], src)
        if mask is not None:
            dY = dY * mask
        dh = grad[T].copy()
        dGI = np.empty(gates.shape, dtype=dh.dtype)
        dGH = np.empty(gates.shape, dtype=dh.dtype)
        direct = np.empty_like(dh)
        for t in range(T - 1, -1, -1):
            K.gru_backward(dh + dY[t], gates[t], GH[t], Hs[t], dGI[t], dGH[t], direct)
            if mask is None:
                dh = dGH[t] @ w_hh + direct
            else:
                dGI[t] *= mask[t]
                dGH[t] *= mask[t]
                dh = np.where(mask[t], dGH[t] @ w_hh + direct, dh)
        return _weight_grads(ctx, dGI, dGH, x, w_ih, w_hh, Hs, src, (dh,))
