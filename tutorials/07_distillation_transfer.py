# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 7: knowledge distillation and transfer learning
#
# Seed 004 (`004_*.txt` §3.1, §4.3) names knowledge distillation, "train a simple model to get
# a more efficient one", and its code feeds the teacher's outputs *into* the student; seed 003
# names transfer learning ("知识迁移优化") without showing it. This lesson does both from
# their papers:
#
# 1. softmax with a temperature, and the "dark knowledge" a teacher's soft targets carry;
# 2. the distillation loss, and why its soft term is multiplied by T² (checked numerically);
# 3. seed 004's code, what is wrong with it, and the corrected models on CIFAR-10-shaped data;
# 4. a distilled student against the same student from scratch, on Fashion-MNIST, and a T sweep;
# 5. the Keras example's `Distiller`;
# 6. transfer learning: freezing (and BatchNorm in frozen layers), a new head, a smaller learning
#    rate for early layers, on Fashion-MNIST classes 0-4 → 5-9.
#
# Set `TINYOPT_FAST=1` (the test suite does) for small settings; `benchmarks/distill_transfer.py`
# runs the full experiments (its numbers are in the README).

# %%
import os
from pathlib import Path

import numpy as np

import tinyopt as to
from tinyopt import distill, keras, nn, optim, transfer
from tinyopt.datasets import fashion_mnist
from tinyopt.errors import ShapeError
from tinyopt.nn import functional as F

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "07_distillation_transfer"
OUT.mkdir(parents=True, exist_ok=True)

from tinyopt import plot  # noqa: E402,F401  (chooses a non-interactive backend when there is no display)
import matplotlib.pyplot as plt  # noqa: E402


def softmax_np(z, T=1.0):
    e = np.exp((z - z.max(axis=-1, keepdims=True)) / T)
    return e / e.sum(axis=-1, keepdims=True)


def accuracy(model, x, y):
    with to.no_grad():
        was = model.training
        model.eval()
        out = model(to.tensor(x)).data
        model.train(was)
    return float((out.argmax(1) == y).mean())


def train_ce(model, x, y, epochs, lr=1e-3, batch=64, seed=0, params=None):
    """Cross-entropy with Adam: the PyTorch loop, written out once."""
    opt = optim.Adam(model.parameters() if params is None else params, lr=lr)
    order_rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        order = order_rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(to.tensor(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


# %% [markdown]
# ## 1. Softmax with a temperature
#
# $$ p_i^T = \frac{\exp(z_i / T)}{\sum_j \exp(z_j / T)} $$
#
# T = 1 is the ordinary softmax. A large T flattens the distribution and brings out the small
# probabilities: that a shirt looks a little like a T-shirt and not at all like a sandal. Hinton
# et al. (2015) call this the *dark knowledge*: an image with label "shirt" tells a student one
# thing, but a teacher's soft distribution over ten classes tells it how the classes relate,
# many numbers per example instead of one.
#
# Load Fashion-MNIST (a subset under FAST) and train a teacher MLP.

# %%
N_TRAIN = 3000 if FAST else 20000
(x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
order = np.random.default_rng(0).permutation(len(x_train))[:N_TRAIN]
prep = lambda x: ((x.astype(np.float32) / 255.0) - 0.2860) / 0.3530  # noqa: E731
x_tr, y_tr = prep(x_train[order]).reshape(-1, 784), y_train[order].astype(np.int64)
n_test = 2000 if FAST else 10000
x_te, y_te = prep(x_test[:n_test]).reshape(-1, 784), y_test[:n_test].astype(np.int64)


def teacher_mlp(seed):
    g = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(784, 256, rng=g), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 256, rng=g),
                         nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10, rng=g))


def student_mlp(seed, hidden=16):
    g = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(784, hidden, rng=g), nn.ReLU(), nn.Linear(hidden, 10, rng=g))


teacher = train_ce(teacher_mlp(0), x_tr, y_tr, epochs=4 if FAST else 10)
acc_teacher = accuracy(teacher, x_te, y_te)
print(f"teacher test accuracy: {acc_teacher:.4f}")

# %%
names = fashion_mnist.CLASS_NAMES
with to.no_grad():
    teacher.eval()
    z_few = teacher(to.tensor(x_te[:3])).data
