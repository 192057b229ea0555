"""int8 matmul speed: tinyopt's kernels vs NumPy float32 matmul (OpenBLAS) and PyTorch's int8.

    python benchmarks/bench_int8.py [--sizes 512 1024 2048] [--repeats 7] [--threads N]
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_int8.py --threads 1     # one core each, the fair race

For each square size n, on the same data in one process:
- NumPy float32 `a @ b` (OpenBLAS, its own threads) — the baseline the ratios are against;
- tinyopt `matmul_int8` AVX2 kernel with B packed once (a layer's weight), and with packing per call;
- tinyopt portable Numba kernel;
- PyTorch: a dynamically quantized `nn.Linear` (fbgemm, int8 weights,
  activations quantized per call) computing x·Wᵀ with x [n, n], when torch is importable.

Times are medians of `--repeats` runs after one warm-up, as wall time and as CPU time (summed
over the process's threads); ratio = float32 time / other time (> 1: faster than float32 BLAS).
On a shared machine the CPU-time ratio is the one to trust; wall times swing with the load.

Measured on the development machine (AMD EPYC, AVX2, no AVX-512/VNNI, 2 shared cores), one
thread each, CPU-time ratio vs OpenBLAS float32 (> 1 is faster):

    n      tinyopt int8 AVX2 (B prepacked)   torch fbgemm dynamic int8   tinyopt portable
    512         1.49                                1.65                     0.44
    1024        1.48                                1.66                     0.41
    2048        1.31                                1.70                     —

With both libraries on 2 threads the ratios are similar but swing with the machine's load.

fbgemm is faster because it multiplies u8×s8 with `vpmaddubsw` (32 products per instruction,
int16 pair sums that can saturate — the reason torch's observers default to reduce_range=True,
7-bit activations, on x86); tinyopt widens to int16 and uses `vpmaddwd` (16 products, exact for
every int8 input).  ≥ 2× would need VNNI's `vpdpbusd`, which this CPU lacks.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tinyopt.kernels import gemm_int8 as mi


def timeit(fn, repeats):
    """Median wall time and median CPU time (all threads of this process) over `repeats` runs.

    CPU time is the steadier number on a shared machine: it counts the cycles this process
    used, not the time other processes held the cores."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="Numba and torch threads (default: all)")
    args = parser.parse_args(argv)

    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    try:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    print(f"int8 kernel: {mi.int8_kernel_info()}  numba threads: {numba.get_num_threads()}")
    print(f"{'n':>5} {'what':<36} {'wall ms':>9} {'f32/this':>8} {'cpu ms':>9} {'f32/this':>8}")
    rng = np.random.default_rng(0)
    for n in args.sizes:
        a = rng.integers(-128, 128, (n, n), dtype=np.int8)
        b = rng.integers(-128, 128, (n, n), dtype=np.int8)
        af, bf = a.astype(np.float32), b.astype(np.float32)
        packed = mi.pack_b(b)
        # bit-exactness on a slice, so the timing is of a correct kernel
        np.testing.assert_array_equal(mi.matmul_int8_numba(a[:64], packed), mi.matmul_int8_reference(a[:64], b))

        rows = [("numpy float32 matmul (OpenBLAS)", lambda: af @ bf)]
        if mi._host_has_avx2():
            rows.append(("tinyopt int8 avx2, B prepacked", lambda: mi.matmul_int8_avx2(a, packed)))
            rows.append(("tinyopt int8 avx2, packing B", lambda: mi.matmul_int8_avx2(a, b)))
        if n <= 1024:
            rows.append(("tinyopt int8 portable", lambda: mi.matmul_int8_portable(a, b)))
        if torch is not None:
            import warnings

            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            lin = torch.nn.Linear(n, n, bias=False)
            qlin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
            x = torch.from_numpy(af / 128.0)
            with torch.no_grad():
                rows.append(("torch dynamic int8 Linear (fbgemm)", lambda: qlin(x)))
                rows.append(("torch float32 Linear", lambda: lin(x)))
        base = None
        for name, fn in rows:
            with (torch.no_grad() if torch is not None else _null()):
                wall, cpu = timeit(fn, args.repeats)
            base = base or (wall, cpu)
            print(f"{n:>5} {name:<36} {wall * 1e3:>9.2f} {base[0] / wall:>8.2f} {cpu * 1e3:>9.2f} {base[1] / cpu:>8.2f}")


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
