# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 03 · Underfitting, overfitting, and L2 regularisation
#
# A model **underfits** when it cannot even fit its training data (training loss stays high);
# it **overfits** when it fits the training data much better than data it has not seen (the
# validation loss stops falling and rises while the training loss keeps falling). Two knobs move
# a model between the two:
#
# * **capacity** — here the width H of a one-hidden-layer MLP, 784 → H → 10;
# * **L2 regularisation** — adding λ Σ w² to the loss (Keras' `kernel_regularizer=l2(λ)`).
#   Its gradient is 2λw, so every step also shrinks each weight towards 0 ("weight decay"):
#
#       L_reg(w) = L(w) + λ Σ_i w_i²,     ∇L_reg = ∇L + 2λ w.
#
# We train on a small slice of Fashion-MNIST (small data makes overfitting quick to see) with
# the Keras-style API, hold out a validation set, and compare the curves.

# %%
import os
from pathlib import Path

import numpy as np

import tinyopt as to
from tinyopt import keras, plot
from tinyopt.keras import layers, regularizers

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "03_fitting_capacity_l2"
OUT.mkdir(parents=True, exist_ok=True)

(x_train, y_train), (x_test, y_test) = to.datasets.fashion_mnist.load_data()
n_train, n_val = (400, 400) if FAST else (2000, 2000)
EPOCHS = 20 if FAST else 60
BIG = 256 if FAST else 512  # the large model's width
x = x_train[: n_train + n_val].reshape(-1, 784).astype(np.float32) / 255.0
y = y_train[: n_train + n_val]
x_fit, y_fit, x_val, y_val = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
print(f"{n_train} training images, {n_val} validation images, {EPOCHS} epochs")

