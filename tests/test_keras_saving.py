"""model.save / keras.models.load_model (npz + JSON architecture, atomic, never unpickled) and the
Keras metric classes (update_state / result / reset_state)."""
import json

import numpy as np
import pytest

from tinyopt import keras
from tinyopt.checkpoint import CheckpointError, NonFiniteValues, load
from tinyopt.keras import initializers, layers, metrics


def _data(n=40, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)


def _sequential():
    model = keras.Sequential([
        keras.Input((6,)),
        layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-3),
                     kernel_initializer=initializers.HeNormal(seed=1)),
        layers.BatchNormalization(momentum=0.9),
        layers.Dropout(0.2),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(learning_rate=0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy", metrics.SparseCategoricalAccuracy(name="sca")])
    return model


def _functional():
    a, b = keras.Input((6,)), keras.Input((2,))
    h = layers.Dense(4, activation="tanh")(a)
    out = layers.Dense(3)(layers.Concatenate()([layers.Add()([h, layers.Dense(4)(b)]), b]))
    model = keras.Model([a, b], out, name="two_in")
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("make", [_sequential, _functional])
def test_save_and_load_model_round_trip(make, tmp_path):
    x, y = _data()
    model = make()
    inputs = x if isinstance(model, keras.Sequential) else [x, x[:, :2]]
    model.fit(inputs, y, epochs=2, batch_size=8, verbose=0, rng=0)
    path = model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.name == model.name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(inputs), model.predict(inputs))
    assert loaded.evaluate(inputs, y, verbose=0) == model.evaluate(inputs, y, verbose=0)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate
    assert [n for n, _ in loaded.compiled_metrics] == [n for n, _ in model.compiled_metrics]
    assert loaded.summary(print_fn=None) == model.summary(print_fn=None)
    loaded.fit(inputs, y, epochs=1, verbose=0)  # compiled and trainable again
    assert keras.models.load_model(path, compile=False).loss is None


def test_the_file_is_a_plain_npz_with_json_and_no_pickle(tmp_path):
    path = _sequential().save(tmp_path / "m.keras")
    with np.load(path, allow_pickle=False) as f:  # would raise if anything were pickled
        assert all(f[k].dtype != object for k in f.files)
    config = json.loads(load(path)["config"])
    assert [spec["class_name"] for spec in config["layers"]] == [
        "InputLayer", "Dense", "BatchNormalization", "Dropout", "Dense"]
    assert config["layers"][1]["config"]["kernel_initializer"] == {"class_name": "HeNormal", "config": {"seed": 1}}


def test_corrupt_truncated_or_foreign_files_are_named(tmp_path):
    model = _sequential()
    good = model.save(tmp_path / "good.keras")
    raw = good.read_bytes()
    cases = {"flipped.keras": raw[:200] + bytes([raw[200] ^ 0xFF]) + raw[201:],
             "truncated.keras": raw[: len(raw) // 2],
             "text.keras": b"not a model\n", "empty.keras": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=name):
            keras.models.load_model(tmp_path / name)
    model.save_weights(tmp_path / "weights.npz")
    with pytest.raises(CheckpointError, match=r"weights\.npz.*not a saved Keras model.*load_weights"):
        keras.models.load_model(tmp_path / "weights.npz")
    with pytest.raises(CheckpointError, match="missing.keras"):
        keras.models.load_model(tmp_path / "missing.keras")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))  # a real npz that is not a tinyopt checkpoint
    with pytest.raises(CheckpointError, match="plain.npz"):
        keras.models.load_model(tmp_path / "plain.npz")


def test_save_is_atomic_and_refuses_what_it_cannot_write(tmp_path):
    model = _sequential()
    path = model.save(tmp_path / "m.keras")
    before = path.read_bytes()
    weights = model.get_weights()
    weights[0][0, 0] = np.nan
    model.set_weights(weights)
    with pytest.raises(NonFiniteValues):
        model.save(path)
    assert path.read_bytes() == before  # the last good file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no temp file left
    with pytest.raises(FileExistsError):
        _sequential().save(path, overwrite=False)
    odd = keras.Sequential([layers.Dense(2, activation=lambda t: t * 2, input_shape=(3,))])
    with pytest.raises(ValueError, match="dense.*activation.*cannot be saved"):
        odd.save(tmp_path / "odd.keras")
    assert not (tmp_path / "odd.keras").exists()
    with pytest.raises(ValueError, match="not built"):
        keras.Sequential([layers.Dense(2)]).save(tmp_path / "unbuilt.keras")


