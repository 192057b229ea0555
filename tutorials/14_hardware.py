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
# # Lesson 14: hardware, measured on your machine
#
# Seeds 002 and 003 list "hardware acceleration (GPU, TPU, ASIC)" as a way to optimize a network,
# without a single number. Hardware does not change any formula of this course; it changes how
# fast the formula runs, and *which* resource limits it. This lesson measures the two numbers
# that decide that on the machine running it:
#
# 1. the peak fp32 arithmetic rate P (GFLOP/s, from a BLAS matrix product) and the memory
#    bandwidth B (GB/s, from a large array copy);
# 2. the **roofline model** (Williams, Waterman & Patterson 2009): an operation doing F FLOPs on
#    Q bytes has arithmetic intensity I = F / Q and can run at most at min(P, B · I). Linear,
#    Conv2d, pooling and an optimizer step are placed on it (exercises `linear_intensity`,
#    `roofline`);
# 3. what threads, SIMD and int8 buy;
# 4. what a GPU changes, **on paper** (published figures, not measured here).
#
# Timings depend on the machine and on whatever else runs on it; the lesson prints them and
# checks only what does not depend on the clock. Set `TINYOPT_FAST=1` for smaller sizes.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import tinyopt as to
import tinyopt.nn.functional as F
from tinyopt import optim

FAST = bool(os.environ.get("CI") or os.environ.get("TINYOPT_FAST"))
OUT = Path(os.environ.get("TINYOPT_OUTPUT_DIR", "runs/tutorials")) / "14_hardware"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
ROUNDS = 3 if FAST else 7


def best_time(fn, rounds=ROUNDS):
    """The fastest of `rounds` runs (after one warm-up): the least disturbed by other processes."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


flags = cpu_flags()
print("CPU cores:", os.cpu_count(), "  AVX2:", "avx2" in flags, "  AVX-512:", "avx512f" in flags,
      "  VNNI:", bool({"avx512_vnni", "avx_vnni"} & flags), "  load average:", os.getloadavg())

# %% [markdown]
# ## 1. Peak arithmetic and memory bandwidth
#
# A square matrix product of size n does 2n³ FLOPs (a multiply and an add per term) on 3n²
# numbers: for n = 1024 that is 2·10⁹ FLOPs on 12 MB, intensity ≈ 170 FLOP/byte, far to the right
# of any machine's ridge, so its rate is the machine's practical peak P. Adding 1 to a 128 MB
# array reads and writes every byte once at 1 FLOP per 8 bytes: its rate is bounded by the
# bandwidth B.

# %%
rates = {}
for n in ((256, 512) if FAST else (256, 512, 1024)):
    a = rng.standard_normal((n, n)).astype(np.float32)
    bm = rng.standard_normal((n, n)).astype(np.float32)
    rates[n] = 2 * n**3 / best_time(lambda: a @ bm, rounds=2 * ROUNDS)
n = max(rates, key=rates.get)
P = rates[n]  # the best rate seen: a loaded machine only ever makes a measurement slower
big = np.ones((16 if FAST else 32) * 2**20, np.float32)
out = np.empty_like(big)
t_copy = best_time(lambda: np.add(big, 1.0, out=out))
B = 2 * big.nbytes / t_copy
print(f"peak (BLAS sgemm n={n}): P = {P / 1e9:.1f} GFLOP/s;  bandwidth (add 1 to {big.nbytes >> 20} MB): "
      f"B = {B / 1e9:.1f} GB/s;  ridge I* = P/B = {P / B:.1f} FLOP/byte")

# %% [markdown]
# ## 2. The roofline
#
# Exercise: write the arithmetic intensity of a Linear layer y = x Wᵀ + b (batch B_, n_in inputs,
# n_out outputs, values of `nbytes` bytes), counting each multiply-add as 2 FLOPs and the bytes of
# reading x and W once and writing y once, and the roofline bound itself. `tinyopt check 14`
# grades them.

# %%
def linear_intensity(batch, n_in, n_out, nbytes=4):
    """FLOPs per byte of a Linear layer's forward pass."""
    # BEGIN SOLUTION linear_intensity
    flops = 2 * batch * n_in * n_out
    moved = nbytes * (batch * n_in + n_in * n_out + batch * n_out)
    return flops / moved
    # END SOLUTION


