"""Where a data set's files are looked for, and how they are read and checked.

Each data set (Fashion-MNIST, MNIST, CIFAR-10) is described by a `Source`: its name, the subfolder
its files live in, a system folder where a distribution packages it, and the mirrors it can be
downloaded from. For a data set with subfolder `D` the files are looked for in

1. an explicit `path` (and `path/D`), and then *nowhere else*: a wrong or incomplete folder is an
   error naming that folder, never a silent fall-back to another copy;
2. otherwise `$TINYOPT_DATA/D`, the system folder where one exists (Debian's
   `/usr/share/datasets/fashion-mnist`), and `~/.cache/tinyopt/D`. Fashion-MNIST, the first data set
   tinyopt read, is also still found directly in `$TINYOPT_DATA` and `~/.cache/tinyopt`.

Downloads (`download=True`) go into the first place the user chose: `path/D`, else
`$TINYOPT_DATA/D`, else `~/.cache/tinyopt/D` (see `tinyopt.datasets.download`).

Reading distinguishes what went wrong: a file that cannot be opened (permission denied, a folder,
an I/O error) is reported as such, a gzip stream that ends early as truncated, and content whose
SHA-256 is not the published one as corrupt or not the official file.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatasetError(RuntimeError):
    """A data file is missing, unreadable, truncated or corrupt; the message names the file and the fix."""


@dataclass(frozen=True)
class Source:
    """Where one data set's files live and how to get them."""

    title: str                                   # "MNIST", used in messages
    folder: str                                  # subfolder name under every data location: "mnist"
    mirrors: tuple[str, ...]                     # base URLs; a file is fetched from <mirror><name>
    system_dirs: tuple[Path, ...] = ()           # folders a distribution package installs into
    flat_defaults: bool = False                  # also look in $TINYOPT_DATA/ and ~/.cache/tinyopt/ themselves
    torchvision_dir: str | None = None           # torchvision's layout under a root ("MNIST/raw"), also looked in
    install_hint: str = ""                       # extra first line of "how to get it" (a package to install)
    # (file name, why it cannot be used): files of another version of the data set that a user may have
    unusable_files: tuple[tuple[str, str], ...] = field(default=())


def cache_dir() -> Path:
    return Path.home() / ".cache" / "tinyopt"


def _env_dir() -> Path | None:
    value = os.environ.get("TINYOPT_DATA")
    return Path(value).expanduser() if value else None


def search_dirs(source: Source, path=None) -> list[Path]:
    """The folders looked in, in order. An explicit `path` is the only place looked in."""
    if path is not None:
        root = Path(path).expanduser()
        dirs = [root / source.folder, root]
        if source.torchvision_dir:
            dirs.append(root / source.torchvision_dir)
        return dirs
    dirs = []
    env = _env_dir()
    if env is not None:
        dirs += [env, env / source.folder] if source.flat_defaults else [env / source.folder]
    dirs += list(source.system_dirs)
    cache = cache_dir()
    dirs += [cache, cache / source.folder] if source.flat_defaults else [cache / source.folder]
    return dirs


def download_dir(source: Source, path=None) -> Path:
    """Where `download=True` writes: `path/D`, else `$TINYOPT_DATA/D`, else `~/.cache/tinyopt/D`."""
    if path is not None:
        return Path(path).expanduser() / source.folder
    env = _env_dir()
    return (env if env is not None else cache_dir()) / source.folder


def check_arguments(path, download, progress) -> None:
    """`path` must be a folder (or not exist yet, for a download); the flags must be real booleans."""
    for name, value in (("download", download), ("progress", progress)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if path is None:
        return
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder name (str or os.PathLike), got {type(path).__name__}")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise DatasetError(
            f"path={str(path)!r} is a file, not a folder: pass the folder that holds the data files "
            "(tinyopt reads the original files, not Keras' .npz/.pkl copies)"
        )


