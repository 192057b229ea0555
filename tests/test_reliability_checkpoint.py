"""Every malformed checkpoint, every bad save or restore: a CheckpointError (or TypeError/ValueError
for a wrong argument) naming the file and the problem, and nothing changed on disk or in memory."""
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import tinyopt as to
from tinyopt import checkpoint, nn
from tinyopt.checkpoint import CheckpointError, NonFiniteValues, load, restore, save
from tinyopt.optim import SGD, Adam
from tinyopt.optim.lr_scheduler import ExponentialLR, StepLR


def small_model(seed=0, hidden=4):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(3, hidden, rng=rng), nn.ReLU(), nn.Linear(hidden, 2, rng=rng))


def trained(model, opt, steps=2):
    x = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    y = np.arange(8) % 2
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(to.tensor(x)), y).backward()
        opt.step()


def snapshot(model=None, opt=None, sched=None):
    out = {}
    if model is not None:
        out["model"] = {k: v.copy() for k, v in model.state_dict().items()}
    if opt is not None:
        out["opt"] = opt.state_dict()
    if sched is not None:
        out["sched"] = sched.state_dict()
    return out


def assert_unchanged(before, after):
    assert before.keys() == after.keys()
    for part in before:
        assert repr(_plain(before[part])) == repr(_plain(after[part])), part


def _plain(obj):
    """Nested containers with arrays as (dtype, shape, bytes), for an exact comparison."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return (obj.dtype.str, obj.shape, obj.tobytes())
    return obj


def write_v2(path, skeleton, arrays):
    """A file with tinyopt's layout and valid checksums around arbitrary metadata (an 'edited' file)."""
    meta = json.dumps(skeleton) if not isinstance(skeleton, str) else skeleton
    entries = dict(arrays)
    entries["__meta__"] = np.array(meta)
    entries["__checksum__"] = np.array(checkpoint._checksum(meta, arrays))
    entries["__format__"] = np.array(checkpoint.FORMAT)
    with open(path, "w+b") as f:
        checkpoint._write_archive(f, entries)
    return path


# ----------------------------------------------------------------------------- malformed files


def _plain_npy(p):
    with open(p, "wb") as f:  # np.save(path) would append .npy
        np.save(f, np.arange(3.0))


def _text(p):
    p.write_text("epoch 3, loss 0.25\n")


def _empty(p):
    p.write_bytes(b"")


def _pickle(p):
    p.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))


def _binary(p):
    p.write_bytes(bytes(range(256)) * 4)


def _foreign_npz(p):
    np.savez(p, a=np.ones(2))


def _zip_with_text(p):
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("notes.txt", "hello")


def _torch_style_zip(p):
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")


def _truncated(fraction):
    def make(p):
        good = save({"w": np.arange(50.0)}, p)
        raw = good.read_bytes()
        p.write_bytes(raw[: int(len(raw) * fraction)])
    return make


