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
# # Lesson 8: mixed precision — float16, bfloat16, loss scaling and master weights
#
# Seed 002 (§3.3, "半精度计算", half-precision computing) says half precision "lowers the precision
# from floating point to integers" and gives the formula `x_fp16 = round(x × 2^10)`; its code then
# calls `images.half()` and `labels.half()` after the loss has been computed. Three things are wrong:
#
# 1. `round(x · 2¹⁰)` is **fixed point** (an integer count of 2⁻¹⁰ steps), not half precision: float16 is
#    a *floating*-point format with a 5-bit exponent, so its error is relative, not absolute. (The
#    LaTeX `2^10` also renders as 2¹0; it needs `2^{10}`.)
# 2. The labels of a classifier are class indices: they must stay integers (`cross_entropy` takes
#    int64 targets); cast to half, a label above 2048 is not even representable exactly.
# 3. Casting after `loss` is computed changes nothing for that step, and a float16 input to a
#    float32 model is a dtype error in torch. What works is *mixed* precision (Micikevicius et al.
#    2018): float32 master weights, 16-bit compute with float32 accumulation, and loss scaling.
#
# Plan: (1) the formats side by side — bits, range, spacing, rounding error; (2) the seed's errata
# in code; (3) autocast: which ops run in 16 bits; (4) why float16 needs loss scaling — a real
# network's gradients against float16's range, and a constructed case where most gradients
# underflow; (5) a GradScaler's scale during training; (6) master weights; (7) memory; (8) Keras.

# %%
import os
from pathlib import Path

import numpy as np

import tinyopt as to
import tinyopt.nn.functional as F
from tinyopt import nn, optim
from tinyopt.amp import GradScaler, autocast, formats
from tinyopt.models.cnn import LeNet5

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "08_mixed_precision"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

from tinyopt import plot  # noqa: E402  (chooses a non-interactive backend when there is no display)
import matplotlib.pyplot as plt  # noqa: E402

# %% [markdown]
# ## 1. The formats
#
# A binary float with $p$ fraction bits and exponent bias $B$ stores
# $x = (-1)^s \cdot 1.f \cdot 2^{e-B}$ (normal) or $(-1)^s \cdot 0.f \cdot 2^{1-B}$ (subnormal, $e = 0$).
# Neighbouring numbers are $\mathrm{ulp}(x) = 2^{\lfloor \log_2 |x| \rfloor - p}$ apart, so rounding
# to nearest has a relative error of at most $2^{-(p+1)}$ anywhere in the normal range.

# %%
print(f"{'format':9} {'bits':>4} {'exp':>4} {'frac':>4} {'max':>12} {'min normal':>12} {'min subnormal':>14} {'eps':>10}")
for row in formats.table():
    print(f"{row['format']:9} {row['bits']:4} {row['exponent']:4} {row['fraction']:4} {row['max']:12.5g} "
          f"{row['smallest_normal']:12.4g} {row['smallest_subnormal']:14.4g} {row['eps']:10.3g}")
fixed = formats.FixedPoint(fraction_bits=10, total_bits=16)   # the seed's round(x · 2^10) in an int16
print(f"fixed point Q5.10: max {fixed.max:.4g}, resolution {fixed.resolution:.4g} everywhere")

for v in (1.0, 0.1, 65504.0, 2.0 ** -24):
    print(f"{v:>12.6g}  fp16 {formats.bit_string(v, 'float16'):20}  bf16 {formats.bit_string(v, 'bfloat16')}")
# the bit fields decode to the stored value by the formula above
assert formats.decode(0.1, "float16") == float(np.float16(0.1))
assert formats.table()[1]["max"] == 65504 and formats.table()[1]["smallest_subnormal"] == 2.0 ** -24

# %% [markdown]
# Rounding error against magnitude: the floats keep a constant *relative* error over their range
# (until float16 runs into subnormals below 2⁻¹⁴ and overflows above 65504); fixed point keeps a
# constant *absolute* error, so small numbers lose every digit and |x| > 32 overflows.

# %%
xs = np.logspace(-9, 6, 3000)
fig, ax = plt.subplots(figsize=(7, 4))
for name in ("float32", "bfloat16", "float16"):
    ax.loglog(xs, np.maximum(formats.relative_error(xs, name), 1e-12), label=name, lw=1)