temperatures = (1, 4, 20)
fig, axes = plt.subplots(3, 1 + len(temperatures), figsize=(13, 7))
for row in range(3):
    axes[row, 0].imshow(x_test[row], cmap="gray")
    axes[row, 0].set_title(f"label: {names[y_te[row]]}")
    axes[row, 0].axis("off")
    for col, T in enumerate(temperatures, start=1):
        axes[row, col].bar(range(10), softmax_np(z_few[row], T))
        axes[row, col].set_ylim(0, 1)
        axes[row, col].set_xticks(range(10))
        axes[row, col].set_xticklabels([n[:4] for n in names], rotation=90, fontsize=7)
        axes[row, col].set_title(f"T = {T}")
fig.suptitle("a teacher's soft targets: the dark knowledge shows at higher T")
fig.tight_layout()
fig.savefig(OUT / "dark_knowledge.png", dpi=80)
plt.close(fig)
entropy = {T: float(-(softmax_np(z_few, T) * np.log(softmax_np(z_few, T))).sum(1).mean()) for T in temperatures}
print("mean entropy of the soft targets (nats):", {T: round(h, 3) for T, h in entropy.items()})

# %% [markdown]
# ## 2. The distillation loss, and the T² factor
#
# With teacher logits z_t, student logits z_s and labels y (`F.kd_loss`, the form most PyTorch
# code writes):
#
# $$ L = \alpha\, T^2\, \mathrm{KL}\big(p_t^T \,\|\, p_s^T\big) + (1 - \alpha)\, \mathrm{CE}(z_s, y) $$
#
# **Why T².** The gradient of the soft term with respect to a student logit is
# $\partial \mathrm{KL}/\partial z_{s,i} = (p^T_{s,i} - p^T_{t,i}) / T$. When T is large next to
# the logits, $p^T_i \approx (1 + z_i/T)/C$ (zero-mean logits), so the gradient is about
# $(z_{s,i} - z_{t,i}) / (C\,T^2)$: it shrinks like 1/T². Multiplying by T² keeps the soft term's
# gradients the same size at every temperature, so α means the same thing at T = 2 and T = 20.
# `kl_div` wants the student's *log*-probabilities and uses `reduction="batchmean"`
# (the default "mean" also divides by the number of classes, and warns).

# %%
rng = np.random.default_rng(1)
z_s = rng.standard_normal((5, 10))
z_t = rng.standard_normal((5, 10))
z_s -= z_s.mean(1, keepdims=True)
z_t -= z_t.mean(1, keepdims=True)
labels = rng.integers(0, 10, 5)
T, alpha = 4.0, 0.9


def kd_loss(z_s, z_t, y, T, alpha):
    """Exercise: the distillation loss of (N, C) logit arrays and (N,) labels, as a float:
    α · T² · mean_n KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α) · mean_n CE(z_s, y)."""
    # BEGIN SOLUTION kd_loss
    z_s, z_t = np.asarray(z_s, dtype=np.float64), np.asarray(z_t, dtype=np.float64)
    p_t, log_q = softmax_np(z_t, T), np.log(softmax_np(z_s, T))
    kl = (p_t * (np.log(p_t) - log_q)).sum(axis=1).mean()
    ce = -np.log(softmax_np(z_s))[np.arange(len(y)), np.asarray(y)].mean()
    return float(alpha * T * T * kl + (1 - alpha) * ce)
    # END SOLUTION


by_hand = kd_loss(z_s, z_t, labels, T, alpha)
by_library = F.kd_loss(to.tensor(z_s), to.tensor(z_t), labels, T=T, alpha=alpha).item()
print(f"kd_loss by hand {by_hand:.10f}, F.kd_loss {by_library:.10f}")

grad_norms = {}
for T_ in (1, 2, 4, 8, 20, 100):
    s = to.tensor(z_s, requires_grad=True)
    F.kd_loss(s, to.tensor(z_t), T=float(T_)).backward()   # T² · KL
    grad_with = np.linalg.norm(s.grad.numpy())
    grad_norms[T_] = (grad_with / T_ ** 2, grad_with)       # (KL alone, T² · KL)
    print(f"T = {T_:>3}: |grad KL| = {grad_with / T_ ** 2:.2e}   |grad T²·KL| = {grad_with:.3e}")
fig, ax = plt.subplots(figsize=(5, 3.5))
ts = list(grad_norms)
ax.loglog(ts, [grad_norms[t][0] for t in ts], "o-", label="KL alone (∝ 1/T²)")
ax.loglog(ts, [grad_norms[t][1] for t in ts], "s-", label="T² · KL")
ax.set_xlabel("temperature T")
ax.set_ylabel("gradient norm w.r.t. student logits")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "t_squared.png", dpi=80)
plt.close(fig)

