"""tinyopt.transforms against torchvision's definitions, statistically for the random ones, and
with the map-style data sets and DataLoader.

torchvision is not installed here, so the torch oracle applies torchvision's formulas itself:
ToTensor on uint8 = `permute(2, 0, 1).float().div(255)`, Normalize = `(t - mean[:, None, None]) /
std[:, None, None]`, RandomCrop = `F.pad(t, [p] * 4, mode)` then `t[..., top:top + h, left:left + w]`
(torchvision's `crop`), with the offsets given (drawn here from a twin of the transform's generator)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tinyopt import transforms as T

torch = pytest.importorskip("torch")


def batch(n=8, c=3, h=10, w=9, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w))  # float64: exact comparisons with torch


def test_to_tensor_is_torchvisions_on_uint8():
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    want = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).numpy()
    np.testing.assert_array_equal(T.ToTensor()(pixels), want)
    grey = pixels[:, :, 0]
    np.testing.assert_array_equal(T.ToTensor()(grey), torch.from_numpy(grey)[None].float().div(255).numpy())


def test_normalize_is_torchvisions_formula():
    x = batch()
    mean, std = [0.2, 0.5, 0.9], [0.3, 1.5, 0.25]
    t = torch.from_numpy(x)
    want = (t - torch.tensor(mean, dtype=torch.float64)[:, None, None]) / torch.tensor(std, dtype=torch.float64)[:, None, None]
    np.testing.assert_allclose(T.Normalize(mean, std)(x), want.numpy(), rtol=1e-15, atol=0)
    np.testing.assert_allclose(T.Normalize(mean, std)(x[0]), want.numpy()[0], rtol=1e-15, atol=0)


@pytest.mark.parametrize("mode, torch_mode", [("constant", "constant"), ("edge", "replicate"), ("reflect", "reflect")])
def test_random_crop_is_pad_then_torchvisions_crop_at_the_drawn_offsets(mode, torch_mode):
    x, p, size = batch(), 3, (8, 7)
    out = T.RandomCrop(size, padding=p, padding_mode=mode, generator=np.random.default_rng(11))(x)
    twin = np.random.default_rng(11)  # the offsets RandomCrop drew: top for every sample, then left
    top = twin.integers(0, 10 + 2 * p - size[0] + 1, size=len(x))
    left = twin.integers(0, 9 + 2 * p - size[1] + 1, size=len(x))
    padded = torch.nn.functional.pad(torch.from_numpy(x), [p] * 4, mode=torch_mode)
    for k in range(len(x)):
        want = padded[k, :, top[k]:top[k] + size[0], left[k]:left[k] + size[1]].numpy()
        np.testing.assert_array_equal(out[k], want)


def test_random_crop_offsets_are_uniform_over_every_position():
    x = np.zeros((4000, 1, 4, 4))
    x[:, 0, 0, 0] = 1.0  # a marker: where it lands tells the offset
    out = T.RandomCrop(4, padding=1, generator=3)(x)
    pos = np.argwhere(out[:, 0] == 1.0)
    counts = np.zeros((3, 3))
    for _, i, j in pos:
        counts[i, j] += 1
    # offsets (top, left) in {0, 1, 2}²; the marker is lost when the offset is 2 in a direction
    # (offset o puts pixel 0 at 1 - o), so 4 of 9 cells are visible, each with probability 1/9
    seen = counts[:2, :2] / len(x)
    assert np.all(np.abs(seen - 1 / 9) < 4 * math.sqrt((1 / 9) * (8 / 9) / len(x)))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_flip_rate_is_p(p):
    n = 5000
    x = batch(n=n, c=1, h=2, w=3)
    out = T.RandomHorizontalFlip(p, generator=np.random.default_rng(5))(x)
    flipped = np.all(out == x[:, :, :, ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped | kept)
    assert abs(flipped.mean() - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12


def test_random_erasing_rate_area_and_ratio_stay_within_scale_and_ratio():
    n, h, w = 3000, 28, 28
    x = np.ones((n, 1, h, w))
    scale, ratio = (0.05, 0.25), (0.5, 2.0)
    out = T.RandomErasing(p=0.6, scale=scale, ratio=ratio, value=0.0, generator=np.random.default_rng(2))(x)
    erased = out[:, 0] == 0.0
    hit = erased.any(axis=(1, 2))
    assert abs(hit.mean() - 0.6) <= 4 * math.sqrt(0.6 * 0.4 / n)
    for mask in erased[hit]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        eh, ew = len(rows), len(cols)
        assert mask.sum() == eh * ew and rows[-1] - rows[0] + 1 == eh and cols[-1] - cols[0] + 1 == ew  # one rectangle
        # h = round(√(A·s·r)), w = round(√(A·s/r)): before rounding h·w = A·s and h/w = r
        lo_h, hi_h = eh - 0.5, eh + 0.5
        lo_w, hi_w = ew - 0.5, ew + 0.5
        assert lo_h * lo_w <= h * w * scale[1] and hi_h * hi_w >= h * w * scale[0]
        assert lo_h / hi_w <= ratio[1] and hi_h / lo_w >= ratio[0]
    frac = erased[hit].mean(axis=(1, 2))
    assert scale[0] * 0.8 < frac.mean() < scale[1]  # the mean of U(scale), give or take the rounding


def test_random_erasing_value_and_untouched_pixels():
    x = batch(n=50, c=2, h=12, w=12) + 1.0
    out = T.RandomErasing(p=1.0, value=-3.0, generator=1)(x)
    changed = out != x
    assert np.all(out[changed] == -3.0)
    assert np.all(changed.any(axis=(1, 2, 3)))  # p = 1 on a 12×12 image: a box always fits
    np.testing.assert_array_equal(changed[:, 0], changed[:, 1])  # the same box on every channel


def pipeline(seed):
    g = np.random.default_rng(seed)
    return T.Compose([T.RandomCrop(28, padding=2, generator=g), T.RandomHorizontalFlip(generator=g),
                      T.Normalize(0.286, 0.353), T.RandomErasing(p=0.5, generator=g)])


def test_same_seed_same_bits_other_seed_other_draws():
    x = batch(n=64, c=1, h=28, w=28).astype(np.float32)
    a, b = pipeline(7), pipeline(7)
    for _ in range(3):  # the whole stream, not only the first call
        np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(pipeline(7)(x), pipeline(8)(x))
    single = pipeline(7)
    one = single(x[0])
    assert one.shape == (1, 28, 28) and one.dtype == np.float32


def test_fashion_mnist_dataset_with_transforms_through_the_dataloader(tmp_path, monkeypatch):
    from test_datasets import fake_arrays, write_idx_dataset
    from tinyopt.datasets import FashionMNIST, fashion_mnist
    from tinyopt.utils.data import DataLoader

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYOPT_DATA", raising=False)
    arrays = write_idx_dataset(fashion_mnist, tmp_path / "root" / "fashion-mnist", monkeypatch,
                               fake_arrays(n_train=10, n_test=4))

    def batches(seed):
        ds = FashionMNIST(tmp_path / "root", train=True, transform=pipeline(seed))
        loader = DataLoader(ds, batch_size=4, shuffle=True, generator=np.random.default_rng(seed))
        return [(np.asarray(xb), np.asarray(yb)) for xb, yb in loader]

    first, again = batches(0), batches(0)
    assert [xb.shape for xb, _ in first] == [(4, 1, 28, 28), (4, 1, 28, 28), (2, 1, 28, 28)]
    assert all(xb.dtype == np.float32 for xb, _ in first)
    for (xa, ya), (xb, yb) in zip(first, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    labels = np.concatenate([y for _, y in first])
    assert sorted(labels.tolist()) == sorted(arrays["train-labels-idx1-ubyte.gz"].astype(int).tolist())
    # without randomness the item is Normalize(ToTensor(pixels))
    ds = FashionMNIST(tmp_path / "root", train=False, transform=T.Normalize(0.5, 0.25))
    pixels = arrays["t10k-images-idx3-ubyte.gz"][1]
    np.testing.assert_allclose(ds[1][0], (T.ToTensor()(pixels) - 0.5) / 0.25, rtol=1e-6)
