"""Keras SimpleRNN / LSTM / GRU / Embedding: Keras' weight layout checked against the Keras
equations written out in NumPy from get_weights(), Keras' initialisers, shapes, and training in a
Sequential model."""
from __future__ import annotations

import numpy as np
import pytest

import tinyopt as to
from tinyopt.keras import layers, models, optimizers


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def keras_reference(kind, weights, x, units):
    """The Keras cell equations on Keras' arrays (kernel, recurrent_kernel, bias), batch first."""
    K, R = weights[0].astype(np.float64), weights[1].astype(np.float64)
    b = weights[2].astype(np.float64)
    B, T, _ = x.shape
    h, c = np.zeros((B, units)), np.zeros((B, units))
    outs = []
    U = units
    for t in range(T):
        xt = x[:, t]
        if kind == "SimpleRNN":
            h = np.tanh(xt @ K + h @ R + b)
        elif kind == "LSTM":
            z = xt @ K + h @ R + b
            i, f, g, o = sigmoid(z[:, :U]), sigmoid(z[:, U:2 * U]), np.tanh(z[:, 2 * U:3 * U]), sigmoid(z[:, 3 * U:])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:  # GRU, reset_after=True: gates z, r, h; bias = [input bias; recurrent bias]
            xi = xt @ K + b[0]
            hr = h @ R + b[1]
            zg = sigmoid(xi[:, :U] + hr[:, :U])
            rg = sigmoid(xi[:, U:2 * U] + hr[:, U:2 * U])
            hh = np.tanh(xi[:, 2 * U:] + rg * hr[:, 2 * U:])
            h = zg * h + (1 - zg) * hh
        outs.append(h)
    return np.stack(outs, 1), h, c


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_keras_layout_matches_keras_equations(kind):
    rng = np.random.default_rng(0)
    units, I = 5, 3
    layer = getattr(layers, kind)(units, return_sequences=True, return_state=True, rng=1)
    x = rng.standard_normal((2, 4, I)).astype(np.float32)
    layer(to.tensor(x))   # builds
    G = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    shapes = [w.shape for w in layer.get_weights()]
    assert shapes[:2] == [(I, G * units), (units, G * units)]
    assert shapes[2] == ((2, 3 * units) if kind == "GRU" else (G * units,))
    assert layer.count_params() == sum(int(np.prod(s)) for s in shapes)
    new = [rng.standard_normal(s).astype(np.float32) * 0.5 for s in shapes]
    layer.set_weights(new)
    for a, b in zip(layer.get_weights(), new):
        np.testing.assert_allclose(a, b, atol=1e-6)
    result = layer(to.tensor(x))
    seq, h, c = keras_reference(kind, new, x.astype(np.float64), units)
    np.testing.assert_allclose(result[0].data, seq, atol=2e-5)
    np.testing.assert_allclose(result[1].data, h, atol=2e-5)
    if kind == "LSTM":
        np.testing.assert_allclose(result[2].data, c, atol=2e-5)
    else:
        assert len(result) == 2


def test_keras_initialisers():
    layer = layers.LSTM(8, rng=0)
    layer(to.tensor(np.zeros((1, 2, 3), dtype=np.float32)))
    kernel, recurrent, bias = layer.get_weights()
    assert np.abs(kernel).max() <= np.sqrt(6 / (3 + 32)) + 1e-6                # glorot_uniform
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(8), atol=1e-5)   # orthogonal rows
    np.testing.assert_array_equal(bias[8:16], 1.0)                              # unit_forget_bias
    np.testing.assert_array_equal(np.delete(bias, np.s_[8:16]), 0.0)
    assert not layer.rnn.bias_hh_l0.requires_grad                               # Keras' single bias


def test_sequential_embedding_lstm_trains():
    rng = np.random.default_rng(1)
    x = rng.integers(1, 20, size=(64, 6)).astype(np.float32)
    y = (x[:, -1] > 10).astype(np.int64)   # the label depends on the last token only
    model = models.Sequential([
        layers.Embedding(20, 8, input_length=6, rng=0),
        layers.LSTM(16, rng=1),
        layers.Dense(2, activation="softmax", rng=2),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert model.output_shape == (None, 2)
    hist = model.fit(x, y, epochs=25, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0] * 0.5
    emb = model.layers[0]
    assert emb.get_weights()[0].shape == (20, 8)


def test_return_sequences_shapes_and_refusals():
    x = to.tensor(np.zeros((3, 7, 2), dtype=np.float32))
    assert layers.GRU(4)(x).shape == (3, 4)
    assert layers.GRU(4, return_sequences=True)(x).shape == (3, 7, 4)
    assert layers.SimpleRNN(4, activation="relu", go_backwards=True)(x).shape == (3, 4)
    with pytest.raises(NotImplementedError, match="reset_after"):
        layers.GRU(4, reset_after=False)
    with pytest.raises(NotImplementedError, match="recurrent_dropout"):
        layers.LSTM(4, recurrent_dropout=0.2)
    with pytest.raises(NotImplementedError, match="mask_zero"):
        layers.Embedding(10, 3, mask_zero=True)
    with pytest.raises(ValueError, match="positive integer"):
        layers.LSTM(0)