# %% [markdown]
# ## 3. Seed 004's distillation code, corrected
#
# The seed trains a `LargeModel` teacher and a `SmallModel` student. Three things are wrong:
#
# 1. `fc1 = Linear(128 * 28 * 28, 10)` after `avg_pool2d(x, 4)` of 32×32 CIFAR images (3
#    channels, `Conv2d(3, ...)`): the pooled map is 8×8, so the layer takes 128·8·8 = 8192
#    features (and the student 64·8·8), not 128·28·28.
# 2. `teacher.step()` / `student.step()`: a module has no `step`; the *optimizer* steps, after
#    `loss.backward()`.
# 3. `outputs = student(teacher(inputs))`, trained on the labels, is not distillation. It stacks
#    the student on the teacher's 10 outputs (the student's `conv1` cannot even take them), so
#    the teacher is still needed at inference, and the teacher's outputs are used as *inputs*,
#    not as *targets*. Distillation runs both on the same images and trains the student's
#    softened outputs towards the teacher's (`F.kd_loss`).

# %%
class LargeModel(nn.Module):
    def __init__(self, rng=None):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, rng=rng)
        self.conv2 = nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1, rng=rng)
        self.fc1 = nn.Linear(128 * 8 * 8, 10, rng=rng)   # the seed wrote 128 * 28 * 28

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.avg_pool2d(x, 4)                            # 32×32 → 8×8
        return self.fc1(x.view(x.size(0), -1))


class SmallModel(nn.Module):
    def __init__(self, rng=None):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, rng=rng)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, rng=rng)
        self.fc1 = nn.Linear(64 * 8 * 8, 10, rng=rng)    # the seed wrote 64 * 28 * 28

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.avg_pool2d(x, 4)
        return self.fc1(x.view(x.size(0), -1))


g = np.random.default_rng(4)
images = to.tensor(g.standard_normal((4, 3, 32, 32)).astype(np.float32))  # CIFAR-10-shaped (N, 3, 32, 32)
cifar_labels = g.integers(0, 10, 4)
big, small = LargeModel(rng=g), SmallModel(rng=g)
print("teacher logits:", big(images).shape, " student logits:", small(images).shape)

seed_errors = {}
seed_fc1 = nn.Linear(128 * 28 * 28, 10, rng=g)            # erratum 1: the seed's layer
try:
    seed_fc1(F.avg_pool2d(F.relu(big.conv2(F.relu(big.conv1(images)))), 4).view(4, -1))
except ShapeError as e:
    seed_errors["fc1"] = e
try:
    big.step()                                             # erratum 2
except AttributeError as e:
    seed_errors["step"] = e
try:
    small(big(images))                                     # erratum 3: the student cannot even take (N, 10)
except (ShapeError, ValueError) as e:
    seed_errors["stacked"] = e
for k, e in seed_errors.items():
    print(f"seed's {k}: {type(e).__name__}: {str(e)[:110]}")

# The corrected loop: the optimizer steps; the teacher runs in eval mode under no_grad.
opt_small = optim.Adam(small.parameters(), lr=1e-3)
d_cifar = distill.Distiller(big, small, T=4.0, alpha=0.9)
for _ in range(2):
    loss = d_cifar.loss(images, cifar_labels)       # kd_loss(small(x), big(x) under no_grad, y)
    opt_small.zero_grad()
    loss.backward()
    opt_small.step()
print(f"one corrected distillation step on CIFAR-shaped data: loss {loss.item():.4f}")

# %% [markdown]
# ## 4. Does distillation help? The Hinton-style experiment
#
# The same small student (784-16-10, the same initial weights and the same batches), trained
# for the same number of epochs on the labels alone and with the teacher's soft targets.
# "Gap recovered" is (distilled − scratch)/(teacher − scratch). Hinton et al. recovered 91% on
# MNIST (146 → 74 errors, teacher 67), with a student big enough to overfit. Here the student is
# tiny and the teacher only a little better: distillation need not help, and the numbers say so
# (`benchmarks/distill_transfer.py` has the larger runs; the README the measured table).

# %%
EPOCHS = 4 if FAST else 8
scratch = train_ce(student_mlp(100), x_tr, y_tr, EPOCHS)
acc_scratch = accuracy(scratch, x_te, y_te)


