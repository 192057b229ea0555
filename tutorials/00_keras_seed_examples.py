# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 00 · The seed article's Keras examples, on tinyopt
#
# The seed article (`seeds/001_*.txt`, "神经网络优化") teaches with two TensorFlow/Keras
# snippets: an MLP on 784-dimensional inputs and the CIFAR-style CNN from the TensorFlow tutorial.
# Here both run on tinyopt **with only the import line changed**, on Fashion-MNIST (tinyopt also
# reads MNIST and CIFAR-10, `keras.datasets.cifar10.load_data()`, but Fashion-MNIST is the one the
# course can count on being on the machine, and small enough to train on in a lesson).
#
# What changed, and why:
#
# * `import tensorflow as tf` → `import tinyopt as tf`; `from tensorflow.keras import ...` →
#   `from tinyopt.keras import ...`.
# * The data lines. The MLP snippet never defines `train_images`/`train_labels`; we load
#   Fashion-MNIST and flatten it to 784 features. The CNN snippet loads CIFAR-10
#   (32×32×3 colour images); we load Fashion-MNIST (28×28 grey) and make it CIFAR-shaped — pad 2
#   pixels on each side and repeat the grey channel 3 times — so the model code, including
#   `input_shape=(32, 32, 3)`, runs unchanged.
#
# What the seed gets wrong (checked below where it can be):
#
# 1. **Softmax twice.** The MLP ends in `Dense(10, activation='softmax')` *and* uses
#    `SparseCategoricalCrossentropy(from_logits=True)`, which applies a second softmax to
#    probabilities. The loss then cannot go below `log(9 + e) − 1 ≈ 1.461` (the value for a
#    one-hot probability vector), gradients are squashed, and training crawls. Either drop the
#    softmax or use `from_logits=False`. (TensorFlow warns about exactly this.)
# 2. The article calls the CIFAR-10 CNN a "数字图像分类模型" (digit-image classifier); CIFAR-10
#    holds photos of objects (planes, cats, ...), not digits.
# 3. Its FAQ has batch size backwards: it says large batches make the gradient estimate *less*
#    accurate and small batches *more* accurate. A mini-batch gradient is a mean of B per-sample
#    gradients, so its variance falls like 1/B: larger batches estimate the gradient better (and
#    generalise differently, which is another matter). `04_batch_size_and_lr.py` measures it.
# 4. "红外学习率" for Reduce-on-Plateau is a mistranslation ("infrared learning rate");
#    it is `ReduceLROnPlateau`.

# %%
import os

import numpy as np

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))

# %% [markdown]
# ## 1. The MLP, as the seed wrote it

# %%
import tinyopt as tf  # was: import tensorflow as tf

# --- data (the seed leaves this out): Fashion-MNIST as 784-dim vectors in [0, 1]
(train_images, train_labels), (test_images, test_labels) = tf.keras.datasets.fashion_mnist.load_data()
n_train, n_test = (600, 500) if FAST else (60000, 10000)
train_images = train_images[:n_train].reshape(-1, 784) / 255.0
train_labels = train_labels[:n_train]
test_images_flat = test_images[:n_test].reshape(-1, 784) / 255.0
test_labels_n = test_labels[:n_test]
tf.manual_seed(0)  # tinyopt's default generator (weights, shuffling); TensorFlow would use tf.random.set_seed

# --- the seed's code, unchanged
# 定义神经网络模型
model = tf.keras.Sequential([
    tf.keras.layers.Dense(64, activation='relu', input_shape=(784,)),
    tf.keras.layers.Dense(64, activation='relu'),
    tf.keras.layers.Dense(10, activation='softmax')
])

# 定义损失函数和优化算法
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = tf.keras.optimizers.Adam()

# 训练神经网络
model.compile(optimizer=optimizer, loss=loss_fn, metrics=['accuracy'])
model.fit(train_images, train_labels, epochs=10, batch_size=32)

# %%
model.summary()
seed_history = model.history.history
seed_test_loss, seed_test_acc = model.evaluate(test_images_flat, test_labels_n)
print(f"as written (softmax + from_logits=True): test accuracy {seed_test_acc:.3f}, loss {seed_test_loss:.3f}")

# %% [markdown]
# ## 2. The same MLP, fixed
#
# Keep the softmax layer and say the outputs are probabilities (`from_logits=False`, the default).

# %%
tf.manual_seed(0)
fixed = tf.keras.Sequential([
    tf.keras.layers.Dense(64, activation='relu', input_shape=(784,)),
    tf.keras.layers.Dense(64, activation='relu'),
    tf.keras.layers.Dense(10, activation='softmax')
])
fixed.compile(optimizer=tf.keras.optimizers.Adam(), loss=tf.keras.losses.SparseCategoricalCrossentropy(),
              metrics=['accuracy'])
