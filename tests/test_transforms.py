"""tinyopt.transforms: what each transform does, per image and per batch, reproducibly."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt import transforms as T


def image(c=1, h=6, w=5, seed=0):
    return np.random.default_rng(seed).random((c, h, w), dtype=np.float32)


def test_to_tensor_scales_and_moves_channels_first():
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    out = T.ToTensor()(pixels)
    assert out.dtype == np.float32 and out.shape == (3, 2, 2)
    np.testing.assert_allclose(out[1], pixels[:, :, 1] / 255.0, rtol=1e-6)
    assert T.ToTensor()(np.zeros((4, 5), np.uint8)).shape == (1, 4, 5)
    assert T.ToTensor()(np.zeros((7, 4, 5, 3), np.uint8)).shape == (7, 3, 4, 5)
    assert T.ToTensor()(np.ones((1, 2, 2))).dtype == np.float32


def test_normalize_matches_the_formula_and_validates():
    x = image(c=2)
    out = T.Normalize([0.5, 0.1], [0.2, 2.0])(x)
    np.testing.assert_allclose(out[0], (x[0] - 0.5) / 0.2, rtol=1e-6)
    np.testing.assert_allclose(out[1], (x[1] - 0.1) / 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="std"):
        T.Normalize(0.5, 0.0)
    with pytest.raises(ValueError, match="channels"):
        T.Normalize([0.1, 0.2, 0.3], [1, 1, 1])(x)


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = image(h=6, w=5)
    crop = T.RandomCrop((6, 5), padding=2, generator=0)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    for _ in range(10):
        out = crop(x)
        assert out.shape == x.shape
        found = [(i, j) for i in range(5) for j in range(5) if np.array_equal(padded[:, i:i + 6, j:j + 5], out)]
        assert found, "the crop is not a window of the padded image"
    assert np.array_equal(T.RandomCrop((6, 5))(x), x)  # no padding, full size: the identity


def test_random_crop_batch_draws_per_sample_and_is_reproducible():
    xb = np.stack([image(seed=s) for s in range(16)])
    a = T.RandomCrop((6, 5), padding=2, generator=np.random.default_rng(3))(xb)
    b = T.RandomCrop((6, 5), padding=2, generator=np.random.default_rng(3))(xb)
    np.testing.assert_array_equal(a, b)
    shifts = {int(np.argmax(np.abs(a[k]).sum(axis=(0, 2)) > 0)) for k in range(16)}
    assert len(shifts) > 1  # different offsets across the batch
    with pytest.raises(ValueError, match="larger"):
        T.RandomCrop(20)(xb)


def test_horizontal_flip_probability_and_per_sample():
    x = image()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x), x[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x), x)
    xb = np.stack([image(seed=s) for s in range(200)])
    out = T.RandomHorizontalFlip(0.5, generator=1)(xb)
    flipped = [np.array_equal(out[k], xb[k, :, :, ::-1]) for k in range(200)]
    kept = [np.array_equal(out[k], xb[k]) for k in range(200)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 60 < sum(flipped) < 140
    with pytest.raises(ValueError):
        T.RandomHorizontalFlip(1.5)


def test_random_erasing_fills_one_rectangle():
    x = image(h=20, w=20) + 1.0  # no zeros before
    out = T.RandomErasing(p=1.0, value=0.0, generator=5)(x)
    zero = out[0] == 0
    rows, cols = np.flatnonzero(zero.any(axis=1)), np.flatnonzero(zero.any(axis=0))
    assert zero.sum() == len(rows) * len(cols)  # a full rectangle
    assert 0.02 * 400 * 0.5 <= zero.sum() <= 0.33 * 400 * 1.5
    np.testing.assert_array_equal(out[0][~zero], x[0][~zero])
    np.testing.assert_array_equal(T.RandomErasing(p=0.0)(x), x)
    with pytest.raises(ValueError, match="scale"):
        T.RandomErasing(scale=(0.5, 0.1))


def test_compose_and_the_default_generator_follows_manual_seed():
    pipeline = T.Compose([T.RandomCrop(5, padding=1), T.RandomHorizontalFlip(), T.Normalize(0.5, 0.5)])
    x = image(h=5, w=5)
    to.manual_seed(7)
    a = pipeline(x)
    to.manual_seed(7)
    b = pipeline(x)
    np.testing.assert_array_equal(a, b)
    assert "RandomCrop" in repr(pipeline)
    with pytest.raises(TypeError):
        T.Compose([1])


def test_works_as_a_dataset_transform():
    from tinyopt.utils.data import DataLoader, Dataset

    class Images(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return T.RandomHorizontalFlip(generator=i)(image(seed=i)), i

    xb, yb = next(iter(DataLoader(Images(), batch_size=4)))
    assert np.asarray(xb).shape == (4, 1, 6, 5)


def test_fashion_mnist_augment_keeps_shape():
    xb = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    out = T.fashion_mnist_augment(generator=0, erasing=0.5)(xb)
    assert out.shape == xb.shape and out.dtype == xb.dtype


def _tiny_data(seed=0):
    g = np.random.default_rng(seed)
    make = lambda n: (g.random((n, 784), dtype=np.float32), g.integers(0, 10, n))
    return make(96), make(32), make(32)


def test_train_augment_runs_and_resumes_bit_for_bit(tmp_path):
    from tinyopt.train import TrainConfig, run

    config = TrainConfig(model="mlp", optimizer="sgd", epochs=2, batch_size=32, augment=True)
    full = run(config, tmp_path / "full", data=_tiny_data(), verbose=0, plots=False)
    run(config, tmp_path / "split", data=_tiny_data(), verbose=0, plots=False, stop_after_epoch=1)
    resumed = run(None, tmp_path / "split", resume=True, data=_tiny_data(), verbose=0, plots=False)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]
    plain = run(TrainConfig(model="mlp", optimizer="sgd", epochs=2, batch_size=32), tmp_path / "plain",
                data=_tiny_data(), verbose=0, plots=False)
    assert plain.history[-1]["train_loss"] != full.history[-1]["train_loss"]  # the augmentation changed the batches


def test_cli_has_augment_flag():
    from tinyopt.cli import build_parser

    args = build_parser().parse_args(["train", "--augment"])
    assert args.augment is True
