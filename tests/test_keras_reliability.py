"""Issue 10, Keras: bad input gets a clear error and changes nothing (weights, optimizer state, the
default random generator, the history); predict on an empty array gives an empty result."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import keras
from tinyopt.errors import ShapeError
from tinyopt.keras import layers
from tinyopt.random import default_generator


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return x, rng.integers(0, 3, n)


def _model(loss="sparse_categorical_crossentropy"):
    model = keras.Sequential([layers.Dense(4, activation="relu", input_shape=(5,), rng=0), layers.Dense(3, activation="softmax", rng=1)])
    model.compile(keras.optimizers.Adam(0.01), loss, metrics=["accuracy"])
    model.fit(*_data(), epochs=1, verbose=0, rng=0)  # the optimizer has state to lose
    return model


def _snapshot(model):
    opt = model.optimizer.state_dict()
    state = {k: {n: np.array(v) for n, v in s.items()} for k, s in opt["state"].items()}
    return (model.get_weights(), state, opt["param_groups"][0]["lr"], default_generator().bit_generator.state,
            model.history)


def _assert_unchanged(model, before):
    weights, state, lr, gen, history = _snapshot(model)
    for a, b in zip(weights, before[0]):
        np.testing.assert_array_equal(a, b)
    assert state.keys() == before[1].keys()
    for k in state:
        for n in state[k]:
            np.testing.assert_array_equal(state[k][n], before[1][k][n])
    assert lr == before[2] and gen == before[3] and history is before[4]


# ----------------------------------------------------------------------------- sparse labels


@pytest.mark.parametrize("bad", [
    np.array([0.5, 1.0, 2.0, 0.0] * 6),            # a fraction
    np.array([1.7, 2.0, 0.0, 1.0] * 6),            # would truncate to 1
    np.array([np.nan, 1.0, 2.0, 0.0] * 6),         # NaN
    np.array([np.inf, 1.0, 2.0, 0.0] * 6),         # inf
    np.array([[0.2], [1.0], [2.0], [0.0]] * 6),    # an (N, 1) column
])
def test_float_labels_for_a_sparse_loss_are_refused_not_truncated(bad):
    model = _model()
    x, _ = _data()
    before = _snapshot(model)
    with pytest.raises(ValueError, match="integer class labels.*not truncated"):
        model.fit(x, bad, epochs=1, verbose=0)
    _assert_unchanged(model, before)
    with pytest.raises(ValueError, match="integer class labels"):
        model.train_on_batch(x, bad)
    with pytest.raises(ValueError, match="integer class labels"):
        model.evaluate(x, bad, verbose=0)
    _assert_unchanged(model, before)
    with pytest.raises(ValueError, match="integer class labels"):
        keras.losses.SparseCategoricalCrossentropy()(bad, to.tensor(np.full((24, 3), 1 / 3, np.float32)))


def test_whole_number_float_labels_are_the_integers():
    x, y = _data()
    a, b = _model(), _model()
    ha = a.fit(x, y, epochs=1, verbose=0, rng=3).history
    hb = b.fit(x, y.astype(np.float64), epochs=1, verbose=0, rng=3).history
    assert ha == hb


@pytest.mark.parametrize("bad", [[3], [-1], [7]])
def test_labels_outside_the_classes_are_refused_before_any_step(bad):
    model = _model()
    x, y = _data()
    y = y.copy()
    y[-1] = bad[0]  # the last batch: without the up-front check, earlier batches would be applied
    before = _snapshot(model)
    with pytest.raises(ValueError, match=rf"label {bad[0]} is outside \[0, 3\)"):
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    _assert_unchanged(model, before)
    with pytest.raises(ValueError, match="outside"):
        model.fit(x, _data()[1], validation_data=(x, y), epochs=1, verbose=0)
    _assert_unchanged(model, before)


def test_string_or_bool_labels_are_refused():
    model = _model()
    x, y = _data()
    before = _snapshot(model)
    for bad in (y.astype(str), y > 0):
        with pytest.raises(TypeError, match="integer class labels"):
            model.fit(x, bad, epochs=1, verbose=0)
    _assert_unchanged(model, before)


# ----------------------------------------------------------------------------- layer arguments


@pytest.mark.parametrize("make", [
    lambda: layers.Dense("10"), lambda: layers.Dense(10.0), lambda: layers.Dense(True), lambda: layers.Dense(0),
    lambda: layers.Dense(-3), lambda: layers.Dense(None), lambda: layers.Dense(4, input_dim="3"),
    lambda: layers.Dense(4, use_bias="no"), lambda: layers.Dense(4, input_shape=(0,)),
    lambda: layers.Dense(4, activation="rellu"), lambda: layers.Dense(4, activation=to.nn.ReLU),
    lambda: layers.Dense(4, kernel_regularizer="l3"),
    lambda: layers.Conv2D("8", 3), lambda: layers.Conv2D(8, "3"), lambda: layers.Conv2D(8, (3,)),
    lambda: layers.Conv2D(8, 3, strides=0), lambda: layers.Conv2D(8, 3, padding="full"),
    lambda: layers.Conv2D(8, 3, input_shape=(28, 28, "1")),
    lambda: layers.MaxPooling2D(pool_size=0), lambda: layers.MaxPooling2D(pool_size="2"),
    lambda: layers.Dropout("0.5"), lambda: layers.Dropout(1.0), lambda: layers.Dropout(-0.1),
    lambda: layers.Reshape((2, "3")), lambda: layers.Dense(3, name="a.b"), lambda: layers.Concatenate(axis="1"),
])
def test_bad_layer_arguments_are_refused(make):
    with pytest.raises((TypeError, ValueError)):
        make()


def test_a_layer_that_does_not_fit_is_not_added():
    model = keras.Sequential([layers.Dense(4, input_shape=(5,))])
    before = model.get_weights()
    with pytest.raises(ShapeError):
        model.add(layers.Conv2D(2, 3))
    assert len(model.layers) == 1 and model.output_shape == (None, 4)
    model.add(layers.Dense(2))  # the model still works, and the name conv2d was not taken
    assert [layer.name for layer in model.layers] == ["dense", "dense_1"]
    np.testing.assert_array_equal(model.get_weights()[0], before[0])


# ----------------------------------------------------------------------------- fit arguments


@pytest.mark.parametrize("kwargs", [
    {"epochs": -1}, {"epochs": 2.5}, {"epochs": "3"}, {"epochs": True}, {"epochs": None},
    {"initial_epoch": -1}, {"batch_size": 0}, {"batch_size": "32"}, {"batch_size": True}, {"batch_size": 8.0},
    {"verbose": 5}, {"verbose": "loud"}, {"shuffle": "yes"}, {"validation_split": float("nan")},
    {"validation_split": 1.0}, {"validation_split": -0.1}, {"validation_split": "0.2"},
    {"validation_data": ([1, 2, 3],)}, {"callbacks": keras.callbacks.History()},
])
def test_bad_fit_arguments_are_refused_and_change_nothing(kwargs):
    model = _model()
    x, y = _data()
    before = _snapshot(model)
    with pytest.raises((TypeError, ValueError)):
        model.fit(x, y, **kwargs)
    _assert_unchanged(model, before)


def test_bad_fit_data_is_refused_and_changes_nothing():
    model = _model()
    x, y = _data()
    before = _snapshot(model)
    for bad_x, bad_y, err in ((x, y[:-1], ValueError), (x[:0], y[:0], ValueError), (x[:, :4], y, ShapeError),
                              (x.astype(str), y, TypeError)):
        with pytest.raises(err):
            model.fit(bad_x, bad_y, epochs=1, verbose=0)
    _assert_unchanged(model, before)


def test_epochs_zero_trains_nothing_as_keras():
    model = _model()
    before = _snapshot(model)
    hist = model.fit(*_data(), epochs=0, verbose=0)
    assert hist.history == {}
    for a, b in zip(model.get_weights(), before[0]):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- empty inputs


def test_predict_on_an_empty_array_returns_an_empty_result():
    model = _model()
    out = model.predict(np.zeros((0, 5), np.float32))
    assert out.shape == (0, 3) and out.dtype == np.float32
    unbuilt = keras.Sequential([layers.Dense(4), layers.Dense(2)])
    assert unbuilt.predict(np.zeros((0, 7))).shape == (0, 2)
    cnn = keras.Sequential([layers.Conv2D(2, 3, input_shape=(8, 8, 1)), layers.MaxPooling2D(), layers.Flatten(),
                            layers.Dense(10)])
    assert cnn.predict(np.zeros((0, 8, 8, 1))).shape == (0, 10)
    a, b = keras.Input((3,)), keras.Input((2,))
    two = keras.Model([a, b], [layers.Concatenate()([a, b]), layers.Dense(1)(a)])
    assert [o.shape for o in two.predict([np.zeros((0, 3)), np.zeros((0, 2))])] == [(0, 5), (0, 1)]
    with pytest.raises(ShapeError):
        model.predict(np.zeros((0, 4)))


def test_evaluate_on_empty_data_is_a_clear_error():
    model = _model()
    with pytest.raises(ValueError, match="at least one sample"):
        model.evaluate(np.zeros((0, 5)), np.zeros((0,), np.int64), verbose=0)
    with pytest.raises(ValueError, match="at least one sample"):
        model.train_on_batch(np.zeros((0, 5)), np.zeros((0,), np.int64))


# ----------------------------------------------------------------------------- optimizers and compile


@pytest.mark.parametrize("make", [
    lambda: keras.optimizers.Adam(learning_rate="0.1"), lambda: keras.optimizers.Adam(learning_rate=float("nan")),
    lambda: keras.optimizers.Adam(learning_rate=-1.0), lambda: keras.optimizers.SGD(learning_rate=True),
    lambda: keras.optimizers.SGD(momentum=-1.0), lambda: keras.optimizers.Adam(beta_1=1.5),
    lambda: keras.optimizers.Adam(epsilon=-1e-7), lambda: keras.optimizers.RMSprop(rho=float("nan")),
])
def test_bad_optimizer_hyperparameters_are_refused_when_made(make):
    with pytest.raises((TypeError, ValueError)):
        make()


def test_a_refused_compile_changes_nothing():
    model = _model()
    other = keras.Sequential([layers.Dense(3, input_shape=(5,))])
    before = (model.optimizer, model.loss, model.compiled_metrics)
    for kwargs in ({"optimizer": other.optimizer or keras.optimizers.SGD(), "loss": "msee"},
                   {"optimizer": "sgd", "loss": "mse", "metrics": "accuracy"},
                   {"optimizer": "sgd", "loss": "mse", "metrics": ["accuracy"]},  # accuracy needs a classification loss
                   {"optimizer": model.optimizer, "loss": "mse"}):  # built for `model`: fine for it ...
        try:
            other.compile(**kwargs)  # ... but `other` may not share it
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError(f"compile({kwargs}) was accepted")
        assert other.optimizer is None and other.loss is None
    assert (model.optimizer, model.loss, model.compiled_metrics) == before
