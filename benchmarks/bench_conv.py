"""Conv2d forward and backward alone, per layer shape of LeNet-5, the Keras CNN and CNN92: tinyopt vs PyTorch CPU.

For every shape (batch 64 by default) it times, in one process and on the same data:

- tinyopt forward and backward (dW, db and dx) through autograd, on the path `F.conv2d` takes for that
  layer with the thread setting given (`kernels.conv.conv_path`): the direct loops for a small
  stride-1 layer (O·C·KH·KW ≤ DIRECT_MAX_MACS) and, with the twins on, for long rows; the wide im2col
  matrix + GEMM for the other stride-1 layers with the kernels serial, im2col + GEMM otherwise;
- the same layer forced onto the other paths (direct, wide, and the general strided im2col that
  stride > 1 takes), so the table shows that the rule picks the faster one (this is how
  DIRECT_MAX_MACS was chosen);
- torch (`torch.set_num_threads`, 2 by default).

Times are the best of `--repeat` calls (most stable on a shared machine), after warm-up calls.
Usage:
    python benchmarks/bench_conv.py [--batch 64] [--threads 2] [--blas-threads N] [--repeat 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__" and "--blas-threads" in sys.argv:  # before numpy loads OpenBLAS
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--blas-threads") + 1]

import numpy as np  # noqa: E402

# (model, layer, in_channels, out_channels, kernel, padding, input height = width)
SHAPES = [
    ("LeNet-5", "conv1", 1, 6, 5, 2, 28),
    ("LeNet-5", "conv2", 6, 16, 5, 0, 14),
    ("KerasCNN", "conv1", 1, 32, 3, 0, 28),
    ("KerasCNN", "conv2", 32, 64, 3, 0, 13),
    ("KerasCNN", "conv3", 64, 64, 3, 0, 5),
    ("CNN92", "conv1", 1, 32, 3, 1, 28),
    ("CNN92", "conv2", 32, 64, 3, 1, 14),
    ("CNN92", "conv3", 64, 128, 3, 1, 7),
    ("RGB stem", "conv1", 3, 16, 3, 1, 32),
]


def best_ms(fn, repeat: int, setup=None) -> float:
    """Best time of `fn(setup())` in ms; `setup` runs outside the timer (e.g. the forward pass
    whose output `fn` backpropagates through)."""
    times = []
    for k in range(repeat + 2):  # two warm-up calls
        arg = setup() if setup is not None else None
        start = time.perf_counter()
        fn(arg) if setup is not None else fn()
        if k >= 2:
            times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="set_num_threads(N, blas_threads=M), and OPENBLAS_NUM_THREADS for numpy")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    import torch

    import tinyopt as to

    to.tune_malloc()  # as the CLI does: reuse freed pages across steps
    import tinyopt.nn.functional as F
    from tinyopt.kernels import conv as K

    torch.set_num_threads(args.threads)
    # As bench_lenet: one pool, Numba's --threads for the twins and the split GEMMs, or with
    # --blas-threads M, BLAS's own pool on M threads (M = --threads: the kernels serial).
    to.set_num_threads(args.threads, blas_threads=args.blas_threads)
    to.warmup()
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}; torch {torch.__version__} with {args.threads} threads; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset (all cores)')}; load average "
          f"{os.getloadavg()[0]:.1f}; best of {args.repeat}, ms")
    print("\n| layer | shape (C→O, k, H) | path | tinyopt fwd | torch fwd | fwd ratio | tinyopt bwd | torch bwd "
          "| bwd ratio | other paths fwd / bwd |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, layer, c, o, k, pad, h in SHAPES:
        x = rng.standard_normal((args.batch, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        xt, wt, bt = (to.tensor(a, requires_grad=True) for a in (x, w, b))
        xp, wp, bp = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        grad = None
        times = {}
        out_hw = (h + 2 * pad - k + 1,) * 2
        chosen_path = K.conv_path(x.shape, w.shape, (1, 1), 1, out_hw, (pad, pad), (1, 1))
        rule = K.conv_path
        for path in ("direct", "wide", "im2col"):
            K.conv_path = lambda *_, path=path: path
            y = F.conv2d(xt, wt, bt, padding=pad)
            if grad is None:
                grad = rng.standard_normal(y.shape).astype(np.float32)
                reference = y.data
            np.testing.assert_allclose(y.data, reference, rtol=1e-4, atol=1e-4)
            with to.no_grad():
                t_fwd = best_ms(lambda: F.conv2d(xt, wt, bt, padding=pad), args.repeat)
            # Backward alone: the forward that records the graph runs untimed in `setup`.
            t_bwd = best_ms(lambda out: out.backward(grad), args.repeat, setup=lambda: F.conv2d(xt, wt, bt, padding=pad))
            times[path] = (t_fwd, t_bwd)
        K.conv_path = rule
        path = chosen_path
        others = ", ".join(f"{p}: {times[p][0]:.2f} / {times[p][1]:.2f}" for p in times if p != path)
        grad_t = torch.from_numpy(grad)
        with torch.no_grad():
            p_fwd = best_ms(lambda: torch.nn.functional.conv2d(xp, wp, bp, padding=pad), args.repeat)
        p_bwd = best_ms(lambda out: out.backward(grad_t), args.repeat,
                        setup=lambda: torch.nn.functional.conv2d(xp, wp, bp, padding=pad))
        t_fwd, t_bwd = times[path]
        print(f"| {model} {layer} | {c}→{o}, {k}×{k}, {h}×{h} | {path} | {t_fwd:.2f} | {p_fwd:.2f} | {p_fwd / t_fwd:.2f}x "
              f"| {t_bwd:.2f} | {p_bwd:.2f} | {p_bwd / t_bwd:.2f}x | {others} |")
    print("\nratio = torch time / tinyopt time (above 1: tinyopt is faster); path = the one F.conv2d takes "
          f"(direct when O·C·KH·KW ≤ {K.DIRECT_MAX_MACS} or, with the parallel twins on, a wide row ≥ "
          f"{K.DIRECT_MIN_LENGTH}; else, at stride 1, wide with the kernels serial and im2col with the twins on)")


if __name__ == "__main__":
    main()
