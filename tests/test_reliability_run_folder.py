"""A run folder (config.json, metrics.jsonl, checkpoint.npz) is always consistent: a new run that
fails leaves an old one byte for byte, nothing is written before the settings are checked and the
data is loaded, and a broken or hand-edited config.json is one clear error that changes nothing."""
import json

import numpy as np
import pytest

from tinyopt import cli
from tinyopt import train as train_module
from tinyopt.checkpoint import load
from tinyopt.datasets.files import DatasetError
from tinyopt.loop import TrainingDiverged
from tinyopt.nn import functional as F
from tinyopt.train import ConfigError, TrainConfig, load_run, run


def synthetic(seed=0, n=80, d=784, classes=10):
    g = np.random.default_rng(seed)
    centers = g.normal(scale=1.0, size=(classes, d))

    def split(m):
        y = np.arange(m) % classes
        return (centers[y] + g.normal(size=(m, d))).astype(np.float32), y.astype(np.int64)
    return split(n), split(30), split(30)


DATA = synthetic()
OLD = dict(model="mlp", optimizer="adam", lr=1e-3, epochs=2, batch_size=16, seed=1)


def folder_bytes(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture
def old_run(tmp_path):
    out = tmp_path / "run"
    run(TrainConfig(**OLD), out, data=DATA, verbose=0, plots=False)
    return out


def still_the_old_run(out, before):
    assert folder_bytes(out) == before
    config, model = load_run(out)  # `tinyopt eval` still works
    assert config == TrainConfig(**OLD)
    assert load(out / "checkpoint.npz")["epoch"] == 2


class Interrupt:
    def __init__(self, real, at):
        self.real, self.at, self.calls = real, at, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("failure", ["bad schedule", "bad lr", "bad momentum", "bad seed", "missing data",
                                     "diverges in epoch 1", "interrupted in epoch 1", "data set too small"])
def test_a_failing_new_run_leaves_the_old_one_intact(old_run, monkeypatch, failure):
    before = folder_bytes(old_run)
    new = dict(OLD, model="mlp", optimizer="sgd", lr=0.1, epochs=3)
    kwargs = dict(data=DATA, verbose=0, plots=False)
    error = ConfigError
    if failure == "bad schedule":
        new["schedule"] = "cos"
    elif failure == "bad lr":
        new["lr"] = float("nan")
    elif failure == "bad momentum":
        new.update(optimizer="nesterov", momentum=0.0)
    elif failure == "bad seed":
        new["seed"] = -1
    elif failure == "missing data":
        kwargs.update(data=None, data_path=old_run.parent / "no-such-folder")
        error = DatasetError
    elif failure == "diverges in epoch 1":
        new["lr"] = 1e12
        error = TrainingDiverged
    elif failure == "interrupted in epoch 1":
        monkeypatch.setattr(F, "cross_entropy", Interrupt(F.cross_entropy, at=3))
        error = KeyboardInterrupt
    else:
        kwargs.update(data=None)
        new["train_size"] = 10**6
    with np.errstate(all="ignore"):
        with pytest.raises(error):
            run(TrainConfig(**new), old_run, **kwargs)
    monkeypatch.undo()
    still_the_old_run(old_run, before)


@pytest.mark.parametrize("argv", [
    ["--lr", "nan"], ["--weight-decay", "-1"], ["--optimizer", "nesterov", "--momentum", "0"], ["--seed", "-3"],
    ["--data", "/no/such/folder"], ["--momentum", "0.5"], ["--epochs", "0"], ["--train-size", "99999999"],
])
def test_a_failing_cli_run_leaves_the_old_one_intact(old_run, capsys, argv):
    before = folder_bytes(old_run)
    assert cli.main(["train", "--out", str(old_run), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    still_the_old_run(old_run, before)


def test_a_new_run_replaces_the_old_one_consistently(old_run):
    run(TrainConfig(**dict(OLD, optimizer="sgd", lr=0.05, epochs=1, seed=4)), old_run, data=DATA, verbose=0,
        plots=False)
    config = json.loads((old_run / "config.json").read_text())
    ckpt = load(old_run / "checkpoint.npz")
    metrics = [json.loads(line) for line in (old_run / "metrics.jsonl").read_text().splitlines()]
    assert config["optimizer"] == "sgd" and ckpt["config"] == config and ckpt["epoch"] == 1
    assert metrics == ckpt["history"] and [r["epoch"] for r in metrics] == [1]
    assert not [p for p in old_run.iterdir() if p.name.endswith(".tmp")]


def test_nothing_is_written_before_the_data_is_loaded(tmp_path):
    out = tmp_path / "fresh"
    with pytest.raises(DatasetError):
        run(TrainConfig(), out, data_path=tmp_path / "nothing-here", verbose=0)
    with pytest.raises(ConfigError):
        run(TrainConfig(batch_size=0), out, data=DATA, verbose=0)
    assert not out.exists()


def test_out_folder_is_checked_first(tmp_path):
    (tmp_path / "file").write_text("keep")
    for out in (tmp_path / "file", tmp_path / "file" / "run"):
        with pytest.raises(ConfigError, match="is a file, not a folder .choose another folder"):
            run(TrainConfig(), out, data_path=tmp_path / "no-data-either", verbose=0)
    assert (tmp_path / "file").read_text() == "keep"


def test_a_crash_between_checkpoint_and_metrics_resumes_bit_identically(tmp_path, monkeypatch):
    """The checkpoint is the commit point and records the metrics: a run killed right after it was
    written (metrics.jsonl one epoch behind) resumes to the same result as one never stopped."""
    config = dict(OLD, epochs=3, schedule="plateau")
    full = run(TrainConfig(**config), tmp_path / "full", data=DATA, verbose=0, plots=False)
    calls = {"n": 0}
    real = train_module._write_metrics

    def crash_on_second(out, records):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(out, records)

    monkeypatch.setattr(train_module, "_write_metrics", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run(TrainConfig(**config), tmp_path / "cut", data=DATA, verbose=0, plots=False)
    monkeypatch.undo()
    assert load(tmp_path / "cut" / "checkpoint.npz")["epoch"] == 2
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 1
    resumed = run(None, tmp_path / "cut", resume=True, data=DATA, verbose=0, plots=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    assert strip(train_module.read_metrics(tmp_path / "cut")) == strip(full.history)


BROKEN = {
    "not json": ('{"model": "mlp",', "is not valid JSON"),
    "a list": ("[1, 2]", "must be a JSON object"),
    "unknown key": (None, "unknown setting\\(s\\) 'epoch'"),
    "wrong type": (None, "--epochs must be a whole number >= 1, got 'five'"),
    "bad value": (None, "--model 'resnet' is not one of"),
    "nan weight decay": (None, "--weight-decay must be a number >= 0, got nan"),
    "bool as an int": (None, "--batch-size must be a whole number >= 1, got True"),
    "edited lr": (None, "does not match the run saved in checkpoint.npz \\(lr: 0.5 in config.json, 0.001 in"),
    "binary": (b"\xff\xfe\x00junk", "cannot be read"),
}


def _broken_text(kind, original):
    text, _ = BROKEN[kind]
    if text is not None:
        return text
    d = json.loads(original)
    if kind == "unknown key":
        d["epoch"] = 3
    elif kind == "wrong type":
        d["epochs"] = "five"
    elif kind == "bad value":
        d["model"] = "resnet"
    elif kind == "nan weight decay":
        d["weight_decay"] = float("nan")
    elif kind == "bool as an int":
        d["batch_size"] = True
    elif kind == "edited lr":
        d["lr"] = 0.5
    return json.dumps(d)


@pytest.mark.parametrize("kind", list(BROKEN))
@pytest.mark.parametrize("command", ["resume", "eval", "cli resume", "cli eval"])
def test_a_broken_or_edited_config_is_one_error_and_changes_nothing(old_run, capsys, kind, command):
    path = old_run / "config.json"
    broken = _broken_text(kind, path.read_text())
    if isinstance(broken, bytes):
        path.write_bytes(broken)
    else:
        path.write_text(broken)
    before = folder_bytes(old_run)
    message = BROKEN[kind][1]
    if command == "resume":
        with pytest.raises(ConfigError, match=message):
            run(TrainConfig(epochs=3), old_run, resume=True, data=DATA, verbose=0)
    elif command == "eval":
        with pytest.raises(ConfigError, match=message):
            load_run(old_run)
    else:
        argv = ["train", "--resume", str(old_run), "--quiet"] if command == "cli resume" else ["eval", str(old_run)]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "config.json" in err and "Traceback" not in err
    assert folder_bytes(old_run) == before


def test_a_missing_config_or_checkpoint(old_run, capsys):
    (old_run / "checkpoint.npz").unlink()
    with pytest.raises(ConfigError, match="no config.json and checkpoint.npz there"):
        run(None, old_run, resume=True, data=DATA, verbose=0)
    assert cli.main(["eval", str(old_run)]) == 2
    assert "is not a training run" in capsys.readouterr().err


def test_a_damaged_checkpoint_is_one_error(old_run, capsys):
    raw = bytearray((old_run / "checkpoint.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (old_run / "checkpoint.npz").write_bytes(bytes(raw))
    before = folder_bytes(old_run)
    for argv in (["eval", str(old_run)], ["train", "--resume", str(old_run), "--quiet"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "SHA-256" in err and "checkpoint.npz" in err
    assert folder_bytes(old_run) == before
