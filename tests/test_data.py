"""DataLoader: batching, length, drop_last, seeded shuffling, argument errors."""
from __future__ import annotations

import numpy as np
import pytest

from tinyopt.data import DataLoader


def make(n=10):
    x = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n)
    return x, y


@pytest.mark.parametrize("n, batch, drop_last, expected_sizes", [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, False, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]),
    (2, 5, False, [2]),
    (2, 5, True, []),
])
def test_batches_len_and_drop_last(n, batch, drop_last, expected_sizes):
    x, y = make(n)
    loader = DataLoader((x, y), batch_size=batch, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(expected_sizes) == len(batches)
    assert [len(bx) for bx, _ in batches] == expected_sizes
    if batches:
        # Without shuffling, the batches are the data in order.
        np.testing.assert_array_equal(np.concatenate([by for _, by in batches]), y[: sum(expected_sizes)])
        np.testing.assert_array_equal(np.concatenate([bx for bx, _ in batches]), x[: sum(expected_sizes)])


def test_a_single_array_yields_arrays_not_tuples():
    x, _ = make()
    batches = list(DataLoader(x, batch_size=4))
    assert all(isinstance(b, np.ndarray) for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), x)


def test_shuffle_keeps_pairs_aligned_and_covers_every_row_once():
    x, y = make(23)
    loader = DataLoader((x, y), batch_size=5, shuffle=True, rng=0)
    seen = []
    for bx, by in loader:
        np.testing.assert_array_equal(bx[:, 0], 2 * by)  # x row i is (2i, 2i+1)
        seen.extend(by.tolist())
    assert sorted(seen) == list(range(23))
    assert seen != list(range(23))


def test_equal_seeds_give_identical_epochs_and_epochs_differ():
    x, y = make(50)
    a = DataLoader((x, y), batch_size=8, shuffle=True, rng=123)
    b = DataLoader((x, y), batch_size=8, shuffle=True, rng=np.random.default_rng(123))
    for epoch in range(2):
        ya = np.concatenate([by for _, by in a])
        yb = np.concatenate([by for _, by in b])
        np.testing.assert_array_equal(ya, yb)
        if epoch == 0:
            first = ya
    assert not np.array_equal(first, ya), "each epoch must draw a new permutation"
    c = DataLoader((x, y), batch_size=8, shuffle=True, rng=124)
    assert not np.array_equal(np.concatenate([by for _, by in c]), first)


def test_shuffle_with_drop_last_drops_a_random_remainder():
    x, y = make(10)
    loader = DataLoader((x, y), batch_size=4, shuffle=True, drop_last=True, rng=1)
    batches = list(loader)
    assert [len(by) for _, by in batches] == [4, 4]
    assert len(set(np.concatenate([by for _, by in batches]).tolist())) == 8


def test_mismatched_lengths_error_names_both():
    with pytest.raises(ValueError, match=r"array 0 has 10 rows, array 1 has 9"):
        DataLoader((np.zeros((10, 2)), np.zeros(9)), batch_size=2)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "4"])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros(4), batch_size=batch_size)


def test_needs_an_array():
    with pytest.raises(ValueError, match="at least one"):
        DataLoader((), batch_size=1)
