"""The cnn92 recipe: the model, `tinyopt train --preset cnn92`, and `--augment` runs resuming bit for bit
(with the model's Dropout drawing from the run's generator too)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import tinyopt as to
from tinyopt import cli
from tinyopt.checkpoint import load


def test_cnn92_shapes_and_parameter_count():
    from tinyopt.models import CNN92

    model = CNN92(rng=np.random.default_rng(0))
    assert model.num_parameters() == 241_770
    assert model(to.tensor(np.zeros((2, 1, 28, 28), np.float32))).shape == (2, 10)
    assert model(to.tensor(np.zeros((2, 28, 28), np.float32))).shape == (2, 10)
    with pytest.raises(to.errors.ShapeError, match="CNN92"):
        model(to.tensor(np.zeros((2, 1, 32, 32), np.float32)))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    from test_datasets import fake_arrays, write_idx_dataset
    from tinyopt.datasets import fashion_mnist

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYOPT_DATA", raising=False)
    folder = tmp_path / "data"
    write_idx_dataset(fashion_mnist, folder, monkeypatch, fake_arrays(n_train=72, n_test=16))
    return folder


def strip(path):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (path / "metrics.jsonl").read_text().splitlines()]


def same_checkpoints(a, b):
    a, b = load(a / "checkpoint.npz"), load(b / "checkpoint.npz")
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), key
    np.testing.assert_array_equal(a["rng"].random(4), b["rng"].random(4))


def test_preset_sets_the_recipe_and_explicit_flags_win(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--preset", "cnn92", "--epochs", "1", "--batch-size", "32", "--data", str(data_dir),
                     "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["optimizer"], config["schedule"], config["augment"]) == ("cnn92", "adamw", "onecycle", True)
    assert (config["lr"], config["weight_decay"]) == (3e-3, 1e-2)
    assert (config["epochs"], config["batch_size"]) == (1, 32)  # the flags given win over the preset's 9 and 128
    assert config["crop"] is False  # the recipe flips only
    assert "test accuracy" in capsys.readouterr().out
    assert cli.main(["train", "--preset", "fast"]) == 2
    assert "'cnn92'" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["mlp", "cnn92"])
def test_cli_augment_resume_is_bit_identical(tmp_path, data_dir, model):
    common = ["train", "--model", model, "--optimizer", "adamw", "--schedule", "onecycle", "--augment",
              "--epochs", "2", "--batch-size", "16", "--seed", "4", "--data", str(data_dir), "--quiet"]
    assert cli.main(common + ["--out", str(tmp_path / "full")]) == 0
    assert cli.main(common + ["--out", str(tmp_path / "cut"), "--stop-after-epoch", "1"]) == 0
    assert len(strip(tmp_path / "cut")) == 1
    assert cli.main(["train", "--resume", str(tmp_path / "cut"), "--data", str(data_dir), "--quiet"]) == 0
    assert strip(tmp_path / "cut") == strip(tmp_path / "full")
    same_checkpoints(tmp_path / "full", tmp_path / "cut")


def test_augment_changes_the_run(tmp_path, data_dir):
    common = ["train", "--model", "mlp", "--epochs", "1", "--batch-size", "16", "--data", str(data_dir), "--quiet"]
    assert cli.main(common + ["--out", str(tmp_path / "plain")]) == 0
    assert cli.main(common + ["--out", str(tmp_path / "aug"), "--augment"]) == 0
    assert strip(tmp_path / "plain")[0]["train_loss"] != strip(tmp_path / "aug")[0]["train_loss"]


def test_no_crop_flips_only_and_crop_is_the_default(tmp_path, data_dir):
    steps = to.transforms.fashion_mnist_augment(generator=0, crop=False).transforms
    assert [type(t).__name__ for t in steps] == ["RandomHorizontalFlip"]
    steps = to.transforms.fashion_mnist_augment(generator=0).transforms
    assert [type(t).__name__ for t in steps] == ["RandomCrop", "RandomHorizontalFlip"]
    with pytest.raises(TypeError, match="crop"):
        to.transforms.fashion_mnist_augment(crop="no")
    common = ["train", "--model", "mlp", "--epochs", "1", "--batch-size", "16", "--data", str(data_dir), "--quiet",
              "--augment"]
    assert cli.main(common + ["--out", str(tmp_path / "both")]) == 0
    assert cli.main(common + ["--out", str(tmp_path / "flip"), "--no-crop"]) == 0
    assert json.loads((tmp_path / "both" / "config.json").read_text())["crop"] is True
    assert json.loads((tmp_path / "flip" / "config.json").read_text())["crop"] is False
    assert strip(tmp_path / "both")[0]["train_loss"] != strip(tmp_path / "flip")[0]["train_loss"]
    # the preset's --no-crop is overridden by an explicit --crop
    assert cli.main(["train", "--preset", "cnn92", "--crop", "--epochs", "1", "--batch-size", "32",
                     "--data", str(data_dir), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert json.loads((tmp_path / "p" / "config.json").read_text())["crop"] is True