fixed_err = np.abs(fixed.quantize(xs) - xs) / xs
ax.loglog(xs, np.maximum(fixed_err, 1e-12), label="fixed point round(x·2¹⁰) (seed 002)", lw=1)
ax.axvline(2.0 ** -14, ls=":", c="gray")
ax.axvline(65504, ls=":", c="gray")
ax.set_xlabel("|x|")
ax.set_ylabel("relative rounding error")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "rounding_error.png", dpi=90)
plt.close(fig)

normal16 = (xs > 2.0 ** -14) & (xs < 65504)
assert formats.relative_error(xs[normal16], "float16").max() <= 2.0 ** -11
assert formats.relative_error(xs[(xs > 1e-30)], "bfloat16").max() <= 2.0 ** -8
assert np.abs(fixed.quantize(xs[xs < 30]) - xs[xs < 30]).max() <= 2.0 ** -11     # absolute, not relative
assert fixed.quantize(1e-4) == 0 and fixed.quantize(100.0) < 32                   # underflow, early overflow

# %% [markdown]
# ## 2. Seed 002's errata, in code

# %%
x = np.array([3e-4, 0.1234, 7.5, 40.0, 1000.0])
print("x              ", x)
print("round(x·2¹⁰)/2¹⁰", fixed.quantize(x), "  <- the seed's 'half precision': 3e-4 → 0, 40 → 32")
print("float16        ", x.astype(np.float16).astype(np.float64), "  <- real half precision")

labels = np.array([3, 2047, 2049, 40001])
print("labels as half:", labels.astype(np.float16).astype(np.int64), "(2049 and 40001 are not float16 numbers)")
assert not np.array_equal(labels.astype(np.float16).astype(np.int64), labels)
logits = to.randn(4, 5)
try:
    F.nll_loss(F.log_softmax(logits, dim=1), to.tensor(np.array([0, 1, 2, 3], np.float16)))
    raise AssertionError("half labels were accepted")
except TypeError as e:
    print("class labels must stay integers:", e)

# %% [markdown]
# ## 3. Autocast: which ops run in 16 bits
#
# Inside `autocast`, the ops on torch's `lower_precision_fp` list (matmul, linear, conv) round their
# inputs to 16 bits, multiply them with float32 accumulation and round the result once; the ops on
# the `fp32` list (the losses) run in float32; the rest keep their inputs' dtype. On this CPU the
# 16-bit arithmetic is emulated on float32 BLAS: same numbers as the hardware (up to the order of
# float32 additions), but no speed-up — the paper's 2–8× needs tensor cores.

# %%
lin = nn.Linear(8, 4)
xb = to.randn(16, 8)
yb = to.tensor(rng.integers(0, 4, 16))
with autocast("cpu", dtype=to.float16):
    h = lin(xb)
    p = F.softmax(h, dim=1)
    loss = F.cross_entropy(h, yb)
print(f"linear → {h.dtype}, softmax → {p.dtype} (CPU list; CUDA keeps it fp32), cross_entropy → {loss.dtype}")
by_hand = (xb.data.astype(np.float16).astype(np.float32) @ lin.weight.data.astype(np.float16).astype(np.float32).T
           + lin.bias.data.astype(np.float16)).astype(np.float16)
assert h.dtype == to.float16 and loss.dtype == to.float32 and np.array_equal(h.data, by_hand)
loss.backward()
assert lin.weight.grad.dtype == to.float32          # the parameters (and their gradients) stay float32

# %% [markdown]
# ## 4. Why float16 needs loss scaling
#
# Backward multiplies small numbers: gradients of a network are often far below 1, and float16 has
# nothing below 2⁻²⁴ ≈ 6·10⁻⁸. bfloat16 shares float32's exponent and has no such floor. Below: the
# gradients of every activation of a LeNet-5 (the values that flow through the 16-bit backward),
# against float16's range, as they are and multiplied by 2¹⁶.

# %%
def images(n, seed, noise=4.0):
    """Synthetic 28×28 'digits': a class-dependent pattern plus noise (no download needed)."""
    r = np.random.default_rng(seed)
    y = r.integers(0, 10, n)
    base = np.random.default_rng(99).standard_normal((10, 1, 28, 28)).astype(np.float32)
    return (base[y] + noise * r.standard_normal((n, 1, 28, 28)).astype(np.float32)).astype(np.float32), y


x_img, y_img = images(256 if FAST else 1024, seed=1)
net = LeNet5(rng=0)
grads = []


def keep_output_grad(module, inputs, output):        # a forward hook: record d(loss)/d(output) in backward
    output.register_hook(lambda grad: grads.append(np.abs(grad.data).ravel()))


