"""`save(obj, path)` / `load(path)`: checkpoints as flat `.npz` files with JSON metadata.

What is stored
--------------
`obj` is any nesting of dicts, lists and tuples whose leaves are NumPy arrays, NumPy scalars,
Python scalars (int, float, bool, str, None), `np.random.Generator`s, or objects with a
`state_dict()` method (a `Module`, an `Optimizer`, a scheduler) inside such a nesting, which are
stored as their state dict. A typical training checkpoint:

    tinyopt.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "epoch": epoch, "rng": rng}, "run/ckpt.npz")

A whole Module or Optimizer as `obj` itself (torch's `torch.save(model, PATH)`, which pickles the
object) is refused: tinyopt never pickles, so save its `state_dict()` and load that into a new one.

Layout of the file (a plain `np.savez` archive, readable with `np.load(path)`):

- one entry per array, under a flat key that spells its place in the nesting
  (`model/fc1.weight`, `optimizer/state/0/momentum_buffer`); dtypes NumPy does not know
  (`bfloat16`, from ml_dtypes) are stored as their raw bits and named in the metadata;
- `__meta__`: a JSON string with the nesting itself, where each array is replaced by
  `{"__array__": key}` (dicts are stored as lists of `[key, value]` pairs, so integer keys such as
  the optimizer's parameter indices come back as integers; tuples and Generators are tagged);
- `__checksum__`: SHA-256 over `__meta__` and every array's key, dtype, shape and bytes;
- `__format__`: the format name and version;
- the zip archive's comment, `tinyopt-sha256:` and the SHA-256 of every byte of the file before
  that digest: any changed byte anywhere (content, zip headers, the comment) is detected before the
  file is parsed.

Safety
------
- Writing is atomic: the archive is written to a temporary file in the target folder, flushed,
  `fsync`ed and moved over `path` with `os.replace`, so a crash leaves either the old checkpoint
  or the new one, never half of one. Temporary files left by a save that was killed (their name
  carries the process id, which is no longer running) are removed by the next save to that folder.
- Nothing non-finite is written: an array holding NaN or ±∞ raises `NonFiniteValues` naming the
  file and the first bad array, and the file on disk stays as it was (the last good checkpoint).
  `allow_nonfinite=True` is the explicit exception (e.g. a −∞ attention mask stored as a buffer).
- Reading never unpickles (`allow_pickle=False`): a checkpoint cannot run code. Object arrays are
  refused when saving.
- Every malformed input raises `CheckpointError` naming the file and what is wrong: a missing file,
  a folder, a plain `.npy`, a text file, a truncated or damaged file, one that is not a tinyopt
  checkpoint, metadata that does not describe a checkpoint.
- `restore(path, model=..., optimizer=..., scheduler=...)` checks that the checkpoint fits every
  object given before it changes any, and if applying one still fails, puts back the ones already
  changed: when it raises, nothing has changed.

Floats go through JSON as `repr` (exact for Python floats), arrays as raw bytes, so a training
run resumed from a checkpoint continues bit for bit (tests/test_checkpoint.py checks it).
Files of the previous format, `tinyopt-checkpoint-v1` (no whole-file digest), are still read.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

from tinyopt.device import device as _device
from tinyopt.dtypes import is_floating_point

FORMAT = "tinyopt-checkpoint-v2"
LEGACY_FORMATS = ("tinyopt-checkpoint-v1",)
_META, _CHECKSUM, _FORMAT = "__meta__", "__checksum__", "__format__"
_RESERVED = (_META, _CHECKSUM, _FORMAT)
_TAG = b"tinyopt-sha256:"
_TRAILER = len(_TAG) + 64          # the zip comment: tag + hex digest
_MAX_DEPTH = 200                   # nesting deeper than this is not a checkpoint tinyopt wrote
_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
# dtypes NumPy's .npy format cannot name; stored as raw bits (uint of the same width) + their name
_EXTENSION_DTYPES = {name: np.dtype(getattr(ml_dtypes, name)) for name in
                     ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
                     if hasattr(ml_dtypes, name)}
_STALE_AGE = 60.0                  # seconds: a temp file without a process id is stale after this


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file and the problem."""


