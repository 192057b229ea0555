"""download=True against a local HTTP server on 127.0.0.1 (never the internet).

The server serves generated files in the real formats (gzip'd IDX for the MNISTs, the binary
tar.gz for CIFAR-10), and can misbehave on purpose: 404, a body cut off mid-way (the connection
closes before Content-Length bytes), a truncated or wrong file. After every failure the target
folder must hold nothing new: no file, no temporary .part file, no folder the download created.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from test_datasets import NAMES, fake_arrays, idx_bytes
from test_datasets_cifar import BATCHES, fake_cifar
from tinyopt.datasets import CIFAR10, MNIST, DatasetError, cifar10, download, fashion_mnist, mnist


class Server:
    """routes: URL path -> bytes; modes: URL path -> "cut" (send half, then close) or "404"."""

    def __init__(self):
        self.routes, self.modes, self.requests = {}, {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body, mode = server.routes.get(self.path), server.modes.get(self.path)
                if body is None or mode == "404":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "cut":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("TINYOPT_DATA", "TINYOPT_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    import dataclasses
    for module in (fashion_mnist, mnist, cifar10):
        monkeypatch.setattr(module, "SOURCE", dataclasses.replace(module.SOURCE, system_dirs=()))


def serve_idx(server, monkeypatch, module, prefix="/m", seed=0):
    """Serve fake gz files under prefix; the module's expected digests become theirs."""
    arrays = fake_arrays(seed=seed)
    for name, array in arrays.items():
        raw = idx_bytes(array)
        server.routes[f"{prefix}/{name}"] = gzip.compress(raw)
        monkeypatch.setitem(module.FILES, name, hashlib.sha256(raw).hexdigest())
    return arrays


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------- good downloads


def test_good_download_writes_verified_files_and_loads_them(server, monkeypatch, tmp_path, clean_env, capsys):
    arrays = serve_idx(server, monkeypatch, mnist)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=tmp_path / "data", download=True,
                                                            mirrors=[server.url + "/m"])
    np.testing.assert_array_equal(x_train, arrays[NAMES[0]])
    np.testing.assert_array_equal(y_test, arrays[NAMES[3]])
    assert everything_under(tmp_path / "data") == ["mnist"] + [f"mnist/{n}" for n in sorted(NAMES)]
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err  # the tqdm progress bar
    # present files are not fetched again
    before = len(server.requests)
    mnist.load_data(path=tmp_path / "data", download=True, mirrors=[server.url + "/m"])
    assert len(server.requests) == before


def test_default_target_is_the_cache_and_TINYOPT_DATA_wins(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, fashion_mnist, prefix="/f")
    fashion_mnist.load_data(download=True, mirrors=server.url + "/f", progress=False)
    assert (tmp_path / "home" / ".cache" / "tinyopt" / "fashion-mnist" / NAMES[0]).is_file()
    monkeypatch.setenv("TINYOPT_DATA", str(tmp_path / "shared"))
    serve_idx(server, monkeypatch, mnist, prefix="/m2", seed=3)
    mnist.load_data(download=True, mirrors=server.url + "/m2", progress=False)
    assert sorted(os.listdir(tmp_path / "shared" / "mnist")) == sorted(NAMES)


def test_TINYOPT_MIRROR_serves_every_data_set_from_its_folder(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, mnist, prefix="/mirror/mnist")
    archive, arrays = fake_cifar()
    server.routes["/mirror/cifar-10/cifar-10-binary.tar.gz"] = archive
    monkeypatch.setitem(cifar10.FILES, cifar10.ARCHIVE, hashlib.sha256(archive).hexdigest())
    monkeypatch.setenv("TINYOPT_MIRROR", server.url + "/mirror/")
    ds = MNIST(root=tmp_path / "root", train=False, download=True)
    assert len(ds) == 4 and (tmp_path / "root" / "mnist" / NAMES[2]).is_file()
    cifar = CIFAR10(root=tmp_path / "root", download=True)
    assert len(cifar) == 15 and (tmp_path / "root" / "cifar-10" / cifar10.ARCHIVE).is_file()
    np.testing.assert_array_equal(cifar.data[:3], arrays[BATCHES[0]][0])


