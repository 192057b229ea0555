"""Mixed precision, measured: accuracy, gradient underflow, memory and speed of fp16/bf16 autocast.

What it measures:

1. Accuracy: LeNet-5 and the seeds' Keras CNN (`--models`) trained on a Fashion-MNIST slice (same
   data, same initial weights, Adam lr 1e-3) in float32, float16 autocast + GradScaler, and bfloat16 autocast without a scaler;
   test accuracy of each (evaluated in float32) and the difference to float32 in points.
2. Underflow: a classifier whose loss is weighted by 1e-5 (an auxiliary loss, a sum over a
   huge batch), trained in float16 without and with loss scaling: the fraction of first-layer
   gradient elements that are exactly zero, and the final loss, next to float32.
3. Memory: the bytes of the arrays saved for backward by one LeNet-5 training step (parameters
   excluded), float32 vs autocast (`tinyopt.amp.saved_bytes`), and the tracemalloc peak of the step.
4. Speed: training-step time (forward + backward + step) of tinyopt and torch CPU, float32 vs
   autocast, alternating in rounds (median and best of the rounds). tinyopt emulates 16-bit
   arithmetic on float32 BLAS (ops/precision.py), so its autocast can only be slower; torch's CPU
   autocast runs real bf16/fp16 kernels where the CPU has them.

Usage:
    python benchmarks/bench_amp.py [--train-size 6000] [--epochs 1] [--rounds 5] [--steps 10] [--batch 64]
        [--blas-threads N] [--skip-torch]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

if __name__ == "__main__" and "--blas-threads" in sys.argv:  # before numpy loads OpenBLAS
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lenet import copy_weights, load_images, machine, torch_lenet  # noqa: E402

MODES = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}


def train_model(name: str, mode: str, x, y, x_test, y_test, epochs: int, batch: int, seed: int = 0):
    import tinyopt as to
    import tinyopt.nn.functional as F
    from tinyopt.amp import GradScaler, autocast
    from tinyopt.models import KerasCNN, LeNet5

    model = (LeNet5 if name == "lenet5" else KerasCNN)(rng=seed)
    opt = to.optim.Adam(model.parameters(), lr=1e-3)
    scaler = GradScaler("cpu", enabled=mode == "fp16")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for s in range(0, len(x) - batch + 1, batch):
            idx = order[s:s + batch]
            opt.zero_grad()
            with autocast("cpu", dtype=MODES[mode], enabled=mode != "fp32"):
                loss = F.cross_entropy(model(to.tensor(x[idx])), y[idx])
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    seconds = time.perf_counter() - t0
    correct = 0
    with to.no_grad():
        for s in range(0, len(x_test), 500):
            correct += int((model(to.tensor(x_test[s:s + 500])).data.argmax(1) == y_test[s:s + 500]).sum())
    skipped = sum(h["skipped"] for h in scaler.history)
    return correct / len(x_test), seconds, skipped


def underflow_case(x, y, steps: int = 100):
    import tinyopt as to
    import tinyopt.nn.functional as F
    from tinyopt import nn, optim
    from tinyopt.amp import GradScaler, autocast

    rows = {}
    for name, amp, scale in (("fp32", False, False), ("fp16, no scaling", True, False), ("fp16 + GradScaler", True, True)):
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64, rng=0), nn.ReLU(), nn.Linear(64, 10, rng=0))
        opt = optim.SGD(model.parameters(), lr=0.01 * 1e5, momentum=0.9)
        scaler = GradScaler("cpu", enabled=scale)
        zeros = []
        for t in range(steps):
            idx = np.arange(t * 64, (t + 1) * 64) % len(x)
            opt.zero_grad()
            with autocast("cpu", dtype=to.float16, enabled=amp):
                loss = F.cross_entropy(model(to.tensor(x[idx])), y[idx]) * 1e-5
            scaler.scale(loss).backward()
            zeros.append(float(np.mean(model[1].weight.grad.data == 0)))
            scaler.step(opt)
            scaler.update()
        with to.no_grad():
            final = float(F.cross_entropy(model(to.tensor(x[:2000])), y[:2000]).item())
        rows[name] = (float(np.mean(zeros)), final)
    return rows


def memory(x, y, batch: int):
    import tinyopt as to
    import tinyopt.nn.functional as F
    from tinyopt.amp import autocast, saved_bytes
    from tinyopt.models import LeNet5

    model = LeNet5(rng=0)
    out = {}
    for mode in MODES:
        xb = to.tensor(x[:batch])
        with autocast("cpu", dtype=MODES[mode], enabled=mode != "fp32"):   # warm (Numba) outside tracemalloc
            F.cross_entropy(model(xb), y[:batch]).backward()
        model.zero_grad()
        tracemalloc.start()
        with autocast("cpu", dtype=MODES[mode], enabled=mode != "fp32"):
            loss = F.cross_entropy(model(xb), y[:batch])
        kept = saved_bytes(loss, model.parameters())
        loss.backward()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        model.zero_grad()
        out[mode] = (kept, peak)
    return out


def speed(x, y, batch: int, rounds: int, steps: int, skip_torch: bool):
    import tinyopt as to
    import tinyopt.nn.functional as F
    from tinyopt.amp import GradScaler, autocast
    from tinyopt.models import LeNet5

    to.tune_malloc()
    fns = {}
    for mode in MODES:
        model = LeNet5(rng=0)
        opt = to.optim.Adam(model.parameters(), lr=1e-3)
        scaler = GradScaler("cpu", enabled=mode == "fp16")

        def step(model=model, opt=opt, scaler=scaler, mode=mode, i=[0]):
            s = (i[0] * batch) % (len(x) - batch)
            i[0] += 1
            opt.zero_grad()
            with autocast("cpu", dtype=MODES[mode], enabled=mode != "fp32"):
                loss = F.cross_entropy(model(to.tensor(x[s:s + batch])), y[s:s + batch])
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        fns[f"tinyopt {mode}"] = step
    if not skip_torch:
        import torch

        # as many threads as numpy's BLAS gets (--blas-threads), so both frameworks share the cores alike
        torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count() or 1)))
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for mode, dt in (("fp32", None), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
            tm = torch_lenet(torch)
            copy_weights(torch, LeNet5(rng=0), tm)
            topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
            tscaler = torch.amp.GradScaler("cpu", enabled=mode == "fp16")

            def tstep(tm=tm, topt=topt, tscaler=tscaler, dt=dt, i=[0]):
                s = (i[0] * batch) % (len(x) - batch)
                i[0] += 1
                topt.zero_grad()
                with torch.autocast("cpu", dtype=dt or torch.bfloat16, enabled=dt is not None):
                    loss = torch.nn.functional.cross_entropy(tm(xt[s:s + batch]), yt[s:s + batch])
                tscaler.scale(loss).backward()
                tscaler.step(topt)
                tscaler.update()
            fns[f"torch {mode}"] = tstep
    for fn in fns.values():   # warm up (Numba compile, torch kernels)
        fn()
        fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t0) / steps * 1e3)
    return {k: (float(np.median(v)), float(np.min(v))) for k, v in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--test-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--blas-threads", type=int, default=None)
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--accuracy-only", action="store_true", help="stop after the accuracy table")
    p.add_argument("--models", default="lenet5", help="comma-separated: lenet5, cnn (the Keras CNN)")
    args = p.parse_args(argv)

    import tinyopt as to

    to.tune_malloc()
    print(f"machine: {machine()}\n")
    x, y = load_images(args.train_size)
    (_, _), (xt, yt) = to.datasets.fashion_mnist.load_data()
    x_test = xt[:args.test_size].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    y_test = yt[:args.test_size].astype(np.int64)

    for name in args.models.split(","):
        print(f"1. {name}, {args.train_size} Fashion-MNIST images, {args.epochs} epoch(s), batch {args.batch}, "
              f"Adam 1e-3, {len(y_test)} test images")
        print(f"   {'mode':6} {'test acc':>9} {'Δ vs fp32':>10} {'train s':>8} {'skipped steps':>14}")
        acc32 = None
        for mode in MODES:
            acc, secs, skipped = train_model(name, mode, x, y, x_test, y_test, args.epochs, args.batch)
            acc32 = acc if acc32 is None else acc32
            print(f"   {mode:6} {acc:9.4f} {100 * (acc - acc32):+9.2f}pt {secs:8.1f} {skipped:14d}", flush=True)
    if args.accuracy_only:
        return

    print("\n2. Loss weighted by 1e-5, MLP 784-64-10, 100 SGD steps (lr 1e3 = 0.01 / 1e-5)")
    for name, (zeros, final) in underflow_case(x, y).items():
        print(f"   {name:18} zero gradient elements {zeros:6.1%}   final loss {final:.3f}")

    print(f"\n3. Memory of one LeNet-5 training step, batch {args.batch}")
    mem = memory(x, y, args.batch)
    for mode, (kept, peak) in mem.items():
        print(f"   {mode:5} saved for backward {kept / 2**20:6.2f} MiB ({kept / mem['fp32'][0]:.2f}×)   "
              f"tracemalloc peak {peak / 2**20:6.2f} MiB ({peak / mem['fp32'][1]:.2f}×)")

    print(f"\n4. Training-step time, batch {args.batch}, ms (median / best of {args.rounds} rounds of {args.steps})")
    res = speed(x, y, args.batch, args.rounds, args.steps, args.skip_torch)
    for name, (med, best) in res.items():
        fw = name.split()[0]
        base = res[f"{fw} fp32"][0]
        print(f"   {name:13} {med:8.2f} / {best:8.2f}   ({med / base:.2f}× its fp32)")


if __name__ == "__main__":
    main()