class NonFiniteValues(CheckpointError):
    """`save` refused an array holding NaN or ±∞ (`key` names it); the file on disk is unchanged."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


# ----------------------------------------------------------------------------- encoding


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind in "fc" or is_floating_point(dtype) or dtype in _EXTENSION_DTYPES.values()


def _has_state_dict(obj) -> bool:
    return hasattr(obj, "state_dict") and callable(obj.state_dict) and not isinstance(obj, dict)


class _Encoder:
    """Turn a nested object into (JSON-able skeleton, {flat key: ndarray})."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.non_finite = None   # (key, shape, flat index, value, count) of the first array holding NaN/inf

    def _key(self, path: str) -> str:
        key = path or "value"
        if key in self.arrays or key in _RESERVED:
            i = 1
            while f"{key}~{i}" in self.arrays:
                i += 1
            key = f"{key}~{i}"
        return key

    def encode(self, obj, path: str = ""):
        from tinyopt.tensor import Tensor

        if isinstance(obj, Tensor):
            obj = obj.data
        if _has_state_dict(obj):
            obj = obj.state_dict()
        if isinstance(obj, np.random.Generator):
            return {"__generator__": self.encode(obj.bit_generator.state, path)}
        if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
            arr = np.asarray(obj)
            if arr.dtype.hasobject:
                raise CheckpointError(f"cannot save {path or 'value'}: object arrays would need pickle")
            key = self._key(path)
            node = {"__array__": key}
            if isinstance(obj, np.generic):
                node["scalar"] = True   # a Python-like number (a metric, a "best" value): may be inf
            elif self.non_finite is None and _is_float(arr.dtype):
                finite = np.isfinite(arr).reshape(-1)
                if not finite.all():
                    bad = np.flatnonzero(~finite)
                    self.non_finite = (key, arr.shape, int(bad[0]), arr.reshape(-1)[bad[0]], int(bad.size))
            extension = next((name for name, dt in _EXTENSION_DTYPES.items() if arr.dtype == dt), None)
            if extension is not None:
                node["dtype"] = extension
                self.arrays[key] = np.array(arr, order="C", copy=True).view(f"u{arr.dtype.itemsize}")
            else:
                self.arrays[key] = np.array(arr, order="C", copy=True)
            return node
        if isinstance(obj, dict):
            pairs = []
            for k, v in obj.items():
                if isinstance(k, np.integer):
                    k = int(k)
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise CheckpointError(f"cannot save {path or 'value'}: dict key {k!r} is a {type(k).__name__}")
                pairs.append([k, self.encode(v, f"{path}/{k}" if path else str(k))])
            return {"__dict__": pairs}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise CheckpointError(
            f"cannot save {path or 'value'} of type {type(obj).__name__}: checkpoints hold arrays, scalars, "
            "strings, dicts/lists/tuples of them, Generators and objects with state_dict()"
        )