MALFORMED = {
    "plain .npy": (_plain_npy, "plain .npy array"),
    "text file": (_text, "is a text file"),
    "empty file": (_empty, "is empty"),
    "pickle": (_pickle, "is a pickle"),
    "binary junk": (_binary, "not a zip archive"),
    "foreign npz": (_foreign_npz, "not a tinyopt checkpoint"),
    "zip of text": (_zip_with_text, "not a tinyopt checkpoint"),
    "torch.save zip": (_torch_style_zip, "torch.save file"),
    "truncated 10%": (_truncated(0.1), "truncated or corrupt"),
    "truncated 50%": (_truncated(0.5), "truncated or corrupt"),
    "truncated 99%": (_truncated(0.99), "truncated or corrupt|SHA-256"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_files_are_named_checkpoint_errors(tmp_path, kind):
    make, message = MALFORMED[kind]
    path = tmp_path / "c.npz"
    make(path)
    raw = path.read_bytes()
    with pytest.raises(CheckpointError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == raw  # reading never changes the file


def test_a_folder_and_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"is a folder, not a checkpoint file.*checkpoint\.npz"):
        load(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nope.npz")


def test_a_real_torch_save_file_is_refused_without_unpickling(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2)}, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="torch.save file.*never unpickles"):
        load(tmp_path / "t.pt")


def test_every_single_byte_change_is_caught(tmp_path):
    """Flip every byte of a small checkpoint in turn (and add 1 to every 5th): a CheckpointError each time."""
    good = save({"w": np.arange(3, dtype=np.float32), "epoch": 2}, tmp_path / "good.npz")
    raw = good.read_bytes()
    bad = tmp_path / "bad.npz"
    escaped = []
    changes = [(i, 0xFF, "xor") for i in range(len(raw))] + [(i, 1, "add") for i in range(0, len(raw), 5)]
    for i, amount, how in changes:
        b = bytearray(raw)
        b[i] = b[i] ^ amount if how == "xor" else (b[i] + amount) % 256
        bad.write_bytes(bytes(b))
        try:
            load(bad)
        except CheckpointError:
            continue
        except Exception as e:  # noqa: BLE001 - the point: no other exception type may escape
            escaped.append((i, how, type(e).__name__))
        else:
            escaped.append((i, how, "loaded"))
    assert escaped == []
    assert load(good)["epoch"] == 2


EDITED = {
    "deep nesting": ("[" * 5000 + "]" * 5000, "nested more than|not valid JSON"),
    "dict of a number": ({"__dict__": 5}, "not a list of \\[key, value\\] pairs"),
    "pair of three": ({"__dict__": [["a", 1, 2]]}, "not a list of \\[key, value\\] pairs"),
    "array named by a number": ({"__array__": 3}, "names an array by a int"),
    "missing array": ({"__array__": "nope"}, "which the file does not contain"),
    "unknown node": ({"__class__": "os.system"}, "node with keys"),
    "evil generator": ({"__generator__": {"__dict__": [["bit_generator", "Evil"]]}}, "unknown bit generator"),
    "bad generator state": ({"__generator__": {"__dict__": [["bit_generator", "PCG64"], ["state", 3]]}},
                            "generator state is not valid"),
    "scalar flag on a vector": ({"__array__": "w", "scalar": True}, "marked as a scalar"),
    "scalar flag not a bool": ({"__array__": "w", "scalar": "yes"}, "not true/false"),
    "wrong dtype claim": ({"__array__": "w", "dtype": "bfloat16"}, "claims dtype"),
    "tuple of a string": ({"__tuple__": "ab"}, "not a list"),
    "not json": ("{'w': 1", "not valid JSON"),
}


@pytest.mark.parametrize("kind", list(EDITED))
def test_edited_metadata_with_recomputed_checksums(tmp_path, kind):
    skeleton, message = EDITED[kind]
    path = write_v2(tmp_path / "c.npz", skeleton, {"w": np.arange(3.0)})
    with pytest.raises(CheckpointError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_arrays_the_metadata_does_not_name(tmp_path):
    path = write_v2(tmp_path / "c.npz", {"__array__": "w"}, {"w": np.arange(3.0), "extra": np.ones(2)})
    with pytest.raises(CheckpointError, match="does not name: extra"):
        load(path)


def test_older_format_without_whole_file_digest_still_loads_and_is_still_checked(tmp_path):
    arrays = {"w": np.arange(3.0)}
    meta = json.dumps({"__dict__": [["w", {"__array__": "w"}], ["epoch", 4]]})
    entries = dict(arrays, __meta__=np.array(meta), __checksum__=np.array(checkpoint._checksum(meta, arrays)),
                   __format__=np.array("tinyopt-checkpoint-v1"))
    np.savez(tmp_path / "v1.npz", **entries)
    assert load(tmp_path / "v1.npz")["epoch"] == 4
    entries["__format__"] = np.array(checkpoint.FORMAT)  # a v2 file that lost its digest
    np.savez(tmp_path / "v2.npz", **entries)
    with pytest.raises(CheckpointError, match="lost its whole-file SHA-256"):
        load(tmp_path / "v2.npz")
    entries["__meta__"] = np.array(meta.replace("4", "5"))  # content check of the old format
    entries["__format__"] = np.array("tinyopt-checkpoint-v1")
    np.savez(tmp_path / "v1bad.npz", **entries)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load(tmp_path / "v1bad.npz")


# ----------------------------------------------------------------------------- torch's arguments


@pytest.mark.parametrize("where", [None, "cpu", "cpu:0", to.device("cpu")])
@pytest.mark.parametrize("weights_only", [None, True, False])
def test_load_accepts_torch_arguments(tmp_path, where, weights_only):
    save({"w": np.ones(2)}, tmp_path / "c.npz")
    back = to.load(tmp_path / "c.npz", map_location=where, weights_only=weights_only)
    np.testing.assert_array_equal(back["w"], np.ones(2))


@pytest.mark.parametrize("kwargs,error,message", [
    ({"map_location": "cuda"}, ValueError, "CPU only"),
    ({"map_location": "cuda:0"}, ValueError, "CPU only"),
    ({"map_location": to.device("cuda")}, ValueError, "CPU only"),
    ({"map_location": {"cuda:0": "cpu"}}, TypeError, "dict is not supported"),
    ({"map_location": lambda storage, loc: storage}, TypeError, "function is not supported"),
    ({"map_location": 3}, TypeError, "must be 'cpu'"),
    ({"weights_only": "yes"}, TypeError, "weights_only must be"),
    ({"pickle_module": pickle}, ValueError, "never unpickled"),
    ({"mmap": True}, ValueError, "mmap"),
    ({"encoding": "latin1"}, TypeError, "unexpected arguments"),
])
def test_load_refuses_what_it_cannot_do(tmp_path, kwargs, error, message):
    save({"w": np.ones(2)}, tmp_path / "c.npz")
    with pytest.raises(error, match=message):
        to.load(tmp_path / "c.npz", **kwargs)


def test_torch_device_as_map_location():
    torch = pytest.importorskip("torch")
    checkpoint._check_load_arguments(torch.device("cpu"), None, None, None, {})
    with pytest.raises(ValueError, match="CPU only"):
        checkpoint._check_load_arguments(torch.device("cuda"), None, None, None, {})


def test_whole_objects_are_refused_with_the_state_dict_fix(tmp_path):
    from tinyopt import keras

    model = small_model()
    opt = SGD(model.parameters(), lr=0.1)
    kmodel = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    for obj in (model, opt, StepLR(opt, step_size=1), kmodel, nn.Linear(2, 2)):
        with pytest.raises(TypeError, match=r"never pickles whole objects.*state_dict\(\)"):
            to.save(obj, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temp file
    with pytest.raises(TypeError, match="file name"):
        to.save({"w": np.ones(2)}, io.BytesIO())
    to.save(model.state_dict(), tmp_path / "m.pt")  # the fix works
    other = small_model(seed=5)
    other.load_state_dict(to.load(tmp_path / "m.pt"))
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- non-finite values


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["model", "optimizer", "nested list", "bfloat16"])
def test_save_refuses_non_finite_arrays_and_keeps_the_old_file(tmp_path, bad, where):
    model = small_model()
    opt = Adam(model.parameters(), lr=0.01)
    trained(model, opt)
    path = save({"model": model, "optimizer": opt}, tmp_path / "c.npz")
    raw = path.read_bytes()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    if where == "model":
        state["model"]["2.bias"][1] = bad
        key = "model/2.bias"
    elif where == "optimizer":
        state["optimizer"]["state"][0]["exp_avg_sq"][0, 0] = bad
        key = "optimizer/state/0/exp_avg_sq"
    elif where == "nested list":
        state["extra"] = [np.ones(2), np.array([1.0, bad])]
        key = "extra/1"
    else:
        state["half"] = np.array([1.0, bad], dtype=to.bfloat16)
        key = "half"
    with pytest.raises(NonFiniteValues, match=rf"refusing to save .*c\.npz: {key} .*holds 1 non-finite") as info:
        save(state, path)
    assert info.value.key == key
    assert path.read_bytes() == raw and sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]
    save(state, tmp_path / "forced.npz", allow_nonfinite=True)  # the explicit exception
    assert load(tmp_path / "forced.npz") is not None


def test_non_finite_python_numbers_and_numpy_scalars_are_allowed(tmp_path):
    """Not weights: ReduceLROnPlateau's best = inf, a metric."""
    save({"best": float("inf"), "metric": np.float64(np.nan)}, tmp_path / "c.npz")
    back = load(tmp_path / "c.npz")
    assert back["best"] == float("inf") and np.isnan(back["metric"])


def test_bfloat16_round_trips(tmp_path):
    a = np.array([1.5, -2.0, 3.25], dtype=to.bfloat16)
    save({"a": a, "s": a[0]}, tmp_path / "c.npz")
    back = load(tmp_path / "c.npz")
    assert back["a"].dtype == a.dtype and back["a"].tobytes() == a.tobytes()
    assert back["s"].dtype == a.dtype and back["s"] == a[0]


# ----------------------------------------------------------------------------- where it is written


def test_an_unwritable_folder_is_named_not_the_temp_file(tmp_path, monkeypatch):
    def denied(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(dir, ".c.npz.1234.abcd.tmp"))

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", denied)
    with pytest.raises(CheckpointError, match=r"cannot write .*c\.npz: the folder .* is not writable") as info:
        save({"w": np.ones(2)}, tmp_path / "c.npz")
    assert ".tmp" not in str(info.value) and str(tmp_path) in str(info.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user (root may write anywhere)")
def test_a_read_only_folder_is_named(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(CheckpointError, match=rf"the folder {ro} is not writable \(permission denied\)") as info:
            save({"w": np.ones(2)}, ro / "c.npz")
        assert ".tmp" not in str(info.value)
    finally:
        ro.chmod(0o755)


def test_paths_that_cannot_hold_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file, not a folder"):
        save({"w": np.ones(2)}, tmp_path / "file" / "c.npz")
    with pytest.raises(CheckpointError, match="it is a folder"):
        save({"w": np.ones(2)}, tmp_path)
    assert (tmp_path / "file").read_text() == "x"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="process ids are checked on POSIX")
def test_stale_temp_files_are_removed_by_the_next_save(tmp_path):
    dead = tmp_path / f".c.npz.{_dead_pid()}.k1ll3d.tmp"
    alive = tmp_path / f".c.npz.{os.getppid()}.wr1t1ng.tmp"       # a save still running elsewhere
    old_legacy, new_legacy = tmp_path / ".c.npz.oldtmp1.tmp", tmp_path / ".c.npz.newtmp1.tmp"
    other = tmp_path / f".other.npz.{_dead_pid()}.x.tmp"           # another file's: not this save's business
    longer = tmp_path / f".c.npz.5.{_dead_pid()}.x.tmp"            # the temp of a save to "c.npz.5"
    for p in (dead, alive, old_legacy, new_legacy, other, longer):
        p.write_bytes(b"partial")
    os.utime(old_legacy, (time.time() - 3600, time.time() - 3600))
    save({"w": np.ones(2)}, tmp_path / "c.npz")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["c.npz", alive.name, new_legacy.name, other.name, longer.name])


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_killed_save_leaves_the_old_checkpoint_and_its_temp_file_is_cleaned_up(tmp_path):
    path = save({"w": np.zeros(4), "epoch": 1}, tmp_path / "c.npz")
    raw = path.read_bytes()
    child = textwrap.dedent(f"""
        import os, sys, time
        import numpy as np
        from tinyopt import checkpoint
        def stuck(fd):
            print("writing", flush=True)
            time.sleep(60)
        checkpoint.os.fsync = stuck
        checkpoint.save({{"w": np.ones(500_000), "epoch": 2}}, {str(path)!r})
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert path.read_bytes() == raw and load(path)["epoch"] == 1  # the old one, whole
    save({"w": np.zeros(4), "epoch": 3}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


# ----------------------------------------------------------------------------- restore: all or nothing


def _setup(tmp_path):
    model = small_model()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    trained(model, opt)
    sched = StepLR(opt, step_size=3)
    path = save({"model": model, "optimizer": opt, "scheduler": sched, "epoch": 1}, tmp_path / "c.npz")
    target = small_model(seed=9)
    return path, target


@pytest.mark.parametrize("case", ["adam state into SGD", "SGD state into Adam", "fewer parameters",
                                  "misshaped moment", "another scheduler type", "missing entry",
                                  "model architecture"])
def test_restore_changes_nothing_when_it_refuses(tmp_path, case):
    path, model = _setup(tmp_path)
    opt = SGD(model.parameters(), lr=0.5, momentum=0.5)
    trained(model, opt, steps=1)
    sched = StepLR(opt, step_size=3)
    kwargs = {"model": model, "optimizer": opt, "scheduler": sched}
    if case == "adam state into SGD":
        other = small_model()
        adam = Adam(other.parameters(), lr=0.01)
        trained(other, adam)
        path = save({"model": other, "optimizer": adam, "scheduler": sched.state_dict()}, tmp_path / "adam.npz")
        message = "another optimizer type"
    elif case == "SGD state into Adam":
        opt = Adam(model.parameters(), lr=0.01)
        trained(model, opt, steps=1)
        kwargs.update(optimizer=opt, scheduler=None)
        message = "another optimizer type"
    elif case == "fewer parameters":
        opt = SGD(list(model.parameters())[:2], lr=0.5, momentum=0.5)
        kwargs.update(optimizer=opt, scheduler=None)
        message = "has 4 parameters, this optimizer's has 2"
    elif case == "misshaped moment":
        ckpt = load(path)
        ckpt["optimizer"]["state"][1]["momentum_buffer"] = np.zeros(7)
        path = save(ckpt, tmp_path / "bad.npz")
        message = "does not fit this SGD"  # found by SGD.load_state_dict itself (today after it set lr): rolled back
    elif case == "another scheduler type":
        sched = ExponentialLR(opt, gamma=0.5)
        kwargs["scheduler"] = sched
        message = "another scheduler type than ExponentialLR"
    elif case == "missing entry":
        path = save({"model": load(path)["model"]}, tmp_path / "model-only.npz")
        message = "has no 'optimizer' entry"
    else:
        model = small_model(hidden=5)
        opt = SGD(model.parameters(), lr=0.5, momentum=0.5)
        trained(model, opt, steps=1)
        kwargs.update(model=model, optimizer=opt, scheduler=None)
        message = r"0\.weight: checkpoint \(4, 3\) vs model \(5, 3\)"
    before = snapshot(kwargs["model"], kwargs["optimizer"], kwargs["scheduler"])
    with pytest.raises(CheckpointError, match=message):
        restore(path, **kwargs)
    assert_unchanged(before, snapshot(kwargs["model"], kwargs["optimizer"], kwargs["scheduler"]))


def test_restore_puts_back_what_it_applied_when_a_later_load_fails(tmp_path):
    """Checks passed, then the scheduler's own load_state_dict raises half-way: model and optimizer
    get their previous state back."""
    path, model = _setup(tmp_path)
    opt = SGD(model.parameters(), lr=0.5, momentum=0.5)
    trained(model, opt, steps=1)

    class Fragile(StepLR):
        def load_state_dict(self, state):
            if state.get("step_size") == 3 and self.step_size != 3:  # the checkpoint's: fail after a change
                self.__dict__["base_lrs"] = [123.0]
                raise ValueError("cannot load this one")
            super().load_state_dict(state)

    sched = Fragile(opt, step_size=5)
    before = snapshot(model, opt, sched)
    with pytest.raises(CheckpointError, match="nothing was loaded: cannot load this one"):
        restore(path, model=model, optimizer=opt, scheduler=sched)
    assert_unchanged(before, snapshot(model, opt, sched))


def test_restore_applies_everything_when_it_fits(tmp_path):
    path, model = _setup(tmp_path)
    opt = SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = StepLR(opt, step_size=7)
    ckpt = restore(path, model=model, optimizer=opt, scheduler=sched)
    assert ckpt["epoch"] == 1 and opt.param_groups[0]["lr"] == 0.1 and sched.step_size == 3
    for k, v in ckpt["model"].items():
        np.testing.assert_array_equal(model.state_dict()[k], v)
