# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 04 · Batch size and learning rate
#
# Three measurements with a plain PyTorch-style loop on Fashion-MNIST:
#
# 1. **Gradient noise.** A mini-batch gradient g_B = (1/B) Σ_{i∈batch} ∇ℓ_i estimates the full
#    gradient g = (1/N) Σ_i ∇ℓ_i. Drawing the B samples without replacement,
#
#        E‖g_B − g‖² = (σ²/B) · (N − B)/(N − 1),    σ² = (1/N) Σ_i ‖∇ℓ_i − g‖²,
#
#    so the noise falls like 1/B (the finite-population factor (N − B)/(N − 1) matters only when B
#    approaches N). Larger batches give *more* accurate gradients — the seed article's FAQ says the
#    opposite. We measure the noise for B = 8 … 1024 and check the slope −1 on a log-log plot.
# 2. **Speed and accuracy per epoch.** Larger batches use the vectorised matmuls better (less
#    time per epoch) but take fewer steps per epoch; with the same learning rate and number of
#    epochs they reach a worse model.
# 3. **Learning rate.** Too small: the loss barely moves. About right: it falls fast. Too large:
#    the steps overshoot and the loss climbs far above where it started (or becomes NaN).

# %%
import os
import time
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyopt as to  # noqa: E402
from tinyopt import nn  # noqa: E402
from tinyopt.data import DataLoader  # noqa: E402
from tinyopt.nn import functional as F  # noqa: E402

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "04_batch_size_and_lr"
OUT.mkdir(parents=True, exist_ok=True)

(x_all, y_all), (x_test, y_test) = to.datasets.fashion_mnist.load_data()
N = 2048 if FAST else 10000
x = x_all[:N].reshape(-1, 784).astype(np.float32) / 255.0
y = y_all[:N].astype(np.int64)
x_val = x_test[:1000].reshape(-1, 784).astype(np.float32) / 255.0
y_val = y_test[:1000].astype(np.int64)


def mlp(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(784, 64, rng=rng), nn.ReLU(), nn.Linear(64, 10, rng=rng))


def flat_grad(model, xb, yb):
    model.zero_grad()
    F.cross_entropy(model(to.tensor(xb)), yb).backward()
    return np.concatenate([p.grad.ravel().astype(np.float64) for p in model.parameters()])


def accuracy(model, xs, ys):
    with to.no_grad():
        return float(np.mean(model(to.tensor(xs)).data.argmax(1) == ys))


# %% [markdown]
# ## 1. Gradient noise against batch size
#
# The model is trained briefly first (at initialisation all gradients look alike); then, for each
# B, we draw K random batches and average ‖g_B − g‖².

# %%
model = mlp()
opt = to.optim.SGD(model.parameters(), lr=0.1)
for xb, yb in DataLoader((x, y), batch_size=64, shuffle=True, rng=0):
    opt.zero_grad()
    F.cross_entropy(model(to.tensor(xb)), yb).backward()
    opt.step()

g_full = flat_grad(model, x, y)
rng = np.random.default_rng(1)
K = 12 if FAST else 40
batch_sizes = [8, 16, 32, 64, 128, 256, 512, 1024]
noise = []
for B in batch_sizes:
    sq = [np.sum((flat_grad(model, x[idx], y[idx]) - g_full) ** 2)
          for idx in (rng.choice(N, size=B, replace=False) for _ in range(K))]
    noise.append(float(np.mean(sq)))
    print(f"B={B:5d}  E|g_B - g|^2 ≈ {noise[-1]:.3e}")

# remove the finite-population factor, then fit log(noise) = a + slope · log(B)
corrected = np.array(noise) * (N - 1) / (N - np.array(batch_sizes))
slope, intercept = np.polyfit(np.log(batch_sizes), np.log(corrected), 1)
print(f"log-log slope {slope:.3f} (theory: −1)")

fig, ax = plt.subplots(figsize=(5, 3.6))
ax.loglog(batch_sizes, noise, "o-", label="measured")
ax.loglog(batch_sizes, np.exp(intercept) / np.array(batch_sizes) * (N - np.array(batch_sizes)) / (N - 1), "--",
          label="σ²/B · (N−B)/(N−1), σ² fitted")
ax.set_xlabel("batch size B")
ax.set_ylabel("E‖g_B − g‖²")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "gradient_noise.png")
plt.close(fig)

# %% [markdown]
# ## 2. Time per epoch and accuracy against batch size
#
# Same network, same learning rate (SGD, γ = 0.1), same number of epochs, batch sizes 8 … 1024.

