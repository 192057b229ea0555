"""tinyopt.keras: Sequential/compile/fit/evaluate/predict/summary on small synthetic data."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import keras, nn
from tinyopt.keras import layers
from tinyopt.nn.module import ShapeError


def blobs(n=240, d=8, classes=3, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(scale=3.0, size=(classes, d))
    y = g.integers(0, classes, size=n)
    x = centers[y] + g.normal(size=(n, d))
    return x.astype(np.float32), y


def mlp(d=8, classes=3, seed=0, hidden=16):
    return keras.Sequential([
        layers.Dense(hidden, activation="relu", input_shape=(d,), rng=seed),
        layers.Dense(classes, activation="softmax", rng=seed + 1),
    ])


def test_fit_lowers_the_loss_and_history_has_the_keys():
    x, y = blobs()
    model = mlp()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x, y, return_dict=True)
    hist = model.fit(x, y, epochs=5, batch_size=16, validation_split=0.25, verbose=0, rng=1)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert all(len(v) == 5 for v in hist.history.values())
    assert hist.params == {"verbose": 0, "epochs": 5, "steps": 12}
    assert hist.epoch == [0, 1, 2, 3, 4]
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    after = model.evaluate(x, y, return_dict=True)
    assert after["loss"] < before["loss"] and after["accuracy"] > 0.9
    assert model.history is hist


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    x, y = blobs(n=50)
    model = mlp()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    # with lr = 0 the weights do not move, so the epoch loss equals the loss on the full data
    assert hist.history["loss"][0] == pytest.approx(model.evaluate(x, y, batch_size=50), rel=1e-5)


def test_sparse_loss_matches_torch_style_cross_entropy_on_logits():
    x, y = blobs(n=32)
    model = mlp()
    probs = model(x)
    keras_loss = keras.losses.get("sparse_categorical_crossentropy")(y, probs).item()
    logits = model.layers[1].linear(model.layers[0](to.tensor(x)))
    torch_style = nn.functional.cross_entropy(logits, y).item()
    assert keras_loss == pytest.approx(torch_style, rel=1e-5)


def test_categorical_loss_and_accuracy_with_one_hot_labels():
    x, y = blobs()
    y1 = keras.utils.to_categorical(y, 3)
    assert y1.shape == (len(y), 3) and np.array_equal(y1.argmax(1), y)
    model = mlp()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y1, epochs=3, batch_size=16, verbose=0, rng=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    pred = model.predict(x)
    assert pred.shape == (len(x), 3)
    np.testing.assert_allclose(pred.sum(1), 1.0, rtol=1e-5)
    acc = model.evaluate(x, y1)[1]
    assert acc == pytest.approx(np.mean(pred.argmax(1) == y))


def test_torch_style_loss_module_and_optimizer_object():
    x, y = blobs()
    model = keras.Sequential([layers.Dense(16, activation="relu", input_shape=(8,), rng=0), layers.Dense(3, rng=1)])
    opt = to.optim.SGD(model.parameters(), lr=0.1)
    model.compile(optimizer=opt, loss=nn.CrossEntropyLoss(), metrics=["accuracy"])
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0, rng=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.8


def test_fit_is_reproducible_with_a_seed():
    x, y = blobs()
    runs = []
    for _ in range(2):
        model = keras.Sequential([layers.Dense(16, activation="relu", input_shape=(8,), rng=3),
                                  layers.Dropout(0.3, rng=4), layers.Dense(3, activation="softmax", rng=5)])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        runs.append(model.fit(x, y, epochs=2, batch_size=8, verbose=0, rng=11).history["loss"])
    assert runs[0] == runs[1]


def test_summary_lists_shapes_and_parameter_counts():
    model = keras.Sequential([layers.Dense(64, activation="relu", input_shape=(784,)), layers.Dense(64, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    text = model.summary(print_fn=None)
    assert "dense (Dense)" in text and "dense_2 (Dense)" in text
    assert "(None, 64)" in text and "(None, 10)" in text
    assert "50,240" in text and "4,160" in text and "650" in text
    assert f"Total params: {784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10:,}" in text


def test_add_builds_lazily_and_unbuilt_summary_says_how():
    model = keras.Sequential()
    model.add(layers.Dense(4))
    with pytest.raises(ValueError, match="input_shape"):
        model.summary()
    model(np.zeros((2, 5), np.float32))
    assert model.built and model.output_shape == (None, 4)
    assert model.count_params() == 5 * 4 + 4


def test_wrong_input_shape_names_the_layer_and_shapes():
    model = mlp(d=8)
    with pytest.raises(ShapeError, match=r"dense.*\(None, 8\).*\(None, 5\)"):
        model.predict(np.zeros((2, 5), np.float32))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown optimizer"):
        mlp().compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="unknown loss"):
        mlp().compile(optimizer="sgd", loss="crossentropy")
    with pytest.raises(ValueError, match="unknown activation"):
        layers.Dense(3, activation="relu6")
    with pytest.raises(RuntimeError, match="compile"):
        mlp().fit(*blobs(), verbose=0)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        keras.optimizers.SGD(learning_rate=-1)


def test_dense_weights_in_keras_layout_and_glorot_init():
    layer = layers.Dense(30, input_shape=(50,), rng=0)
    model = keras.Sequential([layer])
    kernel, bias = layer.get_weights()
    assert kernel.shape == (50, 30) and np.all(bias == 0)
    limit = np.sqrt(6 / (50 + 30))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    x = np.random.default_rng(0).normal(size=(4, 50)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), x @ kernel + bias, rtol=1e-5, atol=1e-6)
    layer.set_weights([np.ones((50, 30)), np.zeros(30)])
    np.testing.assert_allclose(model.predict(x), np.repeat(x.sum(1, keepdims=True), 30, 1), rtol=1e-5)


def test_l2_regularizer_adds_lambda_sum_of_squares():
    x, y = blobs(n=16)
    model = keras.Sequential([layers.Dense(3, input_shape=(8,), kernel_regularizer=keras.regularizers.l2(0.01), rng=0)])
    model.compile(optimizer="sgd", loss=nn.CrossEntropyLoss())
    plain = nn.functional.cross_entropy(model(x), y).item()
    w = model.layers[0].linear.weight.data
    assert model.evaluate(x, y) == pytest.approx(plain + 0.01 * float((w.astype(np.float64) ** 2).sum()), rel=1e-5)


def test_keras_optimizer_defaults_and_lazy_names():
    sgd = keras.optimizers.get("sgd")
    assert sgd.learning_rate == 0.01
    adam = keras.optimizers.get("adam")
    assert adam.learning_rate == 0.001 and adam.hyper["epsilon"] == 1e-7
    model = mlp()
    model.compile(optimizer=sgd, loss="sparse_categorical_crossentropy")
    assert isinstance(sgd.optimizer, to.optim.SGD)
    sgd.learning_rate = 0.5
    assert all(g["lr"] == 0.5 for g in sgd.optimizer.param_groups)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop", "adagrad"])
def test_other_keras_optimizers_build_by_name(name):
    cls = {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}[name]
    x, y = blobs()
    model = mlp()
    model.compile(optimizer=name, loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0, rng=0)
    assert isinstance(model.optimizer.optimizer, getattr(to.optim, cls))
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_save_and_load_weights(tmp_path):
    model = mlp(seed=0)
    other = mlp(seed=5)
    model.save_weights(tmp_path / "w.npz")
    other.load_weights(tmp_path / "w.npz")
    x, _ = blobs(n=4)
    np.testing.assert_array_equal(model.predict(x), other.predict(x))


def test_fit_is_the_pytorch_loop():
    """Keras fit and a hand-written loop on the same nn modules give the same numbers."""
    x, y = blobs(n=64)
    model = mlp(seed=4)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    start = list(model.state_dict().values())  # torch's layout (get_weights is Keras')
    hist = model.fit(x, y, epochs=2, batch_size=16, verbose=0, rng=9)

    torch_style = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    torch_style.load_state_dict(dict(zip(torch_style.state_dict(), start)))
    opt = to.optim.SGD(torch_style.parameters(), lr=0.1)
    order_rng = np.random.default_rng(9)
    epoch_losses = []
    for _ in range(2):
        order, total = order_rng.permutation(len(x)), 0.0
        for s in range(0, len(x), 16):
            idx = order[s:s + 16]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(torch_style(to.tensor(x[idx])), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        epoch_losses.append(total / len(x))
    assert hist.history["loss"] == pytest.approx(epoch_losses, rel=1e-5)
    for a, b in zip(model.state_dict().values(), torch_style.state_dict().values()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
