"""CIFAR-10 from its binary version: the record format, the archive, the loader's search path and checks.

Fake archives are small cifar-10-binary.tar.gz files built in memory with the real layout
(cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin: 1 label byte + 3072 pixel bytes per
record). Tests that get past the checksum put the fake archive's SHA-256 into cifar10.FILES."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tinyopt.datasets import CIFARError, DatasetError, cifar10
from tinyopt.datasets.cifar_binary import RECORD_BYTES, parse_batch, read_archive

BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def cifar_records(n: int, seed: int):
    """n random images (N, 32, 32, 3) and labels, and their encoding as binary CIFAR records."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    # the format, written out: label, then the red plane, the green plane, the blue plane (each row-major)
    raw = b"".join(bytes([labels[i]]) + images[i, :, :, 0].tobytes() + images[i, :, :, 1].tobytes()
                   + images[i, :, :, 2].tobytes() for i in range(n))
    return images, labels, raw


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_cifar(per_batch: int = 3, overrides: dict | None = None, drop: tuple = ()):
    """(archive bytes, {batch: (images, labels)}) with `per_batch` records in each of the six batches."""
    overrides = overrides or {}
    members, arrays = {"cifar-10-batches-bin/batches.meta.txt": "\n".join(cifar10.CLASS_NAMES).encode()}, {}
    for seed, batch in enumerate(BATCHES):
        images, labels, raw = cifar_records(per_batch, seed)
        arrays[batch] = (images, labels)
        if batch not in drop:
            members[f"cifar-10-batches-bin/{batch}"] = overrides.get(batch, raw)
    return tar_gz(members), arrays


