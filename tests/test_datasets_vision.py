"""The map-style data sets (MNIST, FashionMNIST, CIFAR10) and the Keras `datasets` namespace, on generated files.

The image convention is torchvision's `transforms.ToTensor()`: uint8 (H, W[, C]) -> float32
(C, H, W) divided by 255. Without torchvision installed, the torch oracle applies that definition
itself (`permute` to channels-first, `.float().div(255)`), which is what ToTensor does to a uint8 image."""
from __future__ import annotations

import numpy as np
import pytest

from test_datasets import NAMES, fake_arrays, write_idx_dataset
from test_datasets_cifar import BATCHES, fake_cifar, write_fake_cifar
from tinyopt.datasets import CIFAR10, MNIST, DatasetError, FashionMNIST, cifar10, fashion_mnist, mnist


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYOPT_DATA", raising=False)
    arrays = write_idx_dataset(mnist, tmp_path / "root" / "mnist", monkeypatch, fake_arrays(n_train=6, n_test=4))
    return tmp_path / "root", arrays


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    archive, arrays = fake_cifar(per_batch=2)
    write_fake_cifar(tmp_path / "root" / "cifar-10", monkeypatch, archive)
    return tmp_path / "root", arrays


def test_mnist_items_are_chw_float32_in_0_1_and_int_labels(mnist_root):
    root, arrays = mnist_root
    ds = MNIST(root=root)
    assert len(ds) == 6 and ds.train is True
    image, label = ds[2]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32 and image.flags.c_contiguous
    np.testing.assert_array_equal(image[0], arrays[NAMES[0]][2].astype(np.float32) / np.float32(255))
    assert type(label) is int and label == int(arrays[NAMES[1]][2])
    assert 0.0 <= image.min() and image.max() <= 1.0
    np.testing.assert_array_equal(ds[-1][0], ds[5][0])
    assert ds.data.dtype == np.uint8 and ds.data.shape == (6, 28, 28)
    assert ds.targets.dtype == np.int64 and ds.targets.shape == (6,)
    test = MNIST(root=root, train=False)
    assert len(test) == 4 and test[0][1] == int(arrays[NAMES[3]][0])


def test_items_match_torchvision_ToTensor(mnist_root, cifar_root):
    torch = pytest.importorskip("torch")
    ds = MNIST(root=mnist_root[0])
    for i in range(len(ds)):
        expected = torch.from_numpy(ds.data[i]).unsqueeze(0).float().div(255)
        np.testing.assert_array_equal(ds[i][0], expected.numpy())  # bit for bit
    ds = CIFAR10(root=cifar_root[0])
    for i in range(len(ds)):
        expected = torch.from_numpy(ds.data[i]).permute(2, 0, 1).contiguous().float().div(255)
        np.testing.assert_array_equal(ds[i][0], expected.numpy())


def test_cifar10_dataset(cifar_root):
    root, arrays = cifar_root
    ds = CIFAR10(root=root)
    assert len(ds) == 10 and ds.data.shape == (10, 32, 32, 3) and ds.targets.dtype == np.int64
    image, label = ds[3]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    source = arrays[BATCHES[1]][0][1]  # record 3 is the second record of data_batch_2
    np.testing.assert_array_equal(image[1], source[:, :, 1] / np.float32(255))  # the green plane
    assert label == int(arrays[BATCHES[1]][1][1])
    test = CIFAR10(root=root, train=False)
    np.testing.assert_array_equal(test.data, arrays["test_batch.bin"][0])
    assert ds.classes[0] == "airplane" and ds.class_to_idx["truck"] == 9


def test_transforms_receive_the_float_image_and_the_int_label(mnist_root):
    root, _ = mnist_root
    seen = []

    def normalise(x):
        seen.append((x.dtype, x.shape))
        return (x - 0.1307) / 0.3081

    ds = MNIST(root=root, transform=normalise, target_transform=lambda y: y + 100)
    image, label = ds[0]
    assert seen == [(np.float32, (1, 28, 28))]
    np.testing.assert_allclose(image, (ds.data[0][None] / 255.0 - 0.1307) / 0.3081, rtol=1e-6)
    assert label == int(ds.targets[0]) + 100
    assert "Transform:" in repr(ds) and "Target transform:" in repr(ds)


def test_classes_repr_and_class_to_idx(mnist_root):
    root, _ = mnist_root
    ds = MNIST(root=root, train=False)
    assert ds.classes[3] == "3 - three" and ds.class_to_idx["9 - nine"] == 9
    assert repr(ds).splitlines()[:4] == ["Dataset MNIST", "    Number of datapoints: 4",
                                         f"    Root location: {root}", "    Split: Test"]
    assert FashionMNIST.classes == list(fashion_mnist.CLASS_NAMES) and CIFAR10.classes == list(cifar10.CLASS_NAMES)


def test_bad_arguments_and_indices_are_refused(mnist_root):
    root, _ = mnist_root
    with pytest.raises(TypeError, match="train must be True or False"):
        MNIST(root=root, train="False")
    with pytest.raises(TypeError, match="transform must be a callable"):
        MNIST(root=root, transform="ToTensor")
    with pytest.raises(TypeError, match="root must be a folder name"):
        MNIST(root=5)
    ds = MNIST(root=root)
    with pytest.raises(IndexError, match=r"index 6 is out of range for MNIST \(Train\) of 6 images"):
        ds[6]
    with pytest.raises(IndexError):
        ds[-7]
    for bad in (1.0, slice(0, 2), True, "0"):
        with pytest.raises(TypeError, match="indices must be integers"):
            ds[bad]
    assert ds[np.int64(1)][1] == ds[1][1]


def test_a_missing_root_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DatasetError, match="only place looked in"):
        FashionMNIST(root=tmp_path / "nothing here")


# ----------------------------------------------------------------------------- Keras namespace


def test_keras_datasets_are_the_tinyopt_loaders_with_keras_shapes(mnist_root, cifar_root):
    from tinyopt.keras import datasets

    assert datasets.mnist is mnist and datasets.cifar10 is cifar10 and datasets.fashion_mnist is fashion_mnist
    (x, y), (xt, yt) = datasets.mnist.load_data(path=mnist_root[0])
    assert x.shape == (6, 28, 28) and y.shape == (6,) and x.dtype == np.uint8
    (x, y), (xt, yt) = datasets.cifar10.load_data(path=cifar_root[0])
    assert x.shape == (10, 32, 32, 3) and y.shape == (10, 1) and xt.shape == (2, 32, 32, 3) and yt.shape == (2, 1)
