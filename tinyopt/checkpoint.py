"""`save(obj, path)` / `load(path)`: checkpoints as flat `.npz` files with JSON metadata.

What is stored
--------------
`obj` is any nesting of dicts, lists and tuples whose leaves are NumPy arrays, NumPy scalars,
Python scalars (int, float, bool, str, None), `np.random.Generator`s, or objects with a
`state_dict()` method (a `Module`, an `Optimizer`, a scheduler), which are stored as their state
dict. A typical training checkpoint:

    tinyopt.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "epoch": epoch, "rng": rng}, "run/ckpt.npz")

Layout of the file (a plain `np.savez` archive, readable with `np.load(path)`):

- one entry per array, under a flat key that spells its place in the nesting
  (`model/fc1.weight`, `optimizer/state/0/momentum_buffer`);
- `__meta__`: a JSON string with the nesting itself, where each array is replaced by
  `{"__array__": key}` (dicts are stored as lists of `[key, value]` pairs, so integer keys such as
  the optimizer's parameter indices come back as integers; tuples and Generators are tagged);
- `__checksum__`: SHA-256 over `__meta__` and every array's key, dtype, shape and bytes;
- `__format__`: the format name and version.

Safety
------
- Writing is atomic: the archive is written to a temporary file in the target folder, flushed,
  `fsync`ed and moved over `path` with `os.replace`, so a crash leaves either the old checkpoint
  or the new one, never half of one.
- Reading never unpickles (`allow_pickle=False`): a checkpoint cannot run code. Object arrays are
  refused when saving.
- A truncated file (a zip that does not open), a tampered one (checksum mismatch) or a file that
  is not a tinyopt checkpoint raises `CheckpointError` naming the file and the problem.
- `restore(path, model=..., optimizer=..., scheduler=...)` loads and applies in one go; a
  checkpoint from a different architecture raises `CheckpointError` naming the missing,
  unexpected and mis-shaped keys (from `Module.load_state_dict`).

Floats go through JSON as `repr` (exact for Python floats), arrays as raw bytes, so a training
run resumed from a checkpoint continues bit for bit (tests/test_checkpoint.py checks it).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

FORMAT = "tinyopt-checkpoint-v1"
_META, _CHECKSUM, _FORMAT = "__meta__", "__checksum__", "__format__"
_RESERVED = (_META, _CHECKSUM, _FORMAT)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file and the problem."""


# ----------------------------------------------------------------------------- encoding


class _Encoder:
    """Turn a nested object into (JSON-able skeleton, {flat key: ndarray})."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

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
        if hasattr(obj, "state_dict") and callable(obj.state_dict) and not isinstance(obj, dict):
            obj = obj.state_dict()
        if isinstance(obj, np.random.Generator):
            return {"__generator__": self.encode(obj.bit_generator.state, path)}
        if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
            arr = np.asarray(obj)
            if arr.dtype.hasobject:
                raise CheckpointError(f"cannot save {path or 'value'}: object arrays would need pickle")
            key = self._key(path)
            self.arrays[key] = np.array(arr, order="C", copy=True)
            return {"__array__": key, "scalar": True} if isinstance(obj, np.generic) else {"__array__": key}
        if isinstance(obj, dict):
            pairs = []
            for k, v in obj.items():
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise CheckpointError(f"cannot save {path or 'value'}: dict key {k!r} is a {type(k).__name__}")
                if isinstance(k, (np.integer,)):
                    k = int(k)
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


def _decode(node, arrays, where: str):
    if isinstance(node, list):
        return [_decode(v, arrays, where) for v in node]
    if not isinstance(node, dict):
        return node
    if "__array__" in node:
        key = node["__array__"]
        if key not in arrays:
            raise CheckpointError(f"{where}: metadata names array {key!r}, which the file does not contain")
        arr = arrays[key]
        return arr[()] if node.get("scalar") else arr
    if "__dict__" in node:
        return {k: _decode(v, arrays, where) for k, v in node["__dict__"]}
    if "__tuple__" in node:
        return tuple(_decode(v, arrays, where) for v in node["__tuple__"])
    if "__generator__" in node:
        state = _decode(node["__generator__"], arrays, where)
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
            raise CheckpointError(f"{where}: unknown bit generator {name!r}")
        bit_generator = getattr(np.random, name)()
        bit_generator.state = state
        return np.random.Generator(bit_generator)
    raise CheckpointError(f"{where}: unrecognised metadata node with keys {sorted(node)}")


def _checksum(meta: str, arrays: dict) -> str:
    h = hashlib.sha256()
    h.update(meta.encode("utf-8"))
    for key in sorted(arrays):
        arr = arrays[key]
        h.update(f"\0{key}\0{arr.dtype.str}\0{arr.shape}\0".encode("utf-8"))
        h.update(arr.tobytes(order="C"))
    return h.hexdigest()


# ----------------------------------------------------------------------------- public API


def save(obj, path) -> Path:
    """Write `obj` to `path` atomically (temp file + fsync + os.replace). Returns the path.

    The file gets exactly the name given (no `.npz` is appended)."""
    path = Path(path)
    encoder = _Encoder()
    skeleton = encoder.encode(obj)
    meta = json.dumps(skeleton)
    arrays = encoder.arrays
    entries = dict(arrays)
    entries[_META] = np.array(meta)
    entries[_CHECKSUM] = np.array(_checksum(meta, arrays))
    entries[_FORMAT] = np.array(FORMAT)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some filesystems do not fsync folders
        pass
    return path


def load(path):
    """Read a checkpoint written by `save`; returns the nested object (dicts, lists, arrays, ...).

    Raises `CheckpointError` for a missing, truncated, tampered or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            entries = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib.error) as e:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e}); "
            "it was probably cut short while being copied: use another checkpoint or train again"
        ) from None
    if entries.get(_FORMAT) is None or str(entries[_FORMAT]) != FORMAT:
        raise CheckpointError(f"{path} is not a tinyopt checkpoint (no {_FORMAT} entry saying {FORMAT!r})")
    if _META not in entries or _CHECKSUM not in entries:
        raise CheckpointError(f"checkpoint {path} lacks its {_META} or {_CHECKSUM} entry: it was tampered with")
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
    except json.JSONDecodeError as e:  # pragma: no cover - guarded by the checksum
        raise CheckpointError(f"checkpoint {path}: metadata is not valid JSON ({e})") from None
    return _decode(skeleton, entries, str(path))


def restore(path, model=None, optimizer=None, scheduler=None, strict: bool = True) -> dict:
    """Load the checkpoint at `path` and copy its `model`, `optimizer` and `scheduler` entries into
    the objects given. Returns the whole loaded dict (so `ckpt["epoch"]`, `ckpt["rng"]` etc. can
    be used). A model of another architecture raises `CheckpointError` naming the mismatching keys."""
    ckpt = load(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict of states")
    for name, target in (("model", model), ("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if name not in ckpt:
            raise CheckpointError(f"checkpoint {path} has no {name!r} entry (it has: {', '.join(map(str, ckpt))})")
        try:
            if name == "model":
                target.load_state_dict(ckpt[name], strict=strict)
            else:
                target.load_state_dict(ckpt[name])
        except (RuntimeError, ValueError, KeyError, IndexError) as e:
            raise CheckpointError(
                f"checkpoint {path} does not fit this {type(target).__name__} "
                f"(was it saved from a different architecture?): {e}"
            ) from None
    return ckpt


__all__ = ["CheckpointError", "FORMAT", "load", "restore", "save"]