def write_fake_cifar(folder: Path, monkeypatch, archive: bytes, register_hash: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / cifar10.ARCHIVE
    file.write_bytes(archive)
    if register_hash:
        monkeypatch.setitem(cifar10.FILES, cifar10.ARCHIVE, hashlib.sha256(archive).hexdigest())
    return file


@pytest.fixture
def no_real_cifar(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYOPT_DATA", raising=False)
    monkeypatch.delenv("TINYOPT_MIRROR", raising=False)
    monkeypatch.setattr(cifar10, "SOURCE", dataclasses.replace(cifar10.SOURCE, system_dirs=()))


# ----------------------------------------------------------------------------- the record format


def test_parse_batch_decodes_label_then_red_green_blue_planes():
    images, labels, raw = cifar_records(4, seed=7)
    got_images, got_labels = parse_batch(raw, "b.bin")
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(got_images, images)
    assert got_images.shape == (4, 32, 32, 3) and got_images.dtype == np.uint8 and got_images.flags.c_contiguous
    # one hand-made record: pixel (row 1, column 2) of the green plane is byte 1 + 1024 + 1*32 + 2
    record = bytearray(RECORD_BYTES)
    record[0] = 6
    record[1 + 1024 + 32 + 2] = 200
    one_image, one_label = parse_batch(bytes(record))
    assert one_label[0] == 6 and one_image[0, 1, 2, 1] == 200 and one_image.sum() == 200


def test_parse_batch_refuses_wrong_sizes_and_labels():
    _, _, raw = cifar_records(2, seed=0)
    with pytest.raises(CIFARError, match=r"b\.bin: 6145 bytes is not a whole number of 3073-byte records"):
        parse_batch(raw[:-1], "b.bin")
    with pytest.raises(CIFARError, match="0 bytes"):
        parse_batch(b"", "b.bin")
    bad = bytearray(raw)
    bad[RECORD_BYTES] = 10
    with pytest.raises(CIFARError, match="record 1 has label byte 10, CIFAR-10 labels are 0-9"):
        parse_batch(bytes(bad), "b.bin")


def test_read_archive_needs_every_batch_and_a_valid_tar_gz():
    archive, _ = fake_cifar(drop=("data_batch_3.bin",))
    with pytest.raises(CIFARError, match="has no cifar-10-batches-bin/data_batch_3.bin"):
        read_archive(io.BytesIO(archive), "a.tar.gz")
    with pytest.raises(CIFARError, match="is truncated or not a valid .tar.gz"):
        read_archive(io.BytesIO(b"PK\x03\x04 a zip, not a tar.gz"), "a.tar.gz")
    archive, _ = fake_cifar()
    with pytest.raises(CIFARError, match="is truncated or not a valid .tar.gz"):
        read_archive(io.BytesIO(archive[: len(archive) // 2]), "a.tar.gz")


# ----------------------------------------------------------------------------- load_data


def test_load_data_returns_keras_shapes_from_a_good_archive(tmp_path, monkeypatch, no_real_cifar):
    archive, arrays = fake_cifar(per_batch=3)
    write_fake_cifar(tmp_path, monkeypatch, archive)
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(path=tmp_path)
    assert x_train.shape == (15, 32, 32, 3) and y_train.shape == (15, 1)  # Keras: channels last, labels a column
    assert x_test.shape == (3, 32, 32, 3) and y_test.shape == (3, 1)
    assert x_train.dtype == y_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, np.concatenate([arrays[b][0] for b in BATCHES[:5]]))
    np.testing.assert_array_equal(y_train[:, 0], np.concatenate([arrays[b][1] for b in BATCHES[:5]]))
    np.testing.assert_array_equal(x_test, arrays["test_batch.bin"][0])
    x_train[...] = 0  # cached, but callers get copies
    np.testing.assert_array_equal(cifar10.load_data(path=tmp_path)[0][0][:3], arrays["data_batch_1.bin"][0])
    images, labels = cifar10.load_split("test", path=tmp_path)
    assert labels.shape == (3,)


def test_the_published_checksum_is_checked(tmp_path, monkeypatch, no_real_cifar):
    assert cifar10.FILES[cifar10.ARCHIVE] == "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
    archive, _ = fake_cifar()
    write_fake_cifar(tmp_path, monkeypatch, archive, register_hash=False)
    with pytest.raises(DatasetError, match=r"cifar-10-binary\.tar\.gz: SHA-256 of the file is .* expected c4a38c50"):
        cifar10.load_data(path=tmp_path)


@pytest.mark.parametrize("case", ["truncated", "not gzip", "wrong record size", "bad label", "missing batch"])
def test_bad_archives_name_the_file_and_what_is_wrong(case, tmp_path, monkeypatch, no_real_cifar):
    good, _ = fake_cifar()
    _, _, raw = cifar_records(3, seed=0)
    archive, expected = {
        "truncated": (good[:-100], "is truncated or not a valid .tar.gz"),
        "not gzip": (b"\x00" * 200, "is truncated or not a valid .tar.gz"),
        "wrong record size": (fake_cifar(overrides={"data_batch_2.bin": raw + b"\x00"})[0],
                              r"data_batch_2\.bin: 9220 bytes is not a whole number"),
        "bad label": (fake_cifar(overrides={"test_batch.bin": b"\xff" + raw[1:]})[0], "label byte 255"),
        "missing batch": (fake_cifar(drop=("test_batch.bin",))[0], "has no cifar-10-batches-bin/test_batch.bin"),
    }[case]
    write_fake_cifar(tmp_path, monkeypatch, archive)
    with pytest.raises(DatasetError, match=expected) as info:
        cifar10.load_data(path=tmp_path)
    assert str(tmp_path / cifar10.ARCHIVE) in str(info.value)


def test_missing_archive_says_exactly_how_to_get_it(tmp_path, no_real_cifar):
    with pytest.raises(DatasetError) as info:
        cifar10.load_data()
    message = str(info.value)
    target = tmp_path / "home" / ".cache" / "tinyopt" / "cifar-10"
    assert "CIFAR-10 file cifar-10-binary.tar.gz not found" in message and str(target) in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    assert f"download by hand into {target}/" in message and "download=True" in message


def test_unusable_copies_are_named(tmp_path, no_real_cifar):
    """The pickle version and extracted folders are recognised and the message says why they are not used."""
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"pickles")
    (tmp_path / "cifar-10-batches-bin").mkdir()
    with pytest.raises(DatasetError) as info:
        cifar10.load_data(path=tmp_path)
    message = str(info.value)
    assert "cifar-10-python.tar.gz is the Python (pickle) version" in message and "never unpickles" in message
    assert "cifar-10-batches-bin is an extracted copy" in message


def test_an_explicit_path_is_the_only_place_looked_in(tmp_path, monkeypatch, no_real_cifar):
    archive, _ = fake_cifar()
    write_fake_cifar(tmp_path / "env" / "cifar-10", monkeypatch, archive)
    monkeypatch.setenv("TINYOPT_DATA", str(tmp_path / "env"))
    assert cifar10.load_data()[1][0].shape == (3, 32, 32, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="only place looked in") as info:
        cifar10.load_data(path=tmp_path / "empty")
    assert str(tmp_path / "env") not in str(info.value)


def test_an_unreadable_archive_is_reported_as_permission_denied(tmp_path, monkeypatch, no_real_cifar):
    from test_datasets import load_with_permissions_enforced

    archive, _ = fake_cifar()
    file = write_fake_cifar(tmp_path / "d", monkeypatch, archive)
    file.chmod(0)
    try:
        out = load_with_permissions_enforced(cifar10, tmp_path / "d")
    finally:
        file.chmod(0o644)
    assert f"{file}: permission denied" in out and "truncated" not in out


def test_nothing_is_unpickled(tmp_path, monkeypatch, no_real_cifar):
    """A batch whose bytes are a pickle is parsed as records (and refused), never executed."""
    import pickle

    payload = pickle.dumps({"data": "x" * 5000})
    archive, _ = fake_cifar(overrides={"data_batch_1.bin": payload})
    write_fake_cifar(tmp_path, monkeypatch, archive)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads was called"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load was called"))
    with pytest.raises(DatasetError, match="data_batch_1.bin"):
        cifar10.load_data(path=tmp_path)


def _cifar_present() -> bool:
    try:
        cifar10.find_archive()
        return True
    except DatasetError:
        return False


@pytest.mark.skipif(not _cifar_present(), reason="CIFAR-10 is not installed (load_data(download=True) gets it)")
def test_real_cifar10_loads_like_keras():
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (50000, 32, 32, 3) and y_train.shape == (50000, 1) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 32, 32, 3) and y_test.shape == (10000, 1)
    np.testing.assert_array_equal(np.bincount(y_train[:, 0]), np.full(10, 5000))
    np.testing.assert_array_equal(np.bincount(y_test[:, 0]), np.full(10, 1000))


def test_gzip_is_not_mistaken_for_an_archive(tmp_path, monkeypatch, no_real_cifar):
    """A gzip of something that is not a tar (e.g. a bare batch file compressed) is named as not a tar.gz."""
    _, _, raw = cifar_records(2, seed=1)
    write_fake_cifar(tmp_path, monkeypatch, gzip.compress(raw))
    with pytest.raises(DatasetError, match="is truncated or not a valid .tar.gz"):
        cifar10.load_data(path=tmp_path)
