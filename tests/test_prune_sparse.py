"""The CSR kernel's twins agree; SparseLinear / to_sparse give the masked model's outputs; the
compressed storage round-trips and its byte counts follow their formulas."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt import prune as P
from tinyopt.kernels import sparse as K
from tinyopt.nn.utils import prune


@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_twins_agree_with_dense(rng, density, dtype):
    w = (rng.standard_normal((17, 23)) * (rng.random((17, 23)) < density)).astype(dtype)
    xt = rng.standard_normal((23, 9)).astype(dtype)
    csr = K.csr_from_dense(w)
    ref = K.csr_matmul_t_reference(*csr, xt)
    fast = K.csr_matmul_t_numba(*csr, xt)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ref, w @ xt, rtol=tol, atol=tol)
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)
    assert fast.dtype == dtype and K.csr_matmul_t(*csr, xt).shape == (17, 9)


def test_to_sparse_same_outputs_and_inference_only(rng):
    net = nn.Sequential(nn.Linear(12, 20, rng=0), nn.ReLU(), nn.Linear(20, 4, rng=1))
    prune.l1_unstructured(net[0], "weight", 0.9)
    x = to.tensor(rng.standard_normal((6, 12)).astype(np.float32))
    sparse = P.to_sparse(net, min_sparsity=0.5)
    assert isinstance(sparse[0], P.SparseLinear) and isinstance(sparse[2], nn.Linear)
    assert sparse[0].nnz == 24 and prune.is_pruned(net)
    with to.no_grad():
        np.testing.assert_allclose(sparse(x).data, net(x).data, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(sparse[0].to_dense(), net[0].weight.data)
    with pytest.raises(RuntimeError, match="inference"):
        sparse(to.tensor(x.data, requires_grad=True))


def test_encode_decode_and_gap_fillers(rng):
    w = np.zeros((3, 400), np.float32)
    w[0, 0], w[1, 300], w[2, 399] = 0.5, -1.0, 0.25   # gaps of 1, 700 and 499
    values, gaps, scale = P.compression.encode_tensor(w)
    assert np.all(gaps >= 1) and gaps.max() <= 255 and np.sum(values != 0) == 3
    assert len(values) == 3 + (700 - 1) // 255 + (499 - 1) // 255
    back = P.compression.decode_tensor(values, gaps, scale, w.shape)
    np.testing.assert_allclose(back, w, atol=float(scale) / 2)


def test_huffman_lengths_are_optimal_on_a_known_case():
    lengths = P.compression.huffman_lengths({"a": 45, "b": 13, "c": 12, "d": 16, "e": 9, "f": 5})
    assert sum(c * lengths[s] for s, c in {"a": 45, "b": 13, "c": 12, "d": 16, "e": 9, "f": 5}.items()) == 224  # CLRS 16.3
    assert sum(2.0 ** -v for v in lengths.values()) == 1.0


def test_compressed_size_and_save_load(rng, tmp_path):
    net = nn.Sequential(nn.Linear(200, 40, rng=0), nn.ReLU(), nn.Linear(40, 10, rng=1))
    prune.global_unstructured([(net[0], "weight"), (net[2], "weight")], prune.L1Unstructured, amount=0.9)
    sizes = P.compressed_size(net)
    params = 200 * 40 + 40 + 40 * 10 + 10
    assert sizes["parameters"] == params and sizes["dense_bytes"] == 4 * params
    nnz_w = int(np.sum(net[0].weight_mask) + np.sum(net[2].weight_mask))
    assert sizes["csr_bytes"] == 8 * nnz_w + 8 * 41 + 8 * 11 + 4 * 50
    assert sizes["huffman_bytes"] < sizes["int8_bytes"] < sizes["csr_bytes"] < sizes["dense_bytes"]
    path = tmp_path / "m.npz"
    P.save_compressed(net, path)
    state = P.load_compressed(path)
    dense = P.make_permanent(__import__("copy").deepcopy(net))
    x = to.tensor(rng.standard_normal((4, 200)).astype(np.float32))
    y = dense(x).data
    dense.load_state_dict(state)
    assert np.abs(dense(x).data - y).max() < 0.05
    assert np.count_nonzero(state["0.weight"]) <= np.count_nonzero(net[0].weight.data)
    assert path.stat().st_size < sizes["int8_bytes"] + 2000


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_sparse_conv2d_equals_masked_conv(rng, stride, padding, dilation):
    conv = nn.Conv2d(3, 5, 3, stride=stride, padding=padding, dilation=dilation, dtype=np.float64, rng=0)
    prune.l1_unstructured(conv, "weight", 0.85)
    net = nn.Sequential(conv, nn.ReLU())
    sparse = P.to_sparse(net)
    assert isinstance(sparse[0], P.SparseConv2d) and sparse[0].nnz == conv.weight_mask.sum()
    x = to.tensor(rng.standard_normal((2, 3, 9, 8)))
    with to.no_grad():
        np.testing.assert_allclose(sparse(x).data, net(x).data, rtol=1e-10, atol=1e-12)
    grouped = nn.Conv2d(4, 4, 3, groups=2)
    prune.l1_unstructured(grouped, "weight", 0.9)
    assert isinstance(P.to_sparse(nn.Sequential(grouped))[0], nn.Conv2d)  # left dense