hooks = [m.register_forward_hook(keep_output_grad) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
F.cross_entropy(net(to.tensor(x_img[:128])), to.tensor(y_img[:128])).backward()
for hk in hooks:
    hk.remove()
g = np.concatenate(grads).astype(np.float64)
g = g[g > 0]
fig, ax = plt.subplots(figsize=(7, 3.5))
bins = np.linspace(-40, 5, 90)
ax.hist(np.log2(g), bins=bins, alpha=0.6, label="activation gradients")
ax.hist(np.log2(g * 2.0 ** 16), bins=bins, alpha=0.6, label="× 2¹⁶ (loss scaling)")
for v, txt in ((-24, "fp16 min subnormal"), (-14, "fp16 min normal"), (np.log2(65504), "fp16 max")):
    ax.axvline(v, c="k", ls=":")
    ax.text(v, ax.get_ylim()[1] * 0.9, txt, rotation=90, fontsize=7, ha="right")
ax.set_xlabel("log₂ |gradient|")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "gradient_histogram.png", dpi=90)
plt.close(fig)
below = np.mean(g < 2.0 ** -14)
print(f"{below:.1%} of the activation gradients are below float16's smallest normal; "
      f"×2¹⁶: {np.mean(g * 2.0 ** 16 < 2.0 ** -14):.1%}")

# %% [markdown]
# A constructed case where it matters: the same classifier trained on a loss weighted by 10⁻⁵ (as an
# auxiliary loss or a sum over a huge batch would be). In float16 without scaling most gradients
# flush to zero and in 30 steps it barely learns; with a GradScaler the result equals float32's (the
# learning rate is raised by 10⁵ so that float32 trains at the same speed). Given a few hundred
# steps, the few gradients that survive do get the unscaled run there too: underflow makes training
# slower and noisier rather than impossible, which is why it goes unnoticed.

# %%
def train_weighted(amp: bool, scale: bool, steps: int, seed=0):
    to.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64, rng=seed), nn.ReLU(), nn.Linear(64, 10, rng=seed))
    opt = optim.SGD(model.parameters(), lr=0.01 * 1e5, momentum=0.9)
    scaler = GradScaler("cpu", enabled=scale)
    zero_fraction = []
    for t in range(steps):
        idx = np.arange(t * 64, (t + 1) * 64) % len(x_img)
        opt.zero_grad()
        with autocast("cpu", dtype=to.float16, enabled=amp):
            loss = F.cross_entropy(model(to.tensor(x_img[idx])), to.tensor(y_img[idx])) * 1e-5
        scaler.scale(loss).backward()
        zero_fraction.append(np.mean(model[1].weight.grad.data == 0))
        scaler.step(opt)
        scaler.update()
    with to.no_grad():
        final = float(F.cross_entropy(model(to.tensor(x_img)), to.tensor(y_img)).item())
    return final, float(np.mean(zero_fraction))


steps = 30   # in both modes: the contrast is in the first steps (after 150 the unscaled run has caught up)
loss32, zero32 = train_weighted(amp=False, scale=False, steps=steps)
loss16, zero16 = train_weighted(amp=True, scale=False, steps=steps)
loss16s, zero16s = train_weighted(amp=True, scale=True, steps=steps)
print(f"float32:             loss {loss32:.3f}, zero gradient elements {zero32:.1%}")
print(f"float16, no scaling: loss {loss16:.3f}, zero gradient elements {zero16:.1%}")
print(f"float16 + GradScaler: loss {loss16s:.3f}, zero gradient elements {zero16s:.1%}")
assert zero16 > 0.5 and zero16s < zero32 + 0.05
assert abs(loss16s - loss32) < 0.1 and loss16 > loss32 + 0.5

# %% [markdown]
# ## 5. The scale during training
#
# `GradScaler` starts high (here 2²⁴, torch's default is 2¹⁶), halves the scale whenever a gradient
# overflows (and skips that step, leaving the weights untouched), and doubles it after
# `growth_interval` clean steps. Its `history` records each step.

# %% [markdown]
# The update rule by hand (S the scale, t the count of clean steps since it last changed), checked
# against `GradScaler` on a pattern of overflowing steps:
#
# $$ \text{inf/NaN: } S \leftarrow S\cdot\text{backoff},\ t \leftarrow 0; \qquad
#    \text{else: } t \leftarrow t + 1,\ \text{and if } t = \text{growth\_interval}:\ S \leftarrow S\cdot\text{growth},\ t \leftarrow 0 $$

