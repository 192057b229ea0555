"""Conv2d forward and backward alone, per layer shape of LeNet-5 and the Keras CNN: tinyopt vs PyTorch CPU.

For every shape (batch 64 by default) it times, in one process and on the same data:

- tinyopt forward (im2col + GEMM) and backward (dW, db and dx by GEMMs + col2im), through autograd;
- the same in torch (`torch.set_num_threads`, 2 by default);
- a direct Numba convolution forward (no im2col: seven nested loops), the alternative the
  im2col design was chosen over; the table says which of the two is faster per shape.

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

import numba  # noqa: E402
import numpy as np  # noqa: E402

# (model, layer, in_channels, out_channels, kernel, padding, input height = width)
SHAPES = [
    ("LeNet-5", "conv1", 1, 6, 5, 2, 28),
    ("LeNet-5", "conv2", 6, 16, 5, 0, 14),
    ("KerasCNN", "conv1", 1, 32, 3, 0, 28),
    ("KerasCNN", "conv2", 32, 64, 3, 0, 13),
    ("KerasCNN", "conv3", 64, 64, 3, 0, 5),
]


@numba.njit(cache=True)
def direct_conv2d(x, w, pad):
    """y[n, o, a, b] = Σ_{c,i,j} w[o, c, i, j] · x_pad[n, c, a + i, b + j] (stride 1), no im2col."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    y = np.zeros((n, o, oh, ow), dtype=x.dtype)
    for b in range(n):
        for f in range(o):
            for ch in range(c):
                for i in range(kh):
                    for j in range(kw):
                        wv = w[f, ch, i, j]
                        for a in range(oh):
                            yy = a + i - pad
                            if yy < 0 or yy >= h:
                                continue
                            for q in range(ow):
                                xx = q + j - pad
                                if 0 <= xx < wd:
                                    y[b, f, a, q] += wv * x[b, ch, yy, xx]
    return y


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
    parser.add_argument("--blas-threads", type=int, default=None, help="OPENBLAS_NUM_THREADS for numpy")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    import torch

    import tinyopt as to

    to.tune_malloc()  # as the CLI does: reuse freed pages across steps
    import tinyopt.nn.functional as F

    torch.set_num_threads(args.threads)
    to.warmup()
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}; torch {torch.__version__} with {args.threads} threads; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset (all cores)')}; load average "
          f"{os.getloadavg()[0]:.1f}; best of {args.repeat}, ms")
    print("\n| layer | shape (C→O, k, H) | tinyopt fwd | torch fwd | fwd ratio | tinyopt bwd | torch bwd | bwd ratio "
          "| direct Numba fwd | faster forward |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, layer, c, o, k, pad, h in SHAPES:
        x = rng.standard_normal((args.batch, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        xt, wt, bt = (to.tensor(a, requires_grad=True) for a in (x, w, b))
        xp, wp, bp = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv2d(xt, wt, bt, padding=pad)
        grad = rng.standard_normal(y.shape).astype(np.float32)
        grad_t = torch.from_numpy(grad)

        with to.no_grad():
            t_fwd = best_ms(lambda: F.conv2d(xt, wt, bt, padding=pad), args.repeat)
        with torch.no_grad():
            p_fwd = best_ms(lambda: torch.nn.functional.conv2d(xp, wp, bp, padding=pad), args.repeat)

        # Backward alone: the forward that records the graph runs untimed in `setup`.
        t_bwd = best_ms(lambda out: out.backward(grad), args.repeat,
                        setup=lambda: F.conv2d(xt, wt, bt, padding=pad))
        p_bwd = best_ms(lambda out: out.backward(grad_t), args.repeat,
                        setup=lambda: torch.nn.functional.conv2d(xp, wp, bp, padding=pad))
        np.testing.assert_allclose(direct_conv2d(x, w, pad) + b[:, None, None], y.data, rtol=1e-3, atol=1e-3)
        d_fwd = best_ms(lambda: direct_conv2d(x, w, pad), args.repeat)
        faster = "im2col + GEMM" if t_fwd <= d_fwd else "direct"
        print(f"| {model} {layer} | {c}→{o}, {k}×{k}, {h}×{h} | {t_fwd:.2f} | {p_fwd:.2f} | {p_fwd / t_fwd:.2f}x "
              f"| {t_bwd:.2f} | {p_bwd:.2f} | {p_bwd / t_bwd:.2f}x | {d_fwd:.2f} | {faster} |")
    print("\nratio = torch time / tinyopt time (above 1: tinyopt is faster)")


if __name__ == "__main__":
    main()
