"""Static int8 LeNet-5 inference vs fp32, per stage, and PyTorch fp32 on the same weights.

    python benchmarks/bench_quant_lenet.py [--batch 256] [--repeats 15] [--run DIR] [--threads N [--blas-threads M]]
    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_quant_lenet.py   # one core each

`--threads N` calls `tinyopt.set_num_threads(N)` (or with `--blas-threads M`,
`set_num_threads(N, blas_threads=M)`): one pool, Numba's N threads, for the kernels and the split
GEMMs, as a training run with that setting does; without it the fp32 model runs on the libraries'
own setting (BLAS on every core, the Numba kernels serial).

The model is a trained run's checkpoint (`--run`, e.g. from `tinyopt tour --out DIR`) or, without
one, a randomly initialised LeNet-5 on random images (timings do not depend on the weights much;
the int8 ranges come from 512 calibration images either way).  In one process, on the same batch:

- tinyopt fp32 forward (OpenBLAS threads as set by the environment);
- tinyopt static int8 (fuse → prepare → calibrate → convert), whole model, and per stage (wall
  and CPU ms): quantize the input, each conv's int32 accumulators alone (`conv2d_int8_acc`) and
  its requantize + ReLU + 2×2 max pool alone, each conv as the model runs it (one fused kernel
  on a VNNI CPU), the Linear layers;
- PyTorch fp32 LeNet-5 with the same weights (when torch is importable).

The whole-model variants (fp32, static int8, static int8 with 7-bit activations
`reduce_range=True`, torch fp32) alternate in rounds (each after an idle pause, so the previous
variant's spinning BLAS/OpenMP threads are asleep), so a change of machine load hits them alike;
the table gives median wall and CPU time (all threads of this process) and the ratio fp32 /
variant.  The per-stage times are medians of `--repeats` calls.  The machine's load average is
printed.  Read the CPU column with care: Linux adds another thread's CPU time to the process's
at scheduler ticks (every few ms), so for a call shorter than a tick it can show only the main
thread's (the int8 model's 0.8 ms: CPU = wall although both threads work; measured over 200
calls in a row it was 1.5 ms for 0.75 ms of wall).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import numpy as np

import tinyopt as to
from tinyopt.autograd.function import no_grad
from tinyopt.models import LeNet5
from tinyopt.quant import quantize as QZ
from tinyopt.quant.modules import QActivation, quantize_input
from tinyopt.quant.reporting import calibrate


def median_ms(fn, repeats):
    """(median wall ms, median CPU ms of this process's threads) after a short idle pause (so the
    spinning worker threads of the previous measurement have gone to sleep) and three warm-up
    calls.  On a shared machine wall time counts other jobs' load; CPU time counts the Numba
    workers' spin between calls, so a stage of parallel kernels can show more CPU than 2 × wall."""
    time.sleep(0.02)
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def stage_line(name, fn, repeats, note=""):
    wall, cpu = median_ms(fn, repeats)
    print(f"  {name:<34} {wall:8.2f} {cpu:8.2f}{note}")


def alternate(fns: dict, rounds: int, calls: int = 5, pause: float = 0.02, warm: int = 2) -> dict:
    """{name: (median wall ms, median CPU ms)}: a warm-up each, then `rounds` rounds in which each
    variant runs `warm` untimed and `calls` timed times after `pause` seconds of idle. The pause
    matters: OpenBLAS's and OpenMP's worker threads spin for a while after their last call, and
    without it the previous variant's spinning threads would take the cores from the next one
    (measured: the int8 model, whose kernels run on Numba's threads, 1.4 ms after an idle pause and
    4 ms right after the fp32 model's GEMMs). 20 ms covers OpenMP's spin (GNU's default, torch's
    threads) and tinyopt's; OpenBLAS's own pool (`--blas-threads N`) spins about 0.1 s, so give
    `--pause 0.2` there. Longer is worse on a VM: after 0.2 s of idle the second core came back
    only ~50 ms later, and the next seven fp32 calls ran on one core (8 ms instead of 3.5). The
    untimed calls absorb what is left of that."""
    for fn in fns.values():
        fn()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)
            for _ in range(warm):
                fn()
            for _ in range(calls):
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                wall[name].append(1e3 * (time.perf_counter() - t0))
                cpu[name].append(1e3 * (time.process_time() - c0))
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def load_model(run, rng):
    if run is None:
        images = rng.standard_normal((512 + 4096, 1, 28, 28)).astype(np.float32)
        return LeNet5(rng=0).eval(), images[:512], images[512:]
    from tinyopt.train import load_data, load_run

    config, model = load_run(run, None)
    (x_train, _), _, (x_test, _) = load_data(config, None)
    return model.eval(), x_train[:512], x_test