def distilled_student(T, alpha, seed=100, x=x_tr, y=y_tr, epochs=EPOCHS, hidden=16):
    student = student_mlp(seed, hidden)
    d = distill.Distiller(teacher, student, T=T, alpha=alpha)
    d.fit(x, y, optim.Adam(d.parameters(), lr=1e-3), epochs=epochs, batch_size=64, rng=0)
    return student


acc_kd = accuracy(distilled_student(4.0, 0.9), x_te, y_te)
recovered = (acc_kd - acc_scratch) / (acc_teacher - acc_scratch)
print("| model | test acc |\n|---|---:|")
print(f"| teacher | {acc_teacher:.4f} |\n| student from scratch | {acc_scratch:.4f} |\n"
      f"| distilled student (T=4, α=0.9) | {acc_kd:.4f} |")
print(f"gap recovered: {recovered:.0%}")

# %% [markdown]
# Two things change the picture. **Training long enough**: the soft targets are a harder target
# than the labels, and a distilled student keeps improving after one trained on labels alone has
# stopped (or started to overfit), so "the same few epochs" favours the student from scratch.
# And **little labelled data**: each example's ten soft probabilities say far more than its one
# label. The student (now 784-64-10) sees only 300 labelled images, for 100 epochs; the teacher
# was trained on all of them.

# %%
N_FEW, EPOCHS_FEW = 300, 100
scratch_few = accuracy(train_ce(student_mlp(7, hidden=64), x_tr[:N_FEW], y_tr[:N_FEW], EPOCHS_FEW), x_te, y_te)
kd_few = accuracy(distilled_student(4.0, 0.9, seed=7, x=x_tr[:N_FEW], y=y_tr[:N_FEW], epochs=EPOCHS_FEW, hidden=64),
                  x_te, y_te)
print(f"{N_FEW} labelled images: from scratch {scratch_few:.4f}, distilled {kd_few:.4f}")

# %%
sweep_T = (1.0, 4.0, 20.0) if FAST else (1.0, 2.0, 4.0, 8.0, 20.0)
acc_by_T = {T_: (acc_kd if T_ == 4.0 else accuracy(distilled_student(T_, 0.9), x_te, y_te)) for T_ in sweep_T}
sweep_alpha = (0.0, 0.5, 0.9, 1.0)
acc_by_alpha = {a: (acc_kd if a == 0.9 else accuracy(distilled_student(4.0, a), x_te, y_te)) for a in sweep_alpha}
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax.semilogx(list(acc_by_T), list(acc_by_T.values()), "o-", label="distilled student (α = 0.9)")
ax2.plot(list(acc_by_alpha), list(acc_by_alpha.values()), "o-", label="distilled student (T = 4)")
for a_, xlabel in ((ax, "temperature T"), (ax2, "α (weight of the soft term)")):
    a_.axhline(acc_scratch, color="gray", ls="--", label="from scratch")
    a_.axhline(acc_teacher, color="k", ls=":", label="teacher")
    a_.set_xlabel(xlabel)
    a_.set_ylabel("test accuracy")
    a_.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "temperature_sweep.png", dpi=80)
plt.close(fig)
print("accuracy by alpha:", {k: round(v, 4) for k, v in acc_by_alpha.items()})
print("accuracy by T:", {k: round(v, 4) for k, v in acc_by_T.items()})

# %% [markdown]
# **Feature hints (FitNets).** A student can also be trained to reproduce a teacher's hidden
# features, through a learned regressor r: $L_{hint} = \mathrm{mean}(r(v(x)) - u(x))^2$, with u a
# teacher layer and v a thinner student layer. `distill.FeatureHint` records both with forward
# hooks; `Distiller(..., hints=[hint], beta=β)` adds β·L_hint, and `hint_loss(x)` alone is
# FitNets' first stage.

# %%
hint_student = student_mlp(100)
hint = distill.FeatureHint.linear(teacher[4], hint_student[1], 16, 256, rng=0)  # ReLU outputs: 16 → 256
d_hint = distill.Distiller(teacher, hint_student, hints=[hint])
opt_hint = optim.Adam(list(hint_student[0].parameters()) + list(hint.parameters()), lr=1e-3)
first_hint = None
for i in range(0, 1024, 64):
    loss = d_hint.hint_loss(x_tr[i:i + 64])
    first_hint = loss.item() if first_hint is None else first_hint
    opt_hint.zero_grad()
    loss.backward()
    opt_hint.step()
last_hint = d_hint.hint_loss(x_tr[:256]).item()
print(f"FitNets stage 1: hint loss {first_hint:.3f} → {last_hint:.3f}")