def roofline(intensity, peak, bandwidth):
    """The attainable FLOP/s at arithmetic intensity I: memory-bound left of the ridge."""
    # BEGIN SOLUTION roofline
    return min(peak, bandwidth * intensity)
    # END SOLUTION


# %% [markdown]
# Now measure real operations of a small CNN and place each at (I, measured FLOP/s):
#
# - Linear 784 → 256 at batch 1, 64 and 256: a batch of one reads the whole weight matrix for a
#   single row (I ≈ 0.5: memory-bound); large batches reuse it.
# - Conv2d 6 → 16 channels (LeNet-5's second layer) as the wide im2col matrix + GEMM (the kernels
#   serial, as here; after `tinyopt.set_num_threads(2)` it takes the direct loops on both threads);
# - max pooling 2×2: one comparison per input value, I ≈ 0.2;
# - an Adam step: about 10 FLOPs per parameter on 4 arrays read and 3 written (I ≈ 0.36).

# %%
points = {}
for batch in (1, 64, 256):
    x = to.tensor(rng.standard_normal((batch, 784)).astype(np.float32))
    w = to.tensor(rng.standard_normal((256, 784)).astype(np.float32))
    bias = to.tensor(np.zeros(256, np.float32))
    t = best_time(lambda: F.linear(x, w, bias))
    points[f"Linear 784→256, batch {batch}"] = (linear_intensity(batch, 784, 256), 2 * batch * 784 * 256 / t)

xc = to.tensor(rng.standard_normal((64, 6, 14, 14)).astype(np.float32))
wc = to.tensor(rng.standard_normal((16, 6, 5, 5)).astype(np.float32))
t = best_time(lambda: F.conv2d(xc, wc))
flops = 2 * 64 * 16 * 10 * 10 * 6 * 25
moved = 4 * (xc.numel() + wc.numel() + 64 * 16 * 10 * 10)
points["Conv2d 6→16, 5×5, batch 64"] = (flops / moved, flops / t)

xp = to.tensor(rng.standard_normal((64, 16, 28, 28)).astype(np.float32))
t = best_time(lambda: F.max_pool2d(xp, 2))
points["MaxPool 2×2, batch 64"] = (xp.numel() / (4 * xp.numel() * 1.25), xp.numel() / t)

p = to.nn.Parameter(np.zeros(1_000_000 if not FAST else 250_000, np.float32))
adam = optim.Adam([p], lr=1e-3)
p.grad = to.tensor(np.ones_like(p.data))
t = best_time(adam.step)
points["Adam step"] = (10 / (7 * 4), 10 * p.numel() / t)

print(f"{'operation':32s} {'I (FLOP/B)':>10s} {'measured GFLOP/s':>17s} {'roofline':>9s} {'% of roof':>9s}")
for name, (intensity, rate) in points.items():
    roof = roofline(intensity, P, B)
    print(f"{name:32s} {intensity:10.2f} {rate / 1e9:17.2f} {roof / 1e9:9.1f} {100 * rate / roof:8.0f}%")

fig, ax = plt.subplots(figsize=(7, 4.5))
grid = np.logspace(-2, 3, 200)
ax.loglog(grid, [roofline(i, P, B) / 1e9 for i in grid], "k-", label=f"roofline: min({P / 1e9:.0f}, {B / 1e9:.0f}·I)")
for name, (intensity, rate) in points.items():
    ax.loglog(intensity, rate / 1e9, "o", label=name)
ax.axvline(P / B, color="gray", ls=":", lw=1)
ax.set(xlabel="arithmetic intensity I (FLOP/byte)", ylabel="GFLOP/s", title="this machine's roofline (measured)")
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
fig.savefig(OUT / "roofline.png", dpi=90)
plt.close(fig)

