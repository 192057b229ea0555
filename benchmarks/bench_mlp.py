"""The README's MLP recipe in tinyopt and in PyTorch (CPU), side by side in one process.

Both get the same initial weights (tinyopt's, copied into torch), the same mini-batches in the
same order, the same plain SGD, and the same thread count (`--threads`: torch.set_num_threads and
tinyopt.set_num_threads). They alternate in rounds of `--chunk` steps. Prints test accuracy and
training throughput of each and their ratio (overall and the median over rounds; the first round,
which loads the kernels, is not timed). Usage:

    python benchmarks/bench_mlp.py [--epochs 2] [--batch-size 128] [--lr 0.1] [--threads 2] [--blas-threads M]
                                   [--chunk 50]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import tinyopt as to
import tinyopt.nn as nn
import tinyopt.nn.functional as F

to.tune_malloc()  # as the CLI does: reuse freed pages across steps


def build_tinyopt(seed: int):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256, rng=rng), nn.ReLU(), nn.Linear(256, 10, rng=rng))


def batches(n: int, batch_size: int, epochs: int, seed: int):
    """The batch index lists both frameworks train on, epoch by epoch."""
    rng = np.random.default_rng(seed)
    return [[order[i:i + batch_size] for i in range(0, n, batch_size)] for order in (rng.permutation(n) for _ in range(epochs))]


def tinyopt_stepper(model, x, y, lr):
    opt = to.optim.SGD(model.parameters(), lr=lr)

    def step(idx):
        opt.zero_grad()
        # x[idx] gathers the batch once, as torch's xt[idx_t] does; from_numpy wraps it without a
        # second copy (to.tensor would copy it again, as torch.tensor does)
        loss = F.cross_entropy(model(to.from_numpy(x[idx])), y[idx])
        loss.backward()
        opt.step()

    return step


def accuracy_tinyopt(model, x, y):
    with to.no_grad():
        return float((model(to.tensor(x)).data.argmax(1) == y).mean())


def torch_stepper(torch, model, x, y, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def step(idx):
        idx_t = torch.from_numpy(idx)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt[idx_t]), yt[idx_t])
        loss.backward()
        opt.step()

    return step


def timed(step, chunk) -> float:
    start = time.perf_counter()
    for idx in chunk:
        step(idx)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="tinyopt.set_num_threads(N, blas_threads=M): BLAS's own pool on M threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=50, help="steps per alternating round")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds of idle before each round")
    args = parser.parse_args(argv)
    to.set_num_threads(args.threads, blas_threads=args.blas_threads)  # like torch.set_num_threads below

    (x_train, y_train), (x_test, y_test) = to.datasets.fashion_mnist.load_data()
    x_train = x_train.reshape(len(x_train), -1).astype(np.float32) / 255.0
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255.0
    plan = batches(len(x_train), args.batch_size, args.epochs, args.seed)
    images = sum(len(idx) for epoch in plan for idx in epoch)

    model = build_tinyopt(args.seed)
    init_state = model.state_dict()
    flat = [idx for epoch in plan for idx in epoch]
    chunks = [flat[i:i + args.chunk] for i in range(0, len(flat), args.chunk)]
    try:
        import torch
    except ImportError:
        torch = None
    tiny_step = tinyopt_stepper(model, x_train, y_train, args.lr)
    times = {"tinyopt": [], "torch": []}
    if torch is not None:
        torch.set_num_threads(args.threads)
        tm = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        with torch.no_grad():
            for (name, p) in tm.named_parameters():
                p.copy_(torch.from_numpy(init_state[name]))
        torch_step = torch_stepper(torch, tm, x_train, y_train, args.lr)
    # Alternating rounds of `--chunk` steps on the same batches: a noisy, shared machine slows both alike.
    # An idle pause before each round: OpenBLAS's (tinyopt's GEMMs) and torch's OpenMP worker threads
    # busy-wait for a while after their last call and would otherwise take the cores from the other
    # framework's round (measured: torch at 2 threads ran at 63k images/s right after tinyopt's rounds).
    for chunk in chunks:
        time.sleep(args.pause)
        times["tinyopt"].append(timed(tiny_step, chunk))
        if torch is not None:
            time.sleep(args.pause)
            times["torch"].append(timed(torch_step, chunk))
    # The first round is left out of the throughput: it loads tinyopt's Numba optimizer kernel and
    # warms torch's allocator (both trained on it all the same, so the accuracies stay comparable).
    timed_images = images - sum(len(idx) for idx in chunks[0]) if len(chunks) > 1 else images
    skip = 1 if len(chunks) > 1 else 0
    t_tiny = sum(times["tinyopt"][skip:])
    rows = [("tinyopt", t_tiny, timed_images / t_tiny, accuracy_tinyopt(model, x_test, y_test))]
    if torch is not None:
        t_torch = sum(times["torch"][skip:])
        with torch.no_grad():
            acc_torch = float((tm(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
        rows.append((f"torch {torch.__version__} ({args.threads} threads)", t_torch, timed_images / t_torch, acc_torch))
        ratios = np.array(times["torch"][skip:]) / np.array(times["tinyopt"][skip:])

    print(f"MLP 784-256-10, SGD lr={args.lr}, batch {args.batch_size}, {args.epochs} epochs, "
          f"{platform.processor() or platform.machine()}, {args.threads} threads each, load average {os.getloadavg()[0]:.1f}")
    print(f"{'framework':<32} {'train s':>8} {'images/s':>10} {'test acc':>9}")
    for name, t, ips, acc in rows:
        print(f"{name:<32} {t:>8.2f} {ips:>10.0f} {acc:>9.4f}")
    if len(rows) == 2:
        print(f"throughput ratio tinyopt/torch: {rows[0][2] / rows[1][2]:.2f}x overall, {np.median(ratios):.2f}x median "
              f"of {len(ratios)} alternating rounds of {args.chunk} steps")
    return rows


if __name__ == "__main__":
    main()