# %% [markdown]
# ## 5. The Keras example's `Distiller`
#
# keras.io's example subclasses `keras.Model`; `tinyopt.keras.Distiller` has the same
# `compile(optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha, temperature)` and
# `fit`. Careful with α: there it weights the *label* loss
# (`α·student_loss + (1−α)·T²·KL`), so Keras' α = 0.1 is `kd_loss`'s α = 0.9.

# %%
def keras_student(seed):
    return keras.Sequential([keras.layers.Input(shape=(784,)), keras.layers.Dense(16, activation="relu", rng=seed),
                             keras.layers.Dense(10, rng=seed + 1)])


class TeacherAsLogits(nn.Module):  # any tinyopt module can teach a Keras student
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


k_student = keras_student(3)
k_distiller = keras.Distiller(student=k_student, teacher=TeacherAsLogits(teacher))
k_distiller.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), metrics=["accuracy"],
                    student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=10)
k_distiller.fit(x_tr, y_tr, epochs=1 if FAST else 3, batch_size=64, verbose=0, rng=0)
k_loss, k_acc = k_distiller.evaluate(x_te, y_te, verbose=0)
print(f"Keras-style distilled student: test accuracy {k_acc:.4f}")
z_check = k_distiller(x_te[:8])
keras_loss = k_distiller.loss(y_te[:8], z_check).item()
with to.no_grad():
    teacher.eval()                                   # the Distiller ran the teacher in evaluation mode
    z_teacher = teacher(to.tensor(x_te[:8]))
torch_form = F.kd_loss(z_check, z_teacher, y_te[:8], T=10.0, alpha=0.9).item()
print(f"Keras' loss with α=0.1: {keras_loss:.6f};  kd_loss with α=0.9: {torch_form:.6f}")

# %% [markdown]
# ## 6. Transfer learning: classes 0-4 → classes 5-9
#
# Pretrain a small CNN on classes 0-4 (T-shirt, trouser, pullover, dress, coat), then learn
# classes 5-9 (sandal, shirt, sneaker, bag, ankle boot) from a few labels per class, three ways:
# from scratch; as a **frozen feature extractor** with a new head; **fine-tuned**, with the
# backbone at a 10× smaller learning rate (discriminative fine-tuning).
#
# **BatchNorm in frozen layers.** `requires_grad_(False)` stops gradients, but a BatchNorm in
# training mode still normalises with the batch's statistics and *updates* its running mean and
# variance: a "frozen" backbone drifts. `transfer.freeze` also runs the BatchNorms in evaluation
# mode (Keras does this for `trainable = False`).

# %%
def cnn_head(g, n_classes=5):
    return nn.Sequential(nn.Linear(16 * 7 * 7, 32, rng=g), nn.ReLU(), nn.Linear(32, n_classes, rng=g))


def cnn(seed, n_classes=5):
    """Keras' mnist_transfer_cnn split: the convolutions (`features`) and the dense layers (`head`)."""
    g = np.random.default_rng(seed)
    features = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, rng=g), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, rng=g), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    model = nn.Sequential()
    model.add_module("features", features)
    model.add_module("head", cnn_head(g, n_classes))
    return model


x_img, x_img_te = prep(x_train)[:, None], prep(x_test)[:, None]
y_all, y_all_te = y_train.astype(np.int64), y_test.astype(np.int64)
n_pre = 2000 if FAST else 12000
pre_idx = np.flatnonzero(y_all < 5)[:n_pre]
base = train_ce(cnn(0), x_img[pre_idx], y_all[pre_idx], epochs=2 if FAST else 3, lr=2e-3)
te_new = np.flatnonzero(y_all_te >= 5)[:1000 if FAST else 5000]
x_new_te, y_new_te = x_img_te[te_new], y_all_te[te_new] - 5
print(f"pretrained on classes 0-4: test accuracy {accuracy(base, x_img_te[y_all_te < 5][:1000], y_all_te[y_all_te < 5][:1000]):.4f}")

# requires_grad_(False) alone: the running statistics move
drift = cnn(0)
drift.load_state_dict(base.state_dict())
drift.features.requires_grad_(False)
drift.train()
drift(to.tensor(x_img[np.flatnonzero(y_all >= 5)[:64]]))
moved = float(np.abs(drift.features[1].running_mean - base.features[1].running_mean).max())
print(f"requires_grad_(False) only: BatchNorm running mean moved by up to {moved:.3f}")