class _Decoder:
    """The inverse of _Encoder, checking every node: metadata that does not describe a checkpoint
    raises CheckpointError (never a TypeError, KeyError or RecursionError from deep inside)."""

    def __init__(self, arrays: dict, where: str):
        self.arrays, self.where, self.used = arrays, where, set()

    def fail(self, what: str):
        raise CheckpointError(f"checkpoint {self.where}: {what}; the file was not written by tinyopt.save "
                              "or was edited afterwards, do not trust it")

    def decode(self, node, depth: int = 0):
        if depth > _MAX_DEPTH:
            self.fail(f"its metadata is nested more than {_MAX_DEPTH} levels deep")
        if isinstance(node, list):
            return [self.decode(v, depth + 1) for v in node]
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict):  # pragma: no cover - json.loads gives nothing else
            self.fail(f"its metadata holds a {type(node).__name__}")
        keys = set(node)
        if "__array__" in node and keys <= {"__array__", "scalar", "dtype"}:
            return self._array(node)
        if keys == {"__dict__"}:
            pairs = node["__dict__"]
            if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                self.fail("a dict in its metadata is not a list of [key, value] pairs")
            out = {}
            for k, v in pairs:
                if not (k is None or isinstance(k, (str, int, float, bool))):
                    self.fail(f"a dict key in its metadata is a {type(k).__name__}")
                out[k] = self.decode(v, depth + 1)
            return out
        if keys == {"__tuple__"}:
            if not isinstance(node["__tuple__"], list):
                self.fail("a tuple in its metadata is not a list")
            return tuple(self.decode(v, depth + 1) for v in node["__tuple__"])
        if keys == {"__generator__"}:
            return self._generator(self.decode(node["__generator__"], depth + 1))
        self.fail(f"its metadata has a node with keys {sorted(map(str, keys))}")

    def _array(self, node):
        key = node["__array__"]
        if not isinstance(key, str):
            self.fail(f"its metadata names an array by a {type(key).__name__}, not a string")
        if key not in self.arrays:
            self.fail(f"its metadata names array {key!r}, which the file does not contain")
        arr = self.arrays[key]
        self.used.add(key)
        if "dtype" in node:
            dtype = _EXTENSION_DTYPES.get(node["dtype"]) if isinstance(node["dtype"], str) else None
            if dtype is None or arr.dtype != np.dtype(f"u{dtype.itemsize}"):
                self.fail(f"array {key!r} claims dtype {node['dtype']!r} but is stored as {arr.dtype}")
            arr = arr.view(dtype)
        scalar = node.get("scalar", False)
        if not isinstance(scalar, bool):
            self.fail(f"array {key!r} has a 'scalar' flag that is not true/false")
        if scalar:
            if arr.ndim != 0:
                self.fail(f"array {key!r} is marked as a scalar but has shape {arr.shape}")
            return arr[()]
        return arr

    def _generator(self, state):
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if name not in _GENERATORS:
            self.fail(f"its random generator names an unknown bit generator {name!r}")
        bit_generator = getattr(np.random, name)()
        try:
            bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            self.fail(f"its {name} random generator state is not valid ({type(e).__name__}: {e})")
        return np.random.Generator(bit_generator)


def _checksum(meta: str, arrays: dict) -> str:
    h = hashlib.sha256()
    h.update(meta.encode("utf-8"))
    for key in sorted(arrays):
        arr = arrays[key]
        h.update(f"\0{key}\0{arr.dtype.str}\0{arr.shape}\0".encode("utf-8"))
        h.update(arr.tobytes(order="C"))
    return h.hexdigest()


# ----------------------------------------------------------------------------- writing


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's process, alive
        return True
    return True


def _remove_stale_temp_files(folder: Path, name: str) -> None:
    """Delete `.NAME.PID.XXXX.tmp` files of saves to `folder/NAME` whose process is gone (a save that
    was killed); files without a process id (older tinyopt) once they are a minute old."""
    prefix, now = f".{name}.", time.time()
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return
    for p in candidates:
        parts = p.name[len(prefix):-len(".tmp")].split(".")
        if len(parts) > 2:
            continue  # a temp file of another target whose name extends this one ("NAME.5")
        try:
            if len(parts) == 2 and parts[0].isdigit() and os.name == "posix":
                stale = not _process_alive(int(parts[0]))
            else:
                stale = now - p.stat().st_mtime > _STALE_AGE
            if stale:
                p.unlink()
        except OSError:  # gone already, or not ours to delete: leave it
            pass