def test_the_next_mirror_is_tried(server, monkeypatch, tmp_path, clean_env):
    arrays = serve_idx(server, monkeypatch, mnist, prefix="/good")
    (_, y), _ = mnist.load_data(path=tmp_path, download=True, progress=False,
                                mirrors=[server.url + "/missing", server.url + "/good"])
    np.testing.assert_array_equal(y, arrays[NAMES[1]])
    assert f"/missing/{NAMES[0]}" in server.requests and f"/good/{NAMES[0]}" in server.requests


def test_cifar_download(server, monkeypatch, tmp_path, clean_env):
    archive, arrays = fake_cifar()
    server.routes["/c/cifar-10-binary.tar.gz"] = archive
    monkeypatch.setitem(cifar10.FILES, cifar10.ARCHIVE, hashlib.sha256(archive).hexdigest())
    (x, y), (xt, yt) = cifar10.load_data(path=tmp_path, download=True, mirrors=server.url + "/c", progress=False)
    np.testing.assert_array_equal(xt, arrays["test_batch.bin"][0])
    assert y.shape == (15, 1) and everything_under(tmp_path) == ["cifar-10", "cifar-10/cifar-10-binary.tar.gz"]


# ----------------------------------------------------------------------------- failures leave nothing behind


def _fails(call, *expected):
    with pytest.raises(DatasetError) as info:
        call()
    message = str(info.value)
    for text in expected:
        assert text in message, message
    return message


def test_interrupted_download(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, mnist)
    server.modes[f"/m/{NAMES[0]}"] = "cut"
    size = len(server.routes[f"/m/{NAMES[0]}"])
    message = _fails(lambda: mnist.load_data(path=tmp_path / "data", download=True, mirrors=server.url + "/m",
                                             progress=False),
                     f"Could not download the MNIST file {NAMES[0]}; nothing was written",
                     f"{server.url}/m/{NAMES[0]}: download interrupted after {size // 2:,} of {size:,} bytes",
                     f"Get it by hand: download it from one of these URLs into {tmp_path / 'data' / 'mnist' / NAMES[0]}")
    assert "SHA-256 of the decompressed content must be" in message
    assert everything_under(tmp_path / "data") == []  # not even the folders the download created
    assert not (tmp_path / "data").exists()


def test_truncated_file(server, monkeypatch, tmp_path, clean_env):
    """The server sends all it announced, but the file itself is cut short."""
    serve_idx(server, monkeypatch, mnist)
    good = server.routes[f"/m/{NAMES[2]}"]
    server.routes[f"/m/{NAMES[2]}"] = good[: len(good) - 30]
    _fails(lambda: mnist.load_data(path=tmp_path, download=True, mirrors=server.url + "/m", progress=False),
           f"{server.url}/m/{NAMES[2]}: downloaded {len(good) - 30:,} bytes, but {server.url}/m/{NAMES[2]} "
           "is truncated or not a valid gzip file")
    # the files downloaded and verified before the failure are complete and kept; the failed one left nothing
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(NAMES[:2])


def test_wrong_checksum(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, fashion_mnist)
    server.routes[f"/m/{NAMES[1]}"] = gzip.compress(idx_bytes(np.zeros(6, np.uint8)))
    expected = fashion_mnist.FILES[NAMES[1]]
    _fails(lambda: fashion_mnist.load_data(path=tmp_path, download=True, mirrors=server.url + "/m", progress=False),
           "the SHA-256 of the decompressed content is", f"expected {expected} (corrupt, or not the official file)")
    assert sorted(os.listdir(tmp_path / "fashion-mnist")) == [NAMES[0]]


