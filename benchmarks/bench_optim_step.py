"""Optimizer step time: tinyopt vs torch.optim (CPU), same parameters and gradients, one process.

For 1M and 10M float32 parameters (split like a small model: four weight matrices and four
biases), times `optimizer.step()` for every optimizer (Muon: the matrices only; LBFGS is left out,
its step is a loop of closure evaluations):

- tinyopt, default (the Numba twin from kernels/optim_update.py, where the optimizer has one),
- tinyopt's NumPy formula (`TINYOPT_KERNELS=reference`; for the optimizers without a Numba twin
  this is the default path), for reference: the "kernel gain" column is formula / default, the
  measurement that decides whether an optimizer keeps a Numba twin,
- torch.optim with its default implementation (on CPU tensors: the per-tensor for-loop; torch
  picks foreach/fused by default only on CUDA), and with `fused=True` where torch has it.

Prints the median (and minimum) time per step of each and the ratio tinyopt / torch default
(the target is <= 1.5). Timings on a shared 2-core machine are noisy, so the contenders take
turns step by step (round robin) after one warm-up step each (which also compiles the Numba
kernels, or loads them from the cache); the minimum is the least disturbed run. On a busy
machine torch's OpenMP threads can make its step 10-100x slower than with one thread, which
flatters the ratio: `--threads 1` gives the fairer comparison there. Usage:

    python benchmarks/bench_optim_step.py [--sizes 1e6 1e7] [--repeats 20] [--threads 2] [--optimizers Adam Lion]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import tinyopt as to
from tinyopt import optim
from tinyopt.kernels import backend

to.tune_malloc()  # as the CLI does: reuse freed pages across steps


def shapes_for(total: int) -> list:
    """Four (rows, 512) weight matrices and four 512-element biases adding up to ~`total`."""
    rows = max(1, (total - 4 * 512) // (4 * 512))
    return [(rows, 512)] * 4 + [(512,)] * 4


def make_data(total: int, seed: int = 0, matrices_only: bool = False):
    rng = np.random.default_rng(seed)
    shapes = [s for s in shapes_for(total) if len(s) == 2 or not matrices_only]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return params, grads


def interleaved_times(steps: dict, repeats: int) -> dict:
    """{label: [seconds per step]}, timing the contenders in turn (round robin), so that load from
    other processes on a shared machine hits all of them alike. One untimed warm-up step each
    (Numba compilation or cache load, torch's lazy state)."""
    for step in steps.values():
        step()
    times = {label: [] for label in steps}
    for _ in range(repeats):
        for label, step in steps.items():
            start = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - start)
    return times


def tinyopt_step(name, kwargs, params, grads, kernels="numba"):
    ps = [to.Tensor(p.copy(), requires_grad=True) for p in params]
    for p, g in zip(ps, grads):
        p.grad = g
    opt = getattr(optim, name)(ps, **kwargs)

    def step():
        with backend(kernels):
            opt.step()

    return step


def torch_step(torch, name, kwargs, params, grads, **extra):
    ps = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    for p, g in zip(ps, grads):
        p.grad = torch.from_numpy(g)
    return getattr(torch.optim, name)(ps, **kwargs, **extra).step


CONFIGS = [("Adam", dict(lr=1e-3)), ("SGD", dict(lr=1e-2, momentum=0.9)), ("AdamW", dict(lr=1e-3)),
           ("Adagrad", dict()), ("RMSprop", dict(momentum=0.9)), ("Adamax", dict()), ("NAdam", dict()),
           ("RAdam", dict()), ("Adadelta", dict()), ("Rprop", dict()), ("ASGD", dict()), ("Lion", dict()),
           ("LAMB", dict(weight_decay=0.01)), ("Adafactor", dict()), ("Muon", dict(lr=0.02))]
TORCH_FUSED = {"Adam", "AdamW", "SGD", "Adagrad"}
TINYOPT_ONLY = {"Lion", "LAMB"}


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads and NUMBA_NUM_THREADS")
    parser.add_argument("--optimizers", nargs="+", default=None, help="a subset of the optimizers (default: all)")
    args = parser.parse_args(argv)
    configs = [c for c in CONFIGS if args.optimizers is None or c[0] in args.optimizers]

    try:
        import torch
    except ImportError:
        torch = None
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)

    import numba

    print(f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
          f"torch {torch.__version__ if torch else 'not installed'}; threads: numba {numba.get_num_threads()}"
          + (f", torch {torch.get_num_threads()}" if torch else ""))
    labels = ["tinyopt", "formula", "torch", "torch fused"]
    header = (f"{'optimizer':<20}{'params':>7}" + "".join(f"{x:>20}" for x in labels) + f"{'kernel gain':>13}"
              + f"{'ratio':>14}")
    print(header)
    print(f"{'':<27}" + "".join(f"{'median (min) ms':>20}" for _ in labels) + f"{'median':>13}" + f"{'median (min)':>14}")
    print("-" * len(header))
    rows = []
    for size in args.sizes:
        for name, kwargs in configs:
            params, grads = make_data(int(size), matrices_only=name == "Muon")
            n = sum(p.numel() for p in params)
            steps = {"tinyopt": tinyopt_step(name, kwargs, params, grads),
                     "formula": tinyopt_step(name, kwargs, params, grads, kernels="reference")}
            if torch is not None and name not in TINYOPT_ONLY:
                steps["torch"] = torch_step(torch, name, kwargs, params, grads)
                if name in TORCH_FUSED:
                    steps["torch fused"] = torch_step(torch, name, kwargs, params, grads, fused=True)
            times = interleaved_times(steps, args.repeats)
            med = {k: statistics.median(v) for k, v in times.items()}
            low = {k: min(v) for k, v in times.items()}
            cells = "".join(f"{med[k] * 1e3:>11.2f} ({low[k] * 1e3:>6.2f})" if k in med else f"{'-':>20}"
                            for k in labels)
            gain = med["formula"] / med["tinyopt"]
            ratio = med["tinyopt"] / med["torch"] if "torch" in med else float("nan")
            ratio_min = low["tinyopt"] / low["torch"] if "torch" in low else float("nan")
            label = name + (" mom=0.9" if name in ("SGD", "RMSprop") else "")
            print(f"{label:<20}{n / 1e6:>6.1f}M{cells}{gain:>12.1f}x{ratio:>7.2f} ({ratio_min:.2f})", flush=True)
            rows.append(dict(optimizer=label, params=n, median=med, min=low, gain=gain, ratio=ratio,
                             ratio_min=ratio_min))
    print("kernel gain = NumPy formula / default path (1.0x: no Numba twin); "
          "ratio = tinyopt default / torch.optim default; target <= 1.5")
    return rows


if __name__ == "__main__":
    main()