def test_a_torch_style_optimizer_saves_the_model_uncompiled(tmp_path):
    import tinyopt as to
    model = keras.Sequential([layers.Dense(2, input_shape=(3,))])
    model.compile(to.optim.SGD(model.parameters(), lr=0.1), "mse")
    loaded = keras.models.load_model(model.save(tmp_path / "m.keras"))
    assert loaded.loss is None
    np.testing.assert_array_equal(loaded.predict(np.ones((2, 3))), model.predict(np.ones((2, 3))))


# ----------------------------------------------------------------------------- metric classes


def test_accuracy_metrics_accumulate_over_batches_and_reset():
    rng = np.random.default_rng(0)
    p = rng.random((30, 4))
    y = rng.integers(0, 4, 30)
    m = metrics.SparseCategoricalAccuracy()
    assert float(m.result()) == 0.0 and m.name == "sparse_categorical_accuracy"
    for s in range(0, 30, 7):
        m.update_state(y[s:s + 7], p[s:s + 7])
    assert float(m.result()) == pytest.approx(np.mean(p.argmax(1) == y))
    assert m.result().numpy() == pytest.approx(np.mean(p.argmax(1) == y))
    m.reset_state()
    assert float(m.result()) == 0.0
    w = rng.random(30)
    m.update_state(y, p, sample_weight=w)
    assert float(m.result()) == pytest.approx(np.sum((p.argmax(1) == y) * w) / w.sum(), rel=1e-6)
    c = metrics.CategoricalAccuracy()
    c.update_state(np.eye(4)[y], p)
    assert float(c.result()) == pytest.approx(np.mean(p.argmax(1) == y))


def test_mean_and_mean_squared_error():
    m = metrics.Mean()
    m.update_state([1.0, 2.0, 3.0])
    m.update_state(np.array([10.0]), sample_weight=[2.0])
    assert float(m.result()) == pytest.approx((1 + 2 + 3 + 20) / 5)
    assert float(m([4.0])) == pytest.approx((26 + 4) / 6)  # __call__ updates, then returns the result
    mse = metrics.MeanSquaredError()
    a, b = np.arange(6.0).reshape(3, 2), np.ones((3, 2))
    mse.update_state(a[:2], b[:2])
    mse.update_state(a[2:], b[2:])
    assert float(mse.result()) == pytest.approx(((a - b) ** 2).mean())
    with pytest.raises(ValueError, match="sample_weight"):
        m.update_state([1.0, 2.0], sample_weight=[1.0])
    with pytest.raises(ValueError):
        m.update_state([1.0], sample_weight=[-1.0])


def test_metric_objects_in_compile_report_under_their_name():
    x, y = _data()
    model = keras.Sequential([layers.Dense(3, input_shape=(6,), rng=0)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy", metrics.SparseCategoricalAccuracy()])
    hist = model.fit(x, y, epochs=2, verbose=0, rng=0)
    assert hist.history["sparse_categorical_accuracy"] == hist.history["accuracy"]
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(y, model.predict(x))
    assert model.evaluate(x, y, verbose=0, return_dict=True)["sparse_categorical_accuracy"] == pytest.approx(
        float(m.result()))
    with pytest.raises(TypeError, match="Mean"):
        model.compile("sgd", "mse", metrics=[metrics.Mean()])
    with pytest.raises(ValueError, match="repeat"):
        model.compile("sgd", "sparse_categorical_crossentropy",
                      metrics=[metrics.SparseCategoricalAccuracy(), "sparse_categorical_accuracy"])


def test_training_continues_identically_after_load_model(tmp_path):
    x, y = _data()
    model = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(6,), rng=0),
                              layers.Dense(3, activation="softmax", rng=1)])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, rng=0)
    loaded = keras.models.load_model(model.save(tmp_path / "m.keras"))
    a = model.fit(x, y, epochs=1, batch_size=8, verbose=0, rng=5).history
    b = loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, rng=5).history
    assert a == b
    for u, v in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_a_saved_optimizer_state_that_does_not_fit_is_a_named_error(tmp_path):
    model = _sequential()
    model.fit(*_data(), epochs=1, verbose=0)
    path = model.save(tmp_path / "m.keras")
    record = load(path)
    record["optimizer"]["state"][0]["exp_avg"] = np.zeros(3, np.float32)  # a misshaped moment
    from tinyopt.checkpoint import save
    save(record, tmp_path / "edited.keras")
    with pytest.raises(CheckpointError, match="edited.keras"):
        keras.models.load_model(tmp_path / "edited.keras")
    assert keras.models.load_model(tmp_path / "edited.keras", compile=False).loss is None
