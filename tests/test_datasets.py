"""IDX parsing and the Fashion-MNIST loader: corrupt, truncated, mislabelled and missing files
must raise clear errors naming the file; the real data (when installed) loads correctly.

Fake data sets are small gzip files written to tmp_path. Their SHA-256 is not the official one,
so tests that get past the checksum register their own hashes with monkeypatch."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from tinyopt.datasets import DatasetError, IDXError, fashion_mnist, parse_idx

NAMES = list(fashion_mnist.FILES)  # train images, train labels, test images, test labels


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode an array as IDX: 0x00 0x00 <type> <ndim>, big-endian uint32 sizes, raw values."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def fake_arrays(n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_fake_dataset(folder: Path, monkeypatch, arrays=None, raw_overrides=None, register_hashes=True):
    """Write the four gz files; optionally replace some decompressed contents with raw bytes.
    With register_hashes, the loader's expected SHA-256s become those of the fake files."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = fake_arrays() if arrays is None else arrays
    raw_overrides = raw_overrides or {}
    for name, array in arrays.items():
        raw = raw_overrides.get(name, idx_bytes(array))
        (folder / name).write_bytes(gzip.compress(raw))
        if register_hashes:
            monkeypatch.setitem(fashion_mnist.FILES, name, hashlib.sha256(raw).hexdigest())
    return arrays


@pytest.fixture
def no_real_data(monkeypatch, tmp_path):
    """Hide the real files: empty HOME and TINYOPT_DATA, and drop the system folder from the search."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYOPT_DATA", raising=False)
    original = fashion_mnist.search_dirs
    monkeypatch.setattr(
        fashion_mnist, "search_dirs", lambda path=None: [d for d in original(path) if not str(d).startswith("/usr/share")]
    )


# ----------------------------------------------------------------------------- parse_idx


def test_parse_idx_round_trip():
    for array, code in ((np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08),
                        (np.array([1.5, -2.0], dtype=">f4"), 0x0D),
                        (np.array([[7, -300]], dtype=">i4"), 0x0C)):
        out = parse_idx(idx_bytes(array, code), "x.idx")
        np.testing.assert_array_equal(out, array)
        assert out.dtype.isnative and out.shape == array.shape


def test_parse_idx_wrong_magic_names_the_file():
    raw = bytearray(idx_bytes(np.zeros(3, dtype=np.uint8)))
    raw[0:4] = (0x12345678).to_bytes(4, "big")
    with pytest.raises(IDXError, match=r"labels\.idx: bad IDX magic number 0x12345678"):
        parse_idx(bytes(raw), "labels.idx")
    raw[0:4] = bytes([0, 0, 0x42, 1])  # unknown type code
    with pytest.raises(IDXError, match="bad IDX magic"):
        parse_idx(bytes(raw), "labels.idx")


def test_parse_idx_size_mismatch_and_truncation():
    raw = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(IDXError, match=r"img\.idx: header says shape \(2, 3\) \(6 bytes.*holds 5 bytes"):
        parse_idx(raw[:-1], "img.idx")
    with pytest.raises(IDXError, match="holds 7 bytes"):
        parse_idx(raw + b"\0", "img.idx")
    with pytest.raises(IDXError, match="ends inside the IDX header"):
        parse_idx(raw[:9], "img.idx")
    with pytest.raises(IDXError, match="too short"):
        parse_idx(raw[:3], "img.idx")


def test_parse_idx_wrong_number_of_dimensions():
    with pytest.raises(IDXError, match="says 1 dimensions, expected 3"):
        parse_idx(idx_bytes(np.zeros(4, dtype=np.uint8)), "img.idx", expected_ndim=3)


# ----------------------------------------------------------------------------- read_verified


def test_read_verified_accepts_a_good_file_and_checks_the_decompressed_content(tmp_path):
    raw = b"hello idx"
    f = tmp_path / "good.gz"
    f.write_bytes(gzip.compress(raw, compresslevel=1))
    assert fashion_mnist.read_verified(f, hashlib.sha256(raw).hexdigest()) == raw
    f.write_bytes(gzip.compress(raw, compresslevel=9))  # recompressed (like Debian's): still accepted
    assert fashion_mnist.read_verified(f, hashlib.sha256(raw).hexdigest()) == raw


def test_read_verified_checksum_mismatch_names_the_file(tmp_path):
    f = tmp_path / "train-labels-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(b"not the official content"))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: SHA-256 .* expected 00ff"):
        fashion_mnist.read_verified(f, "00ff" * 16)


def test_read_verified_truncated_or_not_gzip(tmp_path):
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(bytes(range(256)) * 50)[:-20])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz is truncated or not a valid gzip"):
        fashion_mnist.read_verified(f, None)
    f.write_bytes(b"plain bytes, not gzip")
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz is truncated or not a valid gzip"):
        fashion_mnist.read_verified(f, None)


# ----------------------------------------------------------------------------- load_data on fake files


def test_load_data_from_path_returns_the_fake_arrays(tmp_path, monkeypatch, no_real_data):
    arrays = write_fake_dataset(tmp_path / "data", monkeypatch)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(path=tmp_path / "data")
    np.testing.assert_array_equal(x_train, arrays[NAMES[0]])
    np.testing.assert_array_equal(y_train, arrays[NAMES[1]])
    np.testing.assert_array_equal(x_test, arrays[NAMES[2]])
    np.testing.assert_array_equal(y_test, arrays[NAMES[3]])
    assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8
    x_train[...] = 0  # the loader caches: callers get copies, so the next load is unaffected
    np.testing.assert_array_equal(fashion_mnist.load_data(path=tmp_path / "data")[0][0], arrays[NAMES[0]])


def test_load_data_finds_files_through_TINYOPT_DATA(tmp_path, monkeypatch, no_real_data):
    arrays = write_fake_dataset(tmp_path / "env", monkeypatch)
    monkeypatch.setenv("TINYOPT_DATA", str(tmp_path / "env"))
    (_, y_train), _ = fashion_mnist.load_data()
    np.testing.assert_array_equal(y_train, arrays[NAMES[1]])


def test_load_data_checksum_mismatch_names_the_file(tmp_path, monkeypatch, no_real_data):
    write_fake_dataset(tmp_path, monkeypatch, register_hashes=False)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: SHA-256"):
        fashion_mnist.load_data(path=tmp_path)


def test_load_data_truncated_gzip_names_the_file(tmp_path, monkeypatch, no_real_data):
    write_fake_dataset(tmp_path, monkeypatch)
    f = tmp_path / NAMES[0]
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with pytest.raises(DatasetError, match=rf"{NAMES[0]} is truncated"):
        fashion_mnist.load_data(path=tmp_path)


def test_load_data_wrong_magic_names_the_file(tmp_path, monkeypatch, no_real_data):
    arrays = fake_arrays()
    bad = bytearray(idx_bytes(arrays[NAMES[1]]))
    bad[:4] = bytes([0x00, 0x00, 0x55, 0x01])  # type code 0x55 does not exist
    write_fake_dataset(tmp_path, monkeypatch, arrays, raw_overrides={NAMES[1]: bytes(bad)})
    with pytest.raises(DatasetError, match=rf"{NAMES[1]}: bad IDX magic number 0x00005501"):
        fashion_mnist.load_data(path=tmp_path)


def test_load_data_images_with_label_magic_are_refused(tmp_path, monkeypatch, no_real_data):
    """A labels file (1 dimension) saved under the images name: the magic's ndim byte catches it."""
    arrays = fake_arrays()
    write_fake_dataset(tmp_path, monkeypatch, arrays, raw_overrides={NAMES[0]: idx_bytes(arrays[NAMES[1]])})
    with pytest.raises(DatasetError, match=rf"{NAMES[0]}: IDX magic 0x00000801 says 1 dimensions, expected 3"):
        fashion_mnist.load_data(path=tmp_path)