per_class_list = (10, 50) if FAST else (10, 50, 500)
steps = 60 if FAST else 400
results = {}
for per_class in per_class_list:
    g = np.random.default_rng(per_class)
    idx = np.concatenate([g.choice(np.flatnonzero(y_all == c), per_class, replace=False) for c in range(5, 10)])
    xs, ys = x_img[idx], y_all[idx] - 5
    epochs = max(1, int(np.ceil(steps * 32 / len(xs))))
    row = {}
    for way in ("scratch", "frozen", "fine-tuned"):
        model, params = cnn(11), None
        if way != "scratch":
            model.load_state_dict(base.state_dict())
            model.head = cnn_head(np.random.default_rng(12))                # replace the head
        if way == "frozen":
            transfer.freeze(model.features)                             # weights and BatchNorm statistics
            params = transfer.trainable_parameters(model)
            frozen_before = {k: v.copy() for k, v in model.features.state_dict().items()}
        if way == "fine-tuned":
            params = transfer.param_groups(model, {"features": 1e-4}, default_lr=1e-3)
        train_ce(model, xs, ys, epochs, lr=1e-3, batch=32, params=params, seed=per_class)
        if way == "frozen":
            frozen_unchanged = all(np.array_equal(v, frozen_before[k]) for k, v in model.features.state_dict().items())
        row[way] = accuracy(model, x_new_te, y_new_te)
    results[per_class] = row
print("| labels per class | from scratch | frozen + new head | fine-tuned |\n|---:|---:|---:|---:|")
for per_class, row in results.items():
    print(f"| {per_class} | {row['scratch']:.4f} | {row['frozen']:.4f} | {row['fine-tuned']:.4f} |")

fig, ax = plt.subplots(figsize=(5, 3.5))
for way in ("scratch", "frozen", "fine-tuned"):
    ax.plot(list(results), [results[k][way] for k in results], "o-", label=way)
ax.set_xscale("log")
ax.set_xlabel("labels per class (classes 5-9)")
ax.set_ylabel("test accuracy")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "transfer.png", dpi=80)
plt.close(fig)

# %% [markdown]
# In Keras the same freezing is `layer.trainable = False` (or `model.trainable = False`), and
# `summary()` counts what is frozen:

# %%
k_model = keras.Sequential([keras.layers.Input(shape=(784,)), keras.layers.Dense(32, activation="relu", rng=0),
                            keras.layers.Dense(5, rng=1)])
k_model.layers[0].trainable = False
summary = k_model.summary()

# %% [markdown]
# ## Checks

# %%
assert abs(by_hand - by_library) < 1e-9                                   # the loss is the formula
assert entropy[20] > entropy[4] > entropy[1]                                # higher T, softer targets
ratios = [grad_norms[t][1] for t in (20, 100)]
assert abs(ratios[0] / ratios[1] - 1) < 0.05                               # T² · KL: T-independent gradients
assert grad_norms[1][0] / grad_norms[100][0] > 1000                        # KL alone: ∝ 1/T²
assert set(seed_errors) == {"fc1", "step", "stacked"}                       # the seed's three errata
assert big(images).shape == (4, 10) and small(images).shape == (4, 10)      # corrected: 128·8·8 and 64·8·8
assert acc_teacher > acc_scratch
assert abs(acc_by_alpha[0.0] - acc_scratch) < 2e-3                          # α = 0 is training on labels alone
assert kd_few > scratch_few, (kd_few, scratch_few)                          # soft targets: more per example
assert last_hint < first_hint                                               # the hint is learnt
assert abs(keras_loss - torch_form) < 1e-4                                 # Keras' α = 1 − kd_loss's α
assert moved > 0 and frozen_unchanged                                       # BatchNorm drifts unless frozen
assert results[10]["frozen"] > 0.5                                          # features of 0-4 serve 5-9 (chance: 0.2)
assert "Non-trainable params: 25,120" in summary                           # 784·32 + 32 frozen
print("all checks passed")

# %% [markdown]
# ## One more exercise (graded by `tinyopt check 07`): the softened softmax softmax(z / T)

# %%
import tinyopt.nn.functional as F  # noqa: E402

def softmax_T(z, T):
    """Row-wise softmax of z / T: T = 1 is the usual softmax, a large T flattens it."""
    # BEGIN SOLUTION softmax_T
    s = z / T
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
    # END SOLUTION


_z = np.random.default_rng(11).standard_normal((3, 5)) * 4
assert np.allclose(softmax_T(_z, 4.0), F.softmax(to.tensor(_z / 4.0), dim=1).data)