def _folder_error(path: Path, folder: Path, error: OSError) -> CheckpointError:
    reason = error.strerror or str(error)
    if isinstance(error, PermissionError):
        reason = "permission denied"
    return CheckpointError(f"cannot write {path}: the folder {folder} is not writable ({reason}); "
                           "choose another folder or make this one writable")


@contextlib.contextmanager
def _atomic_file(path: Path):
    """Yield a temporary file in path's folder; on success fsync it and move it over `path`
    (then fsync the folder); on any failure remove it. OSErrors name `path` and its folder."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise CheckpointError(f"cannot write {path}: it is a folder; give a file name, e.g. {path / 'checkpoint.npz'}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CheckpointError(f"cannot write {path}: {folder} is a file, not a folder") from None
    except OSError as e:
        raise _folder_error(path, folder, e) from None
    _remove_stale_temp_files(folder, path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise _folder_error(path, folder, e) from None
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(tmp)
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}; the previous file, if any, is unchanged") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some filesystems do not fsync folders
        pass


def _unlink_quietly(name) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


def atomic_write(path, data: bytes | str) -> Path:
    """Write `data` (text is UTF-8) to `path` atomically, like `save` (temp file + fsync + rename):
    readers see the old content or the new, never a part. Used for a run folder's config and
    metrics. Raises `CheckpointError` naming `path` (and its folder when that is not writable)."""
    path = Path(path)
    with _atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _write_archive(f, entries: dict) -> None:
    """np.savez's layout (stored, zip64 members), then the whole-file digest as the zip comment."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in entries.items():
            with zf.open(key + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
        zf.comment = _TAG + b"0" * 64
    f.flush()
    end = f.seek(0, io.SEEK_END)
    f.seek(0)
    h, remaining = hashlib.sha256(), end - 64
    while remaining > 0:
        chunk = f.read(min(1 << 22, remaining))
        h.update(chunk)
        remaining -= len(chunk)
    f.seek(end - 64)
    f.write(h.hexdigest().encode("ascii"))


def _entries(skeleton, arrays: dict) -> dict:
    meta = json.dumps(skeleton)
    entries = dict(arrays)
    entries[_META] = np.array(meta)
    entries[_CHECKSUM] = np.array(_checksum(meta, arrays))
    entries[_FORMAT] = np.array(FORMAT)
    return entries


def _check_path(path, what: str) -> Path:
    if isinstance(path, (str, os.PathLike)):
        return Path(path)
    raise TypeError(f"{what} takes a file name (str or os.PathLike), got {type(path).__name__}; tinyopt writes "
                    "checkpoints atomically to a path, not into an open file")


# ----------------------------------------------------------------------------- public API


def save(obj, path, *, allow_nonfinite: bool = False) -> Path:
    """Write `obj` to `path` atomically (temp file + fsync + os.replace). Returns the path.

    The file gets exactly the name given (no `.npz` is appended). Everything is checked before
    anything is written; an array holding NaN or ±∞ raises `NonFiniteValues` (unless
    `allow_nonfinite=True`) and `path` keeps its old content."""
    path = _check_path(path, "save")
    if _has_state_dict(obj):
        kind = type(obj).__name__
        raise TypeError(
            f"save({kind} object, path) is refused: tinyopt never pickles whole objects. Save its state dict, "
            f"to.save(obj.state_dict(), {str(path)!r}), and load it into a new {kind} with "
            f"obj.load_state_dict(to.load({str(path)!r}))"
        )
    if not isinstance(allow_nonfinite, bool):
        raise TypeError(f"allow_nonfinite must be True or False, got {allow_nonfinite!r}")
    encoder = _Encoder()
    skeleton = encoder.encode(obj)
    if not allow_nonfinite and encoder.non_finite is not None:
        key, shape, index, value, count = encoder.non_finite
        raise NonFiniteValues(
            f"refusing to save {path}: {key} {shape} holds {count} non-finite value(s) (the first, at flat index "
            f"{index}, is {value}); a checkpoint never stores NaN/inf weights, so {path} was left as it was. "
            "(If the values are meant to be there, e.g. a -inf mask, pass allow_nonfinite=True.)", key)
    entries = _entries(skeleton, encoder.arrays)
    with _atomic_file(path) as f:
        _write_archive(f, entries)
    return path


def _check_load_arguments(map_location, pickle_module, weights_only, mmap, extra) -> None:
    if extra:
        raise TypeError(f"load() got unexpected arguments {sorted(extra)} (tinyopt never unpickles, so pickle "
                        "options do not apply)")
    if pickle_module is not None:
        raise ValueError("load(pickle_module=...) is not supported: tinyopt checkpoints are never unpickled")
    if weights_only is not None and not isinstance(weights_only, bool):
        raise TypeError(f"weights_only must be True, False or None, got {weights_only!r}")
    if mmap not in (None, False):
        raise ValueError("load(mmap=True) is not supported: the file is read and verified whole")
    if map_location is None:
        return
    if callable(map_location) or isinstance(map_location, dict):
        raise TypeError(f"map_location as a {type(map_location).__name__} is not supported: tinyopt loads "
                        "everything to the CPU, so pass map_location='cpu' or None")
    if not isinstance(map_location, (str, _device)) and type(map_location).__name__ != "device":
        raise TypeError(f"map_location must be 'cpu', a device or None, got {type(map_location).__name__}")
    name = str(map_location)
    if _device(name).type != "cpu":
        raise ValueError(f"map_location={name!r}: tinyopt runs on the CPU only; use map_location='cpu' (or None)")


def _read(path: Path) -> bytes:
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; give the file inside it "
                              f"(e.g. {path / 'checkpoint.npz'})")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file (a device, a pipe, ...), so not a checkpoint")
    try:
        return path.read_bytes()
    except PermissionError:
        raise CheckpointError(f"checkpoint {path}: permission denied, cannot read it (fix its permissions, "
                              f"e.g. chmod a+r {path})") from None
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read it ({e.strerror or e})") from None


