"""int8 GEMM speed: tinyopt's exact kernels vs torch's fbgemm dynamic int8 Linear and NumPy float32 BLAS.

    python benchmarks/bench_int8.py [--sizes 512 1024 2048] [--rounds 9] [--threads 2]

For each square size n (x [n, n] times a weight [n, n]), on the same data in one process, every
variant runs once per round and the rounds alternate between them (a change of machine load hits
all variants alike); the table gives the median wall and CPU time (all threads of this process)
and two ratios, other / this: against NumPy float32 `a @ b` (OpenBLAS) and against torch's
dynamically quantized `nn.Linear` (fbgemm, when torch is importable).  > 1: this one is faster.

The tinyopt rows, all exact (bit-identical to the int64 reference, checked on a slice first):

- `int8 x int8, vpmaddwd`: `gemm_int8`'s general kernel (operands widened to int16), B prepacked;
- `u8 x s8, vpmaddubsw, 7-bit A`: `gemm_u8s8`, activations ≤ 127 (`reduce_range=True`);
- `u8 x s8, vnni256` / `vnni512`: AVX-VNNI / AVX-512 VNNI `vpdpbusd`, any u8 A (when the CPU has it);
- `DynamicQuantLinear`: the whole layer as torch's row computes it — float x in, per-batch
  quantization to u8, the GEMM `matmul_u8s8` picks, dequantization to float out.

torch's fbgemm row is the same layer in torch (float in, float out, its own kernel for this CPU).
On a shared machine wall times swing with other processes' load (printed); CPU times are steadier.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

import tinyopt as to
from tinyopt.kernels import gemm_int8 as mi
from tinyopt.kernels import gemm_u8s8 as mu


def alternate(fns: dict, rounds: int) -> dict:
    """{name: (median wall s, median CPU s)}: one warm-up each, then `rounds` rounds of one run each."""
    for fn in fns.values():
        fn()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2, help="Numba, torch and OpenBLAS threads")
    args = parser.parse_args(argv)
    to.tune_malloc()  # as the CLI does: reuse freed pages across steps

    import numba

    numba.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch
        torch.set_num_threads(args.threads)
        warnings.filterwarnings("ignore")
    except ImportError:
        torch = None
    from tinyopt.quant.modules import DynamicQuantLinear
    from tinyopt.quant.quantize import PerChannelMinMaxObserver, quantize_array

    print(f"u8s8 kernels: {mu.u8s8_kernel_info()}; threads {args.threads}; "
          f"load average {os.getloadavg()[0]:.1f} (other jobs running if > 0)")
    header = (f"{'n':>5} {'what':<44} {'wall ms':>9} {'cpu ms':>9}   f32/this wall  cpu   fbgemm/this wall  cpu")
    rng = np.random.default_rng(0)
    for n in args.sizes:
        a = rng.integers(-128, 128, (n, n), dtype=np.int8)
        b = rng.integers(-128, 128, (n, n), dtype=np.int8)
        u = a.view(np.uint8) ^ np.uint8(0x80)
        u7 = u >> 1
        af, bf = a.astype(np.float32), b.astype(np.float32)
        packed, packed_u = mi.pack_b(b), mu.pack_b_u8s8(b)
        ref = mu.matmul_u8s8_reference(u[:64], b)
        np.testing.assert_array_equal(mi.matmul_int8_numba(a[:64], packed), mi.matmul_int8_reference(a[:64], b))
        fns = {"numpy float32 matmul (OpenBLAS)": lambda: af @ bf}
        if "int16" in mu.available_kernels():
            fns["tinyopt int8 x int8, vpmaddwd"] = lambda: mi.matmul_int8_avx2(a, packed)
        for kind in ("maddubs", "vnni256", "vnni512"):
            if kind in mu.available_kernels():
                x = u7 if kind == "maddubs" else u
                np.testing.assert_array_equal(mu.matmul_u8s8_kernel(kind, x[:64], packed_u),
                                              mu.matmul_u8s8_reference(x[:64], b))
                label = {"maddubs": "u8 x s8, vpmaddubsw, 7-bit A", "vnni256": "u8 x s8, vpdpbusd ymm (AVX-VNNI)",
                         "vnni512": "u8 x s8, vpdpbusd zmm (AVX-512 VNNI)"}[kind]
                fns[f"tinyopt {label}"] = (lambda kind=kind, x=x: mu.matmul_u8s8_kernel(kind, x, packed_u))
        np.testing.assert_array_equal(mu.matmul_u8s8(u[:64], packed_u), ref)
        w = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
        obs = PerChannelMinMaxObserver(dtype="qint8", qscheme="per_channel_symmetric", quant_min=-127, quant_max=127)
        obs(w)
        scale, _ = obs.calculate_qparams()
        w_q = quantize_array(w, scale.reshape(-1, 1), 0, -127, 127).astype(np.int8)
        xf = rng.standard_normal((n, n)).astype(np.float32)
        for rr in (False, True):
            layer = DynamicQuantLinear(w_q, scale, "qint8", None, reduce_range=rr)
            fns[f"tinyopt DynamicQuantLinear{' reduce_range' if rr else ''}"] = (lambda layer=layer: layer(xf))
        if torch is not None:
            lin = torch.nn.Linear(n, n, bias=False)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
            qlin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
            tx = torch.from_numpy(xf)
            fns["torch dynamic int8 Linear (fbgemm)"] = lambda: qlin(tx)
            fns["torch float32 Linear"] = lambda: lin(tx)
        if torch is not None:
            with torch.no_grad():
                times = alternate(fns, args.rounds)
        else:
            times = alternate(fns, args.rounds)
        base = times["numpy float32 matmul (OpenBLAS)"]
        fb = times.get("torch dynamic int8 Linear (fbgemm)")
        print(header)
        for name, (wall, cpu) in times.items():
            vs_fb = f"{fb[0] / wall:>16.2f} {fb[1] / cpu:>5.2f}" if fb else f"{'-':>16} {'-':>5}"
            print(f"{n:>5} {name:<44} {wall * 1e3:>9.2f} {cpu * 1e3:>9.2f} {base[0] / wall:>14.2f} {base[1] / cpu:>5.2f} "
                  f"{vs_fb}")
        print(f"      (load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
