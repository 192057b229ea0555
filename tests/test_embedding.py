"""F.embedding and nn.Embedding against torch (float64): lookup, gradients with padding_idx and
scale_grad_by_freq, max_norm renormalisation, torch's N(0, 1) init, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt.nn import functional as F

from conftest import leaf

torch = pytest.importorskip("torch")

IDX = np.array([[1, 0, 3, 1], [4, 1, 1, 0]])


@pytest.mark.parametrize("padding_idx", [None, 0, -2])
@pytest.mark.parametrize("scale_grad_by_freq", [False, True])
def test_embedding_matches_torch(padding_idx, scale_grad_by_freq):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3))
    wt, wr = leaf(w.copy()), torch.tensor(w, requires_grad=True)
    out = F.embedding(to.tensor(IDX), wt, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq)
    ref = torch.nn.functional.embedding(torch.tensor(IDX), wr, padding_idx=padding_idx,
                                        scale_grad_by_freq=scale_grad_by_freq)
    np.testing.assert_array_equal(out.data, ref.detach().numpy())
    v = rng.standard_normal(out.shape)
    (out * to.tensor(v)).sum().backward()
    (ref * torch.tensor(v)).sum().backward()
    np.testing.assert_allclose(wt.grad.data, wr.grad.numpy(), atol=1e-14)
    if padding_idx is not None:
        assert np.all(wt.grad.data[padding_idx] == 0)


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_max_norm_renormalises_like_torch(norm_type):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3)) * 3
    wt, wr = leaf(w.copy()), torch.tensor(w, requires_grad=True)
    out = F.embedding(IDX, wt, max_norm=1.5, norm_type=norm_type)
    ref = torch.nn.functional.embedding(torch.tensor(IDX), wr, max_norm=1.5, norm_type=norm_type)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(wt.data, wr.detach().numpy(), atol=1e-12)   # rows looked up were rescaled in place
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(wt.grad.data, wr.grad.numpy(), atol=1e-12)


def test_module_init_layout_and_state_dict():
    e = nn.Embedding(1000, 16, padding_idx=3, generator=np.random.default_rng(0))
    ref = torch.nn.Embedding(1000, 16, padding_idx=3)
    assert list(e.state_dict()) == list(ref.state_dict()) == ["weight"]
    w = e.weight.data
    assert w.dtype == np.float32 and w.shape == (1000, 16)
    assert np.all(w[3] == 0)
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1) < 0.02   # N(0, 1), torch's init
    e.load_state_dict({"weight": ref.weight.detach().numpy()})
    idx = np.array([[3, 7, 999]])
    np.testing.assert_array_equal(e(to.tensor(idx)).data, ref(torch.tensor(idx)).detach().numpy())
    f = nn.Embedding.from_pretrained(np.arange(6.0).reshape(3, 2))
    assert not f.weight.requires_grad and f(np.array([2])).data.tolist() == [[4.0, 5.0]]


def test_embedding_trains_and_padding_row_stays_zero():
    e = nn.Embedding(4, 2, padding_idx=0, dtype=np.float64, generator=np.random.default_rng(2))
    opt = to.optim.SGD(e.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        (e(np.array([0, 1, 2, 0])) ** 2).sum().backward()
        opt.step()
    assert np.all(e.weight.data[0] == 0)
    assert np.all(e.weight.data[3] != 0)


def test_embedding_refusals():
    w = to.tensor(np.zeros((4, 2)), requires_grad=True)
    with pytest.raises(IndexError, match="index out of range"):
        F.embedding(np.array([4]), w)
    with pytest.raises(RuntimeError, match="Long, Int"):
        F.embedding(np.array([1.0]), w)
    with pytest.raises(NotImplementedError, match="sparse"):
        nn.Embedding(4, 2, sparse=True)
    with pytest.raises(ValueError, match="Padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)
