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
# # Lesson 5: quantization, from the formula to an integer-only CNN
#
# The seeds describe quantization in one line: "convert the network's parameters from floating
# point to a limited integer representation, to cut storage and compute" (`000_*.txt` §3.3), with
# the formula `w_quantized = round(w × Q)` (`002_*.txt` §3.2).  That line leaves out what makes it
# work in practice: an offset (zero point) so that ReLU outputs use all 256 levels, how to pick
# `Q`, what happens to values outside the range, and how a layer multiplies integers without
# going back to floats.  (`000_*.txt`'s `torch.quantization.qlinear.Quantizer` does not exist
# in PyTorch; the real API is `torch.ao.quantization`, whose names tinyopt uses.)
#
# The scheme everyone ships (Jacob et al. 2018; gemmlowp, TFLite, PyTorch) is **affine**:
#
# $$ r = S\,(q - Z), \qquad q = \mathrm{clamp}\big(\mathrm{round}(r/S + Z),\ q_{\min},\ q_{\max}\big) $$
#
# with a real scale $S$ and an integer zero point $Z$ (the seeds' `Q` is $1/S$ with $Z = 0$).
#
# Plan: (1) quantize a tensor by hand and measure the error against the bit width; (2) take one
# Linear layer from float to **integer-only** by hand, and check it against `tinyopt.quant`;
# (3) quantize a whole trained CNN (dynamic, static, 4-bit, mixed, QAT) and look at size,
# accuracy and speed.

# %%
import os
from pathlib import Path

import numpy as np

import tinyopt as to
from tinyopt import nn, quant as Q
from tinyopt.kernels import fixed_point as KR, gemm_int8 as KM

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "05_quantization"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

from tinyopt import plot  # noqa: E402  (chooses a non-interactive backend when there is no display)
import matplotlib.pyplot as plt  # noqa: E402

# %% [markdown]
# ## 1. A tensor, by hand
#
# For a range $[r_{\min}, r_{\max}]$ (widened to contain 0) and integers $[q_{\min}, q_{\max}]$:
#
# $$ S = \frac{r_{\max} - r_{\min}}{q_{\max} - q_{\min}}, \qquad Z = q_{\min} - \mathrm{round}(r_{\min}/S) $$

# %%
x = rng.normal(0.3, 1.0, 10_000).astype(np.float32)
qmin, qmax = -128, 127


# Exercises (graded by `tinyopt check 05`): S and Z from a range, and quantize-then-dequantize.
def affine_qparams(x_min, x_max, qmin, qmax):
    """(S, Z) of the affine map from [x_min, x_max] (widened to contain 0) onto [qmin, qmax]."""
    # BEGIN SOLUTION affine_qparams
    r_min, r_max = min(x_min, 0.0), max(x_max, 0.0)
    scale = np.float32((r_max - r_min) / (qmax - qmin))
    zero_point = int(np.clip(qmin - np.rint(r_min / scale), qmin, qmax))
    # END SOLUTION
    return scale, zero_point


def fake_quantize(x, scale, zero_point, qmin, qmax):
    """x̂ = S · (clamp(round(x / S) + Z, qmin, qmax) − Z): x on the integer grid, back in floats."""
    # BEGIN SOLUTION fake_quantize
    q = np.clip(np.rint(x / scale) + zero_point, qmin, qmax)
    # END SOLUTION
    return scale * (q - zero_point)


S, Z = affine_qparams(float(x.min()), float(x.max()), qmin, qmax)
q_by_hand = np.clip(np.rint(x * (np.float32(1) / S) + Z), qmin, qmax).astype(np.int8)
x_hat = S * (q_by_hand.astype(np.float32) - Z)
assert np.abs(fake_quantize(x.astype(np.float64), float(S), Z, qmin, qmax) - x_hat).max() <= 1e-5 + S
print(f"S = {S:.6f}, Z = {Z}, max |x − x̂| = {np.abs(x - x_hat).max():.6f} (S/2 = {S / 2:.6f})")

# the library: same numbers (and the same as torch.quantize_per_tensor, see tests/test_quant_affine.py)
qt = Q.quantize_per_tensor(x, float(S), Z, "qint8")
assert np.array_equal(qt.int_repr(), q_by_hand)
assert np.abs(x - x_hat).max() <= S / 2 * 1.0001

