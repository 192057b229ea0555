"""Downloading a data set's files (only with `download=True`; nothing is fetched otherwise).

Each missing file is fetched from the first mirror that serves it intact:

1. stream it into a temporary file `.NAME.XXXX.part` in the target folder, with a tqdm progress bar;
2. check that the number of bytes received is the `Content-Length` the server announced (a server
   that closes the connection mid-body is an interrupted download, not a short file);
3. check the SHA-256 the loader checks (for the IDX files: of the decompressed content; for the
   CIFAR-10 archive: of the archive), fsync, and only then rename it to NAME (atomic on POSIX).

Any failure deletes the temporary file (also on Ctrl-C) and the folders the download created, and
the error lists every URL tried with what went wrong and how to get the file by hand. A killed
process can leave a `.part` file behind: the next download into that folder deletes those older
than an hour.

Mirrors: the built-in list is torchvision's (`Source.mirrors`). `mirrors=[...]` (base URLs, a file
is fetched from `<base>/<name>`) replaces it for one call; `$TINYOPT_MIRROR` (one or more base URLs
separated by spaces) replaces it for every data set, with the files under `<base>/<folder>/<name>`
(`mnist/`, `fashion-mnist/`, `cifar-10/`), the layout of a local mirror of several data sets.
"""
from __future__ import annotations

import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from tinyopt.datasets.files import DatasetError, Source

MIRROR_ENV = "TINYOPT_MIRROR"
STALE_PART_SECONDS = 3600
_CHUNK = 1 << 16


class _MirrorFailed(Exception):
    """This URL did not give the official file; the next mirror may."""


def mirror_urls(source: Source, name: str, mirrors=None) -> list[str]:
    if mirrors is not None:
        bases = [mirrors] if isinstance(mirrors, str) else list(mirrors)
        if not bases or not all(isinstance(b, str) and b for b in bases):
            raise ValueError(f"mirrors must be a base URL or a non-empty list of them, got {mirrors!r}")
        return [f"{b.rstrip('/')}/{name}" for b in bases]
    env = os.environ.get(MIRROR_ENV, "").split()
    if env:
        return [f"{b.rstrip('/')}/{source.folder}/{name}" for b in env]
    return [f"{b}{name}" for b in source.mirrors]


def fetch(source: Source, name: str, target_dir: Path, digest_of: Callable[[Path, str], str], expected: str,
          what: str, mirrors=None, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download `name` into `target_dir`; `digest_of(file, label)` gives the SHA-256 that must equal `expected`.

    `what` says what the digest covers ("the decompressed content", "the file"), for the messages.
    Returns the final path. Raises `DatasetError` (nothing left behind) when no mirror gives the file.
    """
    urls = mirror_urls(source, name, mirrors)
    created = _make_dirs(target_dir)
    failures = []
    try:
        _remove_stale_parts(target_dir, name)
        for url in urls:
            try:
                return _fetch_one(url, name, target_dir, digest_of, expected, what, progress, timeout)
            except _MirrorFailed as e:
                failures.append(f"{url}: {e}")
    finally:
        if not (target_dir / name).is_file():
            _remove_empty(created)
    tried = "\n  ".join(failures)
    raise DatasetError(
        f"Could not download the {source.title} file {name}; nothing was written (no file or temporary file is "
        f"left in {target_dir}). Tried:\n  {tried}\n"
        f"Get it by hand: download it from one of these URLs into {target_dir / name} (the SHA-256 of {what} must be "
        f"{expected}), or try again later, or name another mirror with mirrors=[...] or ${MIRROR_ENV}."
    )


def _fetch_one(url, name, target_dir: Path, digest_of, expected, what, progress, timeout) -> Path:
    tmp = None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "tinyopt"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise _MirrorFailed(f"HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            raise _MirrorFailed(f"cannot connect ({e.reason})") from None
        except (TimeoutError, socket.timeout):
            raise _MirrorFailed(f"no answer within {timeout:g} s") from None
        except (OSError, http.client.HTTPException) as e:
            raise _MirrorFailed(f"cannot connect ({e})") from None
        with response:
            length = response.headers.get("Content-Length")
            length = int(length) if length is not None and length.isdigit() else None
            try:
                fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=f".{name}.", suffix=".part")
            except OSError as e:  # the folder, not the mirror: no point trying another one
                raise DatasetError(f"cannot write the download into {target_dir}: {e.strerror or e} "
                                   "(pass another folder as path=, or set $TINYOPT_DATA)") from None
            with os.fdopen(fd, "wb") as out, tqdm(total=length, desc=name, unit="B", unit_scale=True,
                                                   unit_divisor=1024, disable=not progress, leave=False) as bar:
                received = _copy(response, out, bar, length, timeout)
                out.flush()
                os.fsync(out.fileno())
        try:
            digest = digest_of(Path(tmp), url)
        except DatasetError as e:
            raise _MirrorFailed(f"downloaded {received:,} bytes, but {e}") from None
        if digest != expected:
            raise _MirrorFailed(
                f"downloaded {received:,} bytes, but the SHA-256 of {what} is {digest}, expected {expected} "
                "(corrupt, or not the official file)"
            )
        final = target_dir / name
        os.replace(tmp, final)
        tmp = None
        _fsync_dir(target_dir)
        return final
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _copy(response, out, bar, length, timeout) -> int:
    received = 0
    while True:
        try:
            chunk = response.read(_CHUNK)
        except http.client.IncompleteRead as e:
            received += len(e.partial)
            raise _MirrorFailed(_interrupted(received, length, "the server closed the connection")) from None
        except (TimeoutError, socket.timeout):
            raise _MirrorFailed(_interrupted(received, length, f"no data for {timeout:g} s")) from None
        except (OSError, http.client.HTTPException) as e:
            raise _MirrorFailed(_interrupted(received, length, str(e) or type(e).__name__)) from None
        if not chunk:
            break
        try:
            out.write(chunk)
        except OSError as e:  # the disk, not the mirror: no point trying another one
            raise DatasetError(f"cannot write the download into {Path(out.name).parent}: {e.strerror or e}") from None
        received += len(chunk)
        bar.update(len(chunk))
    if length is not None and received != length:
        raise _MirrorFailed(_interrupted(received, length, "the server closed the connection"))
    return received


def _interrupted(received, length, why) -> str:
    of = f" of {length:,}" if length is not None else ""
    return f"download interrupted after {received:,}{of} bytes ({why})"


def _make_dirs(target: Path) -> list[Path]:
    """Create `target` and its missing parents; return the ones created (deepest last)."""
    missing = []
    p = target
    while not p.exists():
        missing.append(p)
        p = p.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(
            f"cannot create the download folder {target}: {e.strerror or e} "
            "(pass another folder as path=, or set $TINYOPT_DATA)"
        ) from None
    if not os.access(target, os.W_OK | os.X_OK):
        raise DatasetError(f"cannot write into the download folder {target}: permission denied "
                           "(pass another folder as path=, or set $TINYOPT_DATA)")
    return list(reversed(missing))


def _remove_empty(created: list[Path]) -> None:
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            break


def _remove_stale_parts(target_dir: Path, name: str) -> None:
    now = time.time()
    for part in target_dir.glob(f".{name}.*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
        except OSError:
            pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
