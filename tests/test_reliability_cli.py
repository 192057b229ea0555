"""CLI values that were silently wrong or crashed: every user mistake is one line naming the fix,
exit status 2, and nothing is written."""
import numpy as np
import pytest

from tinyopt import cli
from tinyopt.train import TrainConfig, run

from conftest import needs_fashion_mnist


def one_line_error(capsys, argv, *needles, code=2):
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and err.startswith("tinyopt")
    for needle in needles:
        assert needle in err, (needle, err)
    return err


TRAIN_MISTAKES = [
    (["--weight-decay", "nan"], "--weight-decay must be a number >= 0, got nan"),
    (["--weight-decay", "inf"], "--weight-decay must be a number >= 0, got inf"),
    (["--weight-decay", "-0.1"], "--weight-decay must be a number >= 0"),
    (["--optimizer", "nesterov", "--momentum", "0"], "--optimizer nesterov needs --momentum > 0"),
    (["--optimizer", "momentum", "--momentum", "-1"], "--momentum must be in [0, 1), got -1.0"),
    (["--optimizer", "momentum", "--momentum", "1.5"], "never forgets a gradient"),
    (["--optimizer", "nesterov", "--momentum", "nan"], "--momentum must be in [0, 1), got nan"),
    (["--momentum", "0.5"], "--momentum applies to --optimizer momentum or nesterov, not adam"),
    (["--seed", "-1"], "--seed: expected a number >= 0"),
    (["--seed", "1.5"], "--seed: expected a whole number"),
    (["--lr", "nan"], "--lr must be a positive number, got nan"),
    (["--lr=-inf"], "--lr must be a positive number"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--lr", "fast"], "--lr: expected a number, got 'fast'"),
    (["--epochs", "0"], "--epochs: expected a number >= 1"),
    (["--batch-size", "-64"], "--batch-size: expected a number >= 1"),
    (["--train-size", "1"], "--train-size must be a whole number >= 2"),
    (["--schedule", "cos"], "invalid choice: 'cos'"),
    (["--resume", "somewhere", "--out", "elsewhere"], "give either --out DIR"),
]


@pytest.mark.parametrize("argv,needle", TRAIN_MISTAKES)
def test_train_mistakes(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, ["train", *argv, "--out", str(tmp_path / "run")] if "--out" not in argv
                   else ["train", *argv], needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", ["missing", "empty", "a file"])
def test_data_folder_mistakes_name_the_folder(tmp_path, monkeypatch, capsys, make):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    if make == "empty":
        data.mkdir()
    elif make == "a file":
        data.write_text("not a folder")
    needles = [f"--data {data}"] + (["(no such folder)"] if make == "missing" else [])
    needles += ["is a file, not a folder"] if make == "a file" else ["train-images-idx3-ubyte.gz",
                                                                   "leave out --data"]
    for command in (["train", "--out", str(tmp_path / "run")], ["tour", "--out", str(tmp_path / "tour")]):
        err = one_line_error(capsys, [*command, "--data", str(data)], *needles)
        assert "apt-get" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "tour").exists()


def test_without_data_the_install_hint_stays(tmp_path, monkeypatch, capsys):
    from tinyopt.datasets import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "search_dirs", lambda path=None: [tmp_path])
    one_line_error(capsys, ["train", "--out", str(tmp_path / "run")], "apt-get install dataset-fashion-mnist")


def _a_run(tmp_path):
    g = np.random.default_rng(0)
    x = g.normal(size=(40, 784)).astype(np.float32)
    y = np.arange(40) % 10
    data = ((x, y), (x[:10], y[:10]), (x[:10], y[:10]))
    run(TrainConfig(model="mlp", epochs=1, batch_size=20), tmp_path / "run", data=data, verbose=0, plots=False)
    return tmp_path / "run"


QUANTIZE_MISTAKES = [
    (["--test-size", "-5"], "--test-size: expected a number >= 1, got -5"),
    (["--test-size", "0"], "--test-size: expected a number >= 1, got 0"),
    (["--qat-steps", "0"], "--qat-steps: expected a number >= 1, got 0"),
    (["--qat-epochs", "1", "--qat-steps", "-3"], "--qat-steps: expected a number >= 1"),
    (["--qat-steps", "5"], "--qat-steps limits the QAT fine-tuning, which --qat-epochs 0 skips"),
    (["--qat-epochs", "-1"], "--qat-epochs: expected a number >= 0"),
    (["--calibration", "abc"], "--calibration: expected a whole number, got 'abc'"),
    (["--calibration", "0"], "--calibration: expected a number >= 1"),
    (["--qat-lr", "nan"], "--qat-lr: expected a positive number"),
    (["--qat-lr", "inf"], "--qat-lr: expected a positive number"),
    (["--latency-batch", "0"], "--latency-batch: expected a number >= 1"),
    (["--threads", "0"], "--threads: expected a number >= 1"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("argv,needle", QUANTIZE_MISTAKES)
def test_quantize_mistakes(tmp_path, capsys, argv, needle):
    folder = _a_run(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    one_line_error(capsys, ["quantize", str(folder), *argv], needle)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_quantize_run_folder_mistakes(tmp_path, capsys):
    one_line_error(capsys, ["quantize", str(tmp_path / "none")], "is not a training run")
    folder = _a_run(tmp_path)
    (folder / "config.json").write_text("{broken")
    one_line_error(capsys, ["quantize", str(folder)], "config.json is not valid JSON")
    one_line_error(capsys, ["quantize", str(folder), "--data", str(tmp_path / "nope")], "config.json")


@needs_fashion_mnist
def test_quantize_data_mistakes(tmp_path, capsys):
    folder = _a_run(tmp_path)
    one_line_error(capsys, ["quantize", str(folder), "--data", str(tmp_path / "nope")],
                   f"--data {tmp_path / 'nope'} (no such folder)")
    one_line_error(capsys, ["quantize", str(folder), "--calibration", "99999999"],
                   "--calibration 99999999 is more than the")
    one_line_error(capsys, ["quantize", str(folder), "--test-size", "99999"], "--test-size 99999 is more than the")


def test_eval_mistakes(tmp_path, capsys):
    one_line_error(capsys, ["eval", str(tmp_path)], "is not a training run")
    one_line_error(capsys, ["eval", str(tmp_path), "--test-size", "0"], "--test-size: expected a number >= 1")
    folder = _a_run(tmp_path)
    (folder / "checkpoint.npz").write_text("not a checkpoint")
    one_line_error(capsys, ["eval", str(folder)], "is a text file")
