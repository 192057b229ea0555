"""`tinyopt bench`: profile a few training steps of LeNet-5 or the MLP and print where the time goes.

    tinyopt bench [--model lenet5|mlp] [--batch-size 64] [--steps 20] [--optimizer sgd|adam]
                  [--threads N] [--no-torch]

Prints `tinyopt.profile()`'s table (time per op type, forward and backward, call counts, the share
inside BLAS and the Python overhead outside the kernels) for `--steps` steps on random images, and,
when torch is installed (and not `--no-torch`), the steps per second of tinyopt and of the same
network in torch, in alternating rounds in this process, with their ratio. Timings on a shared
machine are noisy: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _tiny(model_name: str, optimizer: str, batch: int, seed: int):
    import tinyopt as to
    import tinyopt.nn as nn
    import tinyopt.nn.functional as F
    from tinyopt.models import LeNet5

    rng = np.random.default_rng(seed)
    if model_name == "lenet5":
        model = LeNet5(rng=seed)
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    else:
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256, rng=rng), nn.ReLU(), nn.Linear(256, 10, rng=rng))
        x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    opt = to.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam" else to.optim.SGD(model.parameters(), lr=0.05)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(to.tensor(x)), y).backward()
        with to.record_function("optimizer.step"):
            opt.step()

    return model, step, x, y


def _torch_step(torch, model_name, optimizer, tiny_model, x, y):
    nn = torch.nn
    if model_name == "lenet5":
        tm = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    else:
        tm = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        for p_tiny, p_torch in zip(tiny_model.parameters(), tm.parameters()):
            p_torch.copy_(torch.from_numpy(p_tiny.data))
    opt = torch.optim.Adam(tm.parameters(), lr=1e-3) if optimizer == "adam" else torch.optim.SGD(tm.parameters(), lr=0.05)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(tm(xt), yt).backward()
        opt.step()

    return step


def _rate(step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tinyopt bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("lenet5", "mlp"), default="lenet5")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="profiled steps (and steps per timed round)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds against torch")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--threads", type=int, default=None, help="tinyopt.set_num_threads (and torch's)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="with --threads N: set_num_threads(N, blas_threads=M), BLAS's own pool on M "
                             "threads and the GEMMs whole (e.g. M = N for an MLP on a quiet machine)")
    parser.add_argument("--no-torch", action="store_true", help="only the profile, no comparison")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.batch_size <= 0 or args.rounds <= 0:
        parser.error("--steps, --batch-size and --rounds must be positive")
    if args.blas_threads is not None and args.threads is None:
        parser.error("--blas-threads needs --threads, e.g. --threads 2 --blas-threads 2")
    if args.blas_threads is not None and not 1 <= args.blas_threads <= args.threads:
        parser.error("--blas-threads must be between 1 and --threads")

    import tinyopt as to

    if args.threads is not None:
        to.set_num_threads(args.threads, blas_threads=args.blas_threads)
    model, step, x, y = _tiny(args.model, args.optimizer, args.batch_size, args.seed)
    step()  # compile / load the kernels outside the profile
    with to.profile() as prof:
        for _ in range(args.steps):
            step()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.blas_threads is not None:
        twins = args.threads if args.blas_threads < args.threads else 1
        blas = f" (BLAS's pool {args.blas_threads}, kernels' twins {twins})"
    elif args.threads and args.threads > 1:
        blas = " (one pool: the kernels' twins and the split GEMMs)"
    else:
        blas = ""
    print(f"{args.model}, batch {args.batch_size}, {args.optimizer}, {args.steps} steps, threads "
          f"{to.get_num_threads()}{blas}, load average {load:.1f}")
    print(prof.table())
    if args.no_torch:
        return 0
    try:
        import torch
    except ImportError:
        print("(torch is not installed: no comparison)")
        return 0
    torch.set_num_threads(args.threads or to.get_num_threads())
    torch_step = _torch_step(torch, args.model, args.optimizer, model, x, y)
    torch_step()
    rates = {"tinyopt": [], "torch": []}
    for _ in range(args.rounds):
        rates["tinyopt"].append(_rate(step, args.steps))
        rates["torch"].append(_rate(torch_step, args.steps))
    tiny, ref = np.median(rates["tinyopt"]), np.median(rates["torch"])
    print(f"steps/s (median of {args.rounds} alternating rounds): tinyopt {tiny:.1f}, torch {ref:.1f} "
          f"({torch.get_num_threads()} threads); ratio tinyopt/torch {tiny / ref:.2f}x")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