# %%
def mlp(hidden: int, l2: float = 0.0, seed: int = 0):
    reg = regularizers.l2(l2) if l2 else None
    model = keras.Sequential([
        layers.Dense(hidden, activation="relu", input_shape=(784,), kernel_regularizer=reg, rng=seed),
        layers.Dense(10, activation="softmax", kernel_regularizer=reg, rng=seed + 1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(hidden: int, l2: float = 0.0):
    model = mlp(hidden, l2)
    history = model.fit(x_fit, y_fit, validation_data=(x_val, y_val), epochs=EPOCHS, batch_size=32,
                        verbose=0, rng=1)
    return model, history.history


# %% [markdown]
# ## Capacity: H = 2 (too small), 32, and a large H (512; 256 in the fast CI run)

# %%
runs = {}
for hidden in (2, 32, BIG):
    model, h = train(hidden)
    runs[f"H={hidden}"] = (model, h)
    gap = h["accuracy"][-1] - h["val_accuracy"][-1]
    print(f"H={hidden:4d}  train acc {h['accuracy'][-1]:.3f}  val acc {h['val_accuracy'][-1]:.3f}  "
          f"gap {gap:+.3f}  best val_loss {min(h['val_loss']):.3f} at epoch {int(np.argmin(h['val_loss'])) + 1}")
    plot.training_curves(h, title=f"MLP 784-{hidden}-10", save=OUT / f"capacity_H{hidden}.png", close=True)

# %% [markdown]
# H = 2 underfits: two hidden units cannot separate ten classes, and training accuracy stays low.
# The large model overfits: it drives its training loss towards zero while its validation loss reaches a
# minimum early and then climbs.

# %% [markdown]
# ## L2 on the large model
#
# Same large network, with λ = 1e-3 on both weight matrices. The reported `loss` includes the
# penalty (as in Keras), so compare accuracies and `val_loss` minus the penalty with care; the
# weight norm shows the effect directly.

# %%
l2_model, l2_hist = train(BIG, l2=1e-3)
big_model, big_hist = runs[f"H={BIG}"]


def sum_sq(model):
    return sum(float(np.sum(p.data.astype(np.float64) ** 2)) for name, p in model.named_parameters() if "weight" in name)


def overfit_rise(h):
    """How far the validation loss climbs after its minimum (0 if it never does)."""
    return h["val_loss"][-1] - min(h["val_loss"])


print(f"H={BIG}         Σw² = {sum_sq(big_model):8.1f}   val acc {big_hist['val_accuracy'][-1]:.3f}  "
      f"gap {big_hist['accuracy'][-1] - big_hist['val_accuracy'][-1]:+.3f}")
print(f"H={BIG}, λ=1e-3 Σw² = {sum_sq(l2_model):8.1f}   val acc {l2_hist['val_accuracy'][-1]:.3f}  "
      f"gap {l2_hist['accuracy'][-1] - l2_hist['val_accuracy'][-1]:+.3f}")
plot.training_curves(l2_hist, title=f"MLP 784-{BIG}-10 with L2 (λ = 1e-3)", save=OUT / f"l2_H{BIG}.png", close=True)

# %% [markdown]
# ## L1, the seed's other penalty
#
# Seed 001 names L1 beside L2: `regularizers.l1(λ)` adds λ Σ_i |w_i|, whose (sub)gradient is
# λ sign(w): a pull of constant size towards 0, however small w already is, where L2's 2λw fades as
# w shrinks. On one weight with the loss ½(w − a)² the two minimisers show the difference:
#
#     L2:  w* = a / (1 + 2λ)                  (every weight shrinks by the same factor, none becomes 0)
#     L1:  w* = sign(a) · max(|a| − λ, 0)     (soft thresholding: every |a| ≤ λ becomes exactly 0)
#
# So L1 makes weights sparse (lesson 06 prunes with the same |w| criterion) and L2 makes them small.
# (With plain gradient steps, as Keras and tinyopt take them, L1 weights oscillate around 0 instead
# of landing on it; proximal methods apply the threshold exactly.)

# %%
a_w = np.linspace(-0.05, 0.05, 11)
lam = 0.025
w_l2 = a_w / (1 + 2 * lam)
w_l1 = np.sign(a_w) * np.maximum(np.abs(a_w) - lam, 0.0) + 0.0      # + 0.0: no "-0." in the print
print("a      ", np.round(a_w, 3))
print("L2 w*  ", np.round(w_l2, 3), " zeros:", int(np.sum(w_l2 == 0)))
print("L1 w*  ", np.round(w_l1, 3), " zeros:", int(np.sum(w_l1 == 0)))
assert np.sum(w_l1 == 0) == np.sum(np.abs(a_w) <= lam) and np.sum(w_l2 == 0) == 1   # only a = 0 itself
w_big = next(p for name, p in big_model.named_parameters() if "weight" in name)    # the Keras penalty is λ Σ |w|
l1_by_hand = lam * float(np.abs(w_big.data.astype(np.float64)).sum())
assert abs(float(regularizers.l1(lam)(w_big)) - l1_by_hand) < 1e-5 * l1_by_hand

# %% [markdown]
# ## Checks
#
# What this lesson claims, asserted on the runs above:

# %%
small, mid, big = (runs[k][1] for k in ("H=2", "H=32", f"H={BIG}"))
gap = {k: h["accuracy"][-1] - h["val_accuracy"][-1] for k, (_, h) in runs.items()}
# 1. more capacity fits the training data better
assert small["accuracy"][-1] < mid["accuracy"][-1] <= big["accuracy"][-1] + 0.02
# 2. the tiny model underfits: low training accuracy
assert small["accuracy"][-1] < 0.75
# 3. the large model overfits: a clear train/validation gap and a validation loss that rises after its minimum
assert gap[f"H={BIG}"] > gap["H=2"] and gap[f"H={BIG}"] > 0.05
assert overfit_rise(big) > 0.05
# 4. L2 keeps the weights small and curbs the rise of the validation loss
assert sum_sq(l2_model) < 0.7 * sum_sq(big_model)
assert overfit_rise(l2_hist) < overfit_rise(big)
print("all checks passed; plots in", OUT)

# %% [markdown]
# ## Exercises (graded by `tinyopt check 03`)
#
# Keras' L2 penalty λ Σ w² (no ½: torch's `weight_decay=λ'` adds λ' w to the gradient, which is this
# penalty with λ = λ'/2) and its gradient 2 λ w.

# %%
def l2_penalty(weights, lam):
    """λ Σ_w w² over a list of weight arrays (Keras' `regularizers.l2(λ)` convention)."""
    # BEGIN SOLUTION l2_penalty
    return float(lam * sum(np.sum(w * w) for w in weights))
    # END SOLUTION


def l2_gradient(w, lam):
    """∂/∂w of λ Σ w²."""
    # BEGIN SOLUTION l2_gradient
    return 2 * lam * w
    # END SOLUTION


w_ex = np.random.default_rng(4).standard_normal((3, 4))
assert abs(l2_penalty([w_ex], 0.01) - float(layers.L2(0.01)(to.tensor(w_ex)))) < 1e-12
assert np.allclose(l2_gradient(w_ex, 0.01), 0.02 * w_ex)
