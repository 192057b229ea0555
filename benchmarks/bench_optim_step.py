"""Optimizer step time: tinyopt vs torch.optim (CPU), same parameters and gradients, one process.

For 1M and 10M float32 parameters (split like a small model: four weight matrices and four
biases), times `optimizer.step()` for Adam and SGD with momentum:

- tinyopt, default (the fused Numba kernel from kernels/optim_update.py),
- tinyopt, `fused=False` (the NumPy formula, for reference),
- torch.optim with its default implementation (on CPU tensors: the per-tensor for-loop; torch
  picks foreach/fused by default only on CUDA), and with `fused=True` for information.

Prints the median (and minimum) time per step of each and the ratio tinyopt / torch default
(the target is <= 1.5). Timings on a shared 2-core machine are noisy, so the contenders take
turns step by step (round robin) after one warm-up step each (which also compiles the Numba
kernels, or loads them from the cache); the minimum is the least disturbed run. On a busy
machine torch's OpenMP threads can make its step 10-100x slower than with one thread, which
flatters the ratio: `--threads 1` gives the fairer comparison there. Usage:

    python benchmarks/bench_optim_step.py [--sizes 1e6 1e7] [--repeats 20] [--threads 2]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import tinyopt as to
from tinyopt import optim

to.tune_malloc()  # as the CLI does: reuse freed pages across steps


def shapes_for(total: int) -> list:
    """Four (rows, 512) weight matrices and four 512-element biases adding up to ~`total`."""
    rows = max(1, (total - 4 * 512) // (4 * 512))
    return [(rows, 512)] * 4 + [(512,)] * 4


def make_data(total: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shapes = shapes_for(total)
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


def tinyopt_step(name, kwargs, params, grads, fused=None):
    ps = [to.Tensor(p.copy(), requires_grad=True) for p in params]
    for p, g in zip(ps, grads):
        p.grad = g
    return getattr(optim, name)(ps, **kwargs, fused=fused).step


def torch_step(torch, name, kwargs, params, grads, **extra):
    ps = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    for p, g in zip(ps, grads):
        p.grad = torch.from_numpy(g)
    return getattr(torch.optim, name)(ps, **kwargs, **extra).step


CONFIGS = [("Adam", dict(lr=1e-3)), ("SGD", dict(lr=1e-2, momentum=0.9))]


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads and NUMBA_NUM_THREADS")
    args = parser.parse_args(argv)

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
    header = f"{'optimizer':<20}{'params':>7}" + "".join(f"{x:>20}" for x in labels) + f"{'ratio':>14}"
    print(header)
    print(f"{'':<27}" + "".join(f"{'median (min) ms':>20}" for _ in labels) + f"{'median (min)':>14}")
    print("-" * len(header))
    rows = []
    for size in args.sizes:
        params, grads = make_data(int(size))
        n = sum(p.numel() for p in params)
        for name, kwargs in CONFIGS:
            steps = {"tinyopt": tinyopt_step(name, kwargs, params, grads),
                     "formula": tinyopt_step(name, kwargs, params, grads, fused=False)}
            if torch is not None:
                steps["torch"] = torch_step(torch, name, kwargs, params, grads)
                steps["torch fused"] = torch_step(torch, name, kwargs, params, grads, fused=True)
            times = interleaved_times(steps, args.repeats)
            med = {k: statistics.median(v) for k, v in times.items()}
            low = {k: min(v) for k, v in times.items()}
            cells = "".join(f"{med[k] * 1e3:>11.2f} ({low[k] * 1e3:>6.2f})" if k in med else f"{'-':>20}"
                            for k in labels)
            ratio = med["tinyopt"] / med["torch"] if "torch" in med else float("nan")
            ratio_min = low["tinyopt"] / low["torch"] if "torch" in low else float("nan")
            label = name + (" mom=0.9" if name == "SGD" else "")
            print(f"{label:<20}{n / 1e6:>6.1f}M{cells}{ratio:>7.2f} ({ratio_min:.2f})")
            rows.append(dict(optimizer=label, params=n, median=med, min=low, ratio=ratio, ratio_min=ratio_min))
    print("ratio = tinyopt (fused Numba kernel) / torch.optim default; target <= 1.5")
    return rows


if __name__ == "__main__":
    main()