# %% [markdown]
# Points above the line are not errors: the line uses DRAM bandwidth, and a small operand that
# stays in cache is read faster. Points far below it are overhead (Python, launching the op) or
# poor kernels: that gap is what `tinyopt.profile()` and the performance work chase.
#
# ## 3. Threads, SIMD and int8
#
# - **Threads**: the BLAS product above uses every core; on one core it is roughly P / cores.
#   `tinyopt.set_num_threads(n)` puts all the work on one pool, Numba's n threads: the kernels'
#   parallel twins, and each large GEMM cut into n single-threaded BLAS calls (`kernels.blas`),
#   because BLAS's threads and Numba's both busy-wait and fight over the cores when both are on.
# - **SIMD**: one AVX2 instruction works on 8 fp32 numbers; `vpmaddwd` multiplies 16 pairs of
#   16-bit integers and adds neighbours into 8 int32 sums; VNNI's `vpdpbusd` does 32 int8 products
#   per instruction. int8 values are 4× smaller than fp32, so an int8 GEMM moves 4× fewer bytes and
#   does more products per instruction, and it is **exact**: integer sums have no rounding.

# %%
from tinyopt.kernels import matmul_int8  # exact int8 × int8 → int32 (kernels/gemm_int8.py)

m = 256 if FAST else 512
qa = rng.integers(-128, 128, (m, m), dtype=np.int8)
qb = rng.integers(-128, 128, (m, m), dtype=np.int8)
exact = qa.astype(np.int64) @ qb.astype(np.int64)
assert np.array_equal(matmul_int8(qa, qb).astype(np.int64), exact)
fa, fb = qa.astype(np.float32), qb.astype(np.float32)
t_int8 = best_time(lambda: matmul_int8(qa, qb))
t_fp32 = best_time(lambda: fa @ fb)
print(f"int8 GEMM n={m}: exact (equal to int64); {2 * m**3 / t_int8 / 1e9:.1f} GOP/s vs fp32 BLAS "
      f"{2 * m**3 / t_fp32 / 1e9:.1f} GFLOP/s ({t_fp32 / t_int8:.2f}×)")
rounding = np.abs((fa @ fb).astype(np.float64) - exact).max()
print(f"fp32 of the same integers: largest error {rounding:g}; exact only while every partial sum stays below "
      f"2²⁴ = {2**24:,} (here |sum| ≤ {m * 128 * 128:,}); int32 accumulation stays exact up to K = {2**31 // 128**2:,}")

# %% [markdown]
# ## 4. What a GPU changes (on paper: published figures, not measured here)
#
# | device (vendor data sheet) | fp32 peak | fp16/bf16 tensor-core peak (dense) | memory bandwidth | fp32 ridge |
# |---|---|---|---|---|
# | NVIDIA A100 40 GB (SXM) | 19.5 TFLOP/s | 312 TFLOP/s | 1.56 TB/s | ≈ 12.5 FLOP/B |
# | NVIDIA H100 (SXM) | 67 TFLOP/s | ≈ 990 TFLOP/s | 3.35 TB/s | ≈ 20 FLOP/B |
#
# Both the roof and the slope rise by one to two orders of magnitude, and the ridge moves right:
# an operation must reuse each byte even more to use the arithmetic. A batch-1 Linear layer (I ≈
# 0.5) stays memory-bound everywhere; mixed precision (lesson 08) halves the bytes and moves
# points right; int8 and pruning (lessons 05, 06) cut bytes further. The seeds' "use a GPU" is
# advice about the roofline, not a new formula.

# %% [markdown]
# ## What this lesson showed, checked

# %%
assert abs(linear_intensity(1, 784, 256) - 2 * 784 * 256 / (4 * (784 + 784 * 256 + 256))) < 1e-12
assert roofline(0.1, P, B) == B * 0.1 and roofline(1e4, P, B) == P
assert linear_intensity(256, 784, 256) > 50 * linear_intensity(1, 784, 256)  # batching reuses weights
assert all(np.isfinite(r) and r > 0 for _, r in points.values())
assert (OUT / "roofline.png").stat().st_size > 1000
print("all checks passed")
