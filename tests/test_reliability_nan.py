"""NaN/Inf training: a non-finite loss (training or validation) is reported with the epoch, the step
and the learning rate, is never applied, and no checkpoint ever holds non-finite weights; the last
good checkpoint stays byte for byte."""
import json
import math
import re
import warnings

import numpy as np
import pytest

from tinyopt import cli, keras
from tinyopt import train as train_module
from tinyopt.checkpoint import load
from tinyopt.keras import callbacks, layers
from tinyopt.loop import TrainingDiverged
from tinyopt.nn import functional as F
from tinyopt.train import TrainConfig, run

from conftest import needs_fashion_mnist


def synthetic(seed=0, n=96, d=8, classes=3):
    g = np.random.default_rng(seed)
    centers = g.normal(scale=2.0, size=(classes, d))

    def split(m):
        y = g.integers(0, classes, size=m)
        return (centers[y] + g.normal(size=(m, d))).astype(np.float32), y.astype(np.int64)
    return split(n), split(40), split(40)


def folder_bytes(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


class NaNAt:
    """F.cross_entropy, but NaN on chosen calls (training calls are reduction='mean', validation 'sum')."""

    def __init__(self, real, train_call=None, val_call=None):
        self.real, self.train_call, self.val_call = real, train_call, val_call
        self.train_calls = self.val_calls = 0

    def __call__(self, logits, target, *args, reduction="mean", **kwargs):
        loss = self.real(logits, target, *args, reduction=reduction, **kwargs)
        if reduction == "sum":
            self.val_calls += 1
            return loss * np.nan if self.val_calls == self.val_call else loss
        self.train_calls += 1
        return loss * np.inf if self.train_calls == self.train_call else loss


def first_epoch(tmp_path, **overrides):
    config = TrainConfig(**dict(dict(model="mlp", optimizer="sgd", lr=0.05, epochs=3, batch_size=16, seed=2), **overrides))
    out = tmp_path / "run"
    data = synthetic()
    run(config, out, data=data, verbose=0, plots=False, stop_after_epoch=1)
    return config, out, data


# ----------------------------------------------------------------------------- tinyopt train


@pytest.mark.parametrize("step", [1, 3, 6])  # 6 steps per epoch; the resumed run starts with epoch 2
def test_a_training_nan_stops_the_run_and_the_last_good_checkpoint_stays(tmp_path, monkeypatch, step):
    config, out, data = first_epoch(tmp_path)
    before = folder_bytes(out)
    monkeypatch.setattr(F, "cross_entropy", NaNAt(F.cross_entropy, train_call=step))
    with pytest.raises(TrainingDiverged, match=rf"^loss became inf at epoch 2, step {step} \(global step "
                                               rf"{6 + step}\) with learning rate 0.05; the weights are still "
                                               r"finite: this step was not applied; lower it, e\.g\. --lr 0\.005") as e:
        run(None, out, resume=True, data=data, verbose=0, plots=False)
    assert (e.value.epoch, e.value.step, e.value.global_step, e.value.lr) == (2, step, 6 + step, 0.05)
    assert folder_bytes(out) == before
    monkeypatch.undo()
    resumed = run(None, out, resume=True, data=data, verbose=0, plots=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]


@pytest.mark.parametrize("val_call", [2, 3])  # the validation after epoch 2 or 3 (one 'sum' call per epoch)
def test_a_validation_nan_stops_the_run_before_its_checkpoint(tmp_path, monkeypatch, val_call):
    config, out, data = first_epoch(tmp_path, schedule="plateau")
    before = folder_bytes(out)
    monkeypatch.setattr(F, "cross_entropy", NaNAt(F.cross_entropy, val_call=val_call - 1))
    with pytest.raises(TrainingDiverged, match=rf"^validation loss became nan at epoch {val_call} \(global step "
                                               rf"{6 * val_call}\) with learning rate 0.05.*last good epoch is kept"):
        run(None, out, resume=True, data=data, verbose=0, plots=False)
    after = folder_bytes(out)
    if val_call == 2:
        assert after == before
    assert load(out / "checkpoint.npz")["epoch"] == val_call - 1
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, val_call))