def _not_a_zip(path: Path, raw: bytes) -> CheckpointError:
    if not raw:
        return CheckpointError(f"checkpoint {path} is empty (0 bytes): it was cut short while being written or "
                               "copied; use another checkpoint or train again")
    if raw.startswith(b"\x93NUMPY"):
        return CheckpointError(f"{path} is a plain .npy array (np.save), not a checkpoint (an .npz archive written "
                               "by tinyopt.save); read it with np.load")
    if raw[:1] == b"\x80":  # the PROTO opcode that starts a pickle
        return CheckpointError(f"{path} is a pickle, not a tinyopt checkpoint; tinyopt never unpickles "
                               "(a pickle can run code)")
    head = raw[:16]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return CheckpointError(f"{path} is a text file (it starts with {head.decode('ascii')!r}), not a checkpoint")
    return CheckpointError(f"{path} is not a tinyopt checkpoint (not a zip archive; it starts with {head!r})")


def _parse(path: Path, raw: bytes) -> dict:
    """The archive's entries; any failure of the zip or .npy readers is a CheckpointError."""
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as e:  # the readers raise many types on damaged input; none may escape unexplained
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e}); "
            "it was probably cut short while being copied: use another checkpoint or train again"
        ) from None


def load(path, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """Read a checkpoint written by `save`; returns the nested object (dicts, lists, arrays, ...).

    torch.load's arguments are accepted: `map_location` may be None or "cpu" (tinyopt runs on the
    CPU; anything else is refused), `weights_only` True, False or None changes nothing (tinyopt
    never unpickles, so only data is ever loaded). Raises `CheckpointError` naming the file and the
    problem for anything that is not an intact tinyopt checkpoint."""
    _check_load_arguments(map_location, pickle_module, weights_only, mmap, pickle_load_args)
    path = _check_path(path, "load")
    raw = _read(path)
    if not raw.startswith(b"PK\x03\x04"):
        raise _not_a_zip(path, raw)
    has_digest = len(raw) > _TRAILER and raw[-_TRAILER:-64] == _TAG
    if has_digest:
        stored = raw[-64:]
        actual = hashlib.sha256(memoryview(raw)[:-64]).hexdigest().encode("ascii")
        if stored != actual:
            raise CheckpointError(
                f"checkpoint {path} fails its whole-file SHA-256 check (stored {stored[:12].decode('latin-1')}…, "
                f"content {actual[:12].decode()}…): it was damaged or modified after saving (a changed byte, an "
                "incomplete copy); do not trust it, use another checkpoint or train again"
            )
    entries = _parse(path, raw)
    fmt = entries.get(_FORMAT)
    fmt = str(fmt) if isinstance(fmt, np.ndarray) and fmt.ndim == 0 and fmt.dtype.kind == "U" else None
    if fmt not in (FORMAT,) + LEGACY_FORMATS:
        if any(k.endswith(".pkl") for k in entries):
            raise CheckpointError(f"{path} is a torch.save file (its data is pickled), not a tinyopt checkpoint; "
                                  "tinyopt never unpickles. In torch, save the state dict as arrays: "
                                  "np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})")
        raise CheckpointError(f"{path} is not a tinyopt checkpoint (no {_FORMAT} entry saying {FORMAT!r})")
    if fmt == FORMAT and not has_digest:
        raise CheckpointError(f"checkpoint {path} has lost its whole-file SHA-256 (the zip comment): it was damaged "
                              "or modified after saving; do not trust it")
    odd = [k for k, v in entries.items() if not isinstance(v, np.ndarray)]
    if odd:
        raise CheckpointError(f"checkpoint {path} holds member {odd[0]!r}, which is not an array: it was tampered with")
    for key in (_META, _CHECKSUM):
        value = entries.get(key)
        if not (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind == "U"):
            raise CheckpointError(f"checkpoint {path} lacks its {key} entry (or it is not a string): "
                                  "it was tampered with")
    meta = str(entries.pop(_META))
    expected = str(entries.pop(_CHECKSUM))
    entries.pop(_FORMAT)
    actual = _checksum(meta, entries)
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {path} fails its SHA-256 check (stored {expected[:12]}…, content {actual[:12]}…): "
            "it was modified after saving; do not trust it"
        )
    try:
        skeleton = json.loads(meta)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"checkpoint {path}: its metadata is not valid JSON ({type(e).__name__}: "
                              f"{str(e)[:80]})") from None
    decoder = _Decoder(entries, str(path))
    obj = decoder.decode(skeleton)
    unused = sorted(set(entries) - decoder.used)
    if unused:
        decoder.fail(f"it holds arrays its metadata does not name: {', '.join(unused[:5])}")
    return obj


