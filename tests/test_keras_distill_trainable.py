"""Keras side: `keras.Distiller` compiled and fitted like the Keras example (its loss is the
example's formula and equals F.kd_loss with alpha swapped), `keras.losses.KLDivergence`, and
`layer.trainable` / `model.trainable` with the counts in summary()."""
import numpy as np
import pytest

import tinyopt as to
from tinyopt import keras
from tinyopt.keras import layers
from tinyopt.nn import functional as F


def _images(rng, n=64):
    x = rng.random((n, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64) + 2 * (
        x[:, :, :4].mean(axis=(1, 2, 3)) > 0.5)
    return x, y


def _cnn(filters, seed):
    return keras.Sequential([
        layers.Input(shape=(8, 8, 1)),
        layers.Conv2D(filters, 3, padding="same", activation="relu", rng=seed),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(4, rng=seed + 1),
    ], name=f"cnn{filters}")


def test_kl_divergence_matches_keras_formula_and_kl_div(rng):
    p = rng.dirichlet(np.ones(5), size=6)
    q = rng.dirichlet(np.ones(5), size=6)
    kld = keras.losses.KLDivergence()
    value = kld(p, to.tensor(q)).item()
    by_hand = (np.clip(p, 1e-7, 1) * np.log(np.clip(p, 1e-7, 1) / np.clip(q, 1e-7, 1))).sum(axis=1).mean()
    np.testing.assert_allclose(value, by_hand, rtol=1e-12)
    np.testing.assert_allclose(value, F.kl_div(to.tensor(np.log(q)), to.tensor(p), reduction="batchmean").item(),
                               rtol=1e-12)
    assert isinstance(keras.losses.get("kl_divergence"), keras.losses.KLDivergence)
    with pytest.raises(ValueError, match="same shape"):
        kld(p[:, :3], to.tensor(q))


def test_distiller_compiles_and_fits_like_the_keras_example(rng):
    x, y = _images(rng)
    teacher = _cnn(16, 0)
    teacher.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    teacher.fit(x, y, epochs=2, verbose=0, rng=0)
    teacher_weights = [w.copy() for w in teacher.get_weights()]

    student = _cnn(4, 5)
    distiller = keras.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), metrics=["accuracy"],
                      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=10)
    history = distiller.fit(x, y, epochs=3, verbose=0, rng=0)
    assert set(history.history) >= {"loss", "accuracy"} and len(history.history["loss"]) == 3
    loss, acc = distiller.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0
    for w, w0 in zip(teacher.get_weights(), teacher_weights):
        np.testing.assert_array_equal(w, w0)  # only the student trains
    assert {id(p) for p in distiller.parameters()} == {id(p) for p in student.parameters()}
    np.testing.assert_allclose(distiller.predict(x[:5]), student.predict(x[:5]), rtol=1e-6)
    assert "Trainable params" in distiller.summary(print_fn=None)


def test_distiller_loss_is_the_keras_formula_and_kd_loss_with_alpha_swapped(rng):
    x, y = _images(rng, 8)
    teacher, student = _cnn(8, 0), _cnn(4, 3)
    distiller = keras.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer="adam", metrics=["accuracy"],
                      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.3, temperature=4)
    z_s = distiller(x)
    loss = distiller.loss(y, z_s).item()
    z_t = teacher.predict(x)
    p, log_q = F.softmax(to.tensor(z_t) / 4, dim=1).data, F.log_softmax(z_s / 4, dim=1).data
    ce = -F.log_softmax(z_s, dim=1).data[np.arange(8), y].mean()
    by_hand = 0.3 * ce + 0.7 * 16 * (p * (np.log(p) - log_q)).sum(axis=1).mean()
    np.testing.assert_allclose(loss, by_hand, rtol=1e-5)
    np.testing.assert_allclose(loss, F.kd_loss(z_s, to.tensor(z_t), y, T=4.0, alpha=0.7).item(), rtol=1e-5)


def test_distiller_bad_arguments():
    teacher, student = _cnn(8, 0), _cnn(4, 3)
    d = keras.Distiller(student=student, teacher=teacher)
    with pytest.raises(ValueError, match="student_loss_fn"):
        d.compile(optimizer="adam")
    with pytest.raises(ValueError, match="alpha"):
        d.compile("adam", None, "sparse_categorical_crossentropy", "kl_divergence", alpha=2.0)
    with pytest.raises(ValueError, match="temperature"):
        d.compile("adam", None, "sparse_categorical_crossentropy", "kl_divergence", temperature=0)
    with pytest.raises(ValueError, match="different"):
        keras.Distiller(student=student, teacher=student)


# ----------------------------------------------------------------------------- trainable


def test_layer_trainable_freezes_its_weights_and_summary_counts_them(rng):
    x, y = _images(rng, 32)
    model = _cnn(4, 0)
    conv = model.layers[0]
    assert conv.trainable and model.trainable
    conv.trainable = False
    assert all(not p.requires_grad for p in conv.parameters())
    text = model.summary(print_fn=None)
    frozen = conv.count_params()
    total = model.count_params()
    assert f"Trainable params: {total - frozen:,}" in text
    assert f"Non-trainable params: {frozen:,}" in text
    before = conv.get_weights()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    head_before = model.layers[-1].get_weights()
    model.fit(x, y, epochs=2, verbose=0, rng=0)
    for w, w0 in zip(conv.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    assert not np.array_equal(model.layers[-1].get_weights()[0], head_before[0])
    conv.trainable = True
    assert all(p.requires_grad for p in conv.parameters())


def test_model_trainable_sets_every_layer_and_applies_at_build():
    model = keras.Sequential([layers.Dense(3, rng=0), layers.Dense(2, rng=1)])  # not built yet
    model.trainable = False
    assert not model.trainable and all(not layer.trainable for layer in model.layers)
    model.build((None, 5))
    assert all(not p.requires_grad for p in model.parameters())
    assert "Trainable params: 0" in model.summary(print_fn=None)
    model.trainable = True
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(TypeError, match="True or False"):
        model.layers[0].trainable = "no"