# an observer picks S and Z the same way, from everything it has seen
obs = Q.MinMaxObserver(dtype="qint8")
obs(x)
print("MinMaxObserver:", obs.calculate_qparams())

# %% [markdown]
# ### Error against bits
#
# Rounding to a grid of step $S$ leaves an error spread evenly over $[-S/2, S/2]$, whose RMS is
# $S/\sqrt{12}$; each extra bit halves $S$.  Below: weights drawn like a trained layer's
# (Gaussian), quantized symmetrically with 2 to 8 bits, with min/max range and with a 99.9 %
# percentile range (`PercentileObserver`), which clips the few outliers and spends the levels on
# the bulk.

# %%
w = rng.standard_normal(50_000).astype(np.float32) * 0.05
bits_list = [2, 3, 4, 5, 6, 7, 8]
rms = {"min/max": [], "percentile 0.1%": []}
theory = []
for bits in bits_list:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    for label, observer in (("min/max", Q.MinMaxObserver), ("percentile 0.1%", Q.PercentileObserver)):
        kwargs = {"percentile": 0.1} if observer is Q.PercentileObserver else {}
        o = observer(dtype="qint8", qscheme="per_tensor_symmetric", quant_min=lo, quant_max=hi, **kwargs)
        o(w)
        s, z = o.calculate_qparams()
        # fake quantization = quantize to [lo, hi] and dequantize (quantize_per_tensor would clamp
        # to the full int8 range, not to `bits` bits)
        w_hat = Q.fake_quantize_per_tensor_affine(to.tensor(w), float(s[0]), int(z[0]), lo, hi).data
        rms[label].append(float(np.sqrt(np.mean((w - w_hat) ** 2))))
    mm = Q.MinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric", quant_min=lo, quant_max=hi)
    mm(w)
    theory.append(float(mm.calculate_qparams()[0][0]) / np.sqrt(12))

fig, ax = plt.subplots(figsize=(6, 4))
for label, values in rms.items():
    ax.semilogy(bits_list, values, "o-", label=label)
ax.semilogy(bits_list, theory, "k--", label="S/√12 (min/max)")
ax.set_xlabel("bits")
ax.set_ylabel("RMS error")
ax.set_title("quantization error vs bits (Gaussian weights)")
ax.legend()
fig.savefig(OUT / "error_vs_bits.png", dpi=90)
plt.close(fig)
# Clipping pays at low bit widths (the grid is coarse, the outliers few); at high bit widths the
# error of the clipped tails stays while the rounding error keeps halving, and min/max wins.
for b, a, p in zip(bits_list, rms["min/max"], rms["percentile 0.1%"]):
    print(f"{b} bits: RMS error min/max {a:.2e}, percentile {p:.2e}")
# each bit halves the error (from 4 bits on, where the uniform-error model holds)
ratios = np.array(rms["min/max"][2:-1]) / np.array(rms["min/max"][3:])
assert np.all((ratios > 1.7) & (ratios < 2.3)), ratios

# %% [markdown]
# ## 2. One Linear layer, float → integer-only, by hand
#
# $y = x W^\top + b$.  Quantize the input per tensor (affine, $S_x, Z_x$), the weights per output
# channel and symmetrically ($S_w[o]$, $Z_w = 0$), the output per tensor ($S_y, Z_y$).
# Substituting $r = S(q - Z)$ everywhere:
#
# $$ S_y (q_y - Z_y) = S_x S_w[o] \sum_k (q_x[k] - Z_x)\, q_w[o,k] + b[o] $$
#
# so, with the bias stored as an int32 in units of $S_x S_w[o]$, $b_q = \mathrm{round}(b / (S_x S_w))$:
#
# $$ \mathrm{acc}[o] = \underbrace{\textstyle\sum_k q_x[k]\, q_w[o,k]}_{\text{int8·int8 → int32}} - Z_x \sum_k q_w[o,k] + b_q[o],
#    \qquad q_y = Z_y + M[o]\cdot \mathrm{acc}[o], \quad M = \frac{S_x S_w[o]}{S_y} $$
#
# The only non-integer left is $M$ (a number around $10^{-3}$).  It becomes a fixed-point number
# $M = M_0 \cdot 2^{-31} \cdot 2^{-n}$ with $M_0 \in [2^{30}, 2^{31})$: one int32 multiply with a
# rounding high half, one rounding right shift, then add $Z_y$ and saturate to int8.

