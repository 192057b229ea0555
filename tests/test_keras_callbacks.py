"""tinyopt.keras callbacks (EarlyStopping, ModelCheckpoint, LR schedulers, CSVLogger), Conv2D
channels-last against torch, and Keras' Adam formula."""
import csv

import numpy as np
import pytest

import tinyopt as to
from tinyopt import keras
from tinyopt.keras import callbacks, layers


def blobs(n=200, d=6, classes=3, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(scale=3.0, size=(classes, d))
    y = g.integers(0, classes, size=n)
    return (centers[y] + g.normal(size=(n, d))).astype(np.float32), y


def compiled(lr=0.1, seed=0):
    model = keras.Sequential([layers.Dense(16, activation="relu", input_shape=(6,), rng=seed),
                              layers.Dense(3, activation="softmax", rng=seed + 1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class ScriptedLoss(callbacks.Callback):
    """Overwrite the monitored value with a script, so stopping decisions are known in advance."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key, self.weights = values, key, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights.append(self.model.get_weights())


def test_early_stopping_stops_after_patience_and_restores_best_weights():
    x, y = blobs()
    model = compiled()
    script = ScriptedLoss([1.0, 0.5, 0.7, 0.6, 0.8, 0.9, 0.1, 0.1])
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    hist = model.fit(x, y, epochs=8, batch_size=32, validation_split=0.2, verbose=0, rng=0,
                     callbacks=[script, stop])
    # best at epoch 1 (0.5); epochs 2, 3, 4 do not improve → stop at epoch 4
    assert hist.epoch == [0, 1, 2, 3, 4]
    assert stop.stopped_epoch == 4 and stop.best_epoch == 1
    for got, best in zip(model.get_weights(), script.weights[1]):
        np.testing.assert_array_equal(got, best)
    assert not all(np.array_equal(a, b) for a, b in zip(script.weights[4], script.weights[1]))


def test_early_stopping_min_delta_and_max_mode():
    x, y = blobs()
    model = compiled()
    script = ScriptedLoss([0.50, 0.505, 0.509, 0.6], key="val_accuracy")
    stop = callbacks.EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.01)
    hist = model.fit(x, y, epochs=4, batch_size=32, validation_split=0.2, verbose=0, callbacks=[script, stop])
    assert stop.mode == "max" and hist.epoch == [0, 1, 2]  # gains below min_delta do not count


def test_early_stopping_names_a_missing_monitor():
    x, y = blobs()
    with pytest.raises(KeyError, match="val_loss.*available: accuracy, learning_rate, loss"):
        compiled().fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_learning_rate_scheduler_sets_lr_per_epoch():
    x, y = blobs()
    model = compiled(lr=0.1)
    hist = model.fit(x, y, epochs=4, verbose=0,
                     callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5**epoch)])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert model.optimizer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)


def test_reduce_lr_on_plateau():
    x, y = blobs()
    model = compiled(lr=0.1)
    script = ScriptedLoss([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
    cb = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.03)
    hist = model.fit(x, y, epochs=7, validation_split=0.2, verbose=0, callbacks=[script, cb])
    # learning_rate is logged before the callback acts, so it shows the lr used in that epoch
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    assert model.optimizer.learning_rate == pytest.approx(0.03)  # halved again at epoch 6, floored at min_lr


def test_model_checkpoint_best_only_and_csv_logger(tmp_path):
    x, y = blobs()
    model = compiled()
    script = ScriptedLoss([1.0, 0.4, 0.6, 0.3])
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "best-{epoch:02d}.npz"), monitor="val_loss", save_best_only=True)
    logger = callbacks.CSVLogger(tmp_path / "log.csv")
    model.fit(x, y, epochs=4, validation_split=0.2, verbose=0, callbacks=[script, ckpt, logger])
    assert sorted(p.name for p in tmp_path.glob("best-*.npz")) == ["best-01.npz", "best-02.npz", "best-04.npz"]
    saved = to.checkpoint.load(tmp_path / "best-04.npz")
    assert saved["epoch"] == 4 and "optimizer" in saved
    for a, b in zip(saved["model"].values(), model.state_dict().values()):
        np.testing.assert_array_equal(a, b)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])
    assert float(rows[3]["val_loss"]) == pytest.approx(0.3)


def test_callback_hooks_are_called_in_keras_order():
    calls = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda e, logs: calls.append(f"epoch_begin {e}"),
        on_train_batch_end=lambda b, logs: calls.append(f"batch_end {b}"),
        on_epoch_end=lambda e, logs: calls.append(f"epoch_end {e}"),
        on_train_end=lambda logs: calls.append("train_end"),
    )
    x, y = blobs(n=20)
    compiled().fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[cb])
    assert calls == ["train_begin", "epoch_begin 0", "batch_end 0", "batch_end 1", "epoch_end 0",
                     "epoch_begin 1", "batch_end 0", "batch_end 1", "epoch_end 1", "train_end"]


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = blobs(n=40)
    compiled().fit(x, y, epochs=3, batch_size=8, verbose=2)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3") and "loss:" in lines[0]


def test_verbose_0_is_silent(capsys):
    x, y = blobs(n=40)
    compiled().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_keras_adam_follows_keras_formula():
    """Keras: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², α = γ√(1−β₂ᵗ)/(1−β₁ᵗ), θ ← θ − α m/(√v + ε)."""
    x, y = blobs(n=8)
    model = keras.Sequential([layers.Dense(3, input_shape=(6,), rng=0)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=to.nn.CrossEntropyLoss())
    lin = model.layers[0].linear
    theta = lin.weight.data.astype(np.float64).copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    b1, b2, eps, lr = 0.9, 0.999, 1e-7, 0.01
    for t in (1, 2, 3):
        lin.weight.grad = None
        loss = to.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        g = lin.weight.grad.astype(np.float64)
        model.optimizer.zero_grad()
        model.train_on_batch(x, y)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        theta = theta - alpha * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(lin.weight.data, theta, rtol=1e-4, atol=1e-6)


def test_conv2d_channels_last_matches_torch():
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(0)
    x = g.normal(size=(2, 9, 8, 3)).astype(np.float32)
    for padding, strides in (("valid", 1), ("same", 1), ("valid", 2)):
        conv = layers.Conv2D(4, (3, 3), strides=strides, padding=padding, activation="relu", input_shape=(9, 8, 3), rng=1)
        model = keras.Sequential([conv, layers.MaxPooling2D((2, 2)), layers.Flatten()])
        kernel, bias = conv.get_weights()
        assert kernel.shape == (3, 3, 3, 4)
        ref = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2),
                                         torch.from_numpy(kernel).permute(3, 2, 0, 1), torch.from_numpy(bias),
                                         stride=strides, padding=1 if padding == "same" else 0)
        ref = torch.nn.functional.max_pool2d(torch.relu(ref), 2).permute(0, 2, 3, 1).reshape(2, -1)
        out = model.predict(x)
        assert model.output_shape == (None, ref.shape[1])
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(to.nn.ShapeError, match="channels-last"):
        keras.Sequential([layers.Conv2D(4, 3, input_shape=(28, 28))])