def test_load_data_size_mismatch_names_the_file(tmp_path, monkeypatch, no_real_data):
    arrays = fake_arrays()
    short = idx_bytes(arrays[NAMES[2]])[:-28]  # one row of pixels missing
    write_fake_dataset(tmp_path, monkeypatch, arrays, raw_overrides={NAMES[2]: short})
    with pytest.raises(DatasetError, match=rf"{NAMES[2]}: header says shape \(4, 28, 28\)"):
        fashion_mnist.load_data(path=tmp_path)


def test_load_data_images_and_labels_count_mismatch(tmp_path, monkeypatch, no_real_data):
    arrays = fake_arrays()
    arrays[NAMES[3]] = arrays[NAMES[3]][:3]
    write_fake_dataset(tmp_path, monkeypatch, arrays)
    with pytest.raises(DatasetError, match="test split has 4 images but 3 labels"):
        fashion_mnist.load_data(path=tmp_path)


def test_missing_file_error_says_where_it_looked_and_how_to_get_the_data(tmp_path, no_real_data):
    with pytest.raises(DatasetError) as info:
        fashion_mnist.load_data(path=tmp_path / "nowhere")
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz not found" in message
    assert str(tmp_path / "nowhere") in message and str(tmp_path / "home" / ".cache" / "tinyopt") in message
    assert "apt-get install dataset-fashion-mnist" in message and "TINYOPT_DATA" in message


# ----------------------------------------------------------------------------- the real data


def _real_files_present() -> bool:
    try:
        return all(fashion_mnist.find_file(name).is_file() for name in NAMES)
    except DatasetError:
        return False


@pytest.mark.skipif(not _real_files_present(), reason="Fashion-MNIST files are not installed")
def test_real_fashion_mnist_loads_with_the_right_shapes_and_dtypes():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1000))
    assert x_train.max() == 255 and x_train.min() == 0
    assert len(fashion_mnist.CLASS_NAMES) == 10
