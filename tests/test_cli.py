"""The training loop (tinyopt.train) and the `tinyopt` command: end to end in temp folders.

In-process tests use small synthetic data; subprocess tests run the real command on slices of
Fashion-MNIST (skipped when the data set is not installed)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyopt import cli
from tinyopt.checkpoint import load
from tinyopt.train import ConfigError, TrainConfig, TrainingDiverged, run

from conftest import needs_fashion_mnist




def synthetic(seed=0, n=300, d=20, classes=4):
    g = np.random.default_rng(seed)
    centers = g.normal(scale=2.0, size=(classes, d))
    def split(m):
        y = g.integers(0, classes, size=m)
        return (centers[y] + g.normal(size=(m, d))).astype(np.float32), y.astype(np.int64)
    return split(n), split(80), split(80)


def tinyopt(*args, cwd, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # threaded BLAS crawls when the cores are shared
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "tinyopt", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


# ----------------------------------------------------------------------------- tinyopt.train in-process


def test_run_writes_metrics_checkpoint_and_plots(tmp_path):
    config = TrainConfig(model="mlp", optimizer="momentum", lr=0.05, schedule="cosine", epochs=3, batch_size=32)
    result = run(config, tmp_path, data=synthetic(), verbose=0)
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert len(records[0]["lr_steps"]) == 10 and records[0]["lr_steps"][0] == pytest.approx(0.05)
    assert len(records[0]["loss_steps"]) == 10 and all(np.isfinite(records[0]["loss_steps"]))
    lrs = [lr for r in records for lr in r["lr_steps"]]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # cosine decreases
    ckpt = load(tmp_path / "checkpoint.npz")
    assert ckpt["epoch"] == 3 and ckpt["global_step"] == 30 and isinstance(ckpt["rng"], np.random.Generator)
    assert result.test_accuracy > 0.8
    for png in ("curves.png", "lr.png", "steps.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "config.json").read_text())["schedule"] == "cosine"


@pytest.mark.parametrize("optimizer,schedule", [("adam", "onecycle"), ("nesterov", "plateau"), ("rmsprop", "step")])
def test_resume_is_bit_identical(tmp_path, optimizer, schedule):
    data = synthetic(1)
    config = dict(model="mlp", optimizer=optimizer, schedule=schedule, epochs=4, batch_size=32, seed=3)
    full = run(TrainConfig(**config), tmp_path / "full", data=data, verbose=0, plots=False)
    run(TrainConfig(**config), tmp_path / "cut", data=data, verbose=0, plots=False, stop_after_epoch=2)
    assert load(tmp_path / "cut" / "checkpoint.npz")["epoch"] == 2
    resumed = run(None, tmp_path / "cut", resume=True, data=data, verbose=0, plots=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    a, b = load(tmp_path / "full" / "checkpoint.npz"), load(tmp_path / "cut" / "checkpoint.npz")
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), key
    assert a["scheduler"] == b["scheduler"]
    np.testing.assert_array_equal(a["rng"].random(4), b["rng"].random(4))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_is_reported_with_its_step(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step \d+ .*learning rate 1e\+12.*--lr 1e\+11"):
        run(TrainConfig(optimizer="sgd", lr=1e12, epochs=2, batch_size=16), tmp_path, data=synthetic(), verbose=0)


def test_bad_config_values_name_the_allowed_ones(tmp_path):
    with pytest.raises(ConfigError, match="--schedule 'cos' is not one of: none, step, exp"):
        run(TrainConfig(schedule="cos"), tmp_path, data=synthetic(), verbose=0)
    with pytest.raises(ConfigError, match="no config.json"):
        run(None, tmp_path / "empty", resume=True, data=synthetic(), verbose=0)


def test_resume_refuses_a_new_epoch_count_with_a_planned_schedule(tmp_path):
    run(TrainConfig(schedule="cosine", epochs=2), tmp_path, data=synthetic(), verbose=0, plots=False, stop_after_epoch=1)
    with pytest.raises(ConfigError, match="planned for 2 epochs"):
        run(TrainConfig(epochs=5), tmp_path, resume=True, data=synthetic(), verbose=0)


# ----------------------------------------------------------------------------- the command, errors


def test_bad_flag_value_is_one_line_naming_the_choices(tmp_path, capsys):
    assert cli.main(["train", "--optimizer", "adamm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'adamm'" in err and "'adamw'" in err and "Traceback" not in err
    assert cli.main(["train", "--epochs", "zero"]) == 2
    assert "expected a whole number" in capsys.readouterr().err
    assert cli.main(["eval", str(tmp_path)]) == 2
    assert "is not a training run" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [(["--blas-threads", "1"], "needs --threads"),
                                            (["--threads", "1", "--blas-threads", "2"], "more than --threads")])
def test_thread_flags_are_checked_before_anything_runs(tmp_path, capsys, flags, message):
    assert cli.main(["train", "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_thread_flags_reach_set_num_threads(tmp_path, monkeypatch):
    import tinyopt

    calls = []
    monkeypatch.setattr(tinyopt, "set_num_threads", lambda n, blas_threads=None: calls.append((n, blas_threads)))
    rng = np.random.default_rng(0)
    data = tuple((rng.random((40, 784), dtype=np.float32), rng.integers(0, 10, 40)) for _ in range(3))
    monkeypatch.setattr("tinyopt.train.load_data", lambda config, path=None: data)
    assert cli.main(["train", "--model", "mlp", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run"),
                     "--threads", "2", "--blas-threads", "1"]) == 0
    assert calls == [(2, 1)]


def test_unwritable_out_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["train", "--out", str(blocker / "run"), "--epochs", "1", "--train-size", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "choose another folder" in err


def test_missing_dataset_says_how_to_install(tmp_path, monkeypatch, capsys):
    from tinyopt.datasets import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "search_dirs", lambda path=None: [tmp_path])
    assert cli.main(["train", "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install dataset-fashion-mnist" in err


def test_verify_and_quantize_delegate_or_say_they_are_missing(capsys):
    import importlib.util

    for command, module in (("verify", "tinyopt.verify"), ("quantize", "tinyopt.quant.cli")):
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            continue
        assert cli.main([command]) == 2
        err = capsys.readouterr().err
        assert f"{module} is not part of this tinyopt version" in err and len(err.strip().splitlines()) == 1


def test_quantize_is_delegated_with_its_arguments(tmp_path, capsys):
    pytest.importorskip("tinyopt.quant.cli")
    assert cli.main(["quantize", str(tmp_path / "no-run")]) == 2
    assert "not a training run" in capsys.readouterr().err


def test_summary_table_aligns_labels():
    rows = cli.summary_table([("a", "1"), ("longer label", "value")]).splitlines()
    assert rows[1] == "a            | 1" and rows[2] == "longer label | value"


# ----------------------------------------------------------------------------- the command, end to end


@needs_fashion_mnist
def test_cli_train_eval_and_resume_end_to_end(tmp_path):
    common = ["--model", "mlp", "--optimizer", "adam", "--schedule", "linear", "--epochs", "2", "--batch-size", "64",
              "--train-size", "400", "--test-size", "200", "--seed", "1"]
    full = tinyopt("train", *common, "--out", tmp_path / "full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert "epoch 2/2" in full.stdout and "test accuracy" in full.stdout
    for name in ("metrics.jsonl", "checkpoint.npz", "config.json", "curves.png", "lr.png"):
        assert (tmp_path / "full" / name).is_file(), name

    cut = tinyopt("train", *common, "--out", tmp_path / "cut", "--stop-after-epoch", "1", cwd=tmp_path)
    assert cut.returncode == 0 and "epoch 2/2" not in cut.stdout
    resumed = tinyopt("train", "--resume", tmp_path / "cut", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "epoch 2/2" in resumed.stdout
    a, b = load(tmp_path / "full" / "checkpoint.npz"), load(tmp_path / "cut" / "checkpoint.npz")
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), key

    ev = tinyopt("eval", tmp_path / "full", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    acc = float(ev.stdout.split("test accuracy ")[1].split()[0])
    assert 0.5 < acc <= 1.0
    assert "true \\ pred" in ev.stdout and (tmp_path / "full" / "confusion.png").is_file()
    saved = json.loads((tmp_path / "full" / "eval.json").read_text())
    assert np.sum(saved["confusion"]) == 200 and np.trace(saved["confusion"]) == round(acc * 200)


@needs_fashion_mnist
def test_cli_tour_fast(tmp_path):
    """The command CI and the README run: under a minute (about 15 s on 2 idle cores)."""
    res = tinyopt("tour", "--fast", "--out", tmp_path / "tour", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "lenet5" in res.stdout
    acc = float(res.stdout.split("test accuracy")[-1].split("|")[1].split()[0])
    assert acc > 0.6
    for name in ("curves.png", "steps.png", "summary.png", "lr.png", "confusion.png", "metrics.jsonl", "checkpoint.npz"):
        assert (tmp_path / "tour" / name).is_file(), name
    # one run of the whole subject, in its order: train → prune → quantize → distil → mixed precision
    rows = ["pruned 50 % channels + shrink", "int8 weights (static PTQ)", "student 784-16-10 scratch / distilled",
            "accuracy fp32 / fp16 / bf16 autocast", "tour time"]
    positions = [res.stdout.find(row) for row in rows]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), res.stdout[-3000:]