# %%
layer = nn.Linear(16, 4, rng=1)
x_cal = rng.standard_normal((256, 16)).astype(np.float32)        # calibration inputs
y_cal = layer(to.tensor(x_cal)).data

# qparams: input and output from their observed ranges, weights per channel (symmetric)
in_obs, out_obs = Q.MinMaxObserver(dtype="qint8"), Q.MinMaxObserver(dtype="qint8")
in_obs(x_cal)
out_obs(y_cal)
w_obs = Q.PerChannelMinMaxObserver(dtype="qint8", qscheme="per_channel_symmetric")
w_obs(layer.weight.data)
S_x, Z_x = float(in_obs.calculate_qparams()[0][0]), int(in_obs.calculate_qparams()[1][0])
S_y, Z_y = float(out_obs.calculate_qparams()[0][0]), int(out_obs.calculate_qparams()[1][0])
S_w = w_obs.calculate_qparams()[0]

q_w = Q.quantize_per_channel(layer.weight.data, S_w, np.zeros(4, np.int64), axis=0).int_repr()
b_q = np.rint(layer.bias.data.astype(np.float64) / (S_x * S_w.astype(np.float64))).astype(np.int64)
M = S_x * S_w.astype(np.float64) / S_y
M0, n = KR.quantize_multiplier(M)
print("M  =", M)
print("M0 =", M0, " (M0/2³¹ =", M0 / 2**31, ")  n =", n)

x_new = rng.standard_normal((8, 16)).astype(np.float32)          # inputs the layer has not seen
q_x = Q.quantize_per_tensor(x_new, S_x, Z_x, "qint8").int_repr()
acc = KM.matmul_int8(q_x, np.ascontiguousarray(q_w.T)).astype(np.int64)   # Σ q_x q_w, exact int32
acc = acc - Z_x * q_w.astype(np.int64).sum(axis=1) + b_q
q_y_by_hand = KR.requantize(acc.astype(np.int32), M0, n, zero_point=Z_y)   # M0, shift, round, +Z_y, clamp

# %% [markdown]
# The library does the same: `prepare` puts the observers in, calibration runs data through,
# `convert` builds a `QuantLinear` that runs integer-only.  Its output must equal ours bit for
# bit, and be within one step (1 LSB) of the float layer quantized directly.

# %%
model = nn.Sequential(layer)
prepared = Q.prepare(model)
prepared(to.tensor(x_cal))
qmodel = Q.convert(prepared, float_logits=False)     # int8 out, also from the last (only) layer
q_y_library = qmodel(to.tensor(x_new)).q
assert np.array_equal(q_y_library, q_y_by_hand)

y_float = layer(to.tensor(x_new)).data
q_y_float = np.clip(np.rint(y_float / S_y) + Z_y, -128, 127)
print("largest difference to round(y_float / S_y) + Z_y:", np.abs(q_y_by_hand - q_y_float).max(), "LSB")
assert np.abs(q_y_by_hand.astype(int) - q_y_float).max() <= 1

# step through one output element
print(Q.format_steps(qmodel[0].explain(to.tensor(x_new), (0, 2))))

# %% [markdown]
# ## 3. A whole CNN
#
# LeNet-5 on Fashion-MNIST, trained briefly.  Before quantizing, `fuse_known` folds each
# BatchNorm into the convolution before it and fuses Conv/Linear + ReLU, so the ReLU becomes the
# lower clamp of the requantization (LeNet-5 has no BatchNorm; `tests/test_quant_workflows.py`
# checks the folding).  After `convert`, max pooling, flatten and ReLU act on the int8 values
# directly: from the first quantize to the logits there is no float arithmetic in the data path.

# %%
from tinyopt.train import TrainConfig, load_data, run  # noqa: E402

config = TrainConfig(model="lenet5", optimizer="adam", lr=2e-3, schedule="cosine", epochs=1 if FAST else 2,
                     batch_size=64, train_size=3000 if FAST else 12000, test_size=1000 if FAST else None, seed=0)
