"""IDX parsing and the Fashion-MNIST loader: corrupt, truncated, mislabelled and missing files
must raise clear errors naming the file; the real data (when installed) loads correctly.

Fake data sets are small gzip files written to tmp_path. Their SHA-256 is not the official one,
so tests that get past the checksum register their own hashes with monkeypatch."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyopt.datasets import DatasetError, IDXError, cifar10, fashion_mnist, mnist, parse_idx

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
        fashion_mnist.load_data()
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz not found" in message
    assert str(tmp_path / "home" / ".cache" / "tinyopt") in message and "$TINYOPT_DATA (not set)" in message
    assert "apt-get install dataset-fashion-mnist" in message and "TINYOPT_DATA" in message
    # every missing file is named at once, with the URL to fetch it from and the folder to put it in
    for name in NAMES:
        assert f"{fashion_mnist.SOURCE.mirrors[0]}{name}" in message
    assert f"download by hand into {tmp_path / 'home' / '.cache' / 'tinyopt' / 'fashion-mnist'}/" in message


def test_missing_file_with_an_explicit_path_names_only_that_path(tmp_path, no_real_data):
    """Issue 10: with path= nothing else is searched, and the message says so (the default places are not listed)."""
    with pytest.raises(DatasetError) as info:
        fashion_mnist.load_data(path=tmp_path / "nowhere")
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz not found" in message and "which does not exist" in message
    assert "only place looked in" in message and str(tmp_path / "nowhere") in message
    assert ".cache" not in message and "/usr/share" not in message
    assert f"downloads into {tmp_path / 'nowhere' / 'fashion-mnist'}/" in message


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


# ----------------------------------------------------------------------------- MNIST: the same format, its own folder


IDX_MODULES = pytest.mark.parametrize("module", [fashion_mnist, mnist], ids=["fashion_mnist", "mnist"])


def write_idx_dataset(module, folder: Path, monkeypatch, arrays=None, raw_overrides=None, register_hashes=True):
    """Like write_fake_dataset, for either IDX module (the hashes go into that module's FILES)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = fake_arrays() if arrays is None else arrays
    raw_overrides = raw_overrides or {}
    for name, array in arrays.items():
        raw = raw_overrides.get(name, idx_bytes(array))
        (folder / name).write_bytes(gzip.compress(raw))
        if register_hashes:
            monkeypatch.setitem(module.FILES, name, hashlib.sha256(raw).hexdigest())
    return arrays


@pytest.fixture
def hide_all_real_data(monkeypatch, tmp_path):
    """No real data anywhere: empty HOME, no TINYOPT_DATA, and no system folder for any data set."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYOPT_DATA", raising=False)
    monkeypatch.delenv("TINYOPT_MIRROR", raising=False)
    for module in (fashion_mnist, mnist):
        monkeypatch.setattr(module, "SOURCE", dataclasses.replace(module.SOURCE, system_dirs=()))


@IDX_MODULES
def test_idx_loader_good_files(module, tmp_path, monkeypatch, hide_all_real_data):
    arrays = write_idx_dataset(module, tmp_path / "d", monkeypatch)
    (x_train, y_train), (x_test, y_test) = module.load_data(path=tmp_path / "d")
    for got, name in zip((x_train, y_train, x_test, y_test), NAMES):
        np.testing.assert_array_equal(got, arrays[name])
        assert got.dtype == np.uint8
    images, labels = module.load_split("test", path=tmp_path / "d")
    np.testing.assert_array_equal(images, arrays[NAMES[2]])
    np.testing.assert_array_equal(labels, arrays[NAMES[3]])


@IDX_MODULES
def test_idx_loader_truncated_wrong_magic_wrong_size(module, tmp_path, monkeypatch, hide_all_real_data):
    arrays = fake_arrays()
    write_idx_dataset(module, tmp_path / "t", monkeypatch, arrays)
    f = tmp_path / "t" / NAMES[1]
    f.write_bytes(f.read_bytes()[:-9])  # the gzip trailer and some data gone
    with pytest.raises(DatasetError, match=rf"{NAMES[1]} is truncated or not a valid gzip file"):
        module.load_data(path=tmp_path / "t")

    bad = bytearray(idx_bytes(arrays[NAMES[3]]))
    bad[:4] = bytes([0x00, 0x01, 0x08, 0x01])
    write_idx_dataset(module, tmp_path / "m", monkeypatch, arrays, raw_overrides={NAMES[3]: bytes(bad)})
    with pytest.raises(DatasetError, match=rf"{NAMES[3]}: bad IDX magic number 0x00010801"):
        module.load_data(path=tmp_path / "m")

    short = idx_bytes(arrays[NAMES[0]])[:-1]
    write_idx_dataset(module, tmp_path / "s", monkeypatch, arrays, raw_overrides={NAMES[0]: short})
    with pytest.raises(DatasetError, match=rf"{NAMES[0]}: header says shape \(6, 28, 28\)"):
        module.load_data(path=tmp_path / "s")


def test_mnist_checksums_are_the_published_ones_and_checked(tmp_path, monkeypatch, hide_all_real_data):
    assert mnist.FILES["train-images-idx3-ubyte.gz"] == "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    write_idx_dataset(mnist, tmp_path, monkeypatch, register_hashes=False)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: SHA-256 of the decompressed content is .*"
                                           r"expected ba891046"):
        mnist.load_data(path=tmp_path)


def test_mnist_has_its_own_folder_and_names_a_fashion_file_found_in_its_place(tmp_path, monkeypatch,
                                                                              hide_all_real_data):
    """The two data sets share file names: MNIST is looked for in mnist/, and a Fashion-MNIST file is named."""
    home_cache = tmp_path / "home" / ".cache" / "tinyopt"
    write_idx_dataset(fashion_mnist, home_cache, monkeypatch)  # Fashion-MNIST flat in the cache, as before
    with pytest.raises(DatasetError, match=r"MNIST file train-images-idx3-ubyte\.gz not found") as info:
        mnist.load_data()
    assert str(home_cache / "mnist") in str(info.value)
    # the same files passed as MNIST's folder: recognised as Fashion-MNIST's, not just "corrupt"
    with pytest.raises(DatasetError, match="is the Fashion-MNIST file of that name, not the MNIST one"):
        mnist.load_data(path=home_cache)
    # and the two loaders find their own files side by side
    mnist_arrays = write_idx_dataset(mnist, home_cache / "mnist", monkeypatch, fake_arrays(seed=1))
    np.testing.assert_array_equal(mnist.load_data()[0][1], mnist_arrays[NAMES[1]])
    assert not np.array_equal(fashion_mnist.load_data()[0][1][:6], mnist_arrays[NAMES[1]])


# ----------------------------------------------------------------------------- issue 10: explicit path, unreadable files


@IDX_MODULES
def test_an_explicit_path_is_the_only_place_looked_in(module, tmp_path, monkeypatch, hide_all_real_data):
    """A complete copy in $TINYOPT_DATA must not be used when path= names a wrong or incomplete folder."""
    env = tmp_path / "env"
    write_idx_dataset(module, env / module.SOURCE.folder, monkeypatch)
    monkeypatch.setenv("TINYOPT_DATA", str(env))
    module.load_data()  # the environment copy is complete and found without path

    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    for name in NAMES[:2]:
        (incomplete / name).write_bytes((env / module.SOURCE.folder / name).read_bytes())
    with pytest.raises(DatasetError) as info:
        module.load_data(path=incomplete)
    message = str(info.value)
    assert f"{NAMES[2]} not found" in message and "only place looked in" in message
    assert str(incomplete) in message and str(env) not in message
    with pytest.raises(DatasetError, match="which does not exist"):
        module.load_data(path=tmp_path / "typo")
    (tmp_path / "mnist.npz").write_bytes(b"PK")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        module.load_data(path=tmp_path / "mnist.npz")
    with pytest.raises(TypeError, match="path must be a folder name"):
        module.load_data(path=3)


def test_the_torchvision_layout_under_an_explicit_path_is_found(tmp_path, monkeypatch, hide_all_real_data):
    arrays = write_idx_dataset(mnist, tmp_path / "MNIST" / "raw", monkeypatch)
    np.testing.assert_array_equal(mnist.load_data(path=tmp_path)[1][1], arrays[NAMES[3]])


_DROP_DAC_AND_LOAD = r"""
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
header, data = Header(0x20080522, 0), (Data * 2)()
if libc.capget(ctypes.byref(header), data) != 0:
    print("SKIP capget failed"); sys.exit(0)
data[0].effective &= ~((1 << 1) | (1 << 2))  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: root then obeys file modes
if libc.capset(ctypes.byref(header), data) != 0:
    print("SKIP capset failed"); sys.exit(0)
import importlib
module = importlib.import_module(sys.argv[1])
module.FILES.update(json.loads(sys.argv[3]))
try:
    module.load_data(path=sys.argv[2])
    print("LOADED")
except module.DatasetError as e:
    print("ERROR", e)
"""


def load_with_permissions_enforced(module, folder: Path) -> str:
    """Run module.load_data(path=folder) where file modes are enforced and return the error text.

    Not root: in this process. Root reads any file whatever its mode, so there the load runs in a
    subprocess that first drops the two capabilities that let root bypass file modes."""
    if os.geteuid() != 0:
        try:
            module.load_data(path=folder)
        except DatasetError as e:
            return f"ERROR {e}"
        return "LOADED"
    if sys.platform != "linux":
        pytest.skip("running as root on a system without Linux capabilities: file modes are not enforced")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-c", _DROP_DAC_AND_LOAD, module.__name__, str(folder),
                             json.dumps(module.FILES)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    if result.stdout.startswith("SKIP"):
        pytest.skip(f"running as root and cannot drop CAP_DAC_OVERRIDE ({result.stdout.strip()})")
    return result.stdout


def test_an_unreadable_file_is_reported_as_permission_denied(tmp_path, monkeypatch, hide_all_real_data):
    write_idx_dataset(fashion_mnist, tmp_path / "d", monkeypatch)
    locked = tmp_path / "d" / NAMES[1]
    locked.chmod(0)
    try:
        out = load_with_permissions_enforced(fashion_mnist, tmp_path / "d")
    finally:
        locked.chmod(0o644)
    assert out.startswith("ERROR"), out
    assert f"{locked}: permission denied" in out and "chmod a+r" in out
    assert "truncated" not in out and "not found" not in out


def test_other_read_errors_are_not_called_truncated(tmp_path):
    folder = tmp_path / "train-labels-idx1-ubyte.gz"
    folder.mkdir()  # a folder where the file should be: an OS error, reported as such
    with pytest.raises(DatasetError, match="cannot read it: Is a directory"):
        fashion_mnist.read_verified(folder, None)



def _mnist_present() -> bool:
    try:
        return all(mnist.find_file(name).is_file() for name in mnist.FILES)
    except DatasetError:
        return False


@pytest.mark.skipif(not _mnist_present(), reason="MNIST files are not installed (load_data(download=True) gets them)")
def test_real_mnist_loads_with_the_published_class_counts():
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28) and x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_train), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    np.testing.assert_array_equal(np.bincount(y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


@pytest.mark.parametrize("module", [fashion_mnist, mnist, cifar10], ids=["fashion_mnist", "mnist", "cifar10"])
def test_bad_flags_and_splits_are_refused_before_anything_happens(module, tmp_path):
    with pytest.raises(TypeError, match="download must be True or False, got 'yes'"):
        module.load_data(path=tmp_path / "x", download="yes")
    with pytest.raises(TypeError, match="progress must be True or False"):
        module.load_data(path=tmp_path / "x", download=True, progress=None)
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        module.load_split("val", path=tmp_path / "x")
    assert not (tmp_path / "x").exists()
