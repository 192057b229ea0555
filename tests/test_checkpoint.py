"""tinyopt.checkpoint: round trip, bit-identical resume, corrupt and mismatching checkpoints."""
import json
import zipfile

import numpy as np
import pytest

import tinyopt as to
from tinyopt import nn
from tinyopt.checkpoint import CheckpointError, load, restore, save
from tinyopt.data import DataLoader
from tinyopt.optim import SGD


def make_model(rng, hidden=16):
    return nn.Sequential(nn.Linear(6, hidden, rng=rng), nn.ReLU(), nn.Dropout(0.2, rng=rng), nn.Linear(hidden, 3, rng=rng))


def make_data(seed=0, n=64):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def test_round_trip_nested_structures(tmp_path):
    rng = np.random.default_rng(7)
    rng.random(5)  # advance it
    obj = {
        "model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float64)},
        "optimizer": {"state": {0: {"momentum_buffer": np.ones(4, np.float32), "step": 3}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1], "nesterov": False}]},
        "epoch": 4, "name": "run", "nothing": None, "scalar": np.float32(1.5), "rng": rng,
        "huge_int": 2**100, "lr": 0.1 + 0.2,
    }
    path = save(obj, tmp_path / "ckpt.npz")
    back = load(path)
    assert back["epoch"] == 4 and back["name"] == "run" and back["nothing"] is None
    assert back["huge_int"] == 2**100 and back["lr"] == 0.1 + 0.2
    np.testing.assert_array_equal(back["model"]["w"], obj["model"]["w"])
    assert back["model"]["w"].dtype == np.float32 and back["model"]["b"].dtype == np.float64
    assert list(back["optimizer"]["state"]) == [0]  # integer keys stay integers
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert isinstance(back["scalar"], np.float32) and back["scalar"] == np.float32(1.5)
    assert isinstance(back["rng"], np.random.Generator)
    np.testing.assert_array_equal(back["rng"].random(10), rng.random(10))


def test_file_is_a_plain_npz_with_flat_keys_and_no_pickle(tmp_path):
    rng = np.random.default_rng(0)
    model = make_model(rng)
    save({"model": model}, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert "model/0.weight" in npz.files and "__meta__" in npz.files
        json.loads(str(npz["__meta__"]))


def test_atomic_write_leaves_no_temp_files(tmp_path):
    save({"a": np.ones(3)}, tmp_path / "c.npz")
    save({"a": np.zeros(3)}, tmp_path / "c.npz")  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]
    np.testing.assert_array_equal(load(tmp_path / "c.npz")["a"], np.zeros(3))


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="pickle"):
        save({"a": np.array([object()])}, tmp_path / "c.npz")


def test_truncated_file_is_rejected(tmp_path):
    path = save({"w": np.arange(1000.0)}, tmp_path / "c.npz")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load(path)


def test_tampered_file_is_rejected(tmp_path):
    path = save({"w": np.arange(10.0), "epoch": 3}, tmp_path / "c.npz")
    with np.load(path) as npz:
        entries = {k: npz[k] for k in npz.files}
    entries["w"] = entries["w"] + 1.0  # a consistent zip, but not what was saved
    np.savez(tmp_path / "bad.npz", **entries)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load(tmp_path / "bad.npz")


def test_flipped_byte_is_rejected(tmp_path):
    path = save({"w": np.arange(100.0)}, tmp_path / "c.npz")
    raw = bytearray(path.read_bytes())
    raw[200] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        load(path)


def test_foreign_npz_and_missing_file(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    with pytest.raises(CheckpointError, match="not a tinyopt checkpoint"):
        load(tmp_path / "other.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError):
        load(tmp_path / "text.npz")


def test_different_architecture_names_the_keys(tmp_path):
    rng = np.random.default_rng(0)
    save({"model": make_model(rng, hidden=16)}, tmp_path / "c.npz")
    other = make_model(rng, hidden=8)
    with pytest.raises(CheckpointError, match=r"0\.weight: checkpoint \(16, 6\) vs model \(8, 6\)"):
        restore(tmp_path / "c.npz", model=other)
    deeper = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3), nn.Linear(3, 3))
    with pytest.raises(CheckpointError, match=r"missing keys: 4\.weight, 4\.bias"):
        restore(tmp_path / "c.npz", model=deeper)


def _train(model, opt, loader, epochs, start=0):
    losses = []
    for _ in range(start, epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(to.tensor(xb)), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def test_resume_is_bit_identical(tmp_path):
    x, y = make_data()
    # uninterrupted run: 4 epochs
    rng = np.random.default_rng(123)
    model = make_model(rng)
    opt = SGD(model.parameters(), lr=0.1)
    loader = DataLoader((x, y), batch_size=16, shuffle=True, rng=rng)
    full = _train(model, opt, loader, 4)

    # interrupted run: 2 epochs, checkpoint, fresh objects, restore, 2 more epochs
    rng = np.random.default_rng(123)
    model_a = make_model(rng)
    opt_a = SGD(model_a.parameters(), lr=0.1)
    first = _train(model_a, opt_a, DataLoader((x, y), batch_size=16, shuffle=True, rng=rng), 2)
    save({"model": model_a, "optimizer": opt_a, "epoch": 2, "rng": rng}, tmp_path / "ckpt.npz")
    del model_a, opt_a, rng

    model_b = make_model(np.random.default_rng(999))  # different init, overwritten by restore
    opt_b = SGD(model_b.parameters(), lr=0.5)  # different lr, overwritten by restore
    ckpt = restore(tmp_path / "ckpt.npz", model=model_b, optimizer=opt_b)
    rng_b = ckpt["rng"]
    model_b[2].rng = rng_b  # dropout draws from the restored generator, like the loader
    assert opt_b.param_groups[0]["lr"] == 0.1
    second = _train(model_b, opt_b, DataLoader((x, y), batch_size=16, shuffle=True, rng=rng_b), 4, start=ckpt["epoch"])

    assert first + second == full
    for (name, a), (_, b) in zip(model.state_dict().items(), model_b.state_dict().items()):
        assert np.array_equal(a, b), name