data = load_data(config)
(x_train, y_train), _, (x_test, y_test) = data
result = run(config, OUT / "lenet5", data=data, verbose=0, plots=False)
cnn = result.model.eval()
print(f"fp32 LeNet-5: test accuracy {result.test_accuracy:.4f}")

# %%
rep = Q.report(cnn, (x_test, y_test), calibration=x_train[:500 if FAST else 1000],
               train_data=(x_train, y_train), qat_epochs=1, qat_max_steps=60 if FAST else 300,
               latency_batch=128 if FAST else 256, repeats=3)
print(rep)

# %% [markdown]
# Reading the table: int8 weights are 4× smaller (a bit less: per-channel scales and the int32
# bias are extra); int4 weights halve that again, stored two per byte.  "agree" is the fraction of
# test images classified the same as fp32.  Latency depends on the machine (and on whoever else
# is using it); `benchmarks/bench_int8.py` compares the int8 matmul kernel with float32 BLAS and
# PyTorch's fbgemm.  Why quantized models are sometimes *slower*: the int8 work only pays when the
# matrix products dominate; quantizing and requantizing are extra passes over every activation,
# which small layers do not amortise.

# %% [markdown]
# ### "Why did accuracy drop?" and "why is my quantized model slower?"
#
# What this lesson's numbers and tinyopt's tests show, cause by cause:
#
# * **A range stretched by outliers.** One large activation makes $S$ large for all the others.
#   `PercentileObserver` clips the tails (section 1's plot: it wins below 8 bits, loses at 8).
# * **One scale for channels of different sizes.** Per-tensor weight scales waste levels on the
#   small channels; tinyopt's default qconfig is per-channel symmetric weights.
# * **Hidden 16-bit saturation.** fbgemm (PyTorch's x86 engine) multiplies u8·s8 with `vpmaddubsw`,
#   whose pair sums saturate at ±32767.  Without `reduce_range=True` (7-bit activations) its
#   quantized Linear differs from the exact result by up to ~50 steps on random data
#   (`tests/test_quant_workflows.py`, QNNPACK vs fbgemm).  tinyopt's kernels are exact for every
#   int8 input, so they need no reduced range.
# * **Ties in int8 logits.** Requantizing the last layer to int8 puts close logits on the same level
#   (a percent or two of the test images, when we measured it); `convert` dequantizes the last layer
#   straight from its int32 accumulators (`float_logits=True`), which in that measurement raised
#   agreement with fp32 from about 99.0 % to about 99.7 % (the report above prints today's "agree").
# * **Unfolded BatchNorm / untrained rounding.** `fuse_known` folds BN; QAT lets the weights adapt
#   to the grid (its row above also includes extra training steps, so compare it with care).
#
# Slower instead of faster: quantizing the input and requantizing every output are extra passes
# over the activations, and packing weights on every call costs as much as a small matmul. tinyopt
# packs weights once, at `convert`; runs stride-1 int8 convolutions directly on the packed input
# (no im2col matrix in memory); and fuses requantization with the following 2×2 max pool (the max
# of the int32 accumulators, requantized once per window: exact, because requantizing preserves
# order). When we measured them, those three changes made LeNet-5's int8 forward pass about 5× faster
# and faster than fp32 at batch 256; `benchmarks/bench_quant_lenet.py` prints it stage by stage on
# your machine.

# %% [markdown]
# ### Weights on their grid, and accuracy against bits

# %%
conv2 = cnn.features[3].weight.data
obs4 = Q.PerChannelMinMaxObserver(dtype="int4", qscheme="per_channel_symmetric", quant_min=-8, quant_max=7)
obs4(conv2)
s4 = obs4.calculate_qparams()[0]
channel = int(np.argmax(s4))
fig, ax = plt.subplots(figsize=(7, 4))
ax.hist(conv2[channel].ravel(), bins=60, color="tab:blue", alpha=0.8)
for level in range(-8, 8):
    ax.axvline(level * s4[channel], color="k", lw=0.6, alpha=0.6)
ax.set_title(f"conv2 output channel {channel}: weights and the int4 grid (S = {s4[channel]:.4f})")
ax.set_xlabel("weight")
fig.savefig(OUT / "weight_histogram_grid.png", dpi=90)
plt.close(fig)

