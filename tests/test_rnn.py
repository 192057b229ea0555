"""nn.RNN / LSTM / GRU and their cells against torch (float64, same weights via state_dict), gradcheck
of every cell and layer, the gate kernels' two twins, and nn.utils.rnn packing."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt.kernels import recurrent as K
from tinyopt.nn import functional as F
from tinyopt.nn.utils import rnn as R

from conftest import leaf

torch = pytest.importorskip("torch")

MODES = {"rnn_tanh": (nn.RNN, torch.nn.RNN, {}), "rnn_relu": (nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
         "lstm": (nn.LSTM, torch.nn.LSTM, {}), "gru": (nn.GRU, torch.nn.GRU, {})}


def _pair(mode, I, H, **kw):
    ours_cls, torch_cls, extra = MODES[mode]
    torch.manual_seed(0)
    ref = torch_cls(I, H, **extra, **kw).double()
    ours = ours_cls(I, H, **extra, **kw, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return ours, ref


def _states(mode, shape, rng):
    if mode == "lstm":
        return rng.standard_normal(shape), rng.standard_normal(shape)
    return (rng.standard_normal(shape),)


def _compare(ours, ref, mode, x, states, atol=1e-10, seed=0):
    """Forward (output, final states) and the gradients of input, initial states and every parameter."""
    xt, xr = leaf(x.copy()), torch.tensor(x, requires_grad=True)
    st = [leaf(s.copy()) for s in states]
    sr = [torch.tensor(s, requires_grad=True) for s in states]
    if states:
        hx_t = tuple(st) if mode == "lstm" else st[0]
        hx_r = tuple(sr) if mode == "lstm" else sr[0]
        out_t, fin_t = ours(xt, hx_t)
        out_r, fin_r = ref(xr, hx_r)
    else:
        out_t, fin_t = ours(xt)
        out_r, fin_r = ref(xr)
    fin_t = fin_t if mode == "lstm" else (fin_t,)
    fin_r = fin_r if mode == "lstm" else (fin_r,)
    np.testing.assert_allclose(out_t.data, out_r.detach().numpy(), atol=atol, rtol=1e-9)
    for a, b in zip(fin_t, fin_r):
        np.testing.assert_allclose(a.data, b.detach().numpy(), atol=atol, rtol=1e-9)
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(out_t.shape)] + [rng.standard_normal(f.shape) for f in fin_t]
    loss_t = sum(((t * to.tensor(v)).sum() for t, v in zip((out_t, *fin_t), vs)), to.tensor(0.0))
    loss_r = sum((t * torch.tensor(v)).sum() for t, v in zip((out_r, *fin_r), vs))
    loss_t.backward()
    loss_r.backward()
    np.testing.assert_allclose(xt.grad.data, xr.grad.numpy(), atol=atol, rtol=1e-8, err_msg="input grad")
    for a, b in zip(st, sr):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), atol=atol, rtol=1e-8, err_msg="state grad")
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, ref_params[name].grad.numpy(), atol=atol, rtol=1e-8, err_msg=name)


CONFIGS = [
    dict(), dict(num_layers=2), dict(bidirectional=True), dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(bias=False), dict(num_layers=3, batch_first=True),
]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("with_state", [False, True])
def test_layers_match_torch(mode, config, with_state):
    rng = np.random.default_rng(1)
    T, B, I, H = 5, 3, 4, 6
    ours, ref = _pair(mode, I, H, **config)
    D = 2 if config.get("bidirectional") else 1
    L = config.get("num_layers", 1)
    x = rng.standard_normal((B, T, I) if config.get("batch_first") else (T, B, I))
    states = _states(mode, (L * D, B, H), rng) if with_state else ()
    _compare(ours, ref, mode, x, states)


@pytest.mark.parametrize("mode", list(MODES))
def test_unbatched_input_matches_torch(mode):
    rng = np.random.default_rng(2)
    ours, ref = _pair(mode, 3, 4, num_layers=2, bidirectional=True)
    _compare(ours, ref, mode, rng.standard_normal((6, 3)), _states(mode, (4, 4), rng))


@pytest.mark.parametrize("mode", list(MODES))
def test_torch_init_layout_and_state_dict_both_ways(mode):
    ours_cls, torch_cls, extra = MODES[mode]
    ours = ours_cls(5, 7, num_layers=2, bidirectional=True, **extra, generator=np.random.default_rng(0))
    ref = torch_cls(5, 7, num_layers=2, bidirectional=True, **extra)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (k, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        assert a.shape == tuple(b.shape), k
        assert a.dtype == np.float32
        assert np.abs(a).max() <= 1 / np.sqrt(7)   # U(−1/√H, 1/√H)
    big = ours_cls(5, 64, **extra, generator=np.random.default_rng(0))
    w = big.weight_hh_l0.data
    assert abs(w.std() - (2 / np.sqrt(64)) / np.sqrt(12)) < 0.01   # std of U(−a, a) = a/√3
    # tinyopt → torch: torch gives the same output with our weights.
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 2, 5)).astype(np.float32)
    out_t, _ = ours(to.tensor(x))
    out_r, _ = ref(torch.tensor(x))
    np.testing.assert_allclose(out_t.data, out_r.detach().numpy(), atol=1e-5)
    again = ours_cls(5, 7, num_layers=2, bidirectional=True, **extra, generator=np.random.default_rng(0))
    for a, b in zip(ours.parameters(), again.parameters()):
        np.testing.assert_array_equal(a.data, b.data)   # the generator makes init reproducible


@pytest.mark.parametrize("mode", list(MODES))
def test_dropout_between_layers(mode):
    ours_cls, _, extra = MODES[mode]
    x = to.tensor(np.random.default_rng(0).standard_normal((5, 2, 3)))
    m = ours_cls(3, 4, num_layers=2, dropout=0.5, **extra, dtype=np.float64, generator=np.random.default_rng(3))
    m2 = ours_cls(3, 4, num_layers=2, dropout=0.5, **extra, dtype=np.float64, generator=np.random.default_rng(3))
    a, b = m(x)[0].data, m2(x)[0].data
    np.testing.assert_array_equal(a, b)           # same generator, same masks
    m.eval()
    m_nodrop = ours_cls(3, 4, num_layers=2, **extra, dtype=np.float64)
    m_nodrop.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(m(x)[0].data, m_nodrop(x)[0].data)   # eval: no dropout
    assert not np.allclose(a, m_nodrop(x)[0].data)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        ours_cls(3, 4, dropout=0.2, **extra)


CELLS = {"rnn": (nn.RNNCell, torch.nn.RNNCell, {}), "rnn_relu": (nn.RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
         "lstm": (nn.LSTMCell, torch.nn.LSTMCell, {}), "gru": (nn.GRUCell, torch.nn.GRUCell, {})}


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(kind, bias, batched):
    ours_cls, torch_cls, extra = CELLS[kind]
    rng = np.random.default_rng(4)
    torch.manual_seed(1)
    ref = torch_cls(3, 5, bias=bias, **extra).double()
    ours = ours_cls(3, 5, bias=bias, **extra, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert list(ours.state_dict()) == list(ref.state_dict())
    shape = (2,) if batched else ()
    x = rng.standard_normal(shape + (3,))
    states = [rng.standard_normal(shape + (5,)) for _ in range(2 if kind == "lstm" else 1)]
    xt, xr = leaf(x), torch.tensor(x, requires_grad=True)
    st, sr = [leaf(s) for s in states], [torch.tensor(s, requires_grad=True) for s in states]
    out_t = ours(xt, tuple(st) if kind == "lstm" else st[0])
    out_r = ref(xr, tuple(sr) if kind == "lstm" else sr[0])
    out_t = out_t if kind == "lstm" else (out_t,)
    out_r = out_r if kind == "lstm" else (out_r,)
    vs = [rng.standard_normal(o.shape) for o in out_t]
    for a, b in zip(out_t, out_r):
        np.testing.assert_allclose(a.data, b.detach().numpy(), atol=1e-12)
    sum(((a * to.tensor(v)).sum() for a, v in zip(out_t, vs)), to.tensor(0.0)).backward()
    sum((b * torch.tensor(v)).sum() for b, v in zip(out_r, vs)).backward()
    np.testing.assert_allclose(xt.grad.data, xr.grad.numpy(), atol=1e-12)
    for a, b in zip(st, sr):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), atol=1e-12)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, ref_params[name].grad.numpy(), atol=1e-12, err_msg=name)
    # no state: zeros, as torch
    out0 = ours(xt)
    ref0 = ref(xr)
    np.testing.assert_allclose((out0 if kind != "lstm" else out0[1]).data,
                               (ref0 if kind != "lstm" else ref0[1]).detach().numpy(), atol=1e-12)


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("reverse,lengths", [(False, None), (True, None), (False, [3, 1, 2]), (True, [3, 1, 2])])
def test_gradcheck_layer_ops(kind, reverse, lengths):
    rng = np.random.default_rng(5)
    T, B, I, H = 3, 3, 2, 3
    G = {"lstm": 4, "gru": 3}.get(kind, 1)
    x, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w_ih, w_hh = rng.standard_normal((G * H, I)) * 0.7, rng.standard_normal((G * H, H)) * 0.7
    b_ih, b_hh = rng.standard_normal(G * H) * 0.3, rng.standard_normal(G * H) * 0.3
    arrays = [leaf(a) for a in (x, h0, c0, w_ih, w_hh, b_ih, b_hh)]

    def fn(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        if kind == "lstm":
            out, h, c = F.lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse)
            return to.cat([out.reshape(-1), h.reshape(-1), c.reshape(-1)])
        if kind == "gru":
            out, h = F.gru_layer(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse)
        else:
            out, h = F.rnn_layer(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity=kind[4:], lengths=lengths, reverse=reverse)
        return to.cat([out.reshape(-1), h.reshape(-1) + 0 * c0.sum()])

    assert to.gradcheck(fn, arrays, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", list(MODES))
def test_gradcheck_module_bidirectional_packed_with_state(mode):
    ours_cls, _, extra = MODES[mode]
    rng = np.random.default_rng(6)
    m = ours_cls(2, 3, num_layers=2, bidirectional=True, batch_first=True, **extra, dtype=np.float64,
                 generator=np.random.default_rng(0))
    x = leaf(rng.standard_normal((3, 4, 2)))
    h0 = leaf(rng.standard_normal((4, 3, 3)))
    lengths = [2, 4, 1]

    def fn(x, h0, *params):
        packed = R.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        hx = (h0, h0 * 0.5) if mode == "lstm" else h0
        out, fin = m(packed, hx)
        h = fin[0] if mode == "lstm" else fin
        return to.cat([out.data.reshape(-1), h.reshape(-1)])

    assert to.gradcheck(fn, [x, h0, *m.parameters()], atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gate_kernels_twins_agree(dtype):
    rng = np.random.default_rng(7)
    B, H = 5, 7

    def r(*shape, scale=3.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    checks = {
        "rnn_forward": lambda: ((r(B, H), True), [(B, H)]),
        "rnn_forward_tanh": lambda: ((r(B, H), False), [(B, H)]),
        "rnn_backward": lambda: ((r(B, H), np.tanh(r(B, H)), False), [(B, H)]),
        "rnn_backward_relu": lambda: ((r(B, H), np.maximum(r(B, H), 0), True), [(B, H)]),
        "lstm_forward": lambda: ((r(B, 4 * H, scale=20), r(B, H)), [(B, 4 * H), (B, H), (B, H)]),
        "lstm_backward": lambda: ((r(B, H), r(B, H), rng.uniform(0, 1, (B, 4 * H)).astype(dtype), r(B, H), r(B, H)),
                                  [(B, 4 * H), (B, H)]),
        "gru_forward": lambda: ((r(B, 3 * H, scale=20), r(B, 3 * H), r(B, H)), [(B, 3 * H), (B, H)]),
        "gru_backward": lambda: ((r(B, H), rng.uniform(0, 1, (B, 3 * H)).astype(dtype), r(B, 3 * H), r(B, H)),
                                 [(B, 3 * H), (B, 3 * H), (B, H)]),
    }
    for name, make in checks.items():
        op = getattr(K, name.replace("_tanh", "").replace("_relu", "") if name.startswith("rnn_") else name)
        args, out_shapes = make()
        outs_ref = [np.full(s, np.nan, dtype=dtype) for s in out_shapes]
        outs_fast = [np.full(s, np.nan, dtype=dtype) for s in out_shapes]
        with np.errstate(over="raise"):
            op.reference(*args, *outs_ref)
        op.fast(*args, *outs_fast)
        for a, b in zip(outs_ref, outs_fast):
            assert a.dtype == dtype and np.all(np.isfinite(a))
            np.testing.assert_allclose(a, b, err_msg=name, **tol)


def test_layer_same_result_on_both_backends():
    from tinyopt.kernels.backend import backend
    rng = np.random.default_rng(8)
    m = nn.LSTM(3, 4, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((6, 2, 3))
    results = []
    for name in ("reference", "numba"):
        with backend(name):
            xt = leaf(x)
            out, (h, c) = m(xt)
            (out.sum() + c.sum()).backward()
            results.append((out.data, xt.grad.data, m.weight_hh_l0.grad.data.copy()))
            m.zero_grad()
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------------- packing


def test_pad_sequence_matches_torch():
    rng = np.random.default_rng(9)
    seqs = [rng.standard_normal((n, 3)) for n in (4, 1, 3)]
    for batch_first, side in itertools.product([False, True], ["right", "left"]):
        ts = [leaf(s.copy()) for s in seqs]
        rs = [torch.tensor(s, requires_grad=True) for s in seqs]
        out = R.pad_sequence(ts, batch_first=batch_first, padding_value=-1.5, padding_side=side)
        ref = torch.nn.utils.rnn.pad_sequence(rs, batch_first=batch_first, padding_value=-1.5, padding_side=side)
        np.testing.assert_array_equal(out.data, ref.detach().numpy())
        v = rng.standard_normal(out.shape)
        (out * to.tensor(v)).sum().backward()
        (ref * torch.tensor(v)).sum().backward()
        for a, b in zip(ts, rs):
            np.testing.assert_array_equal(a.grad.data, b.grad.numpy())


@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_and_unpack_match_torch(enforce_sorted, batch_first):
    rng = np.random.default_rng(10)
    lengths = [5, 3, 2, 2, 1] if enforce_sorted else [2, 5, 1, 3]
    B, T = len(lengths), 5
    x = rng.standard_normal((B, T, 2) if batch_first else (T, B, 2))
    xt, xr = leaf(x), torch.tensor(x, requires_grad=True)
    p = R.pack_padded_sequence(xt, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    q = torch.nn.utils.rnn.pack_padded_sequence(xr, torch.tensor(lengths), batch_first=batch_first,
                                                enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(p.data.data, q.data.detach().numpy())
    np.testing.assert_array_equal(p.batch_sizes.data, q.batch_sizes.numpy())
    if not enforce_sorted:
        np.testing.assert_array_equal(p.sorted_indices.data, q.sorted_indices.numpy())
        np.testing.assert_array_equal(p.unsorted_indices.data, q.unsorted_indices.numpy())
    out, lens = R.pad_packed_sequence(p, batch_first=batch_first, padding_value=7.0, total_length=6)
    ref, ref_lens = torch.nn.utils.rnn.pad_packed_sequence(q, batch_first=batch_first, padding_value=7.0, total_length=6)
    np.testing.assert_array_equal(out.data, ref.detach().numpy())
    np.testing.assert_array_equal(lens.data, ref_lens.numpy())
    v = rng.standard_normal(out.shape)
    (out * to.tensor(v)).sum().backward()
    (ref * torch.tensor(v)).sum().backward()
    np.testing.assert_array_equal(xt.grad.data, xr.grad.numpy())


@pytest.mark.parametrize("mode", list(MODES))
def test_packed_rnn_matches_torch(mode):
    rng = np.random.default_rng(11)
    ours, ref = _pair(mode, 3, 4, num_layers=2, bidirectional=True)
    lengths = [3, 6, 1, 4]
    x = rng.standard_normal((6, 4, 3))
    states = _states(mode, (4, 4, 4), rng)
    xt, xr = leaf(x), torch.tensor(x, requires_grad=True)
    st, sr = [leaf(s) for s in states], [torch.tensor(s, requires_grad=True) for s in states]
    p = R.pack_padded_sequence(xt, lengths, enforce_sorted=False)
    q = torch.nn.utils.rnn.pack_padded_sequence(xr, torch.tensor(lengths), enforce_sorted=False)
    out_t, fin_t = ours(p, tuple(st) if mode == "lstm" else st[0])
    out_r, fin_r = ref(q, tuple(sr) if mode == "lstm" else sr[0])
    assert isinstance(out_t, R.PackedSequence)
    fin_t = fin_t if mode == "lstm" else (fin_t,)
    fin_r = fin_r if mode == "lstm" else (fin_r,)
    np.testing.assert_allclose(out_t.data.data, out_r.data.detach().numpy(), atol=1e-12)
    for a, b in zip(fin_t, fin_r):
        np.testing.assert_allclose(a.data, b.detach().numpy(), atol=1e-12)
    v = rng.standard_normal(out_t.data.shape)
    ws = [rng.standard_normal(f.shape) for f in fin_t]
    loss_t = (out_t.data * to.tensor(v)).sum() + sum(((f * to.tensor(w)).sum() for f, w in zip(fin_t, ws)), to.tensor(0.0))
    loss_r = (out_r.data * torch.tensor(v)).sum() + sum((f * torch.tensor(w)).sum() for f, w in zip(fin_r, ws))
    loss_t.backward()
    loss_r.backward()
    np.testing.assert_allclose(xt.grad.data, xr.grad.numpy(), atol=1e-12)
    for a, b in zip(st, sr):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), atol=1e-12)
    ref_params = dict(ref.named_parameters())
    for name, prm in ours.named_parameters():
        np.testing.assert_allclose(prm.grad.data, ref_params[name].grad.numpy(), atol=1e-12, err_msg=name)
    # padded input steps received no gradient
    for b, n in enumerate(lengths):
        assert np.all(xt.grad.data[n:, b] == 0)


def test_padding_values_change_nothing():
    rng = np.random.default_rng(12)
    m = nn.GRU(2, 3, bidirectional=True, dtype=np.float64)
    lengths = [4, 2]
    x = rng.standard_normal((4, 2, 2))
    y = x.copy()
    y[2:, 1] = 1e3   # garbage in the padded steps
    results = []
    for data in (x, y):
        packed = R.pack_padded_sequence(to.tensor(data), lengths)
        out, h = m(packed)
        (out.data.sum() + h.sum()).backward()
        results.append((R.pad_packed_sequence(out)[0].data, h.data, m.weight_ih_l0_reverse.grad.data.copy()))
        m.zero_grad()
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_detach_state_truncated_bptt():
    m = nn.LSTM(2, 3, dtype=np.float64)
    x = to.tensor(np.random.default_rng(13).standard_normal((8, 1, 2)))
    state = None
    for chunk in (x[:4], x[4:]):
        out, state = m(chunk, state)
        state = R.detach_state(state)
        assert all(s.grad_fn is None and not s.requires_grad for s in state)
    out.sum().backward()
    assert m.weight_hh_l0.grad is not None


# ----------------------------------------------------------------------------- errors


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout should be a number"):
        nn.LSTM(2, 3, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.GRU(2, 0)
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(2, 3, proj_size=2)
    m = nn.LSTM(2, 3)
    with pytest.raises(nn.ShapeError, match="input_size"):
        m(to.tensor(np.zeros((4, 1, 5), dtype=np.float32)))
    with pytest.raises(nn.ShapeError, match="Expected hidden size"):
        m(to.tensor(np.zeros((4, 2, 2), dtype=np.float32)), (to.zeros(1, 3, 3), to.zeros(1, 3, 3)))
    with pytest.raises(nn.ShapeError, match="2D or 3D"):
        m(to.tensor(np.zeros((4,), dtype=np.float32)))
    with pytest.raises(RuntimeError, match="same dtype"):
        m(to.tensor(np.zeros((4, 1, 2), dtype=np.float64)))
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        R.pack_padded_sequence(to.zeros(3, 2, 1), [1, 3])
    with pytest.raises(RuntimeError, match="greater than 0"):
        R.pack_padded_sequence(to.zeros(3, 2, 1), [3, 0])
