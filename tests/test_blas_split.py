"""kernels.blas: the GEMM split into single-threaded cblas_?gemm calls on Numba's threads equals np.matmul."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

blas = importlib.import_module("tinyopt.kernels.blas")
backend = importlib.import_module("tinyopt.kernels.backend")

needs_cblas = pytest.mark.skipif(blas._cblas_entry("f") is None, reason="no CBLAS entry point found in NumPy's BLAS")


def layouts(x):
    """x as a C-order array, a transposed (F-order) view, a row-strided slice and a both-strided view
    (the last is copied before the call)."""
    rows, cols = x.shape
    f = np.asfortranarray(x)
    wide = np.zeros((rows, cols + 5), dtype=x.dtype)
    wide[:, :cols] = x
    every_other = np.zeros((2 * rows, 2 * cols), dtype=x.dtype)
    every_other[::2, ::2] = x
    return {"C": x, "F": f, "row-strided": wide[:, :cols], "both-strided": every_other[::2, ::2]}


@needs_cblas
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("m, k, n", [(6, 25, 700), (300, 40, 20), (257, 33, 300), (1, 7, 50), (50, 9, 1), (3, 1, 3)])
@pytest.mark.parametrize("parts", [2, 3])
def test_split_equals_matmul_for_every_layout(dtype, rtol, m, k, n, parts):
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    for a_name, a_view in layouts(a).items():
        for b_name, b_view in layouts(b).items():
            got = blas.matmul_split(a_view, b_view, parts)
            assert got.dtype == dtype and got.shape == (m, n) and got.flags.c_contiguous, (a_name, b_name)
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max(),
                                       err_msg=f"A {a_name}, B {b_name}")
            np.testing.assert_allclose(got, np.matmul(a_view, b_view), rtol=rtol, atol=rtol * np.abs(expected).max())


@needs_cblas
def test_rows_and_columns_blocks_cover_c_and_c_is_line_aligned():
    rng = np.random.default_rng(0)
    for m, n in [(blas.SPLIT_ROWS_MIN, 40), (8, 1000)]:        # rows, then columns
        a = rng.standard_normal((m, 16)).astype(np.float32)
        b = rng.standard_normal((16, n)).astype(np.float32)
        c = blas.matmul_split(a, b, 2)
        assert c.ctypes.data % 64 == 0
        np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


@needs_cblas
def test_empty_operands_fall_back_to_numpy():
    for a, b in [(np.ones((0, 4), np.float32), np.ones((4, 5), np.float32)),
                 (np.ones((3, 0), np.float32), np.ones((0, 5), np.float32)),
                 (np.ones((3, 4), np.float32), np.ones((4, 0), np.float32))]:
        got = blas.matmul_split(a, b, 2)
        assert got.shape == (a.shape[0], b.shape[1])
        np.testing.assert_array_equal(got, np.matmul(a, b))


def test_reference_backend_is_the_numpy_product(monkeypatch):
    monkeypatch.setattr(blas, "matmul_split_numba", lambda *args: pytest.fail("the reference backend split"))
    a, b = np.ones((3, 4)), np.ones((4, 5))
    with backend.backend("reference"):
        np.testing.assert_array_equal(blas.matmul_split(a, b, 2), a @ b)


def test_matmul_splits_only_large_2d_float_products(monkeypatch):
    calls = []
    monkeypatch.setattr(blas, "matmul_split", lambda a, b, parts: calls.append((a.shape, b.shape, parts)) or a @ b)
    # (the stack case below writes each product into its slice of one output)
    before = blas.gemm_threads()
    side = 1 + round(blas.SPLIT_MIN_MACS ** (1 / 3))
    big = np.ones((side, side), np.float32)
    try:
        blas.set_gemm_threads(2)
        blas.matmul(big, big)
        assert calls == [((side, side), (side, side), 2)]
        blas.matmul(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))      # too small
        blas.matmul(big.astype(np.int64), big.astype(np.int64))                     # not float
        blas.matmul(big.astype(np.float32), big.astype(np.float64))                 # mixed dtypes
        blas.matmul(np.ones((2, side, side), np.float32), big)                      # broadcast
        assert len(calls) == 1
        stacked = blas.matmul(np.ones((2, side, side), np.float32), np.ones((2, side, side), np.float32))
        assert len(calls) == 3 and stacked.shape == (2, side, side)               # a stack: each split
        blas.set_gemm_threads(1)
        blas.matmul(big, big)
        assert len(calls) == 3
        with pytest.raises(ValueError):
            blas.set_gemm_threads(0)
    finally:
        blas.set_gemm_threads(before)


def test_split_info_names_the_library():
    info = blas.gemm_split_info()
    assert set(info) == {"library", "entry_points", "threads"}
    if blas._cblas_entry("f") is not None:
        assert info["library"] and info["entry_points"]["float32"] in {name for name, _ in blas._NAMES["f"]}


@needs_cblas
def test_a_linear_layer_trains_the_same_with_the_split():
    """One SGD step of a Linear layer large enough to split: the same weights with and without it."""
    import tinyopt as to
    import tinyopt.nn as nn
    import tinyopt.nn.functional as F

    rng = np.random.default_rng(1)
    x = rng.standard_normal((160, 200)).astype(np.float32)
    y = rng.integers(0, 100, 160)
    results = []
    before = blas.gemm_threads()
    try:
        for threads in (1, 2):
            blas.set_gemm_threads(threads)
            layer = nn.Linear(200, 100, rng=np.random.default_rng(0))
            opt = to.optim.SGD(layer.parameters(), lr=0.1)
            loss = F.cross_entropy(layer(to.tensor(x)), y)
            loss.backward()
            opt.step()
            results.append(layer.weight.data.copy())
    finally:
        blas.set_gemm_threads(before)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_what_the_split_cannot_take_goes_to_numpy():
    with pytest.raises(ValueError):
        blas.matmul_split(np.ones((3, 4), np.float32), np.ones((5, 6), np.float32), 2)    # np.matmul's error
    mixed = blas.matmul_split(np.ones((3, 4), np.float32), np.ones((4, 6), np.float64), 2)
    assert mixed.dtype == np.float64
    np.testing.assert_array_equal(mixed, np.full((3, 6), 4.0))
    ints = blas.matmul_split(np.ones((3, 4), np.int64), np.ones((4, 6), np.int64), 2)
    np.testing.assert_array_equal(ints, np.full((3, 6), 4))


def test_the_split_calls_numpys_own_blas_when_several_are_loaded(monkeypatch):
    """SciPy's OpenBLAS (loaded later, its own thread count) may be listed first: the split must
    still take NumPy's, or no library at all."""
    import threadpoolctl

    real = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    numpy_blas = [i for i in real if "numpy" in i["filepath"]]
    if not numpy_blas:
        pytest.skip("NumPy's BLAS is not inside its installation here")
    foreign = {"user_api": "blas", "internal_api": "openblas", "filepath": "/elsewhere/libopenblas.so", "num_threads": 2}
    try:
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [foreign] + numpy_blas)
        blas._cblas_library.cache_clear()
        assert blas._cblas_library()[0] == numpy_blas[0]["filepath"]
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [foreign, dict(foreign, filepath="/x/libblis.so")])
        blas._cblas_library.cache_clear()
        assert blas._cblas_library() == (None, None)
    finally:
        monkeypatch.undo()
        blas._cblas_library.cache_clear()
        blas._cblas_entry.cache_clear()