# %%
def scaler_update(scale, tracker, found_inf, growth_factor, backoff_factor, growth_interval):
    """GradScaler.update by hand (exercise, graded by `tinyopt check 08`): the new (scale, tracker)."""
    # BEGIN SOLUTION scaler_update
    if found_inf:
        return scale * backoff_factor, 0
    tracker += 1
    if tracker == growth_interval:
        return scale * growth_factor, 0
    return scale, tracker
    # END SOLUTION


pattern = [False] * 5 + [True] + [False] * 7 + [True, True] + [False] * 4
probe = to.tensor(np.zeros(1, np.float32), requires_grad=True)
probe_opt = optim.SGD([probe], lr=0.0)
ref = GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
S, t_clean = 2.0 ** 10, 0
np.seterr(over="ignore", invalid="ignore")
for inf in pattern:
    probe_opt.zero_grad()
    ref.scale((probe * (np.inf if inf else 1.0)).sum()).backward()
    ref.step(probe_opt)
    ref.update()
    S, t_clean = scaler_update(S, t_clean, inf, 2.0, 0.5, 3)
    assert ref.get_scale() == S and ref._get_growth_tracker() == t_clean
np.seterr(over="warn", invalid="warn")
print("by-hand scale updates equal GradScaler's:", [h["new_scale"] for h in ref.history])

# %%
to.manual_seed(0)
cnn = LeNet5(rng=0)
opt = optim.SGD(cnn.parameters(), lr=0.05, momentum=0.9)
scaler = GradScaler("cpu", init_scale=2.0 ** 24, growth_interval=10)
losses = []
np.seterr(over="ignore", invalid="ignore")   # overflowing gradients are what the scaler detects and skips
for t in range(30 if FAST else 120):
    idx = np.arange(t * 32, (t + 1) * 32) % len(x_img)
    opt.zero_grad()
    with autocast("cpu", dtype=to.float16):
        loss = F.cross_entropy(cnn(to.tensor(x_img[idx])), to.tensor(y_img[idx]))
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    losses.append(float(loss.item()))
np.seterr(over="warn", invalid="warn")
hist = scaler.history
fig, ax = plt.subplots(figsize=(7, 3))
ax.semilogy([h["scale"] for h in hist], drawstyle="steps-post", label="scale")
sk = [h["step"] for h in hist if h["skipped"]]
ax.semilogy(sk, [hist[i]["scale"] for i in sk], "rx", label="skipped (inf/NaN gradient)")
ax.set_xlabel("step")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "scale_history.png", dpi=90)
plt.close(fig)
print("skipped steps:", sk, "| first overflow in", hist[sk[0]]["first_nonfinite"] if sk else None,
      "| final scale", scaler.get_scale())
assert sk and sk[0] == 0 and hist[0]["scale"] == 2.0 ** 24 and scaler.get_scale() < 2.0 ** 24
assert np.mean(losses[-5:]) < np.mean(losses[:5])

# %% [markdown]
# ## 6. Master weights
#
# Keeping the weights themselves in float16 fails differently: an update smaller than half an ulp
# of the weight is rounded away. Near 1, float16's ulp is 2⁻¹⁰ ≈ 0.001, so `lr · g = 10⁻⁴` never
# moves the weight, however many steps are taken. A float32 master copy accumulates the small
# updates; the forward pass uses its rounding (`tinyopt.amp.master_weights`).

# %%
assert np.float16(1.0) + np.float16(1e-4) == np.float16(1.0)
xr = rng.standard_normal((128, 4)).astype(np.float32)
yr = xr @ np.full((4, 1), 1.05, np.float32)


def fit_half(with_master: bool):
    model = nn.Linear(4, 1, bias=False).half()
    with to.no_grad():
        model.weight.fill_(1.0)
    o = optim.SGD(model.parameters(), lr=4e-3)
    if with_master:
        o = to.amp.master_weights(o)
    for _ in range(500):
        o.zero_grad()
        F.mse_loss(model(to.tensor(xr).half()).float(), to.tensor(yr)).backward()
        o.step()
    return model.weight.data.astype(np.float32).ravel()


w_plain, w_master = fit_half(False), fit_half(True)
print("float16 weights, no master copy:", w_plain, "  with float32 masters:", w_master, "  target 1.05")
assert np.all(w_plain == 1.0) and np.all(np.abs(w_master - 1.05) < 0.005)