# %%
EPOCHS = 1 if FAST else 3
rows = []
for B in [8, 32, 128, 512, 1024]:
    model = mlp(seed=2)
    opt = to.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader((x, y), batch_size=B, shuffle=True, rng=3)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(to.tensor(xb)), yb).backward()
            opt.step()
    per_epoch = (time.perf_counter() - start) / EPOCHS
    rows.append((B, len(loader), per_epoch, accuracy(model, x_val, y_val)))
    print(f"B={B:5d}  {len(loader):4d} steps/epoch  {per_epoch:6.2f} s/epoch  val acc {rows[-1][3]:.3f}")

bs, steps, secs, accs = map(np.array, zip(*rows))
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
axes[0].semilogx(bs, secs, "o-", base=2)
axes[0].set_xlabel("batch size")
axes[0].set_ylabel("seconds per epoch")
axes[1].semilogx(bs, accs, "o-", base=2)
axes[1].set_xlabel("batch size")
axes[1].set_ylabel(f"validation accuracy after {EPOCHS} epoch(s)")
fig.tight_layout()
fig.savefig(OUT / "batch_size.png")
plt.close(fig)

# %% [markdown]
# ## 3. Learning rate: too small, about right, too large

# %%
curves = {}
for lr in (0.001, 0.1, 50.0):
    model = mlp(seed=4)
    opt = to.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for xb, yb in DataLoader((x, y), batch_size=32, shuffle=True, rng=5):
        opt.zero_grad()
        loss = F.cross_entropy(model(to.tensor(xb)), yb)
        losses.append(loss.item())
        if not np.isfinite(losses[-1]):
            print(f"lr={lr:g}: loss became {losses[-1]} at step {len(losses)}")
            break
        loss.backward()
        opt.step()
    curves[lr] = np.array(losses)
    print(f"lr={lr:<6g} first loss {losses[0]:.3f}  last loss {losses[-1]:.3f}  ({len(losses)} steps)")

fig, ax = plt.subplots(figsize=(6, 3.6))
for lr, losses in curves.items():
    shown = np.where(np.isfinite(losses), losses, np.nan)
    ax.plot(np.arange(1, len(losses) + 1), shown, label=f"lr = {lr:g}")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("training loss (batch)")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "learning_rate.png")
plt.close(fig)

# %% [markdown]
# ## Checks

# %%
# 1. gradient noise falls like 1/B
assert -1.25 < slope < -0.75, slope
assert noise[0] > 10 * noise[-1]
# 2. bigger batches: fewer steps per epoch and (same lr, same epochs) lower accuracy. The time per
#    epoch is printed and plotted but not asserted: timings on a shared machine are too noisy.
assert list(steps) == [int(np.ceil(N / B)) for B in bs]
assert accs[1] > accs[-1]
# 3. the learning rate: too small barely moves, about right falls fast, too large diverges
small, right, large = curves[0.001], curves[0.1], curves[50.0]
tail = lambda c: float(np.mean(c[-10:]))  # noqa: E731
assert tail(right) < tail(small) < small[0]
assert not np.all(np.isfinite(large)) or tail(large) > large[0]
print("all checks passed; plots in", OUT)

# %% [markdown]
# ## Exercises (graded by `tinyopt check 04`)
#
# How many steps an epoch has (⌈N/B⌉, or ⌊N/B⌋ when the last short batch is dropped), and the linear
# scaling rule of Goyal et al. 2017: when the batch grows k-fold, grow the learning rate k-fold,
# η = η₀ · B / B₀ (with a warmup; lesson 10 uses it for data parallelism).

# %%
def steps_per_epoch(n, batch_size, drop_last=False):
    """Optimizer steps in one pass over n examples."""
    # BEGIN SOLUTION steps_per_epoch
    return n // batch_size if drop_last else -(-n // batch_size)
    # END SOLUTION


def linear_scaled_lr(base_lr, base_batch, batch):
    """η = η₀ · B / B₀."""
    # BEGIN SOLUTION linear_scaled_lr
    return base_lr * batch / base_batch
    # END SOLUTION


from tinyopt.utils.data import DataLoader as _Loader, TensorDataset as _Dataset  # noqa: E402

_ds = _Dataset(to.tensor(np.zeros((103, 2))), to.tensor(np.zeros(103)))
assert steps_per_epoch(103, 10) == len(_Loader(_ds, batch_size=10)) == 11
assert steps_per_epoch(103, 10, drop_last=True) == len(_Loader(_ds, batch_size=10, drop_last=True)) == 10
assert linear_scaled_lr(0.1, 256, 1024) == 0.4