fixed.fit(train_images, train_labels, epochs=10, batch_size=32, verbose=0)
fixed_test_loss, fixed_test_acc = fixed.evaluate(test_images_flat, test_labels_n)
print(f"fixed (from_logits=False): test accuracy {fixed_test_acc:.3f}, loss {fixed_test_loss:.3f}")

# %% [markdown]
# The double softmax puts a floor under the loss. For probabilities p (summing to 1, each in
# [0, 1]) the second softmax gives the true class at most e¹/(e¹ + 9e⁰), so
# `loss ≥ −log(e / (e + 9)) = log(9 + e) − 1`.

# %%
floor = np.log(9 + np.e) - 1
print(f"loss floor with a double softmax: {floor:.4f}; the seed's final training loss: {seed_history['loss'][-1]:.4f}")
assert min(seed_history["loss"]) > floor
assert fixed.history.history["loss"][-1] < floor  # the fixed model gets below the floor
assert fixed_test_loss < seed_test_loss

# %% [markdown]
# ## 3. The CIFAR-style CNN, as the seed wrote it

# %%
from tinyopt.keras import datasets, layers, models  # was: from tensorflow.keras import datasets, layers, models

# --- data: Fashion-MNIST made CIFAR-shaped (32×32×3) instead of datasets.cifar10.load_data()
(train_images, train_labels), (test_images, test_labels) = datasets.fashion_mnist.load_data()
n_train, n_test = (96, 200) if FAST else (10000, 2000)


def cifar_shaped(images):
    """(N, 28, 28) uint8 → (N, 32, 32, 3): pad 2 pixels of background on each side, copy grey to RGB."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(padded[..., None], 3, axis=-1)


train_images, train_labels = cifar_shaped(train_images[:n_train]), train_labels[:n_train]
test_images, test_labels = cifar_shaped(test_images[:n_test]), test_labels[:n_test]

# --- the seed's code, unchanged
# Normalize pixel values to be between 0 and 1
train_images, test_images = train_images / 255.0, test_images / 255.0

# Convert class vectors to binary class matrices (one-hot encoding)
train_labels = tf.keras.utils.to_categorical(train_labels)
test_labels = tf.keras.utils.to_categorical(test_labels)

model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.add(layers.Flatten())
model.add(layers.Dense(64, activation='relu'))
model.add(layers.Dense(10, activation='softmax'))

loss_fn = tf.keras.losses.CategoricalCrossentropy()
optimizer = tf.keras.optimizers.Adam()

model.compile(optimizer=optimizer, loss=loss_fn, metrics=['accuracy'])
model.fit(train_images, train_labels, epochs=10, batch_size=32)

# %%
model.summary()
cnn_loss, cnn_acc = model.evaluate(test_images, test_labels)
print(f"CIFAR-style CNN on Fashion-MNIST: test accuracy {cnn_acc:.3f}")

# %% [markdown]
# The summary matches TensorFlow's for this network (the Keras tutorial prints the same output shapes
# and 122,570 parameters for 32×32×3 inputs). The CNN learns: its training loss falls and its test
# accuracy is far above chance (10 %).

# %%
cnn_history = model.history.history
assert model.count_params() == 122_570
assert model.output_shape == (None, 10)
assert cnn_history["loss"][-1] < cnn_history["loss"][0]
assert cnn_acc > 0.3

# %% [markdown]
# ## Exercises (graded by `tinyopt check 00`)
#
# The two formulas behind the seed's softmax-twice bug: a numerically stable softmax
# p_i = exp(z_i − max z) / Σ_j exp(z_j − max z), and the cross-entropy of probabilities
# L = −mean_n log p[n, y_n] (what `from_logits=False` computes; `from_logits=True` applies softmax first).

# %%
import tinyopt as to  # noqa: E402
import tinyopt.nn.functional as F  # noqa: E402

def softmax(z):
    """Row-wise softmax of an (N, C) array, stable for large logits."""
    # BEGIN SOLUTION softmax
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
    # END SOLUTION


def crossentropy_from_probs(p, y):
    """Mean −log p[n, y_n] of (N, C) probabilities and (N,) integer labels."""
    # BEGIN SOLUTION crossentropy_from_probs
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))
    # END SOLUTION


z_ex = np.random.default_rng(3).standard_normal((5, 10)) * 30
y_ex = np.arange(5)
assert np.allclose(softmax(z_ex).sum(axis=1), 1.0)
assert abs(crossentropy_from_probs(softmax(z_ex), y_ex) - float(F.cross_entropy(to.tensor(z_ex), to.tensor(y_ex)))) < 1e-9