def test_weights_that_overflow_with_finite_losses_are_never_saved(tmp_path, monkeypatch):
    config, out, data = first_epoch(tmp_path)
    before = folder_bytes(out)
    real = train_module.evaluate

    def overflowing(model, x, y, batch_size=500):
        real(model, x, y, batch_size)
        model[1].weight.data[0, 0] = np.inf  # as an overflowing last update would, unseen by any loss
        return 0.5, 0.5, None

    monkeypatch.setattr(train_module, "evaluate", overflowing)
    with pytest.raises(TrainingDiverged, match=r"weights became non-finite in epoch 2 \(model/1\.weight holds NaN/inf\) "
                                               r"although every loss was finite.*last good epoch is kept"):
        run(None, out, resume=True, data=data, verbose=0, plots=False)
    assert folder_bytes(out) == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_new_run_leaves_no_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match="at epoch 1, step"):
        run(TrainConfig(optimizer="sgd", lr=1e12, epochs=2, batch_size=16), tmp_path / "new", data=synthetic(),
            verbose=0)
    assert not (tmp_path / "new").exists()


@needs_fashion_mnist
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_cli_divergence_is_one_line_exit_1(tmp_path, capsys):
    code = cli.main(["train", "--optimizer", "sgd", "--lr", "1e12", "--epochs", "1", "--train-size", "200",
                     "--test-size", "50", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "training diverged: loss became" in err and "with learning rate 1e+12" in err and "--lr 1e+11" in err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- Keras fit


def blobs(n=60, d=4, classes=3, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(scale=3.0, size=(classes, d))
    y = g.integers(0, classes, size=n)
    return (centers[y] + g.normal(size=(n, d))).astype(np.float32), y


def compiled(lr=0.05):
    model = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(4,), rng=0),
                              layers.Dense(3, activation="softmax", rng=1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class WeightsAtBatchBegin(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(self.model.get_weights())


def poisoned(bad_row, n=60):
    x, y = blobs(n)
    x[bad_row] = np.nan
    return x, y


@pytest.mark.parametrize("bad_row,epoch,step", [(0, 1, 1), (25, 1, 3), (59, 1, 6)])
def test_fit_raises_on_a_nan_loss_without_applying_it(bad_row, epoch, step):
    x, y = poisoned(bad_row)
    model = compiled()
    spy = WeightsAtBatchBegin()
    hint = "before any update" if step == 1 else "this step was not applied"
    with pytest.raises(TrainingDiverged, match=rf"loss became nan at epoch {epoch}, step {step} .*learning rate "
                                               rf"0\.05; the weights are still finite: {hint}.*TerminateOnNaN"):
        model.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0, callbacks=[spy])
    for got, want in zip(model.get_weights(), spy.seen[-1]):
        np.testing.assert_array_equal(got, want)
        assert np.all(np.isfinite(got))


def test_terminate_on_nan_stops_before_the_nan_step():
    x, y = poisoned(35)
    model = compiled()
    spy = WeightsAtBatchBegin()
    hist = model.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0,
                     callbacks=[spy, callbacks.TerminateOnNaN()])
    assert hist.epoch == [0] and math.isnan(hist.history["loss"][0])
    assert len(spy.seen) == 4  # batches 0..3; batch 3 (rows 30-39) was the NaN one and was not applied
    for got, want in zip(model.get_weights(), spy.seen[3]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_terminate_on_nan_also_watches_val_loss():
    x, y = blobs()
    xv, yv = blobs(20, seed=1)
    xv[3] = np.inf
    model = compiled()
    hist = model.fit(x, y, validation_data=(xv, yv), epochs=3, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert hist.epoch == [0] and math.isnan(hist.history["val_loss"][0])
    with pytest.raises(TrainingDiverged, match=r"val_loss became nan at epoch 1 \(global step 2\) with learning "
                                               r"rate 0\.05; the weights are still finite"):
        compiled().fit(x, y, validation_data=(xv, yv), epochs=3, verbose=0)


@pytest.mark.parametrize("lr", [3.0, 10.0, 1e3])
def test_a_diverging_learning_rate_in_fit_is_reported(lr):
    g = np.random.default_rng(0)
    x = g.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.arange(4.0)).astype(np.float32)[:, None]
    model = keras.Sequential([layers.Dense(1, input_shape=(4,), rng=0)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(TrainingDiverged, match=rf"loss became (nan|inf) at epoch \d+, step \d+ .*learning rate "
                                                   rf"{lr:g}; the weights are still finite") as info:
            model.fit(x, y, epochs=100, batch_size=16, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert info.value.epoch >= 1 and info.value.step >= 1


def test_train_on_batch_refuses_a_nan_loss_and_changes_nothing():
    x, y = poisoned(2, n=10)
    model = compiled()
    before = model.get_weights()
    with pytest.raises(TrainingDiverged, match=r"loss became nan with learning rate 0\.05.*train_on_batch did not "
                                               r"apply the step"):
        model.train_on_batch(x, y)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("best_only,monitor", [(True, "val_loss"), (True, "loss"), (False, "val_loss")])
def test_model_checkpoint_never_writes_non_finite_weights(tmp_path, best_only, monitor):
    """Epoch 0 and 1 fine, then (a) the weights overflow at the end of epoch 2, (b) a NaN loss in epoch 3."""
    x, y = blobs()

    class Overflow(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.saved = self.model.get_weights()
                self.model.layers[0].linear.weight.data[0, 0] = np.inf

    class Restore(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.model.set_weights(overflow.saved)
                x[:] = np.where(np.arange(len(x))[:, None] == 5, np.nan, x)  # epoch 3 meets a NaN

    overflow = Overflow()
    path = tmp_path / "ckpt.npz"
    ckpt = callbacks.ModelCheckpoint(path, monitor=monitor, save_best_only=best_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model_fit(x, y, [overflow, ckpt, Restore(), callbacks.TerminateOnNaN()])
    skipped = [str(w.message) for w in caught if "ModelCheckpoint" in str(w.message)]
    assert len(skipped) == 2 and re.fullmatch(r"ModelCheckpoint: epoch 3 not saved: the weights are not finite "
                                              r"\(model/\S+ holds NaN/inf\); the last checkpoint saved stays", skipped[0])
    assert skipped[1] == "ModelCheckpoint: epoch 4 not saved: loss is nan; the last checkpoint saved stays"
    assert hist.epoch == [0, 1, 2, 3] and math.isnan(hist.history["loss"][3])
    saved = load(path)
    assert saved["epoch"] in (1, 2) and all(np.all(np.isfinite(v)) for v in saved["model"].values())


def model_fit(x, y, cbs):
    return compiled().fit(x, y, batch_size=10, epochs=6, shuffle=False, validation_split=0.2, verbose=0, callbacks=cbs)


def test_a_nan_first_value_never_becomes_the_best(tmp_path):
    x, y = blobs()
    model = compiled()
    model.fit(x, y, epochs=1, verbose=0)
    ckpt = callbacks.ModelCheckpoint(tmp_path / "b-{epoch}.npz", monitor="val_loss", save_best_only=True)
    ckpt.set_model(model)
    for epoch, value in enumerate([np.nan, 0.9, np.inf, 0.95, 0.5]):
        if math.isfinite(value):
            ckpt.on_epoch_end(epoch, {"loss": 0.3, "val_loss": value})
        else:
            with pytest.warns(RuntimeWarning, match=f"epoch {epoch + 1} not saved: val_loss is {value}"):
                ckpt.on_epoch_end(epoch, {"loss": 0.3, "val_loss": value})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b-2.npz", "b-5.npz"] and ckpt.best == 0.5
    with pytest.warns(RuntimeWarning, match="epoch 6 not saved: loss is nan"):
        ckpt.on_epoch_end(5, {"loss": np.nan, "val_loss": 0.1})
    assert ckpt.best == 0.5