from tinyopt.quant.reporting import calibrate, predict  # noqa: E402

acc_by_bits = {}
for bits in (2, 4, 8):
    qc = Q.get_default_qconfig(weight_bits=bits)
    acc_by_bits[bits] = float(np.mean(predict(calibrate(cnn, qc, x_train[:500]), x_test) == y_test))
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(list(acc_by_bits), list(acc_by_bits.values()), "o-", label="static PTQ, int8 activations")
ax.axhline(rep.row("fp32")["accuracy"], color="k", ls="--", label="fp32")
ax.set_xlabel("weight bits")
ax.set_ylabel("test accuracy")
ax.legend()
fig.savefig(OUT / "accuracy_vs_bits.png", dpi=90)
plt.close(fig)
print("accuracy by weight bits:", acc_by_bits)

# %% [markdown]
# ## The seeds' quantization code, corrected
#
# - Seed 000 imports `torch.quantization.qlinear` and calls `QL.Quantizer(ql=QL.Quantizer.Linear,
#   num_bits=8).quantize(net)`, a `quantize(model, num_bits=8)` that does not exist in torch
#   (there is no `qlinear` module and no `Quantizer` class). torch's calls are `torch.ao.quantization.quantize_dynamic(model, {nn.Linear},
#   dtype=torch.qint8)` (weights int8, activations quantized on the fly) or the static
#   `prepare` → calibrate → `convert` flow, and for training, `prepare_qat` (fake quantization, so
#   gradients still flow). Seed 000 then trains the "quantized" network with the float model's
#   optimizer: an int8 model has no gradients; quantization-aware training trains the float
#   weights through fake quantization (section 3 above). tinyopt has the same calls under
#   `tinyopt.quant`.
# - Seed 004 "quantizes" with `model.weight.data.to(torch.int32)` and then `(w * 255).clamp(0,
#   255)`. Casting first truncates every weight in (−1, 1), which is nearly all of them, to 0;
#   the clamp to [0, 255] would also drop every negative weight. (And its `Net` has no `weight`:
#   the layers do.) The scale must be applied *before* rounding, with a zero point for signed
#   values: q = clamp(round(w / S) + Z), as in section 1. Measured on the trained CNN's conv2:

# %%
w_conv2 = [m.weight.data for m in cnn.modules() if isinstance(m, to.nn.Conv2d)][-1]
seed_004 = np.clip(w_conv2.astype(np.int32) * 255, 0, 255)
print(f"seed 004's cast: {np.mean(seed_004 == 0):.1%} of the weights become 0")
s_w, z_w = affine_qparams(float(w_conv2.min()), float(w_conv2.max()), -128, 127)
restored = fake_quantize(w_conv2.astype(np.float64), float(s_w), z_w, -128, 127)
print(f"affine int8: max |w − ŵ| = {np.abs(restored - w_conv2).max():.2e} (S/2 = {s_w / 2:.2e})")
assert np.mean(seed_004 == 0) > 0.99
assert np.abs(restored - w_conv2).max() <= s_w / 2 * 1.001
dynamic = Q.quantize_dynamic(cnn)   # the call the seeds meant: int8 Linear weights, float activations
print("quantize_dynamic(cnn):", type(dynamic).__name__, "with",
      sum(type(m).__name__.startswith("Dynamic") or "Quant" in type(m).__name__ for m in dynamic.modules()), "int8 layers")

# %% [markdown]
# ## Checks

# %%
fp32, int8, qat = rep.row("fp32"), rep.row("static int8"), rep.row("QAT int8")
assert 3.5 < fp32["bytes"] / int8["bytes"] <= 4.0
assert fp32["bytes"] / rep.row("int4")["bytes"] > 6.5
assert int8["accuracy"] >= fp32["accuracy"] - (0.02 if FAST else 0.01)      # static int8 within 1 point
assert int8["agree"] >= (0.97 if FAST else 0.99)                             # same predictions
assert qat["accuracy"] >= fp32["accuracy"] - (0.02 if FAST else 0.01)
assert acc_by_bits[8] >= acc_by_bits[2]
for name in ("error_vs_bits.png", "weight_histogram_grid.png", "accuracy_vs_bits.png"):
    assert (OUT / name).stat().st_size > 1000
print("all checks passed")
