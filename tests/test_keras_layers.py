"""Keras layers: weights in Keras' layout, BatchNormalization against its formula and torch,
initializers (names, classes, seeds, the distribution each one states)."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import keras
from tinyopt.keras import initializers, layers


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ----------------------------------------------------------------------------- Keras' weight layout


def test_model_and_layer_get_weights_agree_and_reproduce_dense_by_hand():
    model = keras.Sequential([layers.Dense(5, activation="relu", input_shape=(4,)), layers.Dense(3)])
    x = _x((7, 4))
    w = model.get_weights()
    assert [a.shape for a in w] == [(4, 5), (5,), (5, 3), (3,)]
    for got, want in zip(w, model.layers[0].get_weights() + model.layers[1].get_weights()):
        np.testing.assert_array_equal(got, want)
    by_hand = np.maximum(x @ w[0] + w[1], 0) @ w[2] + w[3]
    np.testing.assert_allclose(model.predict(x), by_hand, rtol=1e-5, atol=1e-6)


def test_conv2d_kernel_is_kh_kw_in_out_and_matches_a_direct_convolution():
    conv = layers.Conv2D(4, (3, 2), input_shape=(6, 5, 2), rng=1)
    model = keras.Sequential([conv])
    kernel, bias = model.get_weights()
    assert kernel.shape == (3, 2, 2, 4) and bias.shape == (4,)
    x = _x((2, 6, 5, 2))
    out = np.zeros((2, 4, 4, 4), np.float64)
    for i in range(4):
        for j in range(4):
            out[:, i, j, :] = np.einsum("nhwc,hwcf->nf", x[:, i:i + 3, j:j + 2, :], kernel) + bias
    np.testing.assert_allclose(model.predict(x), out, rtol=1e-5, atol=1e-5)


def test_set_weights_round_trip_and_a_bad_list_changes_nothing():
    model = keras.Sequential([layers.Dense(5, input_shape=(4,)), layers.BatchNormalization(), layers.Dense(2)])
    new = [np.random.default_rng(3).normal(size=a.shape).astype(np.float32) for a in model.get_weights()]
    new[5] = np.abs(new[5]) + 0.1  # a moving variance is positive
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    before = model.get_weights()
    bad_lists = [
        new[:-1],                                            # one array short
        new[:-1] + [np.zeros((3,))],                         # last array misshaped
        [new[0].T] + new[1:],                                # torch's layout for the first kernel
        new[:7] + [np.array(["a", "b"])],                    # not numeric
    ]
    for bad in bad_lists:
        with pytest.raises((ValueError, TypeError)):
            model.set_weights(bad)
        for got, want in zip(model.get_weights(), before):
            np.testing.assert_array_equal(got, want)


def test_count_params_is_keras_count_including_moving_statistics():
    model = keras.Sequential([layers.Dense(16, input_shape=(8,)), layers.BatchNormalization()])
    assert model.layers[1].count_params() == 4 * 16          # gamma, beta, moving mean, moving variance
    text = model.summary(print_fn=None)
    assert "Total params: 208" in text and "Trainable params: 176" in text and "Non-trainable params: 32" in text


# ----------------------------------------------------------------------------- BatchNormalization


def _bn_reference(x, gamma, beta, mm, mv, momentum, eps, axis=-1):
    axes = tuple(d for d in range(x.ndim) if d != axis % x.ndim)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    shape = [1] * x.ndim
    shape[axis] = -1
    y = gamma.reshape(shape) * (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) + beta.reshape(shape)
    return y, momentum * mm + (1 - momentum) * mean, momentum * mv + (1 - momentum) * var


@pytest.mark.parametrize("shape,axis", [((16, 6), -1), ((4, 5, 5, 3), -1), ((4, 3, 5, 5), 1), ((6, 7, 4), -1)])
def test_batchnorm_training_step_and_moving_averages_follow_keras_formula(shape, axis):
    x = (_x(shape, 1) * 3 + 1).astype(np.float64)
    bn = layers.BatchNormalization(axis=axis, momentum=0.9)
    model = keras.Sequential([keras.Input(shape[1:]), bn])
    gamma, beta, mm, mv = bn.get_weights()
    assert np.all(gamma == 1) and np.all(beta == 0) and np.all(mm == 0) and np.all(mv == 1)
    gamma = np.linspace(0.5, 2, gamma.size).astype(np.float32)
    beta = np.linspace(-1, 1, beta.size).astype(np.float32)
    bn.set_weights([gamma, beta, mm, mv])
    y = model(x.astype(np.float32), training=True).data
    want_y, want_mm, want_mv = _bn_reference(x, gamma, beta, mm, mv, 0.9, 1e-3, axis)
    np.testing.assert_allclose(y, want_y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_mean, want_mm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance, want_mv, rtol=1e-5, atol=1e-6)
    # inference uses the moving statistics
    pred = model.predict(x)
    shape1 = [1] * x.ndim
    shape1[axis] = -1
    want = gamma.reshape(shape1) * (x - want_mm.reshape(shape1)) / np.sqrt(want_mv.reshape(shape1) + 1e-3) \
        + beta.reshape(shape1)
    np.testing.assert_allclose(pred, want, rtol=1e-4, atol=1e-4)


def test_batchnorm_matches_torch_with_momentum_one_minus_keras():
    torch = pytest.importorskip("torch")
    x = _x((8, 4, 4, 3), 2) * 2 + 0.5
    bn = layers.BatchNormalization(momentum=0.99, epsilon=1e-3, unbiased_moving_variance=True)
    model = keras.Sequential([keras.Input((4, 4, 3)), bn])
    ref = torch.nn.BatchNorm2d(3, momentum=1 - 0.99, eps=1e-3).double()
    xt = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_(True)
    for _ in range(3):  # three training steps
        ours = model(x, training=True)
        theirs = ref(xt)
    np.testing.assert_allclose(ours.data, theirs.permute(0, 2, 3, 1).detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_mean, ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance, ref.running_var.numpy(), rtol=1e-5, atol=1e-6)
    # gradients of a weighted sum: same as torch
    wts = np.random.default_rng(5).normal(size=x.shape)
    xin = to.tensor(x, requires_grad=True)
    out = model(xin, training=True)
    (out * to.tensor(wts.astype(np.float32))).sum().backward()
    xt2 = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_(True)
    (ref(xt2).permute(0, 2, 3, 1) * torch.tensor(wts)).sum().backward()
    np.testing.assert_allclose(xin.grad.data, xt2.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.gamma.grad.data, ref.weight.grad.numpy(), rtol=1e-3, atol=1e-4)


def test_batchnorm_default_keeps_the_biased_variance_as_keras():
    x = _x((5, 2), 3)
    bn = layers.BatchNormalization(momentum=0.0)  # moving = batch statistic
    keras.Sequential([keras.Input((2,)), bn])(x, training=True)
    np.testing.assert_allclose(bn.moving_variance, x.var(axis=0), rtol=1e-5)  # ddof=0


def test_batchnorm_batch_of_one_gives_beta_like_keras():
    bn = layers.BatchNormalization(beta_initializer=initializers.Constant(0.25))
    y = keras.Sequential([keras.Input((3,)), bn])(_x((1, 3)), training=True)
    np.testing.assert_allclose(y.data, np.full((1, 3), 0.25))


def test_batchnorm_trains_in_fit_and_refuses_bad_arguments():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32) * 5 + 3
    y = (x[:, 0] > 3).astype(np.int64)
    model = keras.Sequential([keras.Input((6,)), layers.BatchNormalization(), layers.Dense(2, rng=0)])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=5, batch_size=16, verbose=0, rng=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert not np.allclose(model.layers[0].moving_mean, 0)
    for kwargs in ({"momentum": 1.5}, {"momentum": float("nan")}, {"epsilon": 0}, {"epsilon": -1e-3},
                   {"axis": 1.0}, {"center": "yes"}):
        with pytest.raises((ValueError, TypeError)):
            layers.BatchNormalization(**kwargs)
    with pytest.raises(to.errors.ShapeError, match="axis 0"):
        keras.Sequential([keras.Input((3,)), layers.BatchNormalization(axis=0)])


# ----------------------------------------------------------------------------- initializers


def test_dense_and_conv_default_to_glorot_uniform_with_keras_fans():
    dense = keras.Sequential([layers.Dense(300, input_shape=(200,), rng=0)]).layers[0]
    kernel, bias = dense.get_weights()
    limit = np.sqrt(6 / (200 + 300))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.98 * limit
    assert np.all(bias == 0)
    conv = keras.Sequential([layers.Conv2D(32, 3, input_shape=(8, 8, 16), rng=0)]).layers[0]
    k = conv.get_weights()[0]
    limit = np.sqrt(6 / (16 * 9 + 32 * 9))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.98 * limit


@pytest.mark.parametrize("spec,std", [("he_normal", np.sqrt(2 / 400)), (initializers.HeNormal(seed=1), np.sqrt(2 / 400)),
                                      ("glorot_normal", np.sqrt(2 / 700)), ("lecun_normal", np.sqrt(1 / 400))])
def test_truncated_normal_initializers_have_the_stated_variance_and_bound(spec, std):
    kernel = keras.Sequential([layers.Dense(300, kernel_initializer=spec, input_shape=(400,), rng=2)]).get_weights()[0]
    assert kernel.std() == pytest.approx(std, rel=0.02)
    assert np.abs(kernel).max() <= 2 * std / 0.87962566103423978 + 1e-7


def test_random_normal_zeros_ones_and_strings_or_classes():
    init = initializers.RandomNormal(mean=1.0, stddev=0.5, seed=3)
    a = init((500, 200))
    assert a.mean() == pytest.approx(1.0, abs=0.01) and a.std() == pytest.approx(0.5, rel=0.02)
    np.testing.assert_array_equal(a, init((500, 200)))  # a seeded initializer repeats itself (Keras 3)
    model = keras.Sequential([layers.Dense(3, kernel_initializer="zeros", bias_initializer=initializers.Ones(),
                                           input_shape=(2,))])
    k, b = model.get_weights()
    assert np.all(k == 0) and np.all(b == 1)
    model = keras.Sequential([layers.Dense(3, kernel_initializer=initializers.Zeros, bias_initializer="ones",
                                           input_shape=(2,))])
    assert np.all(model.get_weights()[1] == 1)
    assert isinstance(initializers.get("HeNormal"), initializers.HeNormal)


def test_seeded_initializer_gives_the_same_layer_and_unseeded_ones_follow_set_random_seed():
    def kernel(init, rng=None):
        return keras.Sequential([layers.Dense(4, kernel_initializer=init, input_shape=(3,), rng=rng)]).get_weights()[0]
    np.testing.assert_array_equal(kernel(initializers.GlorotUniform(seed=7)), kernel(initializers.GlorotUniform(seed=7)))
    assert not np.array_equal(kernel(initializers.GlorotUniform(seed=7)), kernel(initializers.GlorotUniform(seed=8)))
    keras.utils.set_random_seed(11)
    first = kernel("he_normal")
    keras.utils.set_random_seed(11)
    np.testing.assert_array_equal(first, kernel("he_normal"))
    with pytest.raises(ValueError):
        keras.utils.set_random_seed(-1)


def test_bad_initializer_arguments_are_refused():
    for bad in ("he_normall", 3, None, {"class_name": "Nope", "config": {}}):
        with pytest.raises((ValueError, TypeError)):
            layers.Dense(3, kernel_initializer=bad)
    for make in (lambda: initializers.RandomNormal(stddev=-1), lambda: initializers.RandomUniform(1, 0),
                 lambda: initializers.HeNormal(seed="1"), lambda: initializers.RandomNormal(mean=float("nan")),
                 lambda: initializers.VarianceScaling(mode="fan_x")):
        with pytest.raises((ValueError, TypeError)):
            make()


def test_model_losses_are_the_regularization_terms():
    model = keras.Sequential([layers.Dense(3, input_shape=(2,), kernel_regularizer=keras.regularizers.l2(0.1),
                                           bias_regularizer="l1", bias_initializer="ones"), layers.Dense(1)])
    kernel, bias = model.layers[0].get_weights()[:2]
    got = [float(t.item()) for t in model.losses]
    assert got == pytest.approx([0.1 * (kernel ** 2).sum(), 0.01 * np.abs(bias).sum()], rel=1e-5)
    assert model.layers[1].losses == []
    model.compile("sgd", "mse")
    x, y = _x((4, 2)), _x((4, 1))
    pred = model.predict(x)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(((pred - y) ** 2).mean() + sum(got), rel=1e-5)
