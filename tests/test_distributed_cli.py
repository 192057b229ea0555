"""`tinyopt train --distributed` (tinyopt.distributed.training) under `mpiexec -n 2`.

The command runs as tests/mpi_workers/cli_train.py: `tinyopt.cli.main` on generated data (251
training samples, so the last global batch of 32 is 27 samples, split 14/13 on 2 ranks), in a
subprocess with a timeout, so a hang fails instead of blocking the suite. Skipped, with the reason,
without mpi4py or mpiexec (`pip install "tinyopt[distributed]"`)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyopt import cli
from tinyopt.checkpoint import load

ROOT = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).resolve().parent / "mpi_workers"
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(not (importlib.util.find_spec("mpi4py") and MPIEXEC),
                               reason='needs mpi4py and mpiexec: pip install "tinyopt[distributed]"')

COMMON = ["--model", "mlp", "--optimizer", "momentum", "--lr", "0.05", "--seed", "1"]
FILES = ["checkpoint.npz", "config.json", "curves.png", "lr.png", "metrics.jsonl", "steps.png"]


def tinyopt(*args, n=None, cwd, timeout=240, nan=False, full_disk_at=""):
    """The command on generated data: alone (n=None) or under `mpiexec -n n`."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", MPLBACKEND="Agg", TINYOPT_TEST_NAN="1" if nan else "0",
               TINYOPT_TEST_FULL_DISK=str(full_disk_at))
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        env.pop(name, None)
    command = [sys.executable, str(WORKERS / "cli_train.py"), "train", *map(str, args)]
    if n is not None:
        command = [MPIEXEC, "-n", str(n), *command]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def strip(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in history]


# ----------------------------------------------------------------------------- under mpiexec