def test_cifar_wrong_checksum_and_interrupted(server, monkeypatch, tmp_path, clean_env):
    archive, _ = fake_cifar()
    server.routes["/c/cifar-10-binary.tar.gz"] = archive
    _fails(lambda: cifar10.load_data(path=tmp_path, download=True, mirrors=server.url + "/c", progress=False),
           f"the SHA-256 of the file is {hashlib.sha256(archive).hexdigest()}, expected {cifar10.FILES[cifar10.ARCHIVE]}")
    monkeypatch.setitem(cifar10.FILES, cifar10.ARCHIVE, hashlib.sha256(archive).hexdigest())
    server.modes["/c/cifar-10-binary.tar.gz"] = "cut"
    _fails(lambda: cifar10.load_data(path=tmp_path, download=True, mirrors=server.url + "/c", progress=False),
           "download interrupted after")
    assert everything_under(tmp_path) == []


def test_every_mirror_failing_lists_each(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, mnist)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused
    message = _fails(lambda: mnist.load_data(path=tmp_path, download=True, progress=False,
                                             mirrors=[server.url + "/nothing", f"http://127.0.0.1:{port}"]),
                     f"{server.url}/nothing/{NAMES[0]}: HTTP 404", f"http://127.0.0.1:{port}/{NAMES[0]}: cannot connect")
    assert "mirrors=[...] or $TINYOPT_MIRROR" in message
    assert everything_under(tmp_path) == []


def test_ctrl_c_during_a_download_leaves_nothing(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, mnist)

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(download.os, "fsync", interrupt)  # the bytes are written, the file not yet renamed
    with pytest.raises(KeyboardInterrupt):
        mnist.load_data(path=tmp_path / "d", download=True, mirrors=server.url + "/m", progress=False)
    assert not (tmp_path / "d").exists()


def test_stale_part_files_of_a_killed_download_are_removed(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, mnist)
    target = tmp_path / "mnist"
    target.mkdir()
    stale, fresh = target / f".{NAMES[0]}.abc123.part", target / f".{NAMES[0]}.def456.part"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"another download in progress")
    old = time.time() - 2 * download.STALE_PART_SECONDS
    os.utime(stale, (old, old))
    mnist.load_data(path=tmp_path, download=True, mirrors=server.url + "/m", progress=False)
    assert not stale.exists() and fresh.exists()


def test_a_found_but_wrong_file_is_not_replaced_by_download(server, monkeypatch, tmp_path, clean_env):
    """download=True fetches missing files only: a corrupt local file is an error, never silently overwritten."""
    serve_idx(server, monkeypatch, mnist)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / NAMES[0]).write_bytes(gzip.compress(b"something else"))
    _fails(lambda: mnist.load_data(path=tmp_path, download=True, mirrors=server.url + "/m", progress=False),
           f"{tmp_path / 'mnist' / NAMES[0]}: SHA-256 of the decompressed content", "Delete it and get it again")
    assert (tmp_path / "mnist" / NAMES[0]).read_bytes() == gzip.compress(b"something else")


def test_bad_mirrors_argument(tmp_path, clean_env):
    with pytest.raises(ValueError, match="mirrors must be a base URL or a non-empty list"):
        mnist.load_data(path=tmp_path, download=True, mirrors=[])


def test_without_download_nothing_is_fetched(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, mnist)
    monkeypatch.setenv("TINYOPT_MIRROR", server.url)
    _fails(lambda: mnist.load_data(path=tmp_path), "not found", "download=True")
    assert server.requests == []


def test_a_download_folder_that_cannot_be_created_is_named(server, monkeypatch, tmp_path, clean_env):
    serve_idx(server, monkeypatch, mnist)
    (tmp_path / "a_file").write_text("not a folder")
    _fails(lambda: mnist.load_data(path=tmp_path / "a_file" / "data", download=True, mirrors=server.url + "/m"),
           f"cannot create the download folder {tmp_path / 'a_file' / 'data' / 'mnist'}", "pass another folder as path=")
    assert server.requests == []
