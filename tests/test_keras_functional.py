"""The Keras functional API: keras.Input, layer calls on KerasTensors, keras.Model(inputs, outputs)
with chains, Add, Concatenate and several inputs; compile / fit / evaluate / predict / summary on it."""
import numpy as np
import pytest

from tinyopt import keras
from tinyopt.errors import ShapeError
from tinyopt.keras import layers


def _data(n=48, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return x, y


def test_input_is_symbolic_and_layer_calls_record_shapes():
    inp = keras.Input((6,))
    assert isinstance(inp, keras.KerasTensor) and inp.shape == (None, 6)
    h = layers.Dense(4)(inp)
    assert h.shape == (None, 4) and h.inputs == [inp]
    img = keras.Input((8, 8, 1))
    assert layers.Flatten()(layers.Conv2D(2, 3)(img)).shape == (None, 72)
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(inp)


def test_a_functional_chain_is_the_same_model_as_sequential():
    x, y = _data()
    inp = keras.Input((6,))
    out = layers.Dense(3, activation="softmax")(layers.Dense(8, activation="relu")(inp))
    fmodel = keras.Model(inp, out)
    seq = keras.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)), layers.Dense(3, activation="softmax")])
    seq.set_weights(fmodel.get_weights())
    np.testing.assert_array_equal(fmodel.predict(x), seq.predict(x))
    hists = []
    for model in (fmodel, seq):
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
        hists.append(model.fit(x, y, epochs=3, batch_size=8, verbose=0, rng=4, validation_split=0.25).history)
    assert hists[0] == hists[1]
    for a, b in zip(fmodel.get_weights(), seq.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert fmodel.evaluate(x, y, verbose=0) == seq.evaluate(x, y, verbose=0)
    assert isinstance(seq, keras.Model)


def test_add_and_concatenate_with_two_inputs_match_numpy():
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    da = layers.Dense(5, name="da")
    db = layers.Dense(5, name="db")
    s = layers.Add()([da(a), db(b)])
    c = layers.Concatenate()([s, a])
    out = layers.Dense(2, name="head")(c)
    model = keras.Model([a, b], out)
    assert [layer.name for layer in model.layers] == ["a", "da", "b", "db", "add", "concatenate", "head"]
    xa, xb = _data(10, 4, 1)[0], _data(10, 3, 2)[0]
    wa, ba = da.get_weights()
    wb, bb = db.get_weights()
    wh, bh = model.layers[-1].get_weights()
    want = np.concatenate([xa @ wa + ba + xb @ wb + bb, xa], axis=1) @ wh + bh
    np.testing.assert_allclose(model.predict([xa, xb]), want, rtol=1e-5, atol=1e-5)
    text = model.summary(print_fn=None)
    assert "Connected to" in text and "da, db" in text and "add, a" in text
    assert "Total params: 65" in text  # 25 + 20 + (5 + 4)·2 + 2


def test_fit_with_two_inputs_lowers_the_loss_and_validation_split_slices_both():
    xa, y = _data(64, 4, 3)
    xb = _data(64, 3, 4)[0][:, :2]
    a, b = keras.Input((4,)), keras.Input((2,))
    out = layers.Dense(3)(layers.Concatenate()([layers.Dense(8, activation="relu")(a), b]))
    model = keras.Model(inputs=[a, b], outputs=out)
    model.compile(keras.optimizers.Adam(0.02), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit([xa, xb], y, epochs=6, batch_size=16, verbose=0, validation_split=0.25, rng=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert {"val_loss", "val_accuracy"} <= set(hist.history)
    loss, acc = model.evaluate([xa, xb], y, verbose=0)
    assert 0 <= acc <= 1 and np.isfinite(loss)
    logs = model.train_on_batch([xa[:8], xb[:8]], y[:8])
    assert set(logs) == {"loss", "accuracy"}


def test_shared_layer_is_one_set_of_weights():
    a, b = keras.Input((3,)), keras.Input((3,))
    shared = layers.Dense(2, name="shared")
    model = keras.Model([a, b], layers.Subtract()([shared(a), shared(b)]))
    assert [layer.name for layer in model.layers].count("shared") == 1
    assert len(model.get_weights()) == 2
    x1, x2 = _data(5, 3, 1)[0], _data(5, 3, 2)[0]
    w, _ = shared.get_weights()
    np.testing.assert_allclose(model.predict([x1, x2]), (x1 - x2) @ w, rtol=1e-5, atol=1e-6)


def test_several_outputs_predict_a_list_and_fit_says_it_is_not_supported():
    inp = keras.Input((4,))
    h = layers.Dense(3)(inp)
    model = keras.Model(inp, [h, layers.Dense(1)(h)])
    out = model.predict(_data(6, 4)[0])
    assert [o.shape for o in out] == [(6, 3), (6, 1)]
    model.compile("sgd", "mse")
    with pytest.raises(NotImplementedError, match="2 outputs"):
        model.fit(_data(6, 4)[0], np.zeros((6, 1)), verbose=0)


def test_sequential_takes_a_keras_input_first():
    model = keras.Sequential([keras.Input((5,)), layers.Dense(2)])
    assert model.built and model.output_shape == (None, 2) and len(model.layers) == 1
    assert model.predict(np.ones((3, 5))).shape == (3, 2)


def test_graph_mistakes_are_clear_errors():
    a, b = keras.Input((4,)), keras.Input((3,))
    with pytest.raises(ShapeError, match=r"\(None, 4\).*\(None, 3\)"):
        layers.Add()([a, b])
    with pytest.raises(ShapeError, match="differ on an axis"):
        layers.Concatenate(axis=1)([keras.Input((2, 3)), keras.Input((4, 5))])
    with pytest.raises(TypeError, match="takes one input"):
        layers.Dense(2)([a, b])
    with pytest.raises(TypeError, match="at least two"):
        layers.Add()(a)
    with pytest.raises(ValueError, match="not among the model's inputs"):
        keras.Model(a, layers.Concatenate()([a, layers.Dense(2)(b)]))
    with pytest.raises(TypeError, match="KerasTensors"):
        keras.Model(a, np.zeros(3))
    with pytest.raises(TypeError, match="needs both"):
        keras.Model()
    model = keras.Model([a, b], layers.Concatenate()([a, b]))
    with pytest.raises(ValueError, match="2 inputs"):
        model.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="same number of samples"):
        model.predict([np.zeros((2, 4)), np.zeros((3, 3))])
    with pytest.raises(ShapeError, match=r"\(None, 3\).*\(2, 5\)"):
        model.predict([np.zeros((2, 4)), np.zeros((2, 5))])
    dense = layers.Dense(2)
    dense(keras.Input((4,)))
    with pytest.raises(ShapeError, match="built for inputs of shape"):
        dense(keras.Input((5,)))
    with pytest.raises(TypeError, match="keras.Model"):
        keras.Sequential([keras.Input((4,)), layers.Add()])


def test_gradients_through_add_and_concatenate_match_torch():
    torch = pytest.importorskip("torch")
    import tinyopt as to

    a, b = keras.Input((4,)), keras.Input((3,))
    da, db, head = layers.Dense(5, activation="tanh"), layers.Dense(5), layers.Dense(2)
    model = keras.Model([a, b], head(layers.Concatenate()([layers.Add()([da(a), db(b)]), a])))
    xa, xb = _data(6, 4, 1)[0], _data(6, 3, 2)[0]
    target = np.random.default_rng(3).normal(size=(6, 2)).astype(np.float32)
    out = model([to.tensor(xa), to.tensor(xb)])
    ((out - to.tensor(target)) ** 2).mean().backward()

    w = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in model.get_weights()]
    ta, tb = torch.tensor(xa, dtype=torch.float64), torch.tensor(xb, dtype=torch.float64)
    s = torch.tanh(ta @ w[0] + w[1]) + tb @ w[2] + w[3]
    ref = torch.cat([s, ta], dim=1) @ w[4] + w[5]
    ((ref - torch.tensor(target, dtype=torch.float64)) ** 2).mean().backward()
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    grads = [da.linear.weight.grad.data.T, da.linear.bias.grad.data, db.linear.weight.grad.data.T,
             db.linear.bias.grad.data, head.linear.weight.grad.data.T, head.linear.bias.grad.data]
    for got, want in zip(grads, w):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_get_layer_and_prebuilt_layers_in_a_new_sequential():
    inp = keras.Input((3,))
    dense = layers.Dense(2, name="d")
    model = keras.Model(inp, dense(inp))
    assert model.get_layer("d") is dense and model.get_layer(index=1) is dense
    with pytest.raises(ValueError, match="no layer"):
        model.get_layer("e")
    reuse = keras.Sequential([dense])
    reuse.build((None, 3))  # keeps the weights it has
    np.testing.assert_array_equal(reuse.get_weights()[0], model.get_weights()[0])
    with pytest.raises(ShapeError, match="built for inputs"):
        keras.Sequential([dense]).build((None, 4))


def test_a_layer_with_its_own_set_weights_round_trips_in_a_model():
    class Scale(layers.Layer):
        """A layer written against the plain Layer API (its own get/set_weights, Keras' layout)."""
        kind = "scale"

        def build(self, input_shape):
            from tinyopt.nn import Parameter
            self.w = Parameter(np.full((1, input_shape[-1]), 2.0, np.float32))  # stored (1, d), Keras' (d,)
            return input_shape

        def call(self, x):
            return x * self.w

        def get_weights(self):
            return [self.w.data.reshape(-1).copy()]

        def set_weights(self, weights):
            self.w.data[...] = np.asarray(weights[0]).reshape(1, -1)

    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Dense(2)(Scale()(inp)))
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3,), (3, 2), (2,)]
    weights[0] = np.array([1.0, 2.0, 3.0], np.float32)
    model.set_weights(weights)
    np.testing.assert_array_equal(model.get_weights()[0], [1.0, 2.0, 3.0])
    with pytest.raises(NotImplementedError, match="model used as a layer"):
        model(keras.Input((3,)))