@needs_mpi
def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    """2 ranks × 16 == 1 process × 32: weights, per-step losses, epoch metrics (float32 rounding only)."""
    one = ok(tinyopt(*COMMON, "--epochs", "2", "--batch-size", "32", "--out", tmp_path / "one", cwd=tmp_path))
    two = ok(tinyopt(*COMMON, "--epochs", "2", "--distributed", "--batch-size", "16", "--out", tmp_path / "two",
                     n=2, cwd=tmp_path))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == FILES   # one writer: no leftovers
    assert two.stdout.count("epoch 2/2") == 1 and two.stdout.count("test accuracy") == 1   # rank 0 prints
    assert "images/s on 2 ranks (global batch 32)" in two.stdout
    a, b = load(tmp_path / "one" / "checkpoint.npz"), load(tmp_path / "two" / "checkpoint.npz")
    assert set(a["model"]) == set(b["model"])                               # plain keys, no "module."
    for key in a["model"]:
        np.testing.assert_allclose(b["model"][key], a["model"][key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert a["global_step"] == b["global_step"] == 16                      # ceil(251 / 32) = 8 per epoch
    for ra, rb in zip(a["history"], b["history"]):
        np.testing.assert_allclose(rb["loss_steps"], ra["loss_steps"], rtol=1e-5)
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-5)
        assert rb["train_accuracy"] == ra["train_accuracy"] and rb["lr_steps"] == ra["lr_steps"]
        assert rb["world_size"] == 2 and rb["images_per_second"] > 0
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["distributed"] is True and config["world_size"] == 2 and config["batch_size"] == 16


@needs_mpi
def test_resume_under_mpiexec_equals_the_uninterrupted_run(tmp_path):
    """Linear lr scaling with a 1.5-epoch warm-up, stopped after epoch 1 (mid warm-up), resumed: bit for bit."""
    args = [*COMMON, "--epochs", "3", "--distributed", "--batch-size", "16", "--scale-lr", "linear",
            "--warmup-epochs", "1.5", "--quiet"]
    ok(tinyopt(*args, "--out", tmp_path / "full", n=2, cwd=tmp_path))
    ok(tinyopt(*args, "--out", tmp_path / "cut", "--stop-after-epoch", "1", n=2, cwd=tmp_path))
    assert load(tmp_path / "cut" / "checkpoint.npz")["epoch"] == 1
    wrong = tinyopt("--resume", tmp_path / "cut", n=1, cwd=tmp_path)
    assert wrong.returncode == 2 and "resume it with mpiexec -n 2" in wrong.stderr
    ok(tinyopt("--resume", tmp_path / "cut", "--quiet", n=2, cwd=tmp_path))
    a, b = load(tmp_path / "full" / "checkpoint.npz"), load(tmp_path / "cut" / "checkpoint.npz")
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), key
    assert strip(a["history"]) == strip(b["history"]) and a["scheduler"] == b["scheduler"]
    # Goyal et al.'s warm-up: η_t = 2η · (1/2 + t/(2·12)) over T_w = round(1.5 · 8) = 12 steps, then 2η
    lrs = [lr for r in a["history"] for lr in r["lr_steps"]]
    expected = [0.1 * (0.5 + 0.5 * min(t, 12) / 12) for t in range(24)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


@needs_mpi
def test_bad_flag_combinations_are_one_line_and_exit_2_on_every_rank(tmp_path):
    cases = [(["--distributed", "--warmup-epochs", "1"], "--warmup-epochs needs --scale-lr linear"),
             ([], "mpiexec started 2 processes but --distributed is not given")]
    for extra, message in cases:
        result = tinyopt(*COMMON, *extra, "--out", tmp_path / "run", n=2, cwd=tmp_path, timeout=120)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 2 and lines[0] == lines[1] and message in lines[0], lines   # one line per rank
    assert not (tmp_path / "run").exists()


@needs_mpi
def test_a_nan_on_one_rank_stops_every_rank_with_the_error(tmp_path):
    result = tinyopt(*COMMON, "--distributed", "--batch-size", "16", "--out", tmp_path / "run", n=2, nan=True,
                     cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("tinyopt: training diverged")]
    assert len(lines) == 2 and lines[0] == lines[1], result.stderr
    assert "loss became nan at epoch 1" in lines[0] and "the loss was not finite on rank" in lines[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@needs_mpi
def test_a_failed_write_on_rank_0_stops_every_rank(tmp_path):
    """Only rank 0 writes; the others hear of its failure and stop with it instead of training on alone."""
    result = tinyopt(*COMMON, "--epochs", "3", "--distributed", "--batch-size", "16", "--quiet",
                     "--out", tmp_path / "run", n=2, full_disk_at=2, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all("No space left on device" in l for l in lines), lines
    assert any("rank 0 could not write the run folder" in l for l in lines), lines
    assert load(tmp_path / "run" / "checkpoint.npz")["epoch"] == 1   # the last good epoch is kept


@needs_mpi
def test_one_rank_distributed_is_bit_identical_to_plain(tmp_path):
    ok(tinyopt(*COMMON, "--epochs", "1", "--out", tmp_path / "plain", "--quiet", cwd=tmp_path))
    ok(tinyopt(*COMMON, "--epochs", "1", "--distributed", "--out", tmp_path / "dist", "--quiet", n=1, cwd=tmp_path))
    a, b = load(tmp_path / "plain" / "checkpoint.npz"), load(tmp_path / "dist" / "checkpoint.npz")
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), key


# ----------------------------------------------------------------------------- in this process


@pytest.mark.parametrize("flags,message", [
    (["--scale-lr", "linear"], "--scale-lr needs --distributed"),
    (["--distributed", "--scale-lr", "linear", "--warmup-epochs", "1", "--schedule", "onecycle"],
     "does not combine with --schedule onecycle"),
    (["--distributed", "--scale-lr", "linear", "--warmup-epochs", "9"], "more than --epochs 5"),
    (["--distributed", "--scale-lr", "linear", "--warmup-epochs", "-1"], "--warmup-epochs must be a number >= 0"),
    (["--resume", "somewhere", "--scale-lr", "linear"], "cannot change on --resume"),
])
def test_bad_distributed_flags_are_one_line(tmp_path, capsys, flags, message):
    assert cli.main(["train", "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_config_of_a_distributed_run_is_checked():
    from tinyopt.train import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match="world_size 2 needs distributed"):
        TrainConfig(world_size=2).validate()
    assert TrainConfig(lr=0.1, distributed=True, world_size=4, scale_lr="linear").learning_rate == pytest.approx(0.4)
    assert TrainConfig(lr=0.1, distributed=True, world_size=4).learning_rate == 0.1