# ----------------------------------------------------------------------------- restore


def _fit_optimizer(saved, target) -> list:
    """What makes `saved` (an optimizer state dict) not fit `target`, checked without changing it:
    its structure, the group and parameter counts, hyperparameter names another optimizer type has
    (names missing from `saved` are allowed: an older version's groups lack newer options). The
    state's values are the optimizer's own load_state_dict's to check (shapes differ by type)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        return ["it is not an optimizer state dict ({'state': ..., 'param_groups': [...]})"]
    own_groups = target.state_dict()["param_groups"]
    groups = saved["param_groups"]
    if len(groups) != len(own_groups):
        return [f"it has {len(groups)} parameter group(s), this {type(target).__name__} has {len(own_groups)}"]
    problems = []
    for i, (g, o) in enumerate(zip(groups, own_groups)):
        if not isinstance(g, dict) or not isinstance(g.get("params"), list):
            return [f"its parameter group {i} is not a dict with a 'params' list"]
        if len(g["params"]) != len(o["params"]):
            problems.append(f"parameter group {i} has {len(g['params'])} parameters, this optimizer's has "
                            f"{len(o['params'])}")
        unexpected = sorted(set(g) - set(o))
        if unexpected:
            problems.append(f"its parameter group {i} has {unexpected}, which this {type(target).__name__} does not "
                            f"take, and lacks {sorted(set(o) - set(g))} (was it saved from another optimizer type?)")
    count = sum(len(o["params"]) for o in own_groups)
    for index, state in saved["state"].items():
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count \
                or not isinstance(state, dict):
            problems.append(f"its state names parameter {index!r}, which this optimizer does not have")
    return problems


def _fit_scheduler(saved, target) -> list:
    if not isinstance(saved, dict):
        return [f"it is a {type(saved).__name__}, not a scheduler state dict"]
    own = target.state_dict()
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    if missing or unexpected:
        return [f"it lacks {missing} and has {unexpected} (was it saved from another scheduler type than "
                f"{type(target).__name__}?)"]
    return []


def _fit_model(saved, target, strict: bool) -> list:
    if not isinstance(saved, dict):
        return [f"it is a {type(saved).__name__}, not a state dict"]
    own = target.state_dict()
    problems = []
    missing, unexpected = [k for k in own if k not in saved], [k for k in saved if k not in own]
    if strict and missing:
        problems.append("missing keys: " + ", ".join(missing))
    if strict and unexpected:
        problems.append("unexpected keys: " + ", ".join(map(str, unexpected)))
    shapes = [f"{k}: checkpoint {tuple(np.shape(saved[k]))} vs model {tuple(np.shape(v))}"
              for k, v in own.items() if k in saved and tuple(np.shape(saved[k])) != tuple(np.shape(v))]
    if shapes:
        problems.append("shape mismatches: " + "; ".join(shapes))
    return problems


def restore(path, model=None, optimizer=None, scheduler=None, strict: bool = True) -> dict:
    """Load the checkpoint at `path` and copy its `model`, `optimizer` and `scheduler` entries into
    the objects given. Returns the whole loaded dict (so `ckpt["epoch"]`, `ckpt["rng"]` etc. can
    be used).

    Validate first, then apply: every entry is checked against its object (keys and shapes for the
    model, groups, hyperparameter names and state shapes for the optimizer, the attribute names for
    the scheduler) before anything is written, and if loading one still fails the objects already
    loaded get their previous state back. So when `restore` raises `CheckpointError` (naming the
    mismatching keys), no object has changed."""
    ckpt = load(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict of states")
    targets = [(name, t) for name, t in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler))
               if t is not None]
    problems = []
    for name, target in targets:
        if name not in ckpt:
            raise CheckpointError(f"checkpoint {path} has no {name!r} entry (it has: {', '.join(map(str, ckpt))})")
        found = (_fit_model(ckpt[name], target, strict) if name == "model" else
                 _fit_optimizer(ckpt[name], target) if name == "optimizer" else _fit_scheduler(ckpt[name], target))
        problems += [f"{name}: {p}" for p in found]
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit (was it saved from a different architecture?), "
                              f"nothing was loaded: " + "; ".join(problems))
    applied = []
    for name, target in targets:
        before = copy.deepcopy(target.state_dict())
        applied.append((target, before))
        try:
            if name == "model":
                target.load_state_dict(ckpt[name], strict=strict)
            else:
                target.load_state_dict(ckpt[name])
        except Exception as e:  # put back everything already loaded (the failing one too), then report
            for earlier, state in reversed(applied):
                earlier.load_state_dict(state)
            raise CheckpointError(
                f"checkpoint {path} does not fit this {type(target).__name__} "
                f"(was it saved from a different architecture?), nothing was loaded: {e}"
            ) from None
    return ckpt


__all__ = ["CheckpointError", "FORMAT", "NonFiniteValues", "atomic_write", "load", "restore", "save"]
