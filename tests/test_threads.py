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


def test_set_num_threads_switches_the_parallel_kernel_twins():
    import importlib

    backend = importlib.import_module("tinyopt.kernels.backend")
    before = to.get_num_threads()
    try:
        to.set_num_threads(2)
        assert backend.kernel_threads() == 1  # BLAS has the 2 threads: the kernels stay serial
        to.set_num_threads(2, blas_threads=1)
        assert backend.kernel_threads() == 2  # BLAS on 1: the parallel twins get the 2
        to.set_num_threads(2, blas_threads=2)
        assert backend.kernel_threads() == 1
        to.set_num_threads(1)
        assert backend.kernel_threads() == 1
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