# %% [markdown]
# Seed 002's training loop does the same to float32 weights on a fixed-point grid: after every step
# it sets `param.data = torch.round(param.data * 256) / 256`. An update smaller than half a grid step,
# 1/512 ≈ 0.002, is rounded away, so with its `lr=0.01` every gradient below 0.2 in size is lost,
# step after step. Quantize a *copy* for the forward pass (fake quantization, lesson 05's QAT) and
# keep the float weights, as the master copy above does.

# %%
w_grid = np.round(np.array([0.25, -0.5, 1.0]) * 256) / 256       # weights already on the 1/256 grid
g = np.array([0.1, -0.15, 0.19])                                  # gradients below 0.2
w_seed = w_grid.copy()
for _ in range(100):                                              # seed 002: step, then round, each time
    w_seed = np.round((w_seed - 0.01 * g) * 256) / 256
print("seed 002's rounding after each of 100 steps moves the weights by", np.abs(w_seed - w_grid).max(),
      "; without it they move by", np.abs(100 * 0.01 * g).max())
assert np.array_equal(w_seed, w_grid)

# %% [markdown]
# ## 7. Memory: what backward keeps
#
# Under autocast the layers save their 16-bit inputs for backward; the activation memory of a
# training step halves (the parameters' float32 masters are unchanged).

# %%
xm, ym = to.tensor(x_img[:128]), to.tensor(y_img[:128])
loss_fp32 = F.cross_entropy(cnn(xm), ym)
with autocast("cpu", dtype=to.float16):
    loss_amp = F.cross_entropy(cnn(xm), ym)
b32 = to.amp.saved_bytes(loss_fp32, cnn.parameters())
b16 = to.amp.saved_bytes(loss_amp, cnn.parameters())
print(f"saved for backward: float32 {b32 / 2**20:.1f} MiB, autocast float16 {b16 / 2**20:.1f} MiB ({b16 / b32:.2f}×)")
assert b16 < 0.6 * b32

# %% [markdown]
# ## 8. Keras: `mixed_float16`
#
# `set_global_policy("mixed_float16")` makes the models created afterwards compute in float16 with
# float32 variables, and `compile` wraps the optimizer in a `LossScaleOptimizer` (Keras' own rule).

# %%
from tinyopt import keras  # noqa: E402
from tinyopt.keras import layers  # noqa: E402

x_easy, y_easy = images(512, seed=2, noise=1.0)
accs = {}
for policy in ("float32", "mixed_float16", "mixed_bfloat16"):
    keras.mixed_precision.set_global_policy(policy)
    to.manual_seed(0)
    km = keras.Sequential([layers.Flatten(input_shape=(1, 28, 28)), layers.Dense(64, activation="relu"), layers.Dense(10)])
    km.compile(optimizer=keras.optimizers.Adam(1e-3),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    accs[policy] = km.fit(x_easy, y_easy, epochs=2 if FAST else 5, batch_size=32, verbose=0, rng=0).history["accuracy"][-1]
    print(f"{policy:15} optimizer {type(km.optimizer).__name__:18} training accuracy {accs[policy]:.3f}")
keras.mixed_precision.set_global_policy("float32")
assert abs(accs["mixed_float16"] - accs["float32"]) < 0.03 and abs(accs["mixed_bfloat16"] - accs["float32"]) < 0.03

# %% [markdown]
# ## What to remember
#
# - float16: 10 fraction bits, range 6·10⁻⁸ … 65504; bfloat16: 7 fraction bits, float32's range.
#   Fixed point (`round(x·2¹⁰)`) is neither: constant absolute error, overflow at 32.
# - Mixed precision = 16-bit compute (float32 accumulation) + float32 master weights + loss scaling
#   for float16. Labels stay integers.
# - `GradScaler` skips the steps whose gradients overflow and finds the largest safe scale by itself.

# %%
print("all checks passed")

# %% [markdown]
# ## One more exercise (graded by `tinyopt check 08`): the seeds' fixed point, done right
#
# round(x · 2^k) / 2^k keeps k fractional bits: a constant absolute error ≤ 2^−(k+1), unlike a
# floating-point format's constant *relative* error.

# %%
def fixed_point(x, frac_bits):
    """x rounded to the grid of multiples of 2^−frac_bits (round half to even)."""
    # BEGIN SOLUTION fixed_point
    return np.rint(x * 2.0**frac_bits) / 2.0**frac_bits
    # END SOLUTION


_x = np.random.default_rng(12).uniform(-4, 4, 100)
assert np.abs(fixed_point(_x, 10) - _x).max() <= 2.0**-11