def locate(source: Source, name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        candidate = d / name
        if candidate.is_file():
            return candidate
    return None


def how_to_get(source: Source, names, path=None) -> str:
    """The exact steps to get `names`: a package where one exists, download=True, or by hand (URL and folder)."""
    target = download_dir(source, path)
    lines = ["How to get it:"]
    if source.install_hint:
        lines += [f"  {line}" for line in source.install_hint.splitlines()]
    lead = "or " if source.install_hint else ""
    lines.append(f"  {lead}call load_data(download=True) (or pass download=True to the dataset class): "
                 f"it downloads into {target}/")
    elsewhere = " (or into a folder named by $TINYOPT_DATA)" if path is None else ""
    lines.append(f"  or download by hand into {target}/{elsewhere}:")
    lines += [f"    {source.mirrors[0]}{name}" for name in names]
    return "\n".join(lines)


def missing_error(source: Source, missing: list[str], dirs: list[Path], path=None) -> DatasetError:
    first, rest = missing[0], missing[1:]
    head = f"{source.title} file {first} not found"
    if rest:
        head += f" ({len(rest)} more missing: {', '.join(rest)})"
    if path is not None:
        root = Path(path).expanduser()
        where = "the folder you passed as path"
        if not root.exists():
            where += ", which does not exist"
        head += f". Looked only in {where} (an explicit path is the only place looked in):"
    else:
        head += ". Looked in:"
        if _env_dir() is None:
            dirs = dirs + [Path("$TINYOPT_DATA (not set)")]
    looked = "\n  ".join(str(d) for d in dirs)
    notes = _foreign_files_note(source, dirs)
    return DatasetError(f"{head}\n  {looked}\n{notes}{how_to_get(source, missing, path)}")


def _foreign_files_note(source: Source, dirs: list[Path]) -> str:
    """Say so when a folder holds a file tinyopt cannot use in place of the one it needs."""
    notes = []
    for d in dirs:
        for other, why in source.unusable_files:
            if (d / other).exists():
                notes.append(f"note: {d / other} {why}\n")
    return "".join(notes)


# ----------------------------------------------------------------------------- reading


def cannot_read(file: Path, error: OSError) -> DatasetError:
    if isinstance(error, PermissionError):
        return DatasetError(
            f"{file}: permission denied, cannot read it (the file exists but this user may not read it; "
            f"fix its permissions, e.g. chmod a+r {file}, or copy it into a folder you own)"
        )
    return DatasetError(f"{file}: cannot read it: {error.strerror or error}")


def open_binary(file: Path):
    try:
        return open(file, "rb")
    except OSError as e:
        raise cannot_read(file, e) from None


def read_gzip(file: Path, hint: str = "", label=None) -> bytes:
    """The decompressed content of a .gz file; each kind of failure has its own message.

    `label` names the file in messages when `file` is a temporary name (a download in progress)."""
    label = file if label is None else label
    with open_binary(file) as f:
        try:
            return gzip.GzipFile(fileobj=f, mode="rb").read()
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise DatasetError(f"{label} is truncated or not a valid gzip file ({e}). {hint}".rstrip()) from None
        except OSError as e:  # an I/O error while reading, not a format problem
            raise cannot_read(label, e) from None


def sha256_of_file(file: Path) -> str:
    digest = hashlib.sha256()
    with open_binary(file) as f:
        try:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        except OSError as e:
            raise cannot_read(file, e) from None
    return digest.hexdigest()


def check_sha256(file: Path, digest: str, expected: str | None, what: str, hint: str = "") -> None:
    """Raise unless `digest` (of `what`: "the file" or "the decompressed content") is `expected`."""
    if expected is not None and digest != expected:
        raise DatasetError(
            f"{file}: SHA-256 of {what} is {digest}, expected {expected}: the file is corrupt or not the "
            f"official one. Delete it and get it again.\n{hint}".rstrip()
        )
