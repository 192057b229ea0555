"""tinyopt.set_num_threads / get_num_threads: BLAS and Numba set together."""
from __future__ import annotations

import pytest

import tinyopt as to


def blas_threads():
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_sets_blas_and_numba_together():
    import numba

    before = to.get_num_threads()
    try:
        to.set_num_threads(1)
        assert to.get_num_threads() == 1
        assert blas_threads() <= {1}
        assert numba.get_num_threads() == 1
        to.set_num_threads(2)
        assert to.get_num_threads() == 2
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    finally:
        to.set_num_threads(before)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError),
                                        ("2", TypeError)])
def test_bad_counts_are_refused_and_change_nothing(bad, error):
    before = to.get_num_threads()
    with pytest.raises(error):
        to.set_num_threads(bad)
    assert to.get_num_threads() == before


def test_set_num_threads_chooses_one_pool():
    import importlib

    import numba

    backend = importlib.import_module("tinyopt.kernels.backend")
    blas = importlib.import_module("tinyopt.kernels.blas")
    two = min(2, numba.config.NUMBA_NUM_THREADS)
    before = to.get_num_threads()
    try:
        to.set_num_threads(2)            # Numba's pool for everything: the twins on, GEMMs split, BLAS on 1
        assert (backend.kernel_threads(), blas.gemm_threads()) == (2, two)
        assert blas_threads() <= {1}
        to.set_num_threads(2, blas_threads=1)    # the twins on, GEMMs whole on one BLAS thread
        assert (backend.kernel_threads(), blas.gemm_threads()) == (2, 1)
        to.set_num_threads(2, blas_threads=2)    # BLAS's own pool: the kernels serial, GEMMs whole
        assert (backend.kernel_threads(), blas.gemm_threads()) == (1, 1)
        to.set_num_threads(1)
        assert (backend.kernel_threads(), blas.gemm_threads()) == (1, 1)
    finally:
        to.set_num_threads(before)


def test_blas_threads_apart_from_numba():
    import numba

    before = to.get_num_threads()
    try:
        to.set_num_threads(2, blas_threads=1)
        assert blas_threads() <= {1}
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
        with pytest.raises(ValueError):
            to.set_num_threads(2, blas_threads=0)
    finally:
        to.set_num_threads(before)