def torch_lenet(model):
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10))
    ours = [model.features[0], model.features[3], model.classifier[1], model.classifier[3], model.classifier[5]]
    theirs = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            b.weight.copy_(torch.from_numpy(a.weight.data))
            b.bias.copy_(torch.from_numpy(a.bias.data))
    return net.eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--run", default=None, help="a training run folder with a LeNet-5 checkpoint")
    p.add_argument("--threads", type=int, default=None, help="tinyopt.set_num_threads(N, blas_threads=M)")
    p.add_argument("--blas-threads", type=int, default=None, help="M above (default: N)")
    p.add_argument("--pause", type=float, default=0.02, help="seconds of idle before each round (see alternate)")
    args = p.parse_args(argv)
    if args.threads is not None:
        to.set_num_threads(args.threads, blas_threads=args.blas_threads)
    elif args.blas_threads is not None:
        p.error("--blas-threads needs --threads")
    to.tune_malloc()  # as the CLI does: reuse freed pages across steps
    import numba

    rng = np.random.default_rng(0)
    model, calib, test = load_model(args.run, rng)
    x = test[:args.batch]
    q = calibrate(copy.deepcopy(model), QZ.default_qconfig, calib)
    q7 = calibrate(copy.deepcopy(model), QZ.get_default_qconfig(reduce_range=True), calib)
    setting = ("default thread setting" if args.threads is None
               else f"set_num_threads({args.threads})" if args.blas_threads is None
               else f"set_num_threads({args.threads}, blas_threads={args.blas_threads})")
    print(f"batch {args.batch}, {setting}, Numba threads {numba.get_num_threads()}, OpenBLAS "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, load average {os.getloadavg()[0]:.1f}; "
          f"median of {args.repeats} alternating rounds of 5 calls (after 2 untimed)")
    with no_grad():
        xs = to.from_numpy(x)              # shares x's memory, as torch.from_numpy does for the torch model
        variants = {"tinyopt fp32": lambda: model(xs), "tinyopt static int8": lambda: q(xs),
                    "tinyopt static int8, 7-bit act.": lambda: q7(xs)}
        try:
            import torch

            net, xt = torch_lenet(model), torch.from_numpy(x)
            variants[f"torch fp32 ({torch.get_num_threads()} threads)"] = lambda: net(xt)
        except ImportError:
            torch = None
        times = alternate(variants, args.repeats, pause=args.pause)
        fp32 = times["tinyopt fp32"]
        print(f"  {'variant':<34} {'wall ms':>8} {'cpu ms':>8} {'fp32/this (wall)':>17} {'(cpu)':>6}")
        for name, (wall, cpu) in times.items():
            print(f"  {name:<34} {wall:8.2f} {cpu:8.2f} {fp32[0] / wall:16.2f}x {fp32[1] / cpu:5.2f}x")
        print(f"int8 stages (median of {args.repeats} calls after 3 untimed):")
        print(f"  {'stage':<34} {'wall ms':>8} {'cpu ms':>8}")
        conv1 = q.features[0]
        stage_line("quantize input", lambda: quantize_input(xs, conv1.input_scale, conv1.input_zero_point,
                                                            conv1.input_qmin, conv1.input_qmax), args.repeats)
        a, z = quantize_input(xs, conv1.input_scale, conv1.input_zero_point)[0], conv1.input_zero_point
        for name, conv in (("conv1", q.features[0]), ("conv2", q.features[3])):
            s_x = conv.input_scale
            acc = conv.conv_acc(a, z)
            stage_line(f"{name} accumulators alone", lambda: conv.conv_acc(a, z), args.repeats)
            stage_line(f"{name} requant+pool alone", lambda: conv.requantize_acc(acc, s_x, z, pool=2), args.repeats)
            stage_line(f"{name} as the model runs it", lambda: conv.conv_requantize_pool(a, s_x, z, 2), args.repeats,
                       "   (fused on a VNNI CPU)")
            a, z = conv.conv_requantize_pool(a, s_x, z, 2), conv.zero_point
        h0 = q.classifier[0](QActivation(a, q.features[3].scale, z))

        def linears():
            h = h0
            for i in (1, 3, 5):
                h = q.classifier[i](h)
            return h
        stage_line("3 Linear layers", linears, args.repeats, "   (fused on a VNNI CPU)")

if __name__ == "__main__":
    main()
